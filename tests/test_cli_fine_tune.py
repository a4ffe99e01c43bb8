"""``dendrite-panoptic fine-tune``: corrected label TIFFs on disk train a new model folder that
``segment`` then uses, with the corrections saved in it; bad input is refused in one line
before anything is written; Ctrl-C stops after the batch."""

import os
import signal

import numpy as np
import pytest

from napari_dendrite_panoptic.cli import main
from napari_dendrite_panoptic.io import write_tiff_atomic
from napari_dendrite_panoptic.models import load_models


@pytest.fixture
def corrected(tmp_path, small_plane):
    """A generated plane with its truth as corrected labels, named as ``segment`` names them,
    the labels in their own folder."""
    voxel = small_plane.voxel_size_um
    image = tmp_path / "images" / "field.tif"
    labels = tmp_path / "results"
    image.parent.mkdir()
    labels.mkdir()
    write_tiff_atomic(image, (small_plane.image[0] * 1000).astype(np.uint16), voxel)
    write_tiff_atomic(labels / "field_dendrite.tif", small_plane.dendrite[0], voxel)
    write_tiff_atomic(labels / "field_spines.tif", small_plane.spines[0].astype(np.uint16), voxel)
    return image, labels


def test_fine_tune_writes_a_model_folder_that_segment_uses(
    tiny_model_dir, tmp_path, corrected, capsys
):
    image, labels = corrected
    out = tmp_path / "my_lab"
    args = ["fine-tune", str(image), "--labels", str(labels), "--out", str(out)]
    assert main([*args, "--base-model", str(tiny_model_dir), "--epochs", "1"]) == 0
    printed = capsys.readouterr().out
    assert f"saved in {out}" in printed and "pass" in printed
    models = load_models(out, "cpu")
    assert models.card.name == "my_lab"
    assert models.card.provenance["base_model"] == str(tiny_model_dir)
    assert "'field.tif'" in models.card.provenance["data"]
    assert (out / "corrections").is_dir() and any((out / "corrections").iterdir())
    assert not (out / "training").exists()  # a finished run drops its checkpoint
    # the new model segments
    again = tmp_path / "again"
    assert main(["segment", str(image), "--out", str(again), "--model", str(out)]) == 0
    assert (again / "field_spines.tif").is_file()


def test_fine_tune_refuses_what_it_cannot_use_and_writes_nothing(
    tiny_model_dir, tmp_path, corrected, capsys
):
    image, labels = corrected
    base = ["--base-model", str(tiny_model_dir), "--epochs", "1"]
    out = tmp_path / "m"
    # labels not where they are looked for: the expected path is named
    assert main(["fine-tune", str(image), "--out", str(out), *base]) == 2
    err = capsys.readouterr().err
    assert "no corrected dendrite labels for 'field.tif'" in err
    assert str(image.parent / "field_dendrite.tif") in err
    assert not out.exists()
    # an existing model folder is never overwritten
    out.mkdir()
    (out / "card.json").write_text("{}")
    assert main(["fine-tune", str(image), "--labels", str(labels), "--out", str(out), *base]) == 2
    assert "exists already" in capsys.readouterr().err
    assert (out / "card.json").read_text() == "{}"
    # a channel the image does not have, as segment refuses it
    args = ["fine-tune", str(image), "--labels", str(labels), "--out", str(tmp_path / "c")]
    assert main([*args, "--channel", "3", *base]) == 2
    assert "Channel 3 does not exist" in capsys.readouterr().err
    # a model name that cannot be a folder in the user models folder, as in the dock
    assert main(["fine-tune", str(image), "--labels", str(labels), "--name", "a/b", *base]) == 2
    assert "'a/b' cannot be a folder name" in capsys.readouterr().err
    # an aborted run's folder (its corrections, no model) is named as such, and kept
    aborted = tmp_path / "aborted"
    (aborted / "corrections").mkdir(parents=True)
    args = ["fine-tune", str(image), "--labels", str(labels), "--out", str(aborted), *base]
    assert main(args) == 2
    assert "a run that did not finish: its corrections are in it" in capsys.readouterr().err
    assert (aborted / "corrections").is_dir()
    # the same image to train on and held out
    args = ["fine-tune", str(image), "--labels", str(labels), "--held-out", str(image)]
    assert main([*args, "--out", str(tmp_path / "m2"), *base]) == 2
    assert "given twice" in capsys.readouterr().err


