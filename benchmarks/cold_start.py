#!/usr/bin/env python
"""Cold-start benchmark: `python train.py` on the seeds, each run in a new process under `/usr/bin/time -v`.

    python benchmarks/cold_start.py            # three runs (1-3 minutes on a busy 2-core machine), writes BENCHMARKS.md
    python benchmarks/cold_start.py --no-write # prints the table only
    python benchmarks/cold_start.py --embedding-model all-MiniLM-L6-v2   # the same through torch (its own section)

The three runs share one new cache folder (THEME_TAGGER_CACHE), so the machine's own caches play no part:
- first run: everything empty, numba compiles UMAP and NN-descent and keeps the code under the cache, and the
  default encoder's ONNX build (or int8's) is made, and OpenVINO compiles it for this CPU;
- cold: the embedding cache and the cached UMAP coordinates removed, numba's compiled code, the ONNX build and
  OpenVINO's compiled graph kept
  (a new corpus);
- warm: every cache kept (the same corpus again, e.g. after editing the theme file).
The figures go into BENCHMARKS.md between `<!-- cold-start:start -->` and `<!-- cold-start:end -->`.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH_MD = ROOT / "BENCHMARKS.md"

from sections import write_section  # noqa: E402 (benchmarks/, beside this script)
COMMAND = "python benchmarks/cold_start.py"
RUNS = (("first run", "all caches empty"),
        ("cold", "empty embedding and UMAP caches, numba's compiled code, the ONNX build and OpenVINO's compiled graph "
                 "kept"),
        ("warm", "all caches kept"))


def timed_train(cache: Path, out: Path, embedding_model: str | None = None) -> dict:
    """One `train.py` in a new process; wall, CPU and peak memory from /usr/bin/time, stage times from its summary."""
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    env |= {"THEME_TAGGER_CACHE": str(cache), "PYTHONPATH": str(ROOT)}
    load = os.getloadavg()[0]
    model = ["--embedding-model", embedding_model] if embedding_model else []
    done = subprocess.run(["/usr/bin/time", "-v", sys.executable, "train.py", "--out", str(out), *model], cwd=ROOT,
                          env=env, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"train.py failed ({done.returncode}):\n{done.stderr[-3000:]}")

    def field(name: str) -> str:
        return re.search(rf"{re.escape(name)}: (.+)", done.stderr).group(1).strip()

    minutes, seconds = field("Elapsed (wall clock) time (h:mm:ss or m:ss)").rsplit(":", 1)
    wall = float(seconds) + 60 * sum(float(p) * 60 ** i for i, p in enumerate(reversed(minutes.split(":"))))
    summary = done.stdout + done.stderr
    return {"wall": wall, "cpu": float(field("User time (seconds)")) + float(field("System time (seconds)")),
            "rss_mb": int(field("Maximum resident set size (kbytes)")) / 1024, "load": load,
            "stages": re.search(r"Time per stage: (.+)", summary).group(1).strip(),
            "result": " ".join(re.search(r"Trained on .+\n.*Paragraphs per theme: .+", summary).group(0).split())}


def run_all(embedding_model: str | None = None) -> list[dict]:
    results = []
    with tempfile.TemporaryDirectory(prefix="cold-start-") as tmp:
        cache, out = Path(tmp) / "cache", Path(tmp) / "model"
        for name, what in RUNS:
            if name == "cold":
                (cache / "embeddings.sqlite").unlink(missing_ok=True)
                shutil.rmtree(cache / "reduced", ignore_errors=True)
            print(f"[cold-start {time.strftime('%H:%M:%S')}] {name}: {what}", flush=True)
            results.append({"name": name, "what": what} | timed_train(cache, out, embedding_model))
            print(f"  {results[-1]['wall']:.1f} s wall, {results[-1]['stages']}", flush=True)
    return results


def section(results: list[dict], embedding_model: str | None = None) -> str:
    flag = f" --embedding-model {embedding_model}" if embedding_model else ""
    lines = [f"Command: `{COMMAND}{flag}` ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} "
             f"cores shared with other jobs). Each run: `THEME_TAGGER_CACHE=<one new folder> /usr/bin/time -v python "
             f"train.py --out <folder>{flag}` in a new process. Targets (issue 13): cold <= 10 s, warm <= 5 s.", "",
             "| run | caches | wall s | CPU s | peak MB | load avg (1 min) | time per stage |",
             "|---|---|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r['name']} | {r['what']} | {r['wall']:.1f} | {r['cpu']:.1f} | {r['rss_mb']:.0f} | "
                     f"{r['load']:.1f} | {r['stages']} |")
    same = len({r["result"] for r in results}) == 1
    lines += ["", f"Result of every run: {results[0]['result']}" if same else
              "The runs disagree: " + "; ".join(f"{r['name']}: {r['result']}" for r in results), ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--no-write", action="store_true", help="print the table, leave BENCHMARKS.md as it is")
    ap.add_argument("--embedding-model", help="passed to train.py (default: train.py's own)")
    args = ap.parse_args(argv)
    body = section(run_all(args.embedding_model), args.embedding_model)
    print(body)
    if not args.no_write:
        marker = "cold-start" + (f"-{args.embedding_model.replace(':', '-')}" if args.embedding_model else "")
        write_section(BENCH_MD, marker, body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
