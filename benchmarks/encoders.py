"""The transformer encoders side by side: raw fp32 sentence-transformers, the same model in ONNX Runtime (fp32), the
int8 build (`--embedding-model int8`) and, where openvino is installed, the fp32 export compiled by OpenVINO
(`--embedding-model openvino`, bf16 on CPUs that have it). Throughput, fidelity to fp32, and tag_many end to end.

    python benchmarks/encoders.py              # about 10 minutes on two busy cores
    python benchmarks/encoders.py --write      # also write the section in BENCHMARKS.md

Texts: a seeded sample of AG News and the mission's dev paragraphs, read from ../shared/data. Tagging: BBC articles
and the mission dev articles, through one classifier trained on the seeds with the fp32 model, each encoder swapped
in (the timing does not depend on what the classifier learnt). Every run is warmed up first; rounds are interleaved
in a rotating order, and the ratios are taken within this run. Accuracy is benchmarks/accuracy.py's job."""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from model import ThemeTagger, train  # noqa: E402
from model.corpus import read_corpus  # noqa: E402
from model.embed import OnnxEmbedder, OpenVinoEmbedder, SentenceTransformerEmbedder, default_cache_dir  # noqa: E402
from sections import write_section  # noqa: E402


def read_texts(data_dir: Path, n: int, seed: int) -> list[str]:
    ag = [json.loads(line)["text"] for line in (data_dir / "agnews_test.jsonl").open(encoding="utf-8")]
    pick = np.random.default_rng(seed).choice(len(ag), size=min(n, len(ag)), replace=False)
    mission = [json.loads(line)["text"] for line in (data_dir / "mission_dev_paragraphs.jsonl").open(encoding="utf-8")]
    return [ag[i] for i in pick] + mission


def read_articles(data_dir: Path, n: int, seed: int) -> list[str]:
    bbc = [json.loads(line)["text"] for line in (data_dir / "bbc_news.jsonl").open(encoding="utf-8")]
    pick = np.random.default_rng(seed).choice(len(bbc), size=min(n, len(bbc)), replace=False)
    mission = [json.loads(line)["text"] for line in (data_dir / "mission_dev_articles.jsonl").open(encoding="utf-8")]
    return [bbc[i] for i in pick] + mission


