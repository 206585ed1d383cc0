#!/usr/bin/env python
"""Speed, part 1: tagging throughput, tag_many against a raw SentenceTransformer.encode of the same paragraphs.

The tagger uses the default encoder (OpenVINO, bf16 where the CPU has it; trained on fp32 embeddings); the reference
is the same bundled model as a plain fp32 sentence-transformers model run by torch (issue 13's target: tag_many at
least 2x its encode).

    python benchmarks/speed/tagging.py           # 300 held-out BBC articles, 3 repeats; writes its block
    python benchmarks/speed/tagging.py --quick   # 30 articles, 1 repeat (a minute or two); prints only

Its figures go into BENCHMARKS.md between `<!-- speed-tagging:start -->` and `<!-- speed-tagging:end -->`.
"""

from __future__ import annotations

import inspect
import sys
from pathlib import Path

import timing
from timing import SEED, THEMES, fmt_s, load_split, median_of, say, seconds_of

NAME = "tagging"
TITLE = "1. Tagging throughput vs raw encode"


def worker_tagging(p: dict) -> dict:
    """tag_many vs raw SentenceTransformer.encode on the same paragraphs, and where tag_many's other time goes."""
    import numpy as np
    import torch

    from model import train
    from model.corpus import Article, paragraphs_of
    from model.embed import BUNDLED, SentenceTransformerEmbedder

    heldout, pool = load_split(Path(p["data_dir"]))
    heldout = heldout[:p["heldout"]]
    train_articles = pool[:p["train_articles"]]
    say(f"training the default tagger on {len(train_articles)} articles (embedding cache off)")
    tagger, s_default = train(train_articles, str(THEMES), cache_dir=None, progress=False, seed=SEED)
    emb = tagger.embedder
    reference = SentenceTransformerEmbedder(BUNDLED)   # fp32, torch: what a raw sentence-transformers user runs
    st, bs = reference.model, reference.batch_size
    texts = [a.text for a in heldout]
    paras = [q.text for q in paragraphs_of(heldout, emb.max_words, warn_empty=False)]
    say(f"held-out: {len(texts)} articles -> {len(paras)} paragraphs; batch size {bs}, "
        f"torch threads {torch.get_num_threads()}")

    # Warm up every path once (model weights paged in, TF-IDF, thread pools, torch lazy init).
    tagger.tag_many(texts[:32])
    st.encode(paras[:128], batch_size=bs, show_progress_bar=False, convert_to_numpy=True)
    same = None
    raw_out = {}

    def tag_default():
        nonlocal same
        out = tagger.tag_many(texts)
        if same is None:   # the tagger must have embedded exactly the paragraphs the raw encode gets
            same = [q.text for r in out for q in r.paragraphs] == paras

    def raw_encode():
        raw_out["v"] = st.encode(paras, batch_size=bs, show_progress_bar=False, convert_to_numpy=True)

    times = timing.rotated_rounds({"tag_many": tag_default, "raw encode": raw_encode}, p["repeats"])
    # Diagnostic, only when tag_many falls short of raw encode: is it the per-batch encode calls?
    if median_of(times["raw encode"]) / median_of(times["tag_many"]) < 0.95:
        times["tag_many one batch"] = [seconds_of(lambda: tagger.tag_many(texts, batch_size=len(texts)))]
        times["raw encode (diagnostic)"] = [seconds_of(raw_encode)]

    # Where tag_many's time goes besides the encoder: each piece timed alone on the same articles.
    vecs = raw_out["v"] / np.maximum(np.linalg.norm(raw_out["v"], axis=1, keepdims=True), 1e-12)
    scores = tagger.classifier.predict_proba(vecs, paras)
    rows_of, row = [], 0
    for a in heldout:
        n = len(paragraphs_of([Article("x", a.text)], emb.max_words, warn_empty=False))
        rows_of.append(list(range(row, row + n)))
        row += n
    pieces = {
        "clean and split": seconds_of(lambda: paragraphs_of(heldout, emb.max_words, warn_empty=False), 3),
        "normalise": seconds_of(lambda: raw_out["v"] / np.linalg.norm(raw_out["v"], axis=1, keepdims=True), 3),
        "classifier": seconds_of(lambda: tagger.classifier.predict_proba(vecs, paras), 3),
        "results": seconds_of(lambda: [tagger._result(rows, paras, scores) for rows in rows_of], 3),
    }
    return {"articles": len(texts), "paragraphs": len(paras),
            "train_articles": len(train_articles), "train_paragraphs": s_default.paragraphs,
            "batch_size": bs, "encoder": emb.spec, "torch_threads": torch.get_num_threads(), "max_words": emb.max_words,
            "tag_batch": inspect.signature(type(tagger).tag_many).parameters["batch_size"].default,
            "same_paragraphs": bool(same), "times": times, "pieces": pieces,
            "train_default": s_default.seconds, "repeats": p["repeats"]}


