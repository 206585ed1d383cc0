#!/usr/bin/env python
"""Speed, part 2: training time and peak memory per stage, at a few corpus sizes (default embedder, no cache).

    python benchmarks/speed/training.py                       # 1,000, 5,000 and 20,000 paragraphs; writes its block
    python benchmarks/speed/training.py --quick               # 400 paragraphs; prints only
    python benchmarks/speed/training.py --sizes 20000 --keep-embeddings /tmp/emb20k   # for vs_bertopic.py

Each size trains in a fresh process. Its figures go into BENCHMARKS.md between `<!-- speed-training:start -->` and
`<!-- speed-training:end -->`.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import timing
from timing import SEED, THEMES, RssSampler, fmt_s, load_split, peak_rss_mb, rss_mb, say, select_paragraphs

NAME = "training"
TITLE = "2. Training time per stage (default embedder, embedding cache off)"
EMBED_STAGES = ("load embedder", "embed")
STAGES = ("load embedder", "clean and split", "embed", "reduce", "cluster", "describe", "label", "classifier")


class Recorder:
    """Wraps the real embedder and keeps every (text, vector) it produced, to reuse for the BERTopic run."""

    def __init__(self, inner):
        self.inner, self.id, self.spec, self.max_words = inner, inner.id, inner.spec, inner.max_words
        self.calls = []

    def encode(self, texts, show_progress: bool = False):
        v = self.inner.encode(texts, show_progress=show_progress)
        self.calls.append((list(texts), v))
        return v


def worker_train(p: dict) -> dict:
    """Train on about `size` paragraphs with the real default embedder and no cache; time and memory."""
    import numpy as np

    from model import train
    from model.embed import DEFAULT, load_embedder

    _, pool = load_split(Path(p["data_dir"]))
    base = rss_mb()
    t0 = time.perf_counter()
    embedder = load_embedder(DEFAULT, None)
    getattr(embedder, "model", None) or getattr(embedder, "session", None)   # the weights load on first use: here,
    # so that this stage times them
    load_s = time.perf_counter() - t0
    articles, n_par, copies = select_paragraphs(pool, p["size"], embedder.max_words)
    say(f"training on {len(articles)} articles -> {n_par} paragraphs (copies used: {copies})")
    rec = Recorder(embedder)
    with RssSampler() as sampler:
        t0 = time.perf_counter()
        tagger, s = train(articles, str(THEMES), cache_dir=None, progress=False, embedder=rec, seed=SEED)
        wall = time.perf_counter() - t0
    stage_at_peak, sampled_peak = sampler.top()
    # ru_maxrss is this process's own; the sampled peak also counts UMAP's worker process (model.cluster)
    peak = max(peak_rss_mb(), sampled_peak)
    if p.get("dump"):
        dump = Path(p["dump"])
        dump.mkdir(parents=True, exist_ok=True)
        all_texts = [t for texts, _ in rec.calls for t in texts]
        np.save(dump / "vectors.npy", np.vstack([v for _, v in rec.calls]).astype(np.float32))
        (dump / "texts.json").write_text(json.dumps(all_texts), encoding="utf-8")
        (dump / "meta.json").write_text(json.dumps({"size": p["size"], "max_words": embedder.max_words,
                                                    "spec": embedder.spec, "paragraphs": n_par}))
    return {"size": p["size"], "articles": len(articles), "paragraphs": s.paragraphs, "copies": copies,
            "clusters": s.clusters, "seconds": {"load embedder": load_s, **s.seconds}, "train_wall": wall,
            "peak_rss_mb": peak, "sampled_peak_mb": sampled_peak, "stage_at_peak": stage_at_peak,
            "rss_before_mb": base, "peak_by_stage": sampler.peak}


WORKERS = {"train": worker_train}


def run(cfg: dict, tmp: Path) -> dict:
    """Every size in a fresh process; the largest one's texts and vectors go to tmp/embeddings (for part 3)."""
    sizes, errors = {}, {}
    for size in sorted(cfg["sizes"]):
        say(f"part 2: training on about {size:,} paragraphs")
        try:
            r = timing.run_worker(__file__, "train", {"data_dir": cfg["data_dir"], "size": size, "dump":
                                  str(tmp / "embeddings") if size == max(cfg["sizes"]) else None}, tmp)
        except RuntimeError as exc:
            errors[size] = str(exc)
            continue
        sizes[size] = r
        say(f"  {r['paragraphs']:,} paragraphs: " + ", ".join(f"{k} {v:.1f}s" for k, v in r["seconds"].items()) +
            f"; peak RSS {r['peak_rss_mb'] / 1024:.2f} GB")
    result = {"sizes": sizes}
    if errors:
        result["error"] = "; ".join(f"{s:,} paragraphs: {e}" for s, e in errors.items())
    return result


