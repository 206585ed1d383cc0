"""Reduce the embeddings (UMAP), cluster them (HDBSCAN or k-means), and describe each cluster."""

from __future__ import annotations

import builtins
import hashlib
import logging
import math
import os
import re
import sys
import warnings
from dataclasses import dataclass, field
from collections.abc import Callable
from contextlib import contextmanager, suppress
from functools import partial
from pathlib import Path
from typing import Literal

import numpy as np
import scipy.sparse as sp
from joblib import cpu_count
from joblib.externals.loky.process_executor import (BrokenProcessPool, ProcessPoolExecutor, ShutdownExecutorError,
                                                    TerminatedWorkerError)
from sklearn.feature_extraction.text import CountVectorizer

from .corpus import CHARACTER, terms

log = logging.getLogger(__name__)

ClusterMethod = Literal["hdbscan", "kmeans"]
CLUSTER_METHODS = ("hdbscan", "kmeans")
OUTLIER = -1
# A cluster keyword's words: from a letter on, hyphens kept ("e-commerce"); Chinese and other unspaced text: terms()
_KEYWORD = re.compile(r"(?u)\b[^\W\d_][\w-]+\b")
# UMAP and the clusterer see at most this many paragraphs; the rest join their nearest sampled one's cluster.
# Beyond tens of thousands UMAP's time and memory grow fast. Not lower: fitted on 5,000 of AG News's 7,600 texts
# accuracy fell 0.863 -> 0.856, and on 3,000 of BBC's 10.9k paragraphs HDBSCAN found 18 clusters (0.958 -> 0.929).
MAX_FIT = 20_000
UMAP_EXACT_BELOW = 4096   # UMAP searches neighbours exactly below this many rows, by NN-descent from it
BACKGROUND_FROM = UMAP_EXACT_BELOW   # paragraphs from which UMAP runs in a worker process (start_reduce)
WORKER_IDLE_S = 300   # seconds the worker, UMAP compiled in it, waits for the next training before it stops


@dataclass
class ClusterInfo:
    id: int                    # -1 gathers the paragraphs the clusterer left unclustered
    size: int
    keywords: list[str]
    typical: list[int]         # paragraph indices, most typical first
    themes: list[str]          # filled in by the labelling stage
    reasons: dict[str, str]    # theme id -> why it was given (or the closest miss)
    set_by_person: bool = False                      # themes from the assignments file, not the vote
    vote: list[str] = field(default_factory=list)    # what the vote gave, kept when a person overrode it


_PRINT = builtins.print   # the interpreter's own, as numba needs it (see builtin_print)


@contextmanager
def builtin_print():
    """The interpreter's own print while numba compiles. Ray's progress bars (ray.experimental.tqdm_ray) replace
    builtins.print with a Python function, and numba then fails to compile NN-descent ("Untyped global name
    'print'", from numba's own get_num_threads): after a distributed tagging in the same process, training on a
    large corpus failed so."""
    replaced = builtins.print
    builtins.print = _PRINT
    try:
        yield
    finally:
        builtins.print = replaced


def keep_numba_code_in_cache() -> None:
    """numba's compiled code goes under the tool's cache, unless NUMBA_CACHE_DIR is set already. numba reads it when
    first imported, so only before that."""
    if "NUMBA_CACHE_DIR" in os.environ or "numba" in sys.modules:
        return
    from .embed import default_cache_dir

    folder = default_cache_dir() / "numba"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        os.environ["NUMBA_CACHE_DIR"] = str(folder)
    except OSError as exc:
        log.debug("numba keeps its compiled code in its own place: %s is not writable (%s)", folder, exc)


def import_umap():
    """umap, with numba's compiled code kept on disk, so that a new process does not compile UMAP again.

    Compiling UMAP's functions took 19-25 s of every new process on 88 paragraphs (a second fit, 0.3 s). numba keeps
    code only for functions declared with cache=True: pynndescent's are, umap-learn 0.5's are not, so caching is
    switched on for those here."""
    keep_numba_code_in_cache()
    import umap
    import umap.distances
    import umap.layouts
    import umap.sparse
    import umap.spectral
    import umap.umap_
    import umap.utils
    from numba.core.caching import NullCache
    from numba.core.dispatcher import Dispatcher

    for module in (umap.umap_, umap.layouts, umap.distances, umap.sparse, umap.spectral, umap.utils):
        for fn in vars(module).values():
            if isinstance(fn, Dispatcher) and isinstance(fn._cache, NullCache):
                try:
                    fn.enable_caching()
                except RuntimeError as exc:   # no writable place for the cache: compile in memory, as before
                    log.debug("numba cannot cache %s (%s)", fn.py_func.__qualname__, exc)
                    return umap
    return umap


