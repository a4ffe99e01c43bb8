"""Spines over sessions: the generated series, the tracking engine and ``dendrite-panoptic track``
on tiny generated series."""

from __future__ import annotations

import numpy as np
import pytest

from napari_dendrite_panoptic.data.synthetic import SeriesConfig, generate_series
from napari_dendrite_panoptic.errors import InputError
from napari_dendrite_panoptic.tracking import (
    RegistrationError,
    Session,
    registration_error_um,
    score_tracking,
    track,
)

TINY = SeriesConfig(shape=(8, 160, 160), n_sessions=3)


@pytest.fixture(scope="module")
def series():
    return generate_series(2, TINY, days=[0.0, 2.0, 7.0])


def _sessions(series, images=True):
    return [
        Session(
            s.dendrite,
            s.spines,
            s.voxel_size_um,
            image=s.image if images else None,
            day=s.day,
            name=f"s{k}",
        )
        for k, s in enumerate(series.sessions)
    ]


def test_series_truth_is_consistent(series):
    first, later = series.sessions[0], series.sessions[1]
    assert later.image.shape == TINY.shape and later.spines.dtype == np.uint32
    # the truth maps a point there and back
    pts = np.array(list(series.base_um.values()))
    assert np.allclose(later.truth.to_first(later.truth.from_first(pts)), pts, atol=1e-3)
    # a spine drawn in a later session sits where the truth moves it
    sid = sorted(series.present(0) & series.present(1))[0]
    c0 = np.argwhere(first.spines == sid).mean(0) * first.voxel_size_um
    c1 = np.argwhere(later.spines == sid).mean(0) * later.voxel_size_um
    assert np.linalg.norm(later.truth.from_first(c0[None])[0] - c1) < 0.5
    assert series.present(0) != series.present(2)  # births or deaths happened


def test_tracking_true_spines_gives_right_ids_and_events(series):
    result = track(_sessions(series))
    scores = score_tracking(result, [s.spines for s in series.sessions])
    assert scores["id_accuracy"] >= 0.9
    assert scores["event_f1"] >= 0.8
    err = registration_error_um(result, series.base_um, [s.truth for s in series.sessions])
    assert np.median(err) < 0.4
    # one id per spine: the same label in consecutive sessions where matched
    t = result.spines
    assert set(t["fate"]) <= {"first", "stable", "gained", "lost", "uncertain"}
    assert set(t["call"]) <= {"first", "stable", "gained", "lost", "missed"}
    assert (t["fate"][t["session"] == 1] == "first").all()
    assert {"id", "session", "fate", "size_um3", "type", "branch_id", "z_um"} <= set(t)
    assert result.labels[1].dtype == np.uint32
    ids1 = set(np.unique(result.labels[1]).tolist()) - {0}
    stable = set(t["id"][(t["session"] == 2) & (t["call"] == "stable")].tolist())
    assert stable <= ids1 and stable <= set(np.unique(result.labels[0]).tolist())
    tv = result.turnover
    whole = tv["branch_id"] == 0
    assert whole.sum() == 2 and np.isclose(tv["day_to"][whole][1] - tv["day_from"][whole][1], 5.0)
    assert np.all((tv["survival"][whole] >= 0) & (tv["survival"][whole] <= 1))


def test_labels_only_sessions_register(series):
    result = track(_sessions(series, images=False)[:2])
    assert result.registrations[1].quality > 0.5


def test_different_voxel_sizes_are_resampled_and_said(series):
    sessions = _sessions(series)[:2]
    s = sessions[1]
    factor = 0.8
    from scipy import ndimage as ndi

    sessions[1] = Session(
        ndi.zoom(s.dendrite, (1, factor, factor), order=0),
        ndi.zoom(s.spines, (1, factor, factor), order=0),
        (s.voxel_size_um[0], s.voxel_size_um[1] / factor, s.voxel_size_um[2] / factor),
        image=ndi.zoom(s.image, (1, factor, factor), order=1),
        name="coarse",
    )
    result = track(sessions)
    assert any("coarse" in n and "resampled" in n for n in result.notes)


def test_sessions_that_do_not_overlap_name_the_pair(series):
    sessions = _sessions(series)[:2]
    rng = np.random.default_rng(0)
    noise = rng.poisson(10, size=sessions[1].image.shape).astype(np.uint16)
    sessions[1] = Session(
        np.zeros_like(sessions[1].dendrite),
        np.zeros_like(sessions[1].spines),
        sessions[1].voxel_size_um,
        image=noise,
        name="elsewhere",
    )
    with pytest.raises(RegistrationError, match=r"session 1 \(s0\) and session 2 \(elsewhere\)"):
        track(sessions)


