"""Speed benchmark, every part: tagging throughput, training time per stage, BERTopic reference, fast embedder and
streaming memory, and training end to end against BERTopic.

    python benchmarks/speed                          # full run (about 15-30 minutes on 2 cores), writes BENCHMARKS.md
    python benchmarks/speed --quick                  # smoke run (a few minutes), prints the section only
    python benchmarks/speed --sizes 1000,5000,20000  # training sizes, in paragraphs
    python benchmarks/speed --parts tagging,training # some parts only

Each part is also a script of its own (benchmarks/speed/tagging.py, training.py, vs_bertopic.py, embedders.py,
end_to_end.py, with the same flags), which rewrites only its own block. Every worker runs in a fresh subprocess (so
peak memory is per worker) on one copy of model/ taken at the start. The section goes into BENCHMARKS.md between
`<!-- speed:start -->` and `<!-- speed:end -->`, each part's block inside it between its own markers. The machine may
be shared with other jobs: compare ratios within one run, not absolute numbers across runs.
Data: BBC News from ../shared/data/bbc_news.jsonl relative to the project root (never copied into the repo).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))   # `python -m benchmarks.speed` too

import embedders  # noqa: E402
import end_to_end  # noqa: E402
import tagging  # noqa: E402
import timing  # noqa: E402
import training  # noqa: E402
import vs_bertopic  # noqa: E402
from timing import BENCH_MD, say, write_section  # noqa: E402

PARTS = {"tagging": tagging, "training": training, "bertopic": vs_bertopic, "embedders": embedders,
         "end-to-end": end_to_end}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    timing.add_args(ap)
    ap.add_argument("--parts", default=",".join(PARTS), help=f"which parts to run (default all: {', '.join(PARTS)})")
    args = ap.parse_args(argv)
    cfg = timing.settings(args)
    wanted = [p.strip() for p in args.parts.split(",") if p.strip()]
    unknown = set(wanted) - set(PARTS)
    if unknown:
        ap.error(f"unknown parts {', '.join(sorted(unknown))}; choose from {', '.join(PARTS)}")
    cmd = timing.command("benchmarks/speed", argv)
    tmp, info = timing.start()
    say(f"{cmd}: {info['cpu']}, {info['cores']} cores, load average {info['load_start'][0]:.1f}")
    t0 = time.perf_counter()
    results = {}
    try:
        for name in PARTS:   # in this order: part 3 uses the embeddings part 2 keeps
            if name not in wanted:
                continue
            if name == "bertopic":
                results[name] = vs_bertopic.run(cfg, tmp, results.get("training"))
            else:
                results[name] = PARTS[name].run(cfg, tmp)
    finally:
        if args.keep_embeddings and (tmp / "embeddings").is_dir():
            shutil.copytree(tmp / "embeddings", args.keep_embeddings, dirs_exist_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)
    info["load_end"] = os.getloadavg()
    elapsed = time.perf_counter() - t0
    blocks = [f"<!-- speed-{PARTS[n].NAME}:start -->\n{timing.block(PARTS[n], r, cfg).rstrip()}\n"
              f"<!-- speed-{PARTS[n].NAME}:end -->" for n, r in results.items()]
    body = "\n\n".join(["## Speed", timing.header(info, cmd, elapsed, cfg["quick"]), *blocks]) + "\n"
    print("\n" + body)
    if args.json:
        Path(args.json).write_text(json.dumps({"info": info, "results": results}, indent=1, default=str))
    if cfg["write"]:
        write_section(BENCH_MD, "speed", body)
        say(f"wrote the speed section of {BENCH_MD}")
    say(f"done in {elapsed / 60:.1f} min")
    return 1 if any(r.get("error") for r in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