class LazyUMAP:
    """umap.UMAP(**settings), imported and built only when it must fit: a cached result needs neither umap nor numba
    (1-2 s of imports in a new process). Its repr, part of the cache key, names the settings and umap's version."""

    def __init__(self, **settings):
        self.settings = settings

    def __repr__(self) -> str:
        from importlib import metadata

        return f"UMAP({', '.join(f'{k}={v!r}' for k, v in sorted(self.settings.items()))}) " \
               f"umap-learn=={metadata.version('umap-learn')}"

    def fit_transform(self, X):
        return import_umap().UMAP(**self.settings).fit_transform(X)


def default_reducer(n: int, seed: int) -> LazyUMAP:
    return LazyUMAP(n_components=min(5, max(2, n - 2)), n_neighbors=max(2, min(15, n - 1)), min_dist=0.0,
                    metric="cosine", random_state=seed)


def default_clusterer(method: ClusterMethod, n: int, seed: int, capped: bool = True):
    if method == "hdbscan":
        from sklearn.cluster import HDBSCAN

        # Small clusters keep themes apart: past ~25 members HDBSCAN can merge whole themes into a few giant
        # clusters (AG News, 7.6k texts, min_cluster_size 41: 11 clusters, 47% purity; at 15: 108, 90%).
        # For the same reason no cluster may hold more than a tenth of the corpus: on 500 or 1,000 AG News texts
        # HDBSCAN otherwise kept 2 clusters, whose vote wiped out a whole theme (accuracy 0.68 -> 0.84).
        smallest = max(3, min(15, n // 100 + 3))
        return HDBSCAN(min_cluster_size=smallest, max_cluster_size=max(2 * smallest, n // 10) if capped else None,
                       copy=True)
    if method == "kmeans":
        from sklearn.cluster import KMeans

        return KMeans(n_clusters=max(2, min(200, round(math.sqrt(n / 2)))), n_init=3, random_state=seed)
    raise ValueError(f"clusterer must be one of {CLUSTER_METHODS}, got {method!r}")


def reduce(embeddings: np.ndarray, seed: int = 0, reducer=None, cache_dir: Path | None = None) -> np.ndarray:
    """UMAP to a few dimensions, where density-based clustering works; tiny corpora are used as they are.

    With cache_dir, the result is kept under a key of the embeddings, the seed and the reducer's settings: a change
    of themes or clusterer then skips UMAP, the slowest step after embedding."""
    return start_reduce(embeddings, seed, reducer, cache_dir, background=False)()


def start_reduce(embeddings: np.ndarray, seed: int = 0, reducer=None, cache_dir: Path | None = None,
                 background: bool = True) -> Callable[[], np.ndarray]:
    """reduce(), begun: call what it returns for the coordinates, or its cancel() to give them up (see below).

    With the default UMAP on at least BACKGROUND_FROM paragraphs, nothing cached and a second core, UMAP runs in a
    worker process meanwhile (the coordinates are the same to the bit). A seeded UMAP runs on one core, so the
    caller can do on the other whatever needs no clusters: at 20k BBC paragraphs UMAP took 14 s here, the
    neighbour search, the TF-IDF features and the cluster keywords' counting 7 s between them, and the wait for UMAP
    fell to 7 s (benchmarks/speed/vs_bertopic.py). Below BACKGROUND_FROM paragraphs, where UMAP searches neighbours
    exactly and takes little time, a new worker process and its imports would cost more than they save.

    A caller that gives up before taking the coordinates (an error, Ctrl-C) must call cancel(): it stops the worker
    process if UMAP still runs there, which would otherwise keep Python from exiting, and the next training from
    starting its UMAP, until the abandoned one is done. The wait for the coordinates cancels when interrupted."""
    n = len(embeddings)
    if n < 8:
        return _done(embeddings)
    own = reducer is None
    reducer = reducer if reducer is not None else default_reducer(n, seed)
    path = key = None
    if cache_dir is not None:
        key = hashlib.sha256(np.ascontiguousarray(embeddings).tobytes() + f"{seed}|{reducer!r}".encode()).hexdigest()
        path = Path(cache_dir) / "reduced" / f"{key[:32]}.npz"
        cached = _read_reduced(path, key, n)
        if cached is not None:
            return _done(cached)
    pool = running = None
    if background and own and n >= BACKGROUND_FROM and cpu_count() > 1:
        try:
            pool = _worker()
            running = pool.submit(_fit_transform, reducer, embeddings)
        except (OSError, RuntimeError) as exc:   # no new process allowed here: UMAP runs in this one
            log.debug("UMAP runs in this process: no worker process (%s)", exc)

    def cancel() -> None:
        global _WORKER
        # A finished job leaves the worker idle, UMAP compiled in it, for the next training: keep it.
        if running is not None and not running.done():
            pool.shutdown(wait=True, kill_workers=True)   # a running job cannot be cancelled, only its process
            if _WORKER is pool:
                _WORKER = None   # the next training starts a new one

    def result() -> np.ndarray:
        global _WORKER
        reduced = None
        if running is not None:
            try:
                reduced = running.result()
            # The worker died (killed?), or another training in this process stopped it: do it here.
            except (TerminatedWorkerError, BrokenProcessPool, ShutdownExecutorError) as exc:
                log.warning("UMAP's worker process stopped (%s); running UMAP in this process", exc)
                if _WORKER is pool:
                    _WORKER = None   # the next training starts a new one
            except BaseException:   # Ctrl-C or another error while waiting: stop UMAP rather than wait for it
                cancel()
                raise
        if reduced is None:
            reduced = _fit_transform(reducer, embeddings)
        if path is not None:
            _write_reduced(path, key, reduced)
        return reduced

    result.in_worker = running is not None
    result.cancel = cancel
    return result


_WORKER = None


def _worker():
    """One worker process for UMAP, started on first use and kept (idle, for up to WORKER_IDLE_S) for the next
    training in this process, with UMAP compiled. loky's, as joblib uses: it needs no `if __name__ == "__main__"` in
    the user's script. Not joblib's shared executor, which joblib may replace under a running task."""
    global _WORKER
    if _WORKER is None:
        _WORKER = ProcessPoolExecutor(max_workers=1, timeout=WORKER_IDLE_S)
    return _WORKER


def _done(reduced: np.ndarray) -> Callable[[], np.ndarray]:
    def result() -> np.ndarray:
        return reduced

    result.in_worker = False
    result.cancel = lambda: None   # nothing runs
    return result


def _fit_transform(reducer, embeddings: np.ndarray) -> np.ndarray:
    with warnings.catch_warnings():
        # A fixed random_state makes UMAP single-threaded, and says so; reproducibility is the point here.
        warnings.filterwarnings("ignore", message="n_jobs value", category=UserWarning)
        with builtin_print():
            return np.asarray(reducer.fit_transform(embeddings), dtype=np.float32)


def _write_reduced(path: Path, key: str, reduced: np.ndarray) -> None:
    tmp = path.with_name(f"{path.stem}.tmp{os.getpid()}.npz")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(tmp, reduced=reduced, checksum=np.frombuffer(_checksum(key, reduced), dtype=np.uint8))
        os.replace(tmp, path)
    except OSError as exc:
        log.warning("could not cache the UMAP coordinates (%s)", exc)
        with suppress(OSError):   # a disk that filled up mid-write keeps no half-written file
            tmp.unlink()


def _checksum(key: str, reduced: np.ndarray) -> bytes:
    return hashlib.sha256(key.encode() + np.ascontiguousarray(reduced, dtype=np.float32).tobytes()).digest()


def _read_reduced(path: Path, key: str, n: int) -> np.ndarray | None:
    """Cached coordinates, or None when missing; damaged ones (checksum, shape) are reported and recomputed."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as npz:
            reduced, checksum = npz["reduced"], npz["checksum"].tobytes()
        if (reduced.dtype == np.float32 and reduced.ndim == 2 and reduced.shape[0] == n
                and checksum == _checksum(key, reduced)):
            return reduced
    except Exception:  # noqa: BLE001 - any damage at all (zip, npy header, member) means: compute again
        pass
    log.warning("cached UMAP coordinates %s are damaged; computing them again", path)
    return None


def cluster(reduced: np.ndarray, method: ClusterMethod = "hdbscan", seed: int = 0, clusterer=None) -> np.ndarray:
    """Cluster ids per paragraph; -1 marks paragraphs that belong to no cluster."""
    n = len(reduced)
    if n < 6:
        return np.zeros(n, dtype=int)
    default = clusterer is None
    clusterer = default_clusterer(method, n, seed) if default else clusterer
    labels = np.asarray(clusterer.fit_predict(reduced), dtype=int)
    if default and method == "hdbscan" and (labels == OUTLIER).mean() > 0.5:
        # Under the size cap the big clusters had no dense parts to offer, and most paragraphs were left out
        # (two plain blobs: all of them). Big clusters are better than none.
        labels = np.asarray(default_clusterer(method, n, seed, capped=False).fit_predict(reduced), dtype=int)
    log.info("%d clusters, %d unclustered paragraphs", len(set(labels) - {OUTLIER}), int((labels == OUTLIER).sum()))
    return labels


def fit_sample(n: int, max_fit: int | None, seed: int) -> np.ndarray:
    """Which paragraphs UMAP and the clusterer are fitted on: all, or a seeded sample of max_fit."""
    if max_fit is None or n <= max_fit:
        return np.arange(n)
    return np.sort(np.random.RandomState(seed).choice(n, max_fit, replace=False))


def assign_to_nearest(embeddings: np.ndarray, sample: np.ndarray, sample_labels: np.ndarray,
                      chunk: int = 4096) -> np.ndarray:
    """Every paragraph outside the sample takes the cluster of its most similar sampled one (cosine, unit rows)."""
    labels = np.empty(len(embeddings), dtype=int)
    labels[sample] = sample_labels
    rest = np.setdiff1d(np.arange(len(embeddings)), sample)
    ref = embeddings[sample]
    for start in range(0, len(rest), chunk):
        rows = rest[start:start + chunk]
        labels[rows] = sample_labels[(embeddings[rows] @ ref.T).argmax(axis=1)]
    return labels


def count_terms(texts: list[str]) -> tuple[sp.csr_matrix, np.ndarray] | None:
    """Each paragraph's counts of the words and word pairs that keywords_per_cluster() ranks, and those terms (None:
    nothing but stop words). Needs no clusters, so it can run while UMAP does."""
    if not texts:
        return None
    words = CountVectorizer(stop_words="english", ngram_range=(1, 2), tokenizer=partial(terms, word=_KEYWORD),
                            token_pattern=None).build_analyzer()
    vec = CountVectorizer(analyzer=partial(_merged_pairs, words), min_df=2 if len(texts) >= 50 else 1,
                          dtype=np.float32)
    try:
        return vec.fit_transform(texts), vec.get_feature_names_out()
    except ValueError:  # nothing but stop words
        return None


def _merged_pairs(words: Callable[[str], list[str]], text: str) -> list[str]:
    """words(text), where two overlapping pairs of an unspaced script's characters ("智慧 慧城", which terms() gives
    for 智慧城) read as the run they come from: a keyword a reader can take in, and found as such in theme keywords.
    A pair of terms of which one is in such a script and the other a spaced word is left out: mostly an English word
    beside the first pair of a Chinese run ("e-commerce 智慧"), a phrase in neither language (a real mixed phrase,
    "AI 芯片", is lost with them; each of its parts stays a term)."""
    out = []
    for term in words(text):
        first, _, second = term.partition(" ")
        a, b = CHARACTER.findall(first), CHARACTER.findall(second)
        if second and len(a) == len(b) == 2 and "".join(a) == first and "".join(b) == second and a[1] == b[0]:
            term = first + b[1]
        elif second and bool(a) != bool(b):
            continue
        out.append(term)
    return out


def keywords_per_cluster(texts: list[str], labels: np.ndarray, top: int = 10,
                         counted: tuple | None = None) -> dict[int, list[str]]:
    """Class-based TF-IDF: a term's frequency in the cluster, weighted by how rare it is across clusters.
    counted: count_terms(texts), when the caller has it already.

    Kept sparse: a dense clusters x terms matrix over unigrams and bigrams took 3.9 GB at 20k paragraphs."""
    ids = sorted(set(labels.tolist()))
    if not texts:
        return {}
    counted = counted if counted is not None else count_terms(texts)
    if counted is None:
        return {c: [] for c in ids}
    counts, terms = counted
    row_of = {c: i for i, c in enumerate(ids)}
    membership = sp.csr_matrix((np.ones(len(labels), dtype=np.float32),
                                ([row_of[c] for c in labels.tolist()], np.arange(len(labels)))),
                               shape=(len(ids), len(labels)))
    per_class = (membership @ counts).tocsr()                     # clusters x terms, summed counts
    sizes = np.asarray(per_class.sum(axis=1)).ravel()
    idf = np.log1p(sizes.sum() / len(ids) / np.maximum(np.asarray(per_class.sum(axis=0)).ravel(), 1))
    out = {}
    for i, c in enumerate(ids):
        row = per_class.getrow(i)
        weights = row.data / max(sizes[i], 1) * idf[row.indices]
        best = np.argsort(-weights)[:top]
        out[c] = [terms[row.indices[j]] for j in best if weights[j] > 0]
    return out


def describe(texts: list[str], embeddings: np.ndarray, labels: np.ndarray, n_typical: int = 3,
             counted: tuple | None = None) -> list[ClusterInfo]:
    """Each cluster's size, keywords and most typical paragraphs (closest to its centroid); biggest first.
    counted: count_terms(texts), when the caller has it already."""
    keywords = keywords_per_cluster(texts, labels, counted=counted)
    infos = []
    for c in sorted(set(labels.tolist())):
        idx = np.flatnonzero(labels == c)
        centroid = embeddings[idx].mean(axis=0)
        order = idx[np.argsort(-(embeddings[idx] @ centroid))]
        infos.append(ClusterInfo(c, len(idx), keywords.get(c, []), order[:n_typical].tolist(), [], {}))
    infos.sort(key=lambda i: (i.id == OUTLIER, -i.size))
    return infos