def test_one_session_is_refused(series):
    with pytest.raises(InputError):
        track(_sessions(series)[:1])


def test_cli_track_writes_everything_or_nothing(series, tmp_path):
    from napari_dendrite_panoptic.cli.main import main
    from napari_dendrite_panoptic.io import read_tiff, write_labels_tiff

    files = []
    for k, s in enumerate(series.sessions):
        write_labels_tiff(tmp_path / f"d{k}_dendrite.tif", s.dendrite, s.voxel_size_um)
        write_labels_tiff(tmp_path / f"d{k}_spines.tif", s.spines, s.voxel_size_um)
        files.append(str(tmp_path / f"d{k}_spines.tif"))
    out = tmp_path / "out"
    assert main(["track", *files, "--out", str(out), "--days", "0,2,7"]) == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(
        [
            "s1_d0_spines_tracked.tif",
            "s2_d1_spines_tracked.tif",
            "s3_d2_spines_tracked.tif",
            "spines_over_time.csv",
            "turnover.csv",
            "track_run.json",
        ]
    )
    lab = read_tiff(out / "s2_d1_spines_tracked.tif")
    assert lab.voxel_size_um == pytest.approx(series.sessions[1].voxel_size_um)
    header = (out / "spines_over_time.csv").read_text().splitlines()[0].split(",")
    assert header[:5] == ["id", "session", "session_name", "day", "fate"]
    # existing outputs are kept; a failing run writes nothing
    assert main(["track", *files, "--out", str(out)]) == 2
    bad = tmp_path / "bad"
    assert main(["track", files[0], files[1], "--out", str(bad), "--days", "0"]) == 2
    assert not bad.exists() or not any(bad.iterdir())