WORKERS = {"tagging": worker_tagging}


def run(cfg: dict, tmp: Path) -> dict:
    say(f"part 1: tagging throughput ({cfg['heldout']} held-out articles, {cfg['repeats']} repeats)")
    try:
        return timing.run_worker(__file__, "tagging", {k: cfg[k] for k in ("data_dir", "heldout", "train_articles",
                                                                           "repeats")}, tmp)
    except RuntimeError as exc:
        return {"error": str(exc)}


def render(tg: dict, cfg: dict) -> tuple[list[tuple], str]:
    med = {k: median_of(x) for k, x in tg["times"].items()}
    n_a, n_p = tg["articles"], tg["paragraphs"]
    ratio = med["raw encode"] / med["tag_many"]
    targets = [("default tag_many vs raw fp32 `SentenceTransformer.encode`, same paragraphs", ">= 2x (issue 13)",
                f"{ratio:.2f}x", ratio >= 2)]
    L = [f"Default tagger (encoder `{tg.get('encoder', '?')}`) trained on {tg['train_articles']} pool articles "
         f"({tg['train_paragraphs']:,} paragraphs). Tagged: {n_a} held-out articles = {n_p:,} paragraphs. Raw "
         "encode is the bundled all-MiniLM-L6-v2 as a fp32 `SentenceTransformer` (torch), `.encode` of exactly the "
         "paragraphs the tagger produced "
         f"(`paragraphs_of(..., max_words={tg['max_words']})`; identical to tag_many's: "
         f"{'yes' if tg['same_paragraphs'] else 'NO'}), batch size {tg['batch_size']}. "
         f"Everything warmed up first; median of {tg['repeats']} repeat{'s' if tg['repeats'] > 1 else ''}, "
         f"order rotated each repeat; torch threads {tg['torch_threads']}.", "",
         "| run | seconds (median, min–max) | paragraphs/s | articles/s | vs raw encode |",
         "|---|---|---|---|---|"]
    label = {"tag_many": f"`tag_many(texts)`, default embedder (default batch_size={tg.get('tag_batch', '?')} "
                         "articles per encode call)",
             "raw encode": f"raw `SentenceTransformer.encode` of all paragraphs, batch_size={tg['batch_size']}",
             "tag_many one batch": "diagnostic: `tag_many(texts, batch_size=len(texts))`, one run",
             "raw encode (diagnostic)": "diagnostic: raw encode again, right after it"}
    for k, text in label.items():
        if k not in tg["times"]:
            continue
        xs = tg["times"][k]
        base = med["raw encode (diagnostic)"] if k == "tag_many one batch" else med["raw encode"]
        spread = f" ({fmt_s(min(xs))}–{fmt_s(max(xs))})" if len(xs) > 1 else ""
        L.append(f"| {text} | {fmt_s(med[k])}{spread} | {n_p / med[k]:,.0f} | {n_a / med[k]:,.1f} | "
                 f"{base / med[k]:.2f}x |")
    pc = tg["pieces"]
    L += ["", f"tag_many's non-encoder work on these {n_a} articles, each piece timed alone: clean and split "
          f"{pc['clean and split']:.2f} s, normalise {pc['normalise']:.3f} s, classifier "
          f"{pc['classifier']:.2f} s, building results {pc['results']:.2f} s "
          f"(together {sum(pc.values()) / med['tag_many']:.1%} of tag_many's time).", "",
          "Training this tagger, seconds per stage: " +
          ", ".join(f"{k} {fmt_s(x)}" for k, x in tg["train_default"].items()) + "."]
    return targets, "\n".join(L)


if __name__ == "__main__":
    sys.exit(timing.part_main(sys.modules[__name__], "benchmarks/speed/tagging.py"))