def render(res: dict, cfg: dict) -> tuple[list[tuple], str]:
    tr = {int(k): v for k, v in res["sizes"].items()}   # JSON keys are strings
    sizes = sorted(tr)
    big = tr[sizes[-1]]
    sec = big["seconds"]
    share = (sum(sec.values()) - sum(sec.get(k, 0) for k in EMBED_STAGES)) / sum(sec.values())
    at_20k = big["size"] >= 20000
    targets = [(f"non-embedding share of training time, {big['paragraphs']:,} paragraphs", "<= 25%",
                f"{share:.0%}", share <= 0.25 if at_20k else None),
               (f"peak RSS while training, {big['paragraphs']:,} paragraphs", "< 3 GB",
                f"{big['peak_rss_mb'] / 1024:.2f} GB", big["peak_rss_mb"] < 3072 if at_20k else None)]
    L = ["Each size runs `model.train(articles, bbc.toml, cache_dir=None, progress=False)` in a fresh process "
         "(\"load embedder\" is timed around `load_embedder` and the weights' loading just before, then the embedder "
         "is passed in). Articles come from the training pool in order; past the pool, copies of its articles are "
         "used with every line prefixed by \"(copy N) \" so that all paragraphs are distinct texts "
         "(see the copies row). Non-embedding share = (total − load embedder − embed) / total. \"reduce\" here "
         "includes numba compiling UMAP on its first call in the process, unless numba's cache in "
         "~/.cache/theme-tagger holds it (part 3 times it warmed up).", "",
         "| | " + " | ".join(f"{s:,}" for s in sizes) + " |", "|---|" + "---|" * len(sizes)]

    def row(name, fn):
        L.append(f"| {name} | " + " | ".join(fn(tr[s]) for s in sizes) + " |")

    def non_embedding(r):
        return sum(x for k, x in r["seconds"].items() if k not in EMBED_STAGES)

    row("articles", lambda r: f"{r['articles']:,}")
    row("copies of the pool used", lambda r: str(r["copies"]))
    row("paragraphs", lambda r: f"{r['paragraphs']:,}")
    row("clusters", lambda r: str(r["clusters"]))
    for stage in STAGES:
        row(f"{stage} (s)", lambda r, st=stage: fmt_s(r["seconds"].get(st)))
    row("**total (s)**", lambda r: f"**{fmt_s(sum(r['seconds'].values()))}**")
    row("embedding throughput (paragraphs/s)", lambda r: f"{r['paragraphs'] / r['seconds']['embed']:,.0f}")
    row("non-embedding seconds", lambda r: fmt_s(non_embedding(r)))
    row("**non-embedding share**", lambda r: f"**{non_embedding(r) / sum(r['seconds'].values()):.0%}**")
    row("**peak RSS (the larger of ru_maxrss and the sampled peak with UMAP's worker)**",
        lambda r: f"**{r['peak_rss_mb'] / 1024:.2f} GB**")
    row("stage at the sampled peak (this process and its worker)",
        lambda r: f"{r['stage_at_peak']} ({r['sampled_peak_mb'] / 1024:.2f} GB)")
    row("RSS before training", lambda r: f"{r['rss_before_mb'] / 1024:.2f} GB")
    if not at_20k:
        L += ["", "(The training targets are defined at 20k paragraphs; this run's largest size is smaller.)"]
    return targets, "\n".join(L)


if __name__ == "__main__":
    sys.exit(timing.part_main(sys.modules[__name__], "benchmarks/speed/training.py"))
