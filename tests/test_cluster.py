"""The default clusterer: no cluster may swallow a large share of the corpus, unless there is nothing finer."""

from __future__ import annotations

import logging
import multiprocessing
import re
import resource
import signal
import threading
import time

import numpy as np
import pytest
from sklearn.decomposition import PCA

import model
import model.cluster as clustering
from model.classifier import ThemeClassifier
from model.cluster import OUTLIER, cluster, count_terms, keywords_per_cluster
from model.corpus import CHARACTER


def _groups(spread: float, noise: float, seed: int = 0) -> np.ndarray:
    """Two far-apart groups of six small blobs (50 points each) in 5 dimensions."""
    rng = np.random.default_rng(seed)
    points = []
    for centre in (np.full(5, 10.0), np.full(5, -10.0)):
        for _ in range(6):
            points.append(centre + rng.standard_normal(5) * spread + noise * rng.standard_normal((50, 5)))
    return np.vstack(points).astype(np.float32)


def test_no_cluster_holds_more_than_a_tenth_of_the_corpus() -> None:
    # Left alone, HDBSCAN merges several of these blobs into clusters of 100-250 points.
    labels = cluster(_groups(spread=0.4, noise=0.1))
    sizes = np.bincount(labels[labels != OUTLIER])
    assert sizes.max() <= len(labels) // 10
    assert len(sizes) >= 8
    assert (labels == OUTLIER).mean() < 0.5


def test_big_clusters_are_kept_when_they_have_no_dense_parts() -> None:
    # Two plain Gaussian blobs: under the cap every point would be left out; two big clusters are better.
    rng = np.random.default_rng(0)
    blobs = np.vstack([rng.standard_normal((300, 5)), rng.standard_normal((300, 5)) + 8]).astype(np.float32)
    labels = cluster(blobs)
    assert len(set(labels.tolist()) - {OUTLIER}) == 2
    assert (labels == OUTLIER).mean() < 0.1


