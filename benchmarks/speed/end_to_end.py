#!/usr/bin/env python
"""Speed, part 6: training end to end, embedding included, against BERTopic with its own embedding pass.

    python benchmarks/speed/end_to_end.py                 # 20,000 paragraphs (about 12 minutes on two cores)
    python benchmarks/speed/end_to_end.py --sizes 5000    # another size (the largest of --sizes is used)
    python benchmarks/speed/end_to_end.py --quick         # 400 paragraphs; prints only

Needs bertopic (pip install -e '.[bench]'). One fresh process: UMAP, NN-descent and HDBSCAN compiled first, the
default encoder's ONNX build made (once per machine) before the clock starts. Ours: `model.train` on BBC articles
(cache off), the default encoder, every stage from cleaning to the classifier. BERTopic: `fit_transform` of the
paragraphs ours trained on, with the same all-MiniLM-L6-v2 through sentence-transformers as its embedding model, the
model's loading counted (as ours is). Its figures go into BENCHMARKS.md between `<!-- speed-end-to-end:start -->`
and `<!-- speed-end-to-end:end -->`.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import timing
from timing import SEED, THEMES, fmt_s, load_split, peak_rss_mb, say, select_paragraphs
from vs_bertopic import OURS_CORE, TimedReducer, bertopic_model, bertopic_umap, warm_up

NAME = "end-to-end"
TITLE = "6. End to end against BERTopic, embedding included"


def worker_end_to_end(p: dict) -> dict:
    import warnings

    import model.cluster
    from model import train
    from model.embed import DEFAULT, _bundled_path, load_embedder

    # The warm-up compiles UMAP in our worker process too; it must outlive our embedding pass (several minutes),
    # or the worker stops idle and a new one compiles UMAP again inside the timed run.
    model.cluster.WORKER_IDLE_S = 3600
    embedder = load_embedder(DEFAULT)   # makes the ONNX build if this machine has none yet; not timed
    _, pool = load_split(Path(p["data_dir"]))
    articles, n_par, _ = select_paragraphs(pool, p["size"], embedder.max_words)
    compile_s = warm_up(embedder.encode(["a warm-up"]).shape[1])
    del embedder

    say(f"ours end to end on {n_par:,} paragraphs ({DEFAULT})")
    t0 = time.perf_counter()
    tagger, s = train(articles, str(THEMES), cache_dir=None, progress=False, seed=SEED)
    ours = time.perf_counter() - t0
    docs = [q.text for q in tagger.training_paragraphs_]

    say(f"BERTopic end to end on the same {len(docs):,} paragraphs, embedding them itself")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        from sentence_transformers import SentenceTransformer

        reducer = TimedReducer(bertopic_umap())
        model = bertopic_model(reducer, embedding_model=SentenceTransformer(_bundled_path(), device="cpu"))
        topics, _ = model.fit_transform(docs)
        bt = time.perf_counter() - t0
    say(f"ours {ours:.1f} s, BERTopic {bt:.1f} s (its UMAP {reducer.seconds:.1f} s)")
    return {"paragraphs": len(docs), "spec": s.embedding_model, "ours_seconds": ours, "ours": s.seconds,
            "ours_clusters": s.clusters, "umap_compile_s": compile_s, "bertopic_seconds": bt,
            "bertopic_umap": reducer.seconds, "bertopic_topics": len(set(int(t) for t in topics) - {-1}),
            "peak_rss_mb": peak_rss_mb()}


WORKERS = {"end_to_end": worker_end_to_end}


def run(cfg: dict, tmp: Path, training: dict | None = None) -> dict:
    size = max(cfg["sizes"])
    say(f"part 6: end to end against BERTopic at {size:,} paragraphs")
    try:
        return timing.run_worker(__file__, "end_to_end", {"data_dir": cfg["data_dir"], "size": size}, tmp)
    except RuntimeError as exc:
        return {"error": str(exc)}


def render(r: dict, cfg: dict) -> tuple[list[tuple], str]:
    x = r["bertopic_seconds"] / r["ours_seconds"]
    targets = [(f"ours end to end vs BERTopic with its own embedding pass, {r['paragraphs']:,} paragraphs",
                ">= 1.5x (issue 13)", f"{x:.2f}x", x >= 1.5)]
    o = r["ours"]
    rest = r["ours_seconds"] - sum(o.values())
    L = [f"{r['paragraphs']:,} paragraphs of BBC News (copies marked as in part 2), one fresh process; UMAP, "
         f"NN-descent and HDBSCAN compiled first ({fmt_s(r.get('umap_compile_s'))} s). Ours: `model.train` with the "
         f"default encoder (`{r['spec']}`), cache off. BERTopic: the reference of part 3 with "
         "`embedding_model=SentenceTransformer(<the bundled all-MiniLM-L6-v2>)`, `fit_transform(docs)` on the "
         "paragraphs ours trained on; loading the model is counted in both. Peak memory "
         f"{r['peak_rss_mb']:,.0f} MB (both, one process).", "",
         "| | seconds |", "|---|---|",
         f"| ours: load embedder | {fmt_s(o.get('load embedder'))} |",
         f"| ours: embed | {fmt_s(o.get('embed'))} |",
         f"| ours: clean and split | {fmt_s(o.get('clean and split'))} |",
         f"| ours: {' + '.join(OURS_CORE)} | {fmt_s(sum(o.get(k, 0) for k in OURS_CORE))} |",
         f"| ours: outside the stages (the theme file, the summary) | {fmt_s(rest)} |",
         f"| **ours: total** | **{fmt_s(r['ours_seconds'])}** ({r['ours_clusters']} clusters) |",
         f"| BERTopic: UMAP | {fmt_s(r['bertopic_umap'])} |",
         f"| BERTopic: the rest (loading the model, embedding, HDBSCAN, c-TF-IDF) | "
         f"{fmt_s(r['bertopic_seconds'] - r['bertopic_umap'])} |",
         f"| **BERTopic: total** | **{fmt_s(r['bertopic_seconds'])}** ({r['bertopic_topics']} topics) |",
         f"| **BERTopic / ours** | **{x:.2f}x** |", ""]
    return targets, "\n".join(L)


if __name__ == "__main__":
    sys.exit(timing.part_main(sys.modules[__name__], "benchmarks/speed/end_to_end.py"))
