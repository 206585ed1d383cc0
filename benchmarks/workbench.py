#!/usr/bin/env python
"""Workbench benchmark: the review loop's retrain on the seeds, and the tag command's throughput vs tag_many.

    python benchmarks/workbench.py                  # about 5 minutes on 2 busy cores
    python benchmarks/workbench.py --articles 100   # fewer BBC articles for the throughput part

1. Retrain after a correction: train on the seeds (which warms the embedding and UMAP caches), set one cluster's
   themes in assignments.csv, and time `theme-tagger train --assignments FILE` as a person runs it (a fresh
   process: imports, model load and all), three times; the stage times come from the run's own summary.
2. Throughput: the same BBC articles (../shared/data/bbc_news.jsonl, never copied into the repo) tagged by
   `tag_many(list)` and by the tag command's code (`tag_file`: lazy reader, tee, writer, progress bar), each
   twice in alternating order on the seeds' model; the best of each is compared. The `theme-tagger tag` command
   itself is run once as well (its own articles/s line).

Figures go into BENCHMARKS.md between `<!-- workbench:start -->` and `<!-- workbench:end -->`.
The machine may be shared: compare ratios within one run, not absolute numbers across runs.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "bbc_news.jsonl"
BENCH_MD = ROOT / "BENCHMARKS.md"

from sections import write_section  # noqa: E402 (benchmarks/, beside this script)


def say(msg: str) -> None:
    print(f"[workbench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def cli(args: list[str], env: dict) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "model.cli", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"error: theme-tagger {' '.join(args)} failed:\n{done.stderr[-2000:]}")
    return seconds, done.stdout


def edit_one_cluster(path: Path, out: Path) -> str:
    """Give the biggest cluster with no theme a theme (or, if every cluster has one, take it away)."""
    rows = list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"))))
    plain = [r for r in rows if r["themes"] == "none"]
    target = max(plain or rows, key=lambda r: int(r["size"]))
    before = target["themes"]
    target["themes"] = "poverty_alleviation" if plain else "none"
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    out.write_text(buf.getvalue(), encoding="utf-8")
    return f"cluster {target['cluster']} ({target['size']} paragraphs): {before} -> {target['themes']}"


def retrain_part(work: Path, env: dict) -> dict:
    say("training on the seeds (warms the caches)")
    first, _ = cli(["train", "--out", str(work / "seed-themes"), "--quiet"], env)
    edit = edit_one_cluster(work / "seed-themes" / "assignments.csv", work / "edited.csv")
    say(f"edited {edit}")
    runs, stages = [], []
    for i in range(3):
        seconds, out = cli(["train", "--out", str(work / "corrected"), "--assignments", str(work / "edited.csv"),
                            "--quiet"], env)
        runs.append(seconds)
        stages.append(re.search(r"^Time per stage: (.*)$", out, re.M).group(1))
        say(f"retrain {i + 1}: {seconds:.1f} s ({stages[-1]})")
        assert re.search(r"Clusters whose themes a person set .*: 1;", out), out
    return {"first_train_s": first, "edit": edit, "retrain_s": runs, "retrain_stages": stages}


def throughput_part(work: Path, env: dict, n: int) -> dict:
    from model import ThemeTagger
    from model.tagfile import read_rows, tag_file

    rows = [json.loads(line) for line in DATA.read_text(encoding="utf-8").splitlines()[:n]]
    corpus = work / "bbc.jsonl"
    corpus.write_text("".join(json.dumps({"id": r["id"], "text": r["text"]}) + "\n" for r in rows), encoding="utf-8")
    texts = [r["text"] for r in rows]
    tagger = ThemeTagger.load(work / "seed-themes")
    tagger.tag_many(texts[:8])   # load the weights and warm the encoder before timing
    timings: dict[str, list[float]] = {"tag_many": [], "tag_file": []}
    for order in (("tag_many", "tag_file"), ("tag_file", "tag_many")):
        for name in order:
            start = time.perf_counter()
            if name == "tag_many":
                results = tagger.tag_many(texts)
            else:
                tag_file(tagger, corpus, work / "tags.parquet", progress=True)
            timings[name].append(time.perf_counter() - start)
            say(f"{name}: {n / timings[name][-1]:.1f} articles/s")
    written = list(read_rows(work / "tags.parquet"))
    assert [r["themes"] for r in written] == [r.themes for r in results], "the command tags as tag_many does"
    command_s, out = cli(["tag", str(work / "seed-themes"), str(corpus), "--out", str(work / "tags.csv"), "--quiet"],
                         env)
    rate = float(re.search(r"\(([\d.]+) articles/s\)", out).group(1))
    best = {k: n / min(v) for k, v in timings.items()}
    return {"articles": n, "rates": {k: [n / s for s in v] for k, v in timings.items()}, "best": best,
            "ratio": best["tag_file"] / best["tag_many"], "command_rate": rate, "command_wall_s": command_s}


def markdown(retrain: dict, tp: dict, command: str) -> str:
    r = retrain["retrain_s"]
    return f"""## Workbench: the review loop's retrain, and the tag command's throughput