@pytest.mark.parametrize(
    "flag, value, words",
    [
        ("--minutes", "0", "--minutes must be more than 0, not 0.0"),
        ("--epochs", "0", "--epochs must be at least 1, not 0"),
        ("--pixel-size", "0", "--pixel-size must be more than 0, not 0.0"),
        ("--z-step", "-1", "--z-step must be more than 0, not -1.0"),
    ],
)
def test_numbers_not_above_0_are_refused_in_one_line(
    tiny_model_dir, tmp_path, corrected, capsys, flag, value, words
):
    image, labels = corrected
    out = tmp_path / "m"
    args = ["fine-tune", str(image), "--labels", str(labels), "--out", str(out)]
    assert main([*args, "--base-model", str(tiny_model_dir), flag, value]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines == [f"dendrite-panoptic: {words}"]
    assert not out.exists()


def test_fine_tune_config_refuses_a_length_not_above_0(tmp_path):
    from napari_dendrite_panoptic.errors import InputError
    from napari_dendrite_panoptic.training import fine_tune_config

    with pytest.raises(InputError, match="minutes must be more than 0, not 0"):
        fine_tune_config("base", tmp_path / "m", [], 0.1, minutes=0)
    with pytest.raises(InputError, match="epochs must be at least 1, not 0"):
        fine_tune_config("base", tmp_path / "m", [], 0.1, epochs=0)


def test_a_semantic_spine_mask_is_refused_or_split(tiny_model_dir, tmp_path, corrected, capsys):
    image, labels = corrected
    spines = labels / "field_spines.tif"
    from napari_dendrite_panoptic.io import read_tiff

    semantic = (np.asarray(read_tiff(spines).data) > 0).astype(np.uint8)
    write_tiff_atomic(spines, semantic, (1.0, 0.1, 0.1))
    args = ["fine-tune", str(image), "--labels", str(labels), "--base-model", str(tiny_model_dir)]
    args += ["--epochs", "1", "--no-thresholds"]
    assert main([*args, "--out", str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err
    assert "semantic mask" in err and "--split-components" in err
    assert main([*args, "--out", str(tmp_path / "b"), "--split-components"]) == 0
    assert "split into" in capsys.readouterr().err


def test_the_first_ctrl_c_asks_to_stop_the_second_interrupts():
    from napari_dendrite_panoptic.cli.fine_tune import _stop_on_ctrl_c

    before = signal.getsignal(signal.SIGINT)  # a background job may start with SIGINT ignored
    with _stop_on_ctrl_c() as stop:
        os.kill(os.getpid(), signal.SIGINT)
        assert stop.is_set()  # the run stops after its batch and saves the model
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) is before  # the handler before is back


def test_an_image_without_a_pixel_size_is_named_and_taken_at_the_models(
    tiny_model_dir, tmp_path, small_plane, capsys
):
    folder = tmp_path / "plain"
    folder.mkdir()
    write_tiff_atomic(folder / "raw.tif", (small_plane.image[0] * 1000).astype(np.uint16), None)
    write_tiff_atomic(folder / "raw_dendrite.tif", small_plane.dendrite[0], None)
    write_tiff_atomic(folder / "raw_spines.tif", small_plane.spines[0].astype(np.uint16), None)
    args = ["fine-tune", str(folder / "raw.tif"), "--base-model", str(tiny_model_dir)]
    assert main([*args, "--out", str(tmp_path / "m"), "--epochs", "1", "--no-thresholds"]) == 0
    assert "'raw.tif' without a pixel size: taken at the model's 0.1 µm" in capsys.readouterr().err
    # --pixel-size gives it one: resampled to the model's, and said so
    args += ["--out", str(tmp_path / "m2"), "--epochs", "1", "--no-thresholds"]
    assert main([*args, "--pixel-size", "0.2"]) == 0
    assert "Resampling 'raw.tif' (0.2 µm)" in capsys.readouterr().err


def test_a_corrected_stack_trains_with_its_z_step(
    tiny_model_dir, tmp_path, small_stack, monkeypatch
):
    """A stack's z-step comes from its metadata and reaches the run (its slabs are cut at it);
    the corrections saved in the model folder keep the stack's voxel size."""
    from napari_dendrite_panoptic import training
    from napari_dendrite_panoptic.io import read_tiff

    seen = []
    real = training.iter_fine_tune

    def spy(config, volumes, *rest):
        seen.extend(volumes)
        return real(config, volumes, *rest)

    monkeypatch.setattr(training, "iter_fine_tune", spy)

    voxel = small_stack.voxel_size_um
    folder = tmp_path / "stack"
    folder.mkdir()
    write_tiff_atomic(folder / "s.tif", (small_stack.image * 1000).astype(np.uint16), voxel)
    write_tiff_atomic(folder / "s_dendrite.tif", small_stack.dendrite, voxel)
    write_tiff_atomic(folder / "s_spines.tif", small_stack.spines.astype(np.uint16), voxel)
    out = tmp_path / "m"
    args = ["fine-tune", str(folder / "s.tif"), "--base-model", str(tiny_model_dir)]
    assert main([*args, "--out", str(out), "--epochs", "1", "--no-thresholds"]) == 0
    saved = read_tiff(out / "corrections" / "s_image.tif")
    assert saved.data.shape == small_stack.image.shape
    assert saved.voxel_size_um == pytest.approx(voxel)
    assert load_models(out, "cpu").card.provenance["steps"] >= 1
    (volume,) = seen
    assert volume.z_step_um == pytest.approx(voxel[0]) and volume.planes == tuple(range(4))


def test_only_edited_trains_on_the_planes_changed_since_segment_wrote_them(
    tiny_model_dir, tmp_path, small_stack, monkeypatch, capsys
):
    """``segment``'s run record keeps a hash of each plane of the labels it wrote;
    ``--only-edited`` trains on the planes the user changed since, and refuses when none was."""
    import json

    from napari_dendrite_panoptic import training
    from napari_dendrite_panoptic.io import read_tiff

    image = tmp_path / "s.tif"
    write_tiff_atomic(
        image, (small_stack.image * 1000).astype(np.uint16), small_stack.voxel_size_um
    )
    out = tmp_path / "results"
    seg = ["segment", str(image), "--out", str(out), "--model", str(tiny_model_dir)]
    assert main(seg) == 0
    record = json.loads((out / "s_run.json").read_text())
    assert len(record["label_plane_hashes"]["spines"]) == small_stack.image.shape[0]
    seen = []
    real = training.iter_fine_tune
    monkeypatch.setattr(
        training, "iter_fine_tune", lambda c, v, *r: seen.extend(v) or real(c, v, *r)
    )
    base = ["fine-tune", str(image), "--labels", str(out), "--base-model", str(tiny_model_dir)]
    base += ["--epochs", "1", "--no-thresholds", "--only-edited", "--which", "spines"]
    # nothing edited yet: refused, nothing written
    assert main([*base, "--out", str(tmp_path / "m0")]) == 2
    assert "no plane was edited" in capsys.readouterr().err
    assert not (tmp_path / "m0").exists()
    # plane 2 corrected: a spine painted there (saved as another dtype: the same plane elsewhere)
    spines = np.asarray(read_tiff(out / "s_spines.tif").data).astype(np.uint32)
    spines[2, 40:44, 40:44] = spines.max() + 1
    write_tiff_atomic(out / "s_spines.tif", spines, small_stack.voxel_size_um)
    assert main([*base, "--out", str(tmp_path / "m1")]) == 0
    assert seen[-1].planes == (2,)
    # a held-out image whose labels are as segment wrote them cannot judge: refused
    other = tmp_path / "t.tif"
    other.write_bytes(image.read_bytes())
    assert main(["segment", str(other), "--out", str(out), "--model", str(tiny_model_dir)]) == 0
    held = [*base, "--held-out", str(other)]
    assert main([*held, "--out", str(tmp_path / "h0")]) == 2
    assert "'t.tif' is held out, but its spine labels are as the model drew them" in (
        capsys.readouterr().err
    )
    write_tiff_atomic(out / "t_spines.tif", spines, small_stack.voxel_size_um)  # corrected
    assert main([*held, "--out", str(tmp_path / "h1")]) == 0
    # without the run record every plane is used, and the user is told
    (out / "s_run.json").unlink()
    assert main([*base, "--out", str(tmp_path / "m2")]) == 0
    assert seen[-1].planes == (0, 1, 2, 3)
    assert "every plane is used" in capsys.readouterr().err


def test_a_folder_of_images_with_their_labels_beside_them_trains_on_the_images(
    tiny_model_dir, tmp_path, small_plane, monkeypatch, capsys
):
    """A folder given as input, as ``segment`` takes one: its images train, their label files
    beside them are not taken for images."""
    from napari_dendrite_panoptic import training

    folder = tmp_path / "lab"
    folder.mkdir()
    voxel = small_plane.voxel_size_um
    for stem in ("a", "b"):
        write_tiff_atomic(
            folder / f"{stem}.tif", (small_plane.image[0] * 900).astype(np.uint16), voxel
        )
        write_tiff_atomic(folder / f"{stem}_dendrite.tif", small_plane.dendrite[0], voxel)
        spines = small_plane.spines[0].astype(np.uint16)
        write_tiff_atomic(folder / f"{stem}_spines.tif", spines, voxel)
    seen = []
    real = training.iter_fine_tune
    monkeypatch.setattr(
        training, "iter_fine_tune", lambda c, v, *r: seen.extend(v) or real(c, v, *r)
    )
    args = ["fine-tune", str(folder), "--base-model", str(tiny_model_dir), "--epochs", "1"]
    assert main([*args, "--no-thresholds", "--out", str(tmp_path / "m")]) == 0
    assert sorted(v.name for v in seen) == ["a.tif", "b.tif"]
    # an image that is not there is named
    missing = ["fine-tune", str(tmp_path / "nope.tif"), "--out", str(tmp_path / "m2")]
    assert main(missing) == 2
    assert "nope.tif' does not exist" in capsys.readouterr().err
