"""Each benchmark writes its figures into BENCHMARKS.md between its own markers, leaving the rest of the file alone."""

from __future__ import annotations

import json
import platform
import sys
import time
from datetime import date
from pathlib import Path

BENCHMARKS_MD = Path(__file__).resolve().parents[1] / "BENCHMARKS.md"


def write_section(path: Path, marker: str, body: str) -> None:
    """Replace the text between `<!-- marker:start -->` and `<!-- marker:end -->` with body (or append the marked
    block); the file is read again just before, so sections other benchmarks wrote meanwhile are kept."""
    start, end = f"<!-- {marker}:start -->", f"<!-- {marker}:end -->"
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    block = f"{start}\n{body.rstrip()}\n{end}"
    if start in text and end in text:
        text = text[:text.index(start)] + block + text[text.index(end) + len(end):]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    path.write_text(text, encoding="utf-8")


def command_body(title: str, script: str, argv: list[str] | None, seconds: float, text: str) -> str:
    """A section's body: its title, the command that wrote it as typed (argv: None for the process's own), the date,
    how long it took and the Python, then the text."""
    cmd = " ".join([f"python {script}", *(sys.argv[1:] if argv is None else argv)])
    return (f"### {title}\n\nCommand: `{cmd}` — {date.today()}, {seconds:.0f} s, Python "
            f"{platform.python_version()}.\n\n{text}\n")


def publish(text: str, rows, *, json_path: str | None, write: bool, title: str, script: str, argv: list[str] | None,
            started: float, marker: str) -> None:
    """A benchmark's output: its table printed; its rows as JSON at json_path, where given; and with write, its
    section in BENCHMARKS.md (command_body's, timed from `started`, a time.perf_counter())."""
    print(text)
    if json_path:
        Path(json_path).write_text(json.dumps(rows, indent=2), encoding="utf-8")
    if write:
        write_section(BENCHMARKS_MD, marker, command_body(title, script, argv, time.perf_counter() - started, text))
