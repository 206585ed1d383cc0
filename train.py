"""Train a theme tagger from the command line: python train.py [--corpus DIR] [--themes FILE] [--out DIR]."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Cluster a news corpus, label the clusters with your themes, "
                                "and train a classifier that tags new articles.")
    p.add_argument("--corpus", default=str(ROOT / "seeds"),
                   help="a folder of .txt articles, a .txt, .jsonl (field `text`) or .csv (column `text`) file "
                        "(default: seeds/)")
    p.add_argument("--themes", default=str(ROOT / "seeds" / "themes.toml"), help="the theme file (TOML)")
    p.add_argument("--out", default=str(ROOT / "artifacts" / "seed-themes"), help="where the model folder goes")
    p.add_argument("--seed", type=int, default=0, help="one seed for every random step (default 0)")
    p.add_argument("--embedding-model", default="all-MiniLM-L6-v2",
                   help="sentence-transformers model name or local path (default: the bundled all-MiniLM-L6-v2); "
                        "'static' distils a fast model2vec embedder from the bundled model")
    p.add_argument("--clusterer", choices=["hdbscan", "kmeans"], default="hdbscan", help="default: hdbscan")
    p.add_argument("--no-cache", action="store_true", help="do not reuse or store embeddings on disk")
    p.add_argument("--ray", nargs="?", const="local", default=None, metavar="ADDRESS",
                   help="embed the corpus on Ray (pip install -e '.[ray]'): a local Ray on this machine, or the "
                        "cluster at ADDRESS ('auto', 'ray://head:10001'); the embeddings go through the cache")
    p.add_argument("--workers", type=int, default=None,
                   help="with --ray: embedding actors, one CPU and one torch thread each (default: all CPUs but one)")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, format="%(message)s")
    for noisy in ("sentence_transformers", "transformers", "httpx", "numba", "umap"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    from model import UserInputError, train

    try:
        _, s = train(args.corpus, args.themes, out=args.out, seed=args.seed, embedding_model=args.embedding_model,
                     clusterer=args.clusterer, cache_dir=None if args.no_cache else "default",
                     progress=not args.quiet, ray_address=args.ray, ray_workers=args.workers)
    except UserInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"\nTrained on {s.paragraphs} paragraphs from {s.articles} articles, in {s.clusters} clusters.")
    print("Paragraphs per theme: " + ", ".join(f"{t} {n}" for t, n in s.paragraphs_per_theme.items()))
    print("Time per stage: " + ", ".join(f"{k} {v:.1f}s" for k, v in s.seconds.items()))
    print(f"Model saved to {s.out} (cluster report: {Path(s.out) / 'clusters.md'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
