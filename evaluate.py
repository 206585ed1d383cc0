"""Score a saved model on labelled JSONL: python evaluate.py MODEL_DIR DATA.jsonl [--json OUT]."""

from __future__ import annotations

import argparse
import json
import logging
import sys


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Per-theme precision, recall and F1, micro/macro-F1, accuracy for "
                                "single-label data, and a confusion table.")
    p.add_argument("model", help="a saved model folder (from train.py)")
    p.add_argument("data", help="JSONL: `text` plus `label` (one theme id) or `labels` (a list of theme ids)")
    p.add_argument("--json", metavar="PATH", help="also write the figures as JSON to PATH ('-' for stdout)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--embedding-model", metavar="NAME_OR_PATH",
                   help="the embedder to tag with, for a model trained with one that is neither bundled nor stored "
                        "in its folder (a saved model never loads such a one by itself)")
    p.add_argument("--cosine-baseline", action="store_true",
                   help="also score the zero-shot baseline: cosine to each theme's description, at the single cut "
                        "that suits these labels best (an oracle, so it flatters the baseline)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    from model import ThemeTagger, UserInputError
    from model.evaluate import cosine_baseline, evaluate, format_report

    try:
        tagger = ThemeTagger.load(args.model, embedding_model=args.embedding_model)
        figures = evaluate(tagger, args.data, progress=not args.quiet)
        if args.cosine_baseline:
            figures["cosine_baseline"] = cosine_baseline(tagger, args.data)
    except UserInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json == "-":
        print(json.dumps(figures, indent=2))
        return 0
    print(format_report(figures))
    if args.cosine_baseline:
        base = figures["cosine_baseline"]
        print(f"\ncosine baseline (description similarity, best single cut {base['cut']:.2f} chosen on these labels): "
              f"micro-F1 {base['micro_f1']:.3f}   macro-F1 {base['macro_f1']:.3f}" +
              (f"   accuracy {base['accuracy']:.3f}" if "accuracy" in base else ""))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(figures, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
