"""Corpus shapes the panel lacks: themes that span several subjects, and classes of very different sizes.

    python benchmarks/shapes.py                 # both probes: 6 minutes with a warm embedding cache, 2 with UMAP's too
    python benchmarks/shapes.py --imbalance 10 --seeds 0 --write

The panel's single-label sets are balanced, or nearly, and each class is one subject. A user's corpus is often
neither: one theme may fill most of it, and a theme may cover several subjects (20 Newsgroups' coarse classes:
"science" is cryptography, electronics, medicine and space).

- Coarse themes: the headlines of the panel's seeded sample of 8,000 HuffPost-41 headlines that are in 26 of its
  sections (5,069), grouped into five themes (`benchmarks/themes/huffpost_coarse.toml`); the identity and catch-all
  sections, and those that would make a theme of one subject (business, sports, religion, crime, education) are
  left out. And
  BBC News with its sport articles replaced by all of BBC Sport's (five sports, one theme).
- Unbalanced classes: each single-label set subsampled so that its classes, in a seeded random order, shrink
  geometrically from the smallest class's full size down to 1/IMBALANCE of it (at least 5 texts, or all of a smaller
  class). One seed sets the order, the sample and the training seed.

Each row is accuracy.run_set: cosine to the descriptions, ours (trained on the texts without labels), and the
supervised ceiling, as accuracy and as macro-F1 (which weighs the small classes as much as the large).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from accuracy import PANEL, SETS, embedder_and_cache, quiet_logging, read_set, run_set  # noqa: E402
from model.corpus import Article  # noqa: E402
from sections import publish  # noqa: E402

THEMES = ROOT / "benchmarks" / "themes"
COARSE_HUFFPOST = {
    "politics": ["POLITICS", "WORLD NEWS", "THE WORLDPOST", "WORLDPOST"],
    "arts_entertainment": ["ENTERTAINMENT", "COMEDY", "ARTS", "ARTS & CULTURE", "CULTURE & ARTS", "MEDIA"],
    "lifestyle": ["STYLE & BEAUTY", "STYLE", "HOME & LIVING", "WEDDINGS", "FOOD & DRINK", "TASTE", "TRAVEL"],
    "health_family": ["WELLNESS", "HEALTHY LIVING", "PARENTING", "PARENTS", "DIVORCE"],
    "science_environment": ["SCIENCE", "TECH", "GREEN", "ENVIRONMENT"]}


def relabelled(articles: list[Article], gold: list[str], new: dict[str, str]) -> tuple[list[Article], list[str]]:
    """The texts whose label `new` maps, with the mapped labels; the others left out. Ids are row numbers again."""
    kept = [(a.text, new[g]) for a, g in zip(articles, gold) if g in new]
    return [Article(str(i), text) for i, (text, _) in enumerate(kept)], [g for _, g in kept]


def unbalanced(gold: list[str], imbalance: float, seed: int, smallest: int = 5) -> list[int]:
    """Row numbers of a subsample whose classes, in a seeded random order, keep n, n*r, n*r^2 ... texts, n the
    smallest class's size and r such that the last keeps n/imbalance (at least `smallest`)."""
    rng = np.random.RandomState(seed)
    classes = sorted(set(gold))
    rng.shuffle(classes)
    rows = {c: np.flatnonzero(np.asarray(gold) == c) for c in classes}
    top = min(len(r) for r in rows.values())
    ratio = imbalance ** (-1 / max(1, len(classes) - 1))
    picked = []
    for k, c in enumerate(classes):
        size = min(len(rows[c]), max(smallest, int(round(top * ratio ** k))))
        picked += sorted(rng.choice(rows[c], size, replace=False).tolist())
    return picked


