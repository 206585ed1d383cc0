"""Texts that carry none of the themes, on corpora nobody tuned for: leave one class out.

    python benchmarks/unthemed.py                  # AG News, BBC, BBC Sport, HuffPost-8: 2,000 texts each
    python benchmarks/unthemed.py --sets bbcsport --write
    python benchmarks/unthemed.py --counterexamples   # each left-out class named as every kept theme's counterexample

For each class of a single-label set, the theme file loses that class's theme, and the model is trained on all the
texts (the left-out class's too, unlabelled as always) and tags them. The left-out class's texts should get no theme,
the others their own: macro-F1 over the remaining themes, with "no theme" the right answer for the left-out class.
The mission's corpora are like this (a third of the paragraphs carry none of the four themes), but its labelled sets
are small; these are large and were written for other purposes.

Baseline: the cosine between each text and each theme's description (the mean of its paragraphs' cosines, as in
accuracy.py's panel), the closest theme given where that cosine passes a cut, with the best cut for each left-out
class chosen on its labels (an oracle: no cut is better for plain cosine). Also shown: the share of the left-out
class's texts that get no theme (ours / cosine), and of the other texts that wrongly get none (ours).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from accuracy import SETS, embedder_and_cache, multi_f1, quiet_logging, with_paragraphs  # noqa: E402
from model import load_themes, train  # noqa: E402
from model.corpus import Article  # noqa: E402
from model.embed import CachedEmbedder, default_cache_dir, embed_texts  # noqa: E402
from sections import publish  # noqa: E402

log = logging.getLogger("unthemed")


def sample(path: Path, size: int, seed: int) -> tuple[list[Article], list[str]]:
    rows = [json.loads(line) for line in path.open(encoding="utf-8") if line.strip()]
    rows = [rows[i] for i in np.random.RandomState(seed).permutation(len(rows))[:size]]
    return [Article(str(i), r["text"]) for i, r in enumerate(rows)], [r["label"] for r in rows]


def cosine_oracle(sims: np.ndarray, ids: list[str], gold: list[list[str]]) -> tuple[float, float, float]:
    """(macro-F1, the left-out class's share with no theme, the cut) for the closest theme past the best of 201 cuts
    (the best similarities' quantiles: every share of texts given a theme, in steps of half a percent)."""
    best, top = sims.max(axis=1), [ids[k] for k in sims.argmax(axis=1)]
    scored = []
    for cut in np.quantile(best, np.linspace(0, 1, 201)):
        pred = [[t] if b >= cut else [] for t, b in zip(top, best)]
        scored.append((multi_f1(gold, pred, ids), cut))
    f1, cut = max(scored)
    left_out = np.array([not g for g in gold])
    return f1, float(np.mean(best[left_out] < cut)), float(cut)


def run_set(name: str, articles: list[Article], gold: list[str], theme_file: Path, embedder, cache, seed: int,
            cache_dir: Path | None = None, counterexamples: bool = False) -> list[dict]:
    """One row per class of the theme file: trained and tagged without that class's theme.

    counterexamples: the left-out class's description becomes every remaining theme's counterexample (a user who
    knows the corpus also holds a subject that none of the themes covers, and says so in the theme file)."""
    all_themes = load_themes(theme_file)
    articles, gold, paragraphs = with_paragraphs(name, articles, gold, embedder.max_words)
    vectors = embed_texts([p.text for p in paragraphs], embedder, cache)
    owner = np.array([int(p.article_id) for p in paragraphs])
    text_vectors = np.vstack([vectors[owner == i].mean(axis=0) for i in range(len(articles))])
    rows = []
    for gone in all_themes:
        left = gone.id
        themes = [t for t in all_themes if t.id != left]
        if counterexamples:
            themes = [replace(t, counterexamples=(gone.description,)) for t in themes]
        ids = [t.id for t in themes]
        truth = [[] if y == left else [y] for y in gold]
        tagger, _ = train(articles, themes, seed=seed, embedder=CachedEmbedder(embedder, cache), cache_dir=cache_dir,
                          progress=False)
        pred = [r.themes for r in tagger.tag_many([a.text for a in articles])]
        out = np.array([y == left for y in gold])
        none = np.array([not p for p in pred])
        descriptions = embed_texts([t.description for t in themes], embedder, cache)
        cos_f1, cos_none, cut = cosine_oracle(text_vectors @ descriptions.T, ids, truth)
        rows.append({"set": name, "left_out": left, "n": len(articles), "left_out_n": int(out.sum()),
                     "ours": multi_f1(truth, pred, ids), "cosine_oracle": cos_f1, "cosine_cut": cut,
                     "ours_none_left_out": float(none[out].mean()), "cosine_none_left_out": cos_none,
                     "ours_none_themed": float(none[~out].mean())})
        log.info("%s without %s: ours %.3f, cosine (oracle cut) %.3f", name, left, rows[-1]["ours"], cos_f1)
    return rows


def table(rows: list[dict]) -> str:
    lines = ["| set | left-out class | macro-F1 ours | cosine, oracle cut | left-out texts with no theme: ours / cosine "
             "| themed texts with no theme: ours |", "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['set']} | {r['left_out']} ({r['left_out_n']}) | {r['ours']:.3f} | {r['cosine_oracle']:.3f} "
                     f"| {r['ours_none_left_out']:.2f} / {r['cosine_none_left_out']:.2f} | {r['ours_none_themed']:.2f} |")
    for name in dict.fromkeys(r["set"] for r in rows):
        mine = [r for r in rows if r["set"] == name]
        mean = {k: np.mean([r[k] for r in mine]) for k in ("ours", "cosine_oracle", "ours_none_left_out",
                                                           "cosine_none_left_out", "ours_none_themed")}
        lines.append(f"| **{name}** | mean | **{mean['ours']:.3f}** | {mean['cosine_oracle']:.3f} | "
                     f"{mean['ours_none_left_out']:.2f} / {mean['cosine_none_left_out']:.2f} | "
                     f"{mean['ours_none_themed']:.2f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sets", default="agnews,bbc,bbcsport,huffpost8")
    p.add_argument("--size", type=int, default=2000, help="a seeded random sample of each set (default 2000)")
    p.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--write", action="store_true", help="write the table into BENCHMARKS.md")
    p.add_argument("--json", help="also write the rows as JSON here")
    p.add_argument("--counterexamples", action="store_true",
                   help="the left-out class's description becomes a counterexample of every remaining theme")
    args = p.parse_args(argv)
    quiet_logging(logging.ERROR)
    start = time.perf_counter()
    embedder, cache = embedder_and_cache()
    rows = []
    for name in args.sets.split(","):
        articles, gold = sample(Path(args.data_dir) / SETS[name], args.size, args.seed)
        rows += run_set(name, articles, gold, ROOT / "benchmarks" / "themes" / f"{name}.toml", embedder, cache,
                        args.seed, default_cache_dir(), args.counterexamples)
    told = ", the left-out class as every theme's counterexample" if args.counterexamples else ""
    publish(table(rows), rows, json_path=args.json, write=args.write, started=start, argv=argv,
            title=f"Texts with none of the themes (leave one class out{told}), embedding model `{embedder.spec}`",
            script="benchmarks/unthemed.py", marker=f"unthemed-{embedder.spec.replace(':', '-')}"
            + ("-counterexamples" if args.counterexamples else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