Measured {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')} with `{command}` on this machine (2 cores,
shared with other jobs).

**Retrain after correcting one cluster** on the seeds (5 articles, 88 paragraphs), caches warm, as a person runs
it: `theme-tagger train --assignments edited.csv` in a fresh process, imports and model load included. The edit:
{retrain['edit']}.

| run | wall time | stages (from the run's summary) |
|---|---|---|
""" + "".join(f"| {i + 1} | {s:.1f} s | {st} |\n" for i, (s, st) in enumerate(zip(r, retrain["retrain_stages"]))) + f"""
Median {statistics.median(r):.1f} s (target: under 10 s). The first, cache-filling training took
{retrain['first_train_s']:.1f} s.

**Tag command vs `tag_many`**, {tp['articles']} BBC News articles, the seeds' model (bundled all-MiniLM-L6-v2),
each run twice in alternating order, best of two:

| path | articles/s (runs) | best |
|---|---|---|
| `tag_many(list)` | {', '.join(f'{x:.1f}' for x in tp['rates']['tag_many'])} | {tp['best']['tag_many']:.1f} |
| tag command's code (`tag_file` to Parquet: lazy reader, writer, progress bar) | {', '.join(f'{x:.1f}' for x in tp['rates']['tag_file'])} | {tp['best']['tag_file']:.1f} |

Ratio {tp['ratio']:.2f}x (target: at least 0.9x). The `theme-tagger tag` command itself, to CSV, reported
{tp['command_rate']:.1f} articles/s for its tagging ({tp['command_wall_s']:.1f} s wall, with Python start-up and
model load).
"""


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--articles", type=int, default=300, help="BBC articles for the throughput part (default 300)")
    p.add_argument("--no-write", action="store_true", help="print the section, leave BENCHMARKS.md alone")
    args = p.parse_args(argv)
    if not DATA.is_file():
        sys.exit(f"error: {DATA} not found (the benchmark data lives in ../shared/data/)")
    command = "python benchmarks/workbench.py" + ("".join(f" {shlex.quote(a)}" for a in (argv or sys.argv[1:])))
    with tempfile.TemporaryDirectory(prefix="workbench-") as tmp:
        work = Path(tmp)
        env = {**os.environ, "PYTHONPATH": str(ROOT),
               "THEME_TAGGER_CACHE": os.environ.get("THEME_TAGGER_CACHE", str(work / "cache"))}
        os.environ["THEME_TAGGER_CACHE"] = env["THEME_TAGGER_CACHE"]
        retrain = retrain_part(work, env)
        tp = throughput_part(work, env, args.articles)
    text = markdown(retrain, tp, command)
    print(text)
    if not args.no_write:
        write_section(BENCH_MD, "workbench", text)
        say(f"wrote the section into {BENCH_MD}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
