"""Train a theme tagger from the command line: python train.py [--corpus DIR] [--themes FILE] [--out DIR].

The same as `theme-tagger train` (model/cli.py)."""

from __future__ import annotations

import sys

from model.cli import train_main as main

if __name__ == "__main__":
    sys.exit(main())