def test_umap_in_a_worker_process_gives_the_same_coordinates_and_fills_the_cache(monkeypatch, tmp_path) -> None:
    # A large corpus's UMAP runs in a worker process while training goes on; what comes back must be what UMAP
    # gives in this process, to the bit, and it is cached like any other result.
    import model.cluster as clustering

    rng = np.random.default_rng(0)
    x = rng.standard_normal((300, 16)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    here = clustering.reduce(x, seed=2)
    monkeypatch.setattr(clustering, "BACKGROUND_FROM", 100)
    pending = clustering.start_reduce(x, seed=2, cache_dir=tmp_path)
    assert pending.in_worker == (clustering.cpu_count() > 1)
    np.testing.assert_array_equal(pending(), here)
    cached = clustering.start_reduce(x, seed=2, cache_dir=tmp_path)
    assert not cached.in_worker
    np.testing.assert_array_equal(cached(), here)
    assert not clustering.start_reduce(x[:99], seed=2).in_worker   # below BACKGROUND_FROM: here
    # joblib's own worker processes still serve the rest of the program (they broke when ours was joblib's)
    from joblib import Parallel, delayed

    assert Parallel(n_jobs=2)(delayed(abs)(-i) for i in range(3)) == [0, 1, 2]


class SlowReducer:
    """Stands in for UMAP in the worker process: a job long enough that only a stopped worker ends it early."""

    def __repr__(self) -> str:
        return "SlowReducer()"

    def fit_transform(self, x):
        time.sleep(60)
        return x[:, :2]


@pytest.fixture
def slow_umap(monkeypatch):
    """The default reducer runs SlowReducer in a worker process of its own from 8 paragraphs on."""
    if clustering.cpu_count() < 2:
        pytest.skip("one core: UMAP runs in this process, with no worker to stop")
    monkeypatch.setattr(clustering, "BACKGROUND_FROM", 8)
    monkeypatch.setattr(clustering, "default_reducer", lambda n, seed: SlowReducer())
    monkeypatch.setattr(clustering, "_WORKER", None)   # a worker of this test's own, not the one kept warm
    yield
    if clustering._WORKER is not None:   # the test failed: do not leave a minute's job for later tests to wait on
        clustering._WORKER.shutdown(wait=True, kill_workers=True)


def test_an_interrupted_wait_for_umap_stops_its_worker(slow_umap) -> None:
    # Ctrl-C while waiting for UMAP: the worker process must go at once, not keep Python (or the next training)
    # waiting until its job is done.
    before = set(multiprocessing.active_children())
    pending = clustering.start_reduce(np.random.RandomState(0).rand(20, 4).astype(np.float32))
    assert pending.in_worker
    worker = set(multiprocessing.active_children()) - before
    assert worker
    threading.Timer(1.0, signal.pthread_kill, (threading.main_thread().ident, signal.SIGINT)).start()
    with pytest.raises(KeyboardInterrupt):
        pending()
    assert not any(p.is_alive() for p in worker)
    assert clustering._WORKER is None   # the next call starts a new worker


def test_a_training_that_fails_while_umap_runs_stops_its_worker(slow_umap, synthetic, fake_embedder) -> None:
    # An error between starting UMAP and taking its result: the abandoned job must not outlive the training.
    before = set(multiprocessing.active_children())
    worker = set()

    class FailingClassifier(ThemeClassifier):
        def training_features(self, *args, **kwargs):
            worker.update(set(multiprocessing.active_children()) - before)
            raise RuntimeError("a stage after UMAP's start failed")

    with pytest.raises(RuntimeError, match="UMAP's start failed"):
        model.train(synthetic.corpus_dir, synthetic.themes_path, embedder=fake_embedder, cache_dir=None,
                    progress=False, classifier=FailingClassifier())
    assert worker
    assert not any(p.is_alive() for p in worker)
    assert clustering._WORKER is None


def test_cancel_after_the_result_keeps_the_worker_for_the_next_training(monkeypatch) -> None:
    # A finished job leaves the worker idle, UMAP compiled in it: cancel() (as the pipeline always calls it) keeps it.
    if clustering.cpu_count() < 2:
        pytest.skip("one core: UMAP runs in this process")
    monkeypatch.setattr(clustering, "BACKGROUND_FROM", 8)
    monkeypatch.setattr(clustering, "default_reducer", lambda n, seed: PCA(n_components=2))
    x = np.random.RandomState(0).rand(20, 4).astype(np.float32)
    pending = clustering.start_reduce(x)
    pool = clustering._WORKER
    assert pending.in_worker and pending().shape == (20, 2)
    pending.cancel()
    assert clustering._WORKER is pool


def test_keywords_keep_words_that_start_with_a_non_ascii_letter() -> None:
    texts = ["Économie : l'État réduit les impôts", "Über die Änderung der Ökonomie",
             "Москва объявила о новых мерах", "Москва экономика рост 2023 _tag"]
    keywords = keywords_per_cluster(texts, np.array([0, 1, 2, 2]))
    assert {"économie", "état", "impôts"} <= set(keywords[0])
    assert {"über", "änderung", "ökonomie"} <= set(keywords[1])
    assert {"москва", "экономика"} <= set(keywords[2])
    # Still words only: no term starts with a digit or an underscore.
    assert not [k for ks in keywords.values() for k in ks if k[0].isdigit() or k[0] == "_"]


def test_chinese_keywords_are_runs_of_characters_not_pairs_of_pairs() -> None:
    texts = ["建设智慧城市和云计算中心", "推进智慧城市建设", "发展农村电子商务", "农村电子商务服务站"]
    keywords = keywords_per_cluster(texts, np.array([0, 0, 1, 1]))
    assert {"智慧", "城市", "智慧城", "慧城市"} <= set(keywords[0])
    assert {"农村", "电子商", "子商务"} <= set(keywords[1])
    assert not [k for ks in keywords.values() for k in ks if " " in k]   # no "智慧 慧城"
    assert model.themes.keyword_hits(["; ".join(keywords[0])], [["智慧城"]])[0, 0]   # as the cluster vote looks


def test_no_keyword_pairs_a_chinese_run_with_an_english_word() -> None:
    texts = ["Alibaba e-commerce 智慧城市 platform", "rural e-commerce 智慧城市 service", "e-commerce 智慧城市"]
    terms = set(count_terms(texts)[1])
    assert {"rural e-commerce", "智慧城", "e-commerce", "智慧"} <= terms   # each language's own terms stay
    assert not [t for t in terms if " " in t and CHARACTER.search(t) and re.search("[a-z]", t)]


def test_a_cache_write_that_fails_midway_leaves_no_partial_file(tmp_path, caplog) -> None:
    # A disk that fills up while the coordinates are written (here: a file size limit, the same error for the
    # writer): the cache is skipped with a warning and no half-written temporary file stays behind.
    class Halve:
        def fit_transform(self, x):
            return x[:, :8]

        def __repr__(self) -> str:
            return "Halve()"

    x = np.random.RandomState(0).rand(2000, 16).astype(np.float32)   # 64 kB of coordinates
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (16384, hard))
    try:
        with caplog.at_level(logging.WARNING, logger="model.cluster"):
            reduced = clustering.reduce(x, reducer=Halve(), cache_dir=tmp_path)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    np.testing.assert_array_equal(reduced, x[:, :8])
    assert "could not cache the UMAP coordinates" in caplog.text
    assert list((tmp_path / "reduced").iterdir()) == []
