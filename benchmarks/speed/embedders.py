#!/usr/bin/env python
"""Speed, parts 4 and 5: the fast (static) embedder's tagger against the default one, and streaming memory.

    python benchmarks/speed/embedders.py           # 300 held-out articles, 3 repeats, 400,000 streamed; writes
    python benchmarks/speed/embedders.py --quick   # 30 articles, 1 repeat, 10,000 streamed; prints only

Part 4 trains both taggers on the same pool articles and times their tag_many on the same held-out articles, in
one process, the order rotated each repeat. Part 5 streams many short articles through the static tagger, loaded
from disk in a new process, and samples its RSS. Needs model2vec's distillation (pip install -e '.[bench]').
Its figures go into BENCHMARKS.md between `<!-- speed-embedders:start -->` and `<!-- speed-embedders:end -->`.
"""

from __future__ import annotations

import random
import sys
import time
from pathlib import Path

import timing
from timing import SEED, THEMES, fmt_s, load_split, median_of, peak_rss_mb, rss_mb, say

NAME = "embedders"
TITLE = "4. The fast embedder's tagger, and 5. streaming memory"


def worker_static(p: dict) -> dict:
    """Part 4: tag_many with the static tagger against the default one; the static tagger is saved for part 5."""
    from model import train
    from model.corpus import paragraphs_of
    from model.embed import BUNDLED, SentenceTransformerEmbedder

    heldout, pool = load_split(Path(p["data_dir"]))
    texts = [a.text for a in heldout[:p["heldout"]]]
    train_articles = pool[:p["train_articles"]]
    say(f"training the default tagger on {len(train_articles)} articles (embedding cache off)")
    default, s_default = train(train_articles, str(THEMES), cache_dir=None, progress=False, seed=SEED)
    say(f"training the static tagger on the same {len(train_articles)} articles")
    try:
        static, s_static = train(train_articles, str(THEMES), embedding_model="static", cache_dir=None,
                                 progress=False, seed=SEED)
    except ImportError as exc:   # model2vec's distillation needs its `distill` extra (skeletoken)
        return {"error": f"static embedder unavailable: {type(exc).__name__}: {exc}"}
    static.save(p["static_dir"])
    # The reference issue 13's targets use: the bundled model as a plain fp32 sentence-transformer (torch), encoding
    # the paragraphs the default tagger embeds.
    reference = SentenceTransformerEmbedder(BUNDLED)
    paras = [q.text for q in paragraphs_of(heldout[:p["heldout"]], default.embedder.max_words, warn_empty=False)]
    default.tag_many(texts[:32])   # warm up every path
    static.tag_many(texts[:32])
    reference.encode(paras[:128])
    times = timing.rotated_rounds({"tag_many": lambda: default.tag_many(texts),
                                   "static tag_many": lambda: static.tag_many(texts),
                                   "raw fp32 encode": lambda: reference.encode(paras)}, p["repeats"])
    count = {"tag_many": len(paras),
             "static tag_many": len(paragraphs_of(heldout[:p["heldout"]], static.embedder.max_words, warn_empty=False))}
    return {"articles": len(texts), "paragraphs": count, "train_articles": len(train_articles),
            "times": times, "repeats": p["repeats"], "static_spec": static.embedder.spec,
            "default_spec": default.embedder.spec,
            "train_default": s_default.seconds, "train_static": s_static.seconds}


def synthetic_articles(n: int, sentences: list[str], seed: int = 1):
    rng = random.Random(seed)
    for i in range(n):
        body = " ".join(rng.choice(sentences) for _ in range(rng.randint(2, 4)))
        yield f"Brief report {i}\n\n{body}\n\n{rng.choice(sentences)}"


