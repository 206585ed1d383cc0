#!/usr/bin/env python
"""Speed, part 3: our non-embedding stages against BERTopic.fit_transform, same paragraphs, same embeddings.

    python benchmarks/speed/vs_bertopic.py                      # embeds 20,000 paragraphs first (part 2's worker)
    python benchmarks/speed/vs_bertopic.py --embeddings /tmp/emb20k   # from training.py --keep-embeddings
    python benchmarks/speed/vs_bertopic.py --quick              # 400 paragraphs; prints only

Needs bertopic (pip install -e '.[bench]'). Not named bertopic.py: run as a script, this folder comes first on
sys.path, and the module would import itself for `bertopic`. Its figures go into BENCHMARKS.md between
`<!-- speed-bertopic:start -->` and `<!-- speed-bertopic:end -->`.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import timing
from timing import SEED, THEMES, fmt_s, load_split, peak_rss_mb, say, select_paragraphs

NAME = "bertopic"
TITLE = "3. BERTopic reference"
OURS_CORE = ("reduce", "cluster", "describe", "label", "classifier")


class Precomputed:
    """An embedder that looks vectors up instead of computing them (texts it has not seen are an error)."""

    def __init__(self, lookup: dict, spec: str, max_words: int):
        self.lookup, self.spec, self.max_words, self.id = lookup, spec, max_words, f"precomputed:{spec}"

    def encode(self, texts, show_progress: bool = False):
        import numpy as np

        return np.vstack([self.lookup[t] for t in texts]).astype(np.float32)


class TimedReducer:
    """Delegates to a UMAP model and times its fit_transform (BERTopic calls fit_transform once)."""

    def __init__(self, inner):
        self.inner, self.seconds = inner, 0.0

    def fit_transform(self, X, y=None):
        t0 = time.perf_counter()
        out = self.inner.fit_transform(X, y=y)
        self.seconds += time.perf_counter() - t0
        return out

    def fit(self, X, y=None):
        t0 = time.perf_counter()
        self.inner.fit(X, y=y)
        self.seconds += time.perf_counter() - t0
        return self

    def __getattr__(self, name):
        return getattr(self.inner, name)


def warm_up(dim: int) -> float:
    """Compile UMAP, NN-descent and HDBSCAN before the clock starts (numba's compilation is not what we compare);
    the seconds it took."""
    import warnings

    import numpy as np
    from umap import UMAP

    say("warming up UMAP / NN-descent / HDBSCAN (numba compilation is not what we compare here)")
    rng = np.random.default_rng(0)
    # Over 4,096 rows UMAP switches from brute force to NN-descent, whose numba compilation takes ~15-20 s: warm
    # up that path, with both low_memory settings (ours True, BERTopic's False), or whoever runs first pays it; and
    # in our UMAP worker process too.
    warm = rng.normal(size=(5000, dim)).astype(np.float32)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for low_memory in (True, False):
            UMAP(n_components=5, metric="cosine", random_state=0, low_memory=low_memory, n_epochs=5).fit_transform(warm)
        # Ours runs UMAP on a large corpus in a worker process (model.cluster.start_reduce), which compiles it again.
        from model.cluster import start_reduce

        start_reduce(warm, seed=0)()
        compile_s = time.perf_counter() - t0
        warm = warm[:400]
        try:
            bertopic_model(UMAP(n_components=5, metric="cosine", random_state=0, low_memory=False)).fit_transform(
                [f"doc number {i} about topic{i % 7} and thing{i % 11}" for i in range(400)], embeddings=warm)
        except Exception as exc:   # a warm-up only; random vectors may give no clusters at all
            say(f"(BERTopic warm-up: {type(exc).__name__}: {exc})")
    return compile_s


def bertopic_model(umap_model, **kwargs):
    """BERTopic as the reference runs it: its default UMAP parameters, seeded like ours (a seed makes UMAP
    single-threaded in both), default HDBSCAN and c-TF-IDF, no topic probabilities."""
    from bertopic import BERTopic

    return BERTopic(umap_model=umap_model, calculate_probabilities=False, **kwargs)


def bertopic_umap():
    from umap import UMAP

    return UMAP(n_neighbors=15, n_components=5, min_dist=0.0, metric="cosine", low_memory=False, random_state=0)


def worker_bertopic(p: dict) -> dict:
    """Our non-embedding stages vs BERTopic.fit_transform on the same paragraphs and embeddings."""
    import warnings

    import numpy as np

    from model import train

    dump = Path(p["dump"])
    meta = json.loads((dump / "meta.json").read_text())
    texts = json.loads((dump / "texts.json").read_text(encoding="utf-8"))
    vectors = np.load(dump / "vectors.npy")
    lookup = dict(zip(texts, vectors))
    _, pool = load_split(Path(p["data_dir"]))
    articles, n_par, copies = select_paragraphs(pool, meta["size"], meta["max_words"])
    embedder = Precomputed(lookup, meta["spec"], meta["max_words"])

    compile_s = warm_up(vectors.shape[1])

    say(f"ours on {n_par} paragraphs with precomputed embeddings (run 1 of 2)")
    t0 = time.perf_counter()
    tagger, s = train(articles, str(THEMES), cache_dir=None, progress=False, embedder=embedder, seed=SEED)
    ours_wall = time.perf_counter() - t0
    ours_runs = [s.seconds]
    docs = [q.text for q in tagger.training_paragraphs_]
    emb = embedder.encode(docs)

    say(f"BERTopic on the same {len(docs)} paragraphs and embeddings")
    reducer = TimedReducer(bertopic_umap())
    model = bertopic_model(reducer)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        topics, _ = model.fit_transform(docs, embeddings=emb)
        bt = time.perf_counter() - t0
    say(f"BERTopic: {bt:.1f} s (UMAP {reducer.seconds:.1f} s)")
    say("ours again (run 2 of 2)")
    ours_runs.append(train(articles, str(THEMES), cache_dir=None, progress=False, embedder=embedder,
                           seed=SEED)[1].seconds)
    ours = {k: sum(r.get(k, 0.0) for r in ours_runs) / len(ours_runs) for k in ours_runs[0]}
    return {"paragraphs": len(docs), "ours": ours, "ours_runs": ours_runs, "ours_wall": ours_wall,
            "ours_clusters": s.clusters, "umap_compile_s": compile_s,
            "bertopic_seconds": bt, "bertopic_umap": reducer.seconds,
            "bertopic_topics": len(set(int(t) for t in topics) - {-1}), "peak_rss_mb": peak_rss_mb()}


WORKERS = {"bertopic": worker_bertopic}


def run(cfg: dict, tmp: Path, training: dict | None = None) -> dict:
    """On the embeddings part 2 left in tmp/embeddings, or given with --embeddings; else embed them first."""
    dump = Path(cfg["embeddings"]) if cfg.get("embeddings") else tmp / "embeddings"
    if not (dump / "meta.json").exists():
        import training as part2

        size = max(cfg["sizes"])
        say(f"part 3: embedding {size:,} paragraphs first (part 2's worker)")
        try:
            training = {"sizes": {size: timing.run_worker(part2.__file__, "train", {"data_dir": cfg["data_dir"],
                                                          "size": size, "dump": str(dump)}, tmp)}}
        except RuntimeError as exc:
            return {"error": str(exc)}
    meta = json.loads((dump / "meta.json").read_text())
    say(f"part 3: BERTopic reference on {meta['paragraphs']:,} paragraphs")
    try:
        result = timing.run_worker(__file__, "bertopic", {"data_dir": cfg["data_dir"], "dump": str(dump)}, tmp)
    except RuntimeError as exc:
        return {"error": str(exc)}
    if training and training.get("sizes"):   # the same size trained in a fresh process, for the note below
        big = max(training["sizes"].values(), key=lambda r: r["paragraphs"])
        if big["paragraphs"] == result["paragraphs"]:
            result["fresh_process"] = sum(big["seconds"].get(k, 0) for k in OURS_CORE)
    return result


def render(bt: dict, cfg: dict) -> tuple[list[tuple], str]:
    o = bt["ours"]
    ours = sum(o.get(k, 0) for k in OURS_CORE)
    x = bt["bertopic_seconds"] / ours
    targets = [(f"ours (reduce+cluster+describe+label+classifier) vs BERTopic.fit_transform, "
                f"{bt['paragraphs']:,} paragraphs", ">= 1.0x (no longer than BERTopic; issue 13)", f"{x:.2f}x", x >= 1)]
    dominant = max(OURS_CORE, key=lambda k: o.get(k, 0))
    L = [f"Same {bt['paragraphs']:,} paragraphs (the largest training size), same precomputed embeddings, one "
         "process, UMAP and NN-descent compiled first (on 5,000 random rows, both low_memory settings: "
         f"{fmt_s(bt.get('umap_compile_s'))} s, which every fresh process pays once on its first UMAP over "
         "4,096 rows). Ours: `model.train` with an embedder that looks the precomputed vectors up, run before "
         "and after BERTopic, mean of the two. BERTopic: `BERTopic(umap_model=UMAP(n_neighbors=15, n_components=5, "
         "min_dist=0.0, metric=\"cosine\", low_memory=False, random_state=0), calculate_probabilities=False)"
         ".fit_transform(docs, embeddings=emb)` — BERTopic's default UMAP parameters, seeded like ours "
         "(a seed makes UMAP single-threaded in both), default HDBSCAN and c-TF-IDF. Ours runs UMAP in a worker "
         "process (`model.cluster.start_reduce`) while this one builds the neighbours, the TF-IDF features and the "
         "keyword counts, which need no clusters; each stage's seconds are this process's wall clock, so \"reduce\" "
         "is what was left to wait for UMAP, and the stages add up to the wall time.", "",
         "| | seconds |", "|---|---|"]
    runs = bt.get("ours_runs", [o])
    L += [f"| ours: {k} | {fmt_s(o.get(k))} ({' / '.join(fmt_s(r.get(k)) for r in runs)}) |" for k in OURS_CORE]
    L += [f"| **ours: total of these stages** | **{fmt_s(ours)}** "
          f"({' / '.join(fmt_s(sum(r.get(k, 0) for k in OURS_CORE)) for r in runs)}; "
          f"{bt['ours_clusters']} clusters) |",
          f"| BERTopic: UMAP | {fmt_s(bt['bertopic_umap'])} |",
          f"| BERTopic: everything else (HDBSCAN, c-TF-IDF, representations) | "
          f"{fmt_s(bt['bertopic_seconds'] - bt['bertopic_umap'])} |",
          f"| **BERTopic: fit_transform total** | **{fmt_s(bt['bertopic_seconds'])}** "
          f"({bt['bertopic_topics']} topics) |",
          f"| **BERTopic / ours** | **{x:.2f}x** |", ""]
    note = f"Our largest stage here is **{dominant}** ({o.get(dominant, 0) / ours:.0%} of our total)."
    if bt.get("fresh_process"):
        other = bt["fresh_process"]
        note += (f" In the training run of part 2 (fresh process, so its reduce may include the numba compilation) "
                 f"the same stages took {fmt_s(other)} s (BERTopic / that = {bt['bertopic_seconds'] / other:.2f}x).")
    return targets, "\n".join(L + [note])


if __name__ == "__main__":
    sys.exit(timing.part_main(sys.modules[__name__], "benchmarks/speed/vs_bertopic.py"))
