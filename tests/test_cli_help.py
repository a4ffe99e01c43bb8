"""The command line's manners: help for every option with its default, a description and an
example per command, exit codes in --help, -v for this package's logging only, progress bars."""

import argparse
import logging

import numpy as np
import pytest

from napari_dendrite_panoptic.cli import main, sample
from napari_dendrite_panoptic.cli.main import build_parser

COMMANDS = ("segment", "train", "fine-tune", "evaluate", "sample", "track")


def _commands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(sub.choices)


@pytest.mark.parametrize("name", COMMANDS)
def test_every_option_has_help_with_its_default(name):
    command = _commands()[name]
    formatter = command._get_formatter()
    for action in command._actions:
        if not action.option_strings or isinstance(action, argparse._HelpAction):
            continue
        if action.required:  # no default to show
            continue
        text = formatter._expand_help(action) if action.help else ""
        assert text.strip(), f"{name} {action.option_strings[0]} has no help"
        assert "default" in text.lower(), f"{name} {action.option_strings[0]}: {text!r}"


@pytest.mark.parametrize("name", COMMANDS)
def test_every_command_has_a_description_and_an_example(name):
    command = _commands()[name]
    assert command.description and len(command.description) > 40
    assert command.epilog.startswith("example:")
    assert f"dendrite-panoptic {name} " in command.epilog


@pytest.mark.parametrize("name", ("", *COMMANDS))
def test_help_names_no_repository_path(name, capsys):
    with pytest.raises(SystemExit) as info:
        main([name, "--help"] if name else ["--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    assert "usage: dendrite-panoptic" in text
    for path in ("docs/", "shared/data", "../", ".md"):
        assert path not in text, f"{name or 'top'} help names {path}"


def test_exit_codes_are_in_the_top_level_help(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    assert "exit status:" in text
    for code, words in (("0", "all done"), ("1", "failed"), ("2", "usage"), ("3", "internal")):
        assert any(line.split()[:1] == [code] and words in line for line in text.splitlines())


def test_a_usage_error_exits_2(capsys):
    with pytest.raises(SystemExit) as info:
        main(["segment", "--out"])
    assert info.value.code == 2


def _broken(args):
    raise ZeroDivisionError("a bug")


def test_an_internal_error_is_one_line_and_exit_3(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(sample, "cmd_sample", _broken)
    assert main(["sample", str(tmp_path / "s.tif")]) == 3
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and "internal error: ZeroDivisionError: a bug" in lines[0]
    assert "-v" in lines[0] and "Traceback" not in err
    assert main(["-v", "sample", str(tmp_path / "s.tif")]) == 3
    err = capsys.readouterr().err
    assert "Traceback" in err and "_broken" in err


def test_verbose_logs_this_package_only_and_through_tqdm(monkeypatch, tmp_path, capsys):
    seen = {}

    def logs(args):
        package = logging.getLogger("napari_dendrite_panoptic")
        seen["handlers"] = [type(h).__name__ for h in package.handlers]
        package.getChild("cli").info("package info line")
        logging.getLogger("some_library").info("library info line")
        return 0

    root = logging.getLogger()
    before = (root.level, list(root.handlers))
    monkeypatch.setattr(sample, "cmd_sample", logs)
    assert main(["sample", str(tmp_path / "s.tif")]) == 0
    assert "package info line" not in capsys.readouterr().err
    assert main(["-v", "sample", str(tmp_path / "s.tif")]) == 0
    err = capsys.readouterr().err
    assert "INFO napari_dendrite_panoptic.cli: package info line" in err
    assert "library info line" not in err
    assert (root.level, list(root.handlers)) == before  # the root logger is left alone
    assert seen["handlers"] == ["_TqdmLoggingHandler"]  # log lines do not tear the bars
    assert logging.getLogger("napari_dendrite_panoptic").handlers == []  # undone afterwards


def test_segment_of_one_file_shows_a_tile_bar(tiny_model_dir, tmp_path, capsys):
    plane = tmp_path / "plane.tif"
    assert main(["sample", str(plane), "--plane"]) == 0
    args = ["segment", str(plane), "--out", str(tmp_path / "o"), "--model", str(tiny_model_dir)]
    assert main([*args, "--device", "cpu"]) == 0
    err = capsys.readouterr().err
    assert "plane.tif:" in err and "tile" in err


def test_evaluate_shows_a_bar_per_set(tiny_model_dir, tmp_path, capsys):
    from napari_dendrite_panoptic.io import write_labels_tiff

    labels = np.zeros((40, 40), np.uint16)
    labels[2:6, 2:6] = 1
    write_labels_tiff(tmp_path / "p.tif", labels, (1, 0.1, 0.1))
    args = ["evaluate", "--pred-spines", str(tmp_path / "p.tif")]
    assert main([*args, "--truth-spines", str(tmp_path / "p.tif")]) == 0
    assert "reading: 100%" in capsys.readouterr().err
    args = ["evaluate", "--model", str(tiny_model_dir), "--device", "cpu", "--generator", "1"]
    assert main(args) == 0
    assert "generator 2D: 100%" in capsys.readouterr().err