def worker_stream(p: dict) -> dict:
    """Part 5: tag_many over a generator of many short articles; RSS must stay flat."""
    import gc

    from model import ThemeTagger
    from model.corpus import paragraphs_of, split_sentences

    heldout, pool = load_split(Path(p["data_dir"]))
    sentences = [s for q in paragraphs_of(pool[:400], 10_000, warn_empty=False) for s in split_sentences(q.text)
                 if 6 <= len(s.split()) <= 40]
    tagger = ThemeTagger.load(p["static_dir"])
    for _ in tagger.tag_many(synthetic_articles(2000, sentences, seed=2)):   # warm-up
        pass
    gc.collect()
    n, every = p["n"], max(1, p["n"] // 20)
    samples = [(0, rss_mb(), 0.0)]
    say(f"streaming {n:,} synthetic articles through the static tagger (RSS {samples[0][1]:.0f} MB)")
    t0 = time.perf_counter()
    i = 0
    for i, _ in enumerate(tagger.tag_many(synthetic_articles(n, sentences)), 1):
        if i % every == 0:
            samples.append((i, rss_mb(), time.perf_counter() - t0))
            if i % (every * 5) == 0:
                say(f"  {i:,} articles, RSS {samples[-1][1]:.0f} MB, {i / samples[-1][2]:.0f} articles/s")
    seconds = time.perf_counter() - t0
    if samples[-1][0] != i:
        samples.append((i, rss_mb(), seconds))
    return {"n": i, "seconds": seconds, "samples": samples, "peak_rss_mb": peak_rss_mb(),
            "sentences": len(sentences)}


WORKERS = {"static": worker_static, "stream": worker_stream}


def run(cfg: dict, tmp: Path) -> dict:
    static_dir = str(tmp / "static-tagger")
    say(f"part 4: static vs default tagger ({cfg['heldout']} held-out articles, {cfg['repeats']} repeats)")
    try:
        static = timing.run_worker(__file__, "static", {k: cfg[k] for k in ("data_dir", "heldout", "train_articles",
                                                                            "repeats")} | {"static_dir": static_dir},
                                   tmp)
    except RuntimeError as exc:
        return {"error": str(exc)}
    if static.get("error"):
        return static
    say(f"part 5: streaming memory ({cfg['stream_n']:,} articles)")
    try:
        stream = timing.run_worker(__file__, "stream", {"data_dir": cfg["data_dir"], "static_dir": static_dir,
                                                        "n": cfg["stream_n"]}, tmp)
    except RuntimeError as exc:
        stream = {"error": str(exc)}
    return {"static": static, "stream": stream}


def render(res: dict, cfg: dict) -> tuple[list[tuple], str]:
    tg, st = res["static"], res["stream"]
    med = {k: median_of(x) for k, x in tg["times"].items()}
    static_x = med["tag_many"] / med["static tag_many"]
    targets = [("static-embedder tagger vs default tagger, articles/s", ">= 20x", f"{static_x:.0f}x",
                static_x >= 20)]
    if "raw fp32 encode" in med:
        raw_x = med["raw fp32 encode"] / med["static tag_many"]
        targets.append(("static-embedder tagger vs a raw fp32 `SentenceTransformer.encode` of the default's "
                        "paragraphs", ">= 50x (issue 13)", f"{raw_x:.0f}x", raw_x >= 50))
    n_a = tg["articles"]
    L = [f"Both taggers trained on the same {tg['train_articles']} pool articles; tagged: the same {n_a} held-out "
         f"articles ({tg['paragraphs']['tag_many']:,} paragraphs for the default embedder, "
         f"{tg['paragraphs']['static tag_many']:,} for the static one, which does not split long paragraphs). "
         f"Warmed up first; median of {tg['repeats']} repeat{'s' if tg['repeats'] > 1 else ''}, order rotated "
         "each repeat.", "",
         "| run | seconds (median, min–max) | paragraphs/s | articles/s |", "|---|---|---|---|"]
    label = {"tag_many": f"`tag_many(texts)`, default embedder (`{tg.get('default_spec', '?')}`)",
             "static tag_many": f"`tag_many(texts)`, static embedder (`{tg['static_spec']}`)",
             "raw fp32 encode": "raw fp32 `SentenceTransformer.encode` (torch) of the default's paragraphs"}
    for k, text in label.items():
        if k not in tg["times"]:
            continue
        xs = tg["times"][k]
        n_p = tg["paragraphs"].get(k, tg["paragraphs"]["tag_many"])
        spread = f" ({fmt_s(min(xs))}–{fmt_s(max(xs))})" if len(xs) > 1 else ""
        L.append(f"| {text} | {fmt_s(med[k])}{spread} | {n_p / med[k]:,.0f} | {n_a / med[k]:,.1f} |")
    L += ["", f"Static vs default tagger: **{static_x:.0f}x** the articles/s" +
          (f"; static vs a raw fp32 encode: **{med['raw fp32 encode'] / med['static tag_many']:.0f}x**; the "
           f"default tagger vs a raw fp32 encode: {med['raw fp32 encode'] / med['tag_many']:.2f}x."
           if "raw fp32 encode" in med else "."), "",
          "Training these taggers, seconds per stage — default: " +
          ", ".join(f"{k} {fmt_s(x)}" for k, x in tg["train_default"].items()) + "; static: " +
          ", ".join(f"{k} {fmt_s(x)}" for k, x in tg["train_static"].items()) +
          " (static \"load embedder\" includes distilling it, unless already cached in ~/.cache/theme-tagger).", ""]
    if st.get("error"):
        return targets, "\n".join(L + [f"**Part 5 failed:** {st['error']}"])
    s = st["samples"]
    start, mid, end = s[0][1], s[len(s) // 2][1], s[-1][1]
    targets.append((f"RSS while streaming {st['n']:,} articles through tag_many", "flat",
                    f"{start:.0f} → {mid:.0f} → {end:.0f} MB", end - start <= max(30.0, 0.05 * start)))
    picks = [s[0], s[len(s) // 4], s[len(s) // 2], s[3 * len(s) // 4], s[-1]]
    L += ["Streaming memory (part 5): "
          f"`for _ in tagger.tag_many(generator)`: {st['n']:,} short synthetic articles (a title line and 3–5 "
          f"sentences drawn from {st['sentences']:,} BBC pool sentences) through the static tagger loaded "
          "from disk, results not kept; RSS sampled every "
          f"{max(1, st['n'] // 20):,} articles after a 2,000-article warm-up. "
          f"{st['n'] / st['seconds']:,.0f} articles/s ({fmt_s(st['seconds'])} s).", "",
          "| articles done | " + " | ".join(f"{a:,}" for a, _, _ in picks) + " | max |",
          "|---|" + "---|" * (len(picks) + 1),
          "| RSS (MB) | " + " | ".join(f"{r:.0f}" for _, r, _ in picks) + f" | {max(r for _, r, _ in s):.0f} |"]
    return targets, "\n".join(L)


if __name__ == "__main__":
    sys.exit(timing.part_main(sys.modules[__name__], "benchmarks/speed/embedders.py"))