def coarse_rows(data: Path, embedder, cache, seed: int) -> list[dict]:
    articles, gold = read_set(data / SETS["huffpost41"], PANEL["huffpost41"])
    articles, gold = relabelled(articles, gold, {s: theme for theme, ss in COARSE_HUFFPOST.items() for s in ss})
    rows = [run_set("huffpost41, 5 coarse themes", articles, gold, THEMES / "huffpost_coarse.toml", embedder, cache,
                    seed) | {"shape": "coarse", "sizes": _sizes(gold)}]
    news, news_gold = read_set(data / SETS["bbc"], None)
    sport, _ = read_set(data / SETS["bbcsport"], None)
    news, news_gold = relabelled(news, news_gold, {c: c for c in set(news_gold) - {"sport"}})
    articles = news + [Article(str(len(news) + i), a.text) for i, a in enumerate(sport)]
    gold = news_gold + ["sport"] * len(sport)
    rows.append(run_set("bbc, sport from BBC Sport (5 sports)", articles, gold, THEMES / "bbc.toml", embedder, cache,
                        seed) | {"shape": "coarse", "sizes": _sizes(gold)})
    return rows


def unbalanced_rows(data: Path, sets: list[str], imbalances: list[float], seeds: list[int], embedder,
                    cache) -> list[dict]:
    rows = []
    for name in sets:
        articles, gold = read_set(data / SETS[name], PANEL.get(name))
        for imbalance in imbalances:
            for seed in seeds:
                picked = unbalanced(gold, imbalance, seed)
                sub = [Article(str(i), articles[j].text) for i, j in enumerate(picked)]
                sub_gold = [gold[j] for j in picked]
                rows.append(run_set(name, sub, sub_gold, THEMES / f"{name}.toml", embedder, cache, seed)
                            | {"shape": f"unbalanced {imbalance:g}:1, seed {seed}", "sizes": _sizes(sub_gold)})
    return rows


def _sizes(gold: list[str]) -> str:
    counts = sorted((gold.count(c) for c in set(gold)), reverse=True)
    return " / ".join(map(str, counts))


def table(rows: list[dict]) -> str:
    lines = ["| set | shape | class sizes | accuracy: cosine / **ours** / ceiling | macro-F1: cosine / **ours** / "
             "ceiling | ours − cosine (accuracy, macro-F1) |", "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['set']} | {r['shape']} | {r['sizes']} | {r['cosine']:.3f} / **{r['ours']:.3f}** / "
                     f"{r['ceiling']:.3f} | {r['cosine_macro_f1']:.3f} / **{r['ours_macro_f1']:.3f}** / "
                     f"{r['ceiling_macro_f1']:.3f} | {r['ours'] - r['cosine']:+.3f}, "
                     f"{r['ours_macro_f1'] - r['cosine_macro_f1']:+.3f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sets", default="agnews,bbc,bbcsport,huffpost8", help="the sets to unbalance")
    p.add_argument("--imbalance", type=float, nargs="+", default=[10, 30, 100],
                   help="largest class : smallest (default 10 30 100)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1],
                   help="one row per seed: the classes' order, the sample and the training seed (default 0 1)")
    p.add_argument("--no-coarse", action="store_true", help="only the unbalanced sets")
    p.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data"))
    p.add_argument("--write", action="store_true", help="write the table into BENCHMARKS.md")
    p.add_argument("--json", help="also write the rows as JSON here")
    args = p.parse_args(argv)
    if min(args.imbalance) < 1:
        p.error("--imbalance is the largest class's size over the smallest's: 1 or more")
    quiet_logging(logging.ERROR)
    logging.getLogger("accuracy").setLevel(logging.WARNING)   # its rows, no; texts left with no paragraph, yes
    start = time.perf_counter()
    embedder, cache = embedder_and_cache()
    data = Path(args.data_dir)
    rows = [] if args.no_coarse else coarse_rows(data, embedder, cache, args.seeds[0])
    rows += unbalanced_rows(data, args.sets.split(","), args.imbalance, args.seeds, embedder, cache)
    publish(table(rows), rows, json_path=args.json, write=args.write, started=start, argv=argv,
            title=f"Corpus shapes: coarse themes and unbalanced classes, embedding model `{embedder.spec}`",
            script="benchmarks/shapes.py", marker=f"shapes-{embedder.spec.replace(':', '-')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
