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
