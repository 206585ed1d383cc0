"""The default clusterer: no cluster may swallow a large share of the corpus, unless there is nothing finer."""

from __future__ import annotations

import numpy as np

from model.cluster import OUTLIER, cluster


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
