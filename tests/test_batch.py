"""Batches: folders and globs, in process and on a Dask cluster (2 workers on 127.0.0.1), one
file's failure reported while the others finish, and the summary CSV across files."""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np
import pytest

from napari_dendrite_panoptic.analysis import dendrite_length_um
from napari_dendrite_panoptic.cli import batch, batch_summary, build_parser, main
from napari_dendrite_panoptic.cli.segment import segment_config, segment_file
from napari_dendrite_panoptic.io import read_tiff, write_tiff_atomic

pytest.importorskip("distributed")


@pytest.fixture
def folder(tmp_path, small_plane) -> Path:
    """Three good 96x96 planes (0.1 µm/px) and one file that is not a TIFF."""
    d = tmp_path / "in"
    image = small_plane.image[0]
    for i in range(3):
        write_tiff_atomic(
            d / f"cell{i}.tif", np.roll(image, 20 * i, axis=1)[:96, :96], (1, 0.1, 0.1)
        )
    (d / "broken.tif").write_bytes(b"GIF89a not a tiff at all")
    (d / "notes.txt").write_text("ignored: not a .tif")
    return d


def _rows(path: Path) -> dict[str, dict[str, str]]:
    with open(path, newline="") as fh:
        return {Path(r["file"]).name: r for r in csv.DictReader(fh)}


def _check_summary(rows, out: Path) -> None:
    assert set(rows) == {"broken.tif", "cell0.tif", "cell1.tif", "cell2.tif"}
    assert rows["broken.tif"]["status"] == "failed"
    assert "is not a TIFF image (it looks like a GIF image)" in rows["broken.tif"]["error"]
    assert rows["broken.tif"]["spines"] == ""
    for i in range(3):
        row = rows[f"cell{i}.tif"]
        assert row["status"] == "ok" and row["error"] == ""
        assert row["shape"] == "96x96"
        assert float(row["voxel_size_x_um"]) == pytest.approx(0.1)
        spines = np.asarray(read_tiff(out / f"cell{i}_spines.tif").data)
        assert int(row["spines"]) == len(np.unique(spines)) - 1
        dend = read_tiff(out / f"cell{i}_dendrite.tif")
        length = dendrite_length_um(np.asarray(dend.data), (1.0, 0.1, 0.1))
        assert float(row["dendrite_length_um"]) == pytest.approx(length, rel=1e-5)
        # the tiny random model's dendrite probabilities are all >= 0: the dendrite is the
        # plane minus the spines, so its skeleton has a length
        assert length > 0
        assert float(row["spines_per_um"]) == pytest.approx(int(row["spines"]) / length, 1e-4)


def test_expand_inputs_folders_globs_and_missing(folder, tmp_path):
    names = [p.name for p in batch.expand_inputs([str(folder)])]
    assert names == ["broken.tif", "cell0.tif", "cell1.tif", "cell2.tif"]
    got = batch.expand_inputs([str(folder / "cell*.tif"), str(folder / "cell1.tif")])
    assert [p.name for p in got] == ["cell0.tif", "cell1.tif", "cell2.tif"]  # no duplicates
    assert batch.expand_inputs([str(tmp_path / "gone.tif")]) == [tmp_path / "gone.tif"]
    with pytest.raises(batch.InputError, match="no file matches"):
        batch.expand_inputs([str(folder / "*.png")])
    (tmp_path / "empty").mkdir()
    with pytest.raises(batch.InputError, match="holds no .tif or .tiff file"):
        batch.expand_inputs([str(tmp_path / "empty")])


def test_folder_in_process_writes_summary_and_lists_the_failure(
    folder, tiny_model_dir, tmp_path, capsys
):
    out = tmp_path / "out"
    args = ["segment", str(folder), "--out", str(out), "--model", str(tiny_model_dir)]
    assert (
        main([*args, "--device", "cpu", "--score-threshold", "0", "--dendrite-threshold", "0"]) == 1
    )
    err = capsys.readouterr().err
    assert "1 of 4 files failed:" in err and "broken.tif: Cannot read" in err
    _check_summary(_rows(out / "summary.csv"), out)
    # the summary is an output like the others: not replaced without --overwrite
    assert main([*args, "--device", "cpu"]) == 2
    assert "summary.csv exists already" in capsys.readouterr().err


def test_local_dask_cluster_of_two_workers(folder, tiny_model_dir, tmp_path):
    out = tmp_path / "out"
    ns = build_parser().parse_args(
        ["segment", "x", "--out", str(out), "--model", str(tiny_model_dir), "--device", "cpu"]
        + ["--score-threshold", "0", "--dendrite-threshold", "0"]
    )
    cfg = segment_config(ns)[0]
    paths = batch.expand_inputs([str(folder / "*.tif")])
    outcomes = batch.run_batch(segment_file, paths, ns, cfg, workers=2, processes=False)
    assert [Path(o.file).name for o in outcomes] == [p.name for p in paths]  # input order
    assert [o.status for o in outcomes] == ["failed", "ok", "ok", "ok"]
    batch_summary.write_summary_csv(out / "summary.csv", outcomes)
    _check_summary(_rows(out / "summary.csv"), out)


def test_cli_sends_files_to_an_existing_scheduler(folder, tiny_model_dir, tmp_path, capsys):
    from distributed import LocalCluster

    out = tmp_path / "out"
    with LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=False,
        host="127.0.0.1",
        protocol="tcp",
        dashboard_address=None,
    ) as cluster:
        address = cluster.scheduler_address
        assert address.startswith("tcp://127.0.0.1:")
        code = main(
            ["segment", str(folder / "*.tif"), "--out", str(out), "--model", str(tiny_model_dir)]
            + [
                "--device",
                "cpu",
                "--score-threshold",
                "0",
                "--dendrite-threshold",
                "0",
                "--scheduler",
                address,
            ]
            + ["--summary", str(tmp_path / "all.csv")]
        )
    assert code == 1
    captured = capsys.readouterr()
    assert "1 of 4 files failed:" in captured.err
    assert str(out / "cell2_spines.csv") in captured.out
    _check_summary(_rows(tmp_path / "all.csv"), out)


def test_unreachable_scheduler_is_a_clear_error(folder, tiny_model_dir, tmp_path, capsys):
    code = main(
        ["segment", str(folder / "cell0.tif"), "--out", str(tmp_path / "o")]
        + ["--model", str(tiny_model_dir), "--scheduler", "tcp://127.0.0.1:9"]
    )
    assert code == 2
    assert "cannot reach the Dask scheduler at tcp://127.0.0.1:9" in capsys.readouterr().err


def test_summary_columns_are_documented_units():
    assert "dendrite_length_um" in batch_summary.SUMMARY_COLUMNS
    assert "spines_per_um" in batch_summary.SUMMARY_COLUMNS
    ns = argparse.Namespace(out="o", summary=None, workers=1, scheduler=None, overwrite=False)
    assert batch_summary.summary_path(ns, 1) is None
    assert batch_summary.summary_path(ns, 2) == Path("o") / "summary.csv"