def test_a_spine_missed_in_the_middle_session_keeps_its_id(series):
    sessions = _sessions(series)
    kept = sorted(series.present(0) & series.present(1) & series.present(2))
    gone = kept[len(kept) // 2]
    mid = sessions[1]
    sessions[1] = Session(
        mid.dendrite,
        np.where(mid.spines == gone, 0, mid.spines).astype(np.uint32),
        mid.voxel_size_um,
        image=mid.image,
        day=mid.day,
        name=mid.name,
    )
    result = track(sessions)
    t = result.spines
    truth = [s.spines for s in series.sessions]
    # the tracked id of the true spine in the first and last sessions
    first_id = np.bincount(result.labels[0][truth[0] == gone]).argmax()
    last_id = np.bincount(result.labels[2][truth[2] == gone]).argmax()
    assert first_id and first_id == last_id
    row = (t["id"] == first_id) & (t["session"] == 2)
    assert row.sum() == 1
    assert t["call"][row][0] == "missed" and t["fate"][row][0] == "uncertain"
    last = (t["id"] == first_id) & (t["session"] == 3)
    assert t["call"][last][0] == "stable"
    # not read as lost, then gained
    assert not ((t["id"] == first_id) & np.isin(t["call"], ["lost", "gained"])).any()
    # without matching across the gap it is
    from napari_dendrite_panoptic.tracking import TrackConfig

    plain = track(sessions, TrackConfig(max_gap=0)).spines
    assert "missed" not in set(plain["call"])
    assert (plain["call"] == "gained").sum() == (t["call"] == "gained").sum() + 1


def test_hand_split_and_merge_follow_in_labels_and_tables(series):
    from napari_dendrite_panoptic.tracking import merge_ids, split_id

    result = track(_sessions(series))
    t = result.spines
    everywhere = [
        i
        for i in set(t["id"].tolist())
        if sorted(t["session"][(t["id"] == i) & (t["call"] != "lost")].tolist()) == [1, 2, 3]
    ]
    sid = everywhere[0]
    split, new = split_id(result, sid, [2])
    s = split.spines

    def calls(tab, i):
        pick = tab["id"] == i
        return dict(zip(tab["session"][pick].tolist(), tab["call"][pick].tolist(), strict=True))

    assert calls(s, sid) == {1: "first", 2: "missed", 3: "stable"}
    assert calls(s, new) == {2: "gained", 3: "lost"}
    assert new in split.labels[1] and sid not in split.labels[1] and sid in split.labels[2]
    assert split.turnover["n_gained"].sum() > result.turnover["n_gained"].sum()
    merged = merge_ids(split, sid, new)
    assert calls(merged.spines, sid) == {1: "first", 2: "stable", 3: "stable"}
    assert new not in merged.labels[1] and sid in merged.labels[1]
    assert np.array_equal(merged.turnover["n_gained"], result.turnover["n_gained"])
    with pytest.raises(InputError, match="both in session 1"):
        merge_ids(result, everywhere[0], everywhere[1])


def _image_files(series, folder) -> list[str]:
    """Each session's image as ``day<k>.tif`` (ImageJ ZYX) in ``folder``."""
    import tifffile

    files = []
    for k, s in enumerate(series.sessions):
        path = folder / f"day{k}.tif"
        tifffile.imwrite(path, s.image, imagej=True, metadata={"axes": "ZYX"})
        files.append(str(path))
    return files


def test_cli_track_refuses_a_channel_an_image_lacks_before_segmenting(series, tmp_path, capsys):
    from napari_dendrite_panoptic.cli.main import main

    files = _image_files(series, tmp_path)
    out = tmp_path / "out"
    assert main(["track", *files, "--out", str(out), "--channel", "1"]) == 2
    err = capsys.readouterr().err
    assert "Channel 1 does not exist" in err and "day0.tif" in err
    assert "segmenting" not in err
    assert not out.exists() or not any(out.iterdir())


def test_cli_track_refuses_a_segment_run_missing_its_dendrite_before_segmenting(
    series, tmp_path, capsys
):
    from napari_dendrite_panoptic.cli.main import main
    from napari_dendrite_panoptic.io import write_labels_tiff

    image = _image_files(series, tmp_path)[0]
    s = series.sessions[1]
    write_labels_tiff(tmp_path / "day2_spines.tif", s.spines, s.voxel_size_um)
    out = tmp_path / "out"
    assert main(["track", image, str(tmp_path / "day2_spines.tif"), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "day2_dendrite.tif is missing" in err
    assert "segmenting" not in err
    assert not out.exists() or not any(out.iterdir())


def test_cli_track_checks_days_and_distance_before_segmenting(series, tmp_path, capsys):
    from napari_dendrite_panoptic.cli.main import main

    files = _image_files(series, tmp_path)
    out = tmp_path / "out"
    assert main(["track", *files, "--out", str(out), "--days", "0,2"]) == 2
    assert main(["track", *files, "--out", str(out), "--max-distance", "0"]) == 2
    assert main(["track", *files, "--out", str(out), "--max-gap", "-1"]) == 2
    err = capsys.readouterr().err
    assert "--days gives 2 days for 3 sessions" in err
    assert "must be a positive number of µm, not 0.0" in err
    assert "a whole number, 0 or more, not -1" in err
    assert "segmenting" not in err
    assert not out.exists() or not any(out.iterdir())


def test_track_config_refuses_settings_that_match_nothing():
    from napari_dendrite_panoptic.tracking import TrackConfig

    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(InputError, match="positive number of µm"):
            TrackConfig(max_distance_um=bad)
    with pytest.raises(InputError, match="0 or more"):
        TrackConfig(max_gap=-1)
    assert TrackConfig(max_distance_um=2, max_gap=0).max_gap == 0


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("d1_run.json", "{not json", "cannot read run record"),
        ("d1_run.json", '{"plugin": "napari-dendrite-panoptic", "input": "x"}', None),
        ("d1_spines.csv", "label,score\n1,0.9\n", "has no 'id' column"),
        ("d1_spines.csv", "id,score\n1,high\n", "line 2: could not convert"),
    ],
)
def test_cli_track_says_what_is_wrong_with_a_segment_runs_files(
    series, tmp_path, capsys, name, text, message
):
    from napari_dendrite_panoptic.cli.main import main
    from napari_dendrite_panoptic.io import write_labels_tiff

    files = []
    for k, s in enumerate(series.sessions[:2]):
        write_labels_tiff(tmp_path / f"d{k}_dendrite.tif", s.dendrite, s.voxel_size_um)
        write_labels_tiff(tmp_path / f"d{k}_spines.tif", s.spines, s.voxel_size_um)
        files.append(str(tmp_path / f"d{k}_spines.tif"))
    (tmp_path / name).write_text(text, encoding="utf-8")
    code = main(["track", *files, "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    if message is None:  # a record without the input's path is read without its image
        assert code == 0
    else:
        assert code == 2 and message in err and "internal error" not in err
