"""The theme-tagger command line: one console script, four subcommands, --help on each."""

from __future__ import annotations

import importlib
import subprocess
import sys
import tomllib

import pytest

from conftest import ROOT
from model.cli import COMMANDS, main

FLAGS = {"train": ["--corpus", "--themes", "--out", "--assignments", "--no-report"], "tag": ["--out", "--batch-size"],
         "evaluate": ["--json", "--cosine-baseline"], "report": ["--out"]}


def test_the_console_script_is_declared() -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["scripts"]
    module, _, name = scripts["theme-tagger"].partition(":")
    assert getattr(importlib.import_module(module), name) is main


def test_help_lists_the_subcommands(capsys) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for name in COMMANDS:
        assert name in out


@pytest.mark.parametrize("name", list(COMMANDS))
def test_each_subcommand_has_help(name, capsys) -> None:
    with pytest.raises(SystemExit) as info:
        main([name, "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert f"theme-tagger {name}" in out
    for flag in FLAGS[name]:
        assert flag in out, flag


def test_runs_as_a_program() -> None:
    """A real process, as the console script runs it: usage errors exit 2 with one error line."""
    done = subprocess.run([sys.executable, "-m", "model.cli", "tag"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 2
    assert "error: the following arguments are required: model, corpus, -o/--out" in done.stderr
    done = subprocess.run([sys.executable, "-m", "model.cli", "--help"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0 and "{train,tag,evaluate,report}" in done.stdout
