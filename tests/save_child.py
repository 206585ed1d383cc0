"""Run in a child process by the kill-mid-save and overlapping-save tests (not a test module itself).

python save_child.py SOURCE_MODEL TARGET LABEL POINT MARKER [GO]

Loads SOURCE_MODEL (with the fake embedder), sets config["marker"] = LABEL and saves it to TARGET. At POINT it writes
MARKER (its pid) and waits: for the file GO if given, else forever (the parent kills it with SIGKILL). Points:
"writing" (the new folder half written: after classifier.npz), "rename1" (the old model moved aside, the new one
not yet in place), "rename2" (the new one in place, the old copy not yet removed), "none" (no pause)."""

from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]

import numpy as np  # noqa: E402

from conftest import HashEmbedder  # noqa: E402
from model import ThemeTagger  # noqa: E402


def main() -> int:
    source, target, label, point, marker = sys.argv[1:6]
    go = Path(sys.argv[6]) if len(sys.argv) > 6 else None
    logging.basicConfig(level=logging.WARNING, format="%(message)s", stream=sys.stderr)

    def pause() -> None:
        Path(marker).write_text(str(os.getpid()), encoding="utf-8")
        while go is None or not go.exists():
            time.sleep(0.05)

    real_savez, real_rename = np.savez, os.rename
    renames = []

    def savez(*args, **kwargs):
        real_savez(*args, **kwargs)
        if point == "writing":
            pause()

    def rename(src, dst):
        real_rename(src, dst)
        renames.append((src, dst))
        if (point == "rename1" and len(renames) == 1) or (point == "rename2" and len(renames) == 2):
            pause()

    tagger = ThemeTagger.load(source, embedder=HashEmbedder())
    tagger.config = {**tagger.config, "marker": label}
    np.savez, os.rename = savez, rename
    tagger.save(target, {"clusters.md": f"report of {label}\n"})
    print(f"saved {label}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
