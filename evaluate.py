"""Score a saved model on labelled JSONL: python evaluate.py MODEL_DIR DATA.jsonl [--json OUT].

The same as `theme-tagger evaluate` (model/cli.py)."""

from __future__ import annotations

import sys

from model.cli import evaluate_main as main

if __name__ == "__main__":
    sys.exit(main())
