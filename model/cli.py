"""The command line: theme-tagger train | tag | evaluate | report (each with --help).

train.py and evaluate.py in the repository are thin entry points to the same code (train_main, evaluate_main)."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DESCRIPTIONS = {
    "train": "Cluster a news corpus, label the clusters with your themes, and train a classifier that tags new "
             "articles. Beside the model it writes clusters.md, assignments.csv (correct it and train again with "
             "--assignments) and report.html with map.png.",
    "tag": "Tag every article of a corpus into a table: one row per article with its themes, a score per theme "
           "and the best evidence paragraph per theme.",
    "evaluate": "Per-theme precision, recall and F1, micro/macro-F1, accuracy for single-label data, and a "
                "confusion table.",
    "report": "Draw report.html and map.png again from a saved model (training writes them too).",
}
CORPUS_HELP = "a folder of .txt articles, or a .txt, .jsonl (field `text`, optional `id`) or .csv (column `text`) file"


def _setup_logging(quiet: bool) -> None:
    logging.basicConfig(level=logging.WARNING if quiet else logging.INFO, format="%(message)s")
    for noisy in ("sentence_transformers", "transformers", "httpx", "numba", "umap", "matplotlib", "PIL"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _add_ray_args(p: argparse.ArgumentParser, what: str, then: str) -> None:
    p.add_argument("--ray", nargs="?", const="local", default=None, metavar="ADDRESS",
                   help=f"{what} (pip install -e '.[ray]'): a local Ray on this machine, or the cluster at ADDRESS "
                        f"('auto', 'ray://head:10001'); {then}")
    p.add_argument("--workers", type=int, default=None,
                   help="with --ray: actors, one CPU and one torch thread each (default: all CPUs but one)")


# ------------------------------------------------------------------------------------------------- train

def add_train_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--corpus", default=str(ROOT / "seeds"), help=f"{CORPUS_HELP} (default: seeds/)")
    p.add_argument("--themes", default=str(ROOT / "seeds" / "themes.toml"), help="the theme file (TOML)")
    p.add_argument("--out", default=str(ROOT / "artifacts" / "seed-themes"), help="where the model folder goes")
    p.add_argument("--seed", type=int, default=0, help="one seed for every random step (default 0)")
    p.add_argument("--embedding-model",
                   help="default 'openvino': the bundled all-MiniLM-L6-v2 exported to ONNX (once, locally) and "
                        "compiled by OpenVINO; 'onnx': the same graph run by ONNX Runtime in fp32; "
                        "'all-MiniLM-L6-v2': the same model through sentence-transformers; 'int8' "
                        "quantises it (pip install -e '.[onnx]'); 'static' distils a fast model2vec embedder from "
                        "it; or any sentence-transformers model name or local path")
    p.add_argument("--clusterer", choices=["hdbscan", "kmeans"], default="hdbscan", help="default: hdbscan")
    p.add_argument("--assignments", metavar="FILE",
                   help="an assignments.csv from an earlier run, with clusters' themes corrected: those clusters "
                        "override the automatic vote, the others keep it")
    p.add_argument("--no-report", action="store_true", help="do not write report.html, map.png and map.json")
    p.add_argument("--no-cache", action="store_true", help="do not reuse or store embeddings on disk")
    _add_ray_args(p, "embed the corpus on Ray", "the embeddings go through the cache")
    p.add_argument("--quiet", action="store_true", help="no progress output")


def run_train(args: argparse.Namespace) -> int:
    _setup_logging(args.quiet)
    from . import train
    from .embed import DEFAULT

    _, s = train(args.corpus, args.themes, out=args.out, seed=args.seed,
                 embedding_model=args.embedding_model or DEFAULT,
                 clusterer=args.clusterer, cache_dir=None if args.no_cache else "default", progress=not args.quiet,
                 ray_address=args.ray, ray_workers=args.workers,
                 assignments=args.assignments, report=not args.no_report)
    print(f"\nTrained on {s.paragraphs} paragraphs from {s.articles} articles, in {s.clusters} clusters.")
    if args.assignments:
        print(f"Clusters whose themes a person set ({args.assignments}): {s.clusters_set_by_person}; "
              "the others keep the vote.")
    print("Paragraphs per theme: " + ", ".join(f"{t} {n}" for t, n in s.paragraphs_per_theme.items()))
    print("Time per stage: " + ", ".join(f"{k} {v:.1f}s" for k, v in s.seconds.items()))
    out = Path(s.out)
    print(f"Model saved to {out} (cluster report: {out / 'clusters.md'})")
    if not args.no_report:
        print(f"Map and report: {out / 'report.html'}, {out / 'map.png'}")
    print(f"To correct the clusters' themes, edit {out / 'assignments.csv'} and train again with "
          f"--assignments FILE (keep a copy: training replaces the model folder).")
    return 0


# ------------------------------------------------------------------------------------------------- tag

def add_tag_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="a saved model folder (from train)")
    p.add_argument("corpus", help=CORPUS_HELP)
    p.add_argument("-o", "--out", required=True,
                   help="the table to write: .jsonl, .csv or .parquet (by its ending); written atomically")
    p.add_argument("--batch-size", type=int, default=256, help="articles embedded together (default 256)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_ray_args(p, "tag on Ray", "reads Parquet too and writes Parquet (one .parquet file, or a folder of part files)")
    p.add_argument("--embedding-model", metavar="NAME_OR_PATH",
                   help="the embedder to tag with, for a model trained with one that is neither bundled nor stored "
                        "in its folder (a saved model never loads such a one by itself)")


def run_tag(args: argparse.Namespace) -> int:
    _setup_logging(True)
    from . import ThemeTagger, UserInputError
    from .tagfile import output_format, tag_file

    if args.batch_size < 1:
        raise UserInputError(f"--batch-size must be at least 1, got {args.batch_size}")
    # On either path: the output replaces what is at its name, and that must not be the corpus.
    if Path(args.out).resolve() == Path(args.corpus).resolve():
        raise UserInputError(f"--out {args.out} is the corpus itself; write the table to another file")
    if args.ray is not None:
        return _run_tag_on_ray(args)
    output_format(args.out)
    tagger = ThemeTagger.load(args.model, embedding_model=args.embedding_model)
    start = time.perf_counter()
    rows = tag_file(tagger, args.corpus, args.out, batch_size=args.batch_size, progress=not args.quiet)
    seconds = time.perf_counter() - start
    print(f"Tagged {rows} articles into {args.out} in {seconds:.1f} s ({rows / max(seconds, 1e-9):.1f} articles/s).")
    return 0


def _run_tag_on_ray(args: argparse.Namespace) -> int:
    from .distributed import tag_path

    if args.embedding_model is not None:
        from .errors import UserInputError

        raise UserInputError("--embedding-model is not used with --ray: the actors load the model folder's own "
                             "embedder")
    start = time.perf_counter()
    # The same article batches as without Ray (tag_many's), so the same scores: a batch's padding changes them.
    rows = tag_path(args.corpus, args.out, args.model, address=args.ray, workers=args.workers,
                    batch_size=args.batch_size)
    seconds = time.perf_counter() - start
    print(f"Tagged {rows} articles on Ray into {args.out} in {seconds:.1f} s "
          f"({rows / max(seconds, 1e-9):.1f} articles/s).")
    return 0


# ------------------------------------------------------------------------------------------------- evaluate

def add_evaluate_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="a saved model folder (from train)")
    p.add_argument("data", help="JSONL: `text` plus `label` (one theme id) or `labels` (a list of theme ids)")
    p.add_argument("--json", metavar="PATH", help="also write the figures as JSON to PATH ('-' for stdout)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--embedding-model", metavar="NAME_OR_PATH",
                   help="the embedder to tag with, for a model trained with one that is neither bundled nor stored "
                        "in its folder (a saved model never loads such a one by itself)")
    p.add_argument("--cosine-baseline", action="store_true",
                   help="also score the zero-shot baseline: cosine to each theme's description, at the single cut "
                        "that suits these labels best (an oracle, so it flatters the baseline)")


def run_evaluate(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    from . import ThemeTagger, UserInputError
    from .evaluate import cosine_baseline, evaluate, format_report

    if args.json and args.json != "-":
        _check_writable(Path(args.json), "--json")   # before the evaluation, not after it
    tagger = ThemeTagger.load(args.model, embedding_model=args.embedding_model)
    figures = evaluate(tagger, args.data, progress=not args.quiet)
    if args.cosine_baseline:
        figures["cosine_baseline"] = cosine_baseline(tagger, args.data)
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
        try:
            with open(args.json, "w", encoding="utf-8") as fh:
                json.dump(figures, fh, indent=2)
        except OSError as exc:
            raise UserInputError(f"--json {args.json}: cannot write it ({exc.strerror or exc})") from None
    return 0


def _check_writable(path: Path, flag: str) -> None:
    from .errors import UserInputError

    folder = path.parent
    if path.is_dir():
        raise UserInputError(f"{flag} {path} is a folder; give a file name")
    if not folder.is_dir():
        raise UserInputError(f"{flag} {path}: the folder {folder} does not exist")
    if not os.access(folder, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise UserInputError(f"{flag} {path}: cannot write there")


# ------------------------------------------------------------------------------------------------- report

def add_report_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="a saved model folder (from train)")
    p.add_argument("--out", metavar="DIR", help="where to write report.html and map.png (default: the model folder)")


def run_report(args: argparse.Namespace) -> int:
    _setup_logging(True)
    from .html_report import write_report

    page, png = write_report(args.model, args.out)
    print(f"Report: {page}\nMap: {png}")
    return 0


# ------------------------------------------------------------------------------------------------- entry points

COMMANDS = {"train": (add_train_args, run_train), "tag": (add_tag_args, run_tag),
            "evaluate": (add_evaluate_args, run_evaluate), "report": (add_report_args, run_report)}


def _run(runner, args: argparse.Namespace) -> int:
    from .errors import UserInputError

    try:
        return runner(args)
    except UserInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted (nothing was written under the final name)", file=sys.stderr)
        return 130


def build_parser(prog: str = "theme-tagger") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description="Find and tag themes in news text.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="{train,tag,evaluate,report}")
    for name, (add_args, _) in COMMANDS.items():
        add_args(sub.add_parser(name, help=DESCRIPTIONS[name].split(". ")[0], description=DESCRIPTIONS[name]))
    return parser


def main(argv: list[str] | None = None) -> int:
    """theme-tagger COMMAND ...; returns the exit status (2 for a mistake in what was given)."""
    args = build_parser().parse_args(argv)
    return _run(COMMANDS[args.command][1], args)


def _single(name: str, prog: str, argv: list[str] | None) -> int:
    parser = argparse.ArgumentParser(prog=prog, description=DESCRIPTIONS[name])
    COMMANDS[name][0](parser)
    return _run(COMMANDS[name][1], parser.parse_args(argv))


def train_main(argv: list[str] | None = None) -> int:
    """python train.py ...: the same as theme-tagger train."""
    return _single("train", "train.py", argv)


def evaluate_main(argv: list[str] | None = None) -> int:
    """python evaluate.py ...: the same as theme-tagger evaluate."""
    return _single("evaluate", "evaluate.py", argv)


if __name__ == "__main__":
    sys.exit(main())