def timed_rounds(jobs: dict, rounds: int) -> dict[str, list[float]]:
    for job in jobs.values():   # warm up: first-call allocations and ONNX Runtime's kernel choice
        job()
    times: dict[str, list[float]] = {name: [] for name in jobs}
    names = list(jobs)
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            start = time.perf_counter()
            jobs[name]()
            times[name].append(time.perf_counter() - start)
    return times


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data"))
    p.add_argument("--texts", type=int, default=2000, help="AG News texts (the 139 mission paragraphs are added)")
    p.add_argument("--articles", type=int, default=150, help="BBC articles to tag (the 12 mission ones are added)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--write", action="store_true", help="write the section in BENCHMARKS.md")
    p.add_argument("--json", help="also write the figures as JSON here")
    args = p.parse_args(argv)
    import torch

    began = time.perf_counter()
    data_dir = Path(args.data_dir)
    texts = read_texts(data_dir, args.texts, args.seed)
    articles = read_articles(data_dir, args.articles, args.seed)
    cache = default_cache_dir()
    fp32 = SentenceTransformerEmbedder()
    encoders = {"sentence-transformers fp32": fp32,
                "ONNX Runtime fp32 (`onnx`)": OnnxEmbedder.build(cache_dir=cache, int8=False),
                "ONNX Runtime int8 (`int8`)": OnnxEmbedder.build(cache_dir=cache)}
    ov = OpenVinoEmbedder.build(cache_dir=cache, int8=False)
    ov.session   # compile now, to name its precision
    encoders[f"OpenVINO (`openvino`, the default; {ov.precision} on this CPU)"] = ov
    # Raw encode: the model's own encode call, as a user of sentence-transformers would make it (its default batch
    # of 32); at batch 8, its fastest here, as a second yardstick.
    raw = {"sentence-transformers fp32": lambda: fp32.model.encode(texts, convert_to_numpy=True),
           "raw8": lambda: fp32.model.encode(texts, batch_size=8, convert_to_numpy=True)}
    raw.update({name: (lambda e=e: e.encode(texts)) for name, e in encoders.items() if e is not fp32})
    encode_times = timed_rounds(raw, args.rounds)

    reference = fp32.encode(texts)
    fidelity = {}
    for name, e in encoders.items():
        if e is not fp32:
            cos = (e.encode(texts) * reference).sum(axis=1)
            fidelity[name] = {"mean": float(cos.mean()), "p5": float(np.percentile(cos, 5)), "min": float(cos.min())}

    base, _ = train(read_corpus(ROOT / "seeds"), ROOT / "seeds" / "themes.toml", embedder=fp32, cache_dir=None,
                    progress=False)
    taggers = {name: ThemeTagger(base.theme_defs, e, base.classifier, base.config) for name, e in encoders.items()}
    paragraphs = [p.text for r in base.tag_many(articles) for p in r.paragraphs]
    tag_jobs = {name: (lambda t=t: t.tag_many(articles)) for name, t in taggers.items()}
    # The target's yardstick: a raw fp32 encode of exactly the paragraphs tag_many embeds.
    tag_jobs["raw"] = lambda: fp32.model.encode(paragraphs, convert_to_numpy=True)
    tag_jobs["raw8"] = lambda: fp32.model.encode(paragraphs, batch_size=8, convert_to_numpy=True)
    tag_times = timed_rounds(tag_jobs, args.rounds)

    st_name = "sentence-transformers fp32"
    enc_base, tag_base = np.median(encode_times[st_name]), np.median(tag_times["raw"])
    rows = []
    for name in encoders:
        e_s, t_s = float(np.median(encode_times[name])), float(np.median(tag_times[name]))
        rows.append({"encoder": name, "encode_s": e_s, "encode_per_s": len(texts) / e_s, "encode_x": enc_base / e_s,
                     "tag_s": t_s, "tag_articles_per_s": len(articles) / t_s, "tag_x": tag_base / t_s,
                     "encode_rounds": encode_times[name], "tag_rounds": tag_times[name],
                     **({"cosine": fidelity[name]} if name in fidelity else {})})

    def spread(xs):
        return f"{np.median(xs):.1f} ({min(xs):.1f}–{max(xs):.1f})"

    lines = ["| encoder | encode s, median (min–max) | paragraphs/s | vs raw fp32 | tag_many s | articles/s | "
             "vs raw fp32 encode of its paragraphs | cosine to fp32, mean / 5th pct / min |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        cos = r.get("cosine")
        lines.append(f"| {r['encoder']} | {spread(r['encode_rounds'])} | {r['encode_per_s']:.0f} | "
                     f"**{r['encode_x']:.2f}x** | {spread(r['tag_rounds'])} | {r['tag_articles_per_s']:.1f} | "
                     f"**{r['tag_x']:.2f}x** | "
                     + (f"{cos['mean']:.4f} / {cos['p5']:.4f} / {cos['min']:.4f} |" if cos else "1 (itself) |"))
    import onnxruntime

    cmd = "python benchmarks/encoders.py " + " ".join(argv if argv is not None else sys.argv[1:])
    body = (f"### Encoders: fp32, ONNX Runtime fp32, ONNX Runtime int8, OpenVINO\n\n"
            f"Command: `{cmd.strip()}` — {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, "
            f"{time.perf_counter() - began:.0f} s, {platform.processor() or platform.machine()}, "
            f"torch {torch.__version__} ({torch.get_num_threads()} threads), onnxruntime {onnxruntime.__version__}.\n\n"
            f"Encode: {len(texts):,} texts ({len(texts) - 139:,} AG News, seed {args.seed}, and the 139 mission dev "
            f"paragraphs); ONNX Runtime: sorted by tokens, batches of {OnnxEmbedder.BATCH}; the raw encode: sorted by "
            f"characters, sentence-transformers' default batch of 32 (at batch 8, its fastest here, it takes "
            f"{spread(encode_times['raw8'])} s: "
            f"{np.median(encode_times['raw8']) / np.median(encode_times[st_name]):.2f} of the time). "
            f"tag_many: {len(articles)} articles ({len(articles) - 12} "
            f"BBC News and the 12 mission dev articles; {len(paragraphs):,} paragraphs), one seeds-trained classifier "
            f"with each encoder swapped in, against a raw fp32 `SentenceTransformer.encode` of the same paragraphs "
            f"({spread(tag_times['raw'])} s; at batch 8 {spread(tag_times['raw8'])} s). Median of {args.rounds} "
            f"interleaved rounds after a warm-up.\n\n"
            + "\n".join(lines))
    print(body)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    if args.write:
        write_section(ROOT / "BENCHMARKS.md", "encoders", body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
