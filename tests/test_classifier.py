"""The classifier head on its own: per-theme thresholds from out-of-fold scores, and unfitted use."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.exceptions import NotFittedError

from model.classifier import ThemeClassifier


def _points(n_pos: int, n_neg: int, gap: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two Gaussian blobs `gap` apart along the first axis, in 8 dimensions."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n_pos + n_neg, 8)).astype(np.float32)
    x[:n_pos, 0] += gap
    y = np.zeros((n_pos + n_neg, 1), dtype=bool)
    y[:n_pos] = True
    return x, y


def _fit(x: np.ndarray, y: np.ndarray) -> ThemeClassifier:
    return ThemeClassifier(tfidf_weight=0, anchor_weight=0).fit(x, [""] * len(x), y)


def _f1(y: np.ndarray, pred: np.ndarray) -> float:
    tp = float((y & pred).sum())
    return 2 * tp / max(float(y.sum() + pred.sum()), 1.0)


def test_cleanly_separated_themes_get_the_lowest_cut() -> None:
    # Every cut from 0.1 up separates the training rows perfectly, so the rule takes the one that keeps most recall.
    x, y = _points(30, 90, gap=12.0)
    assert _fit(x, y).thresholds_[0] == pytest.approx(0.1)


def test_overlapping_themes_get_a_cut_near_the_best_f1() -> None:
    # With thousands of rows the standard error is small, so the cut stays close to the F1 optimum on fresh data.
    x, y = _points(1500, 1500, gap=1.5)
    clf = _fit(x, y)
    fresh_x, fresh_y = _points(3000, 3000, gap=1.5, seed=1)
    scores = clf.predict_proba(fresh_x, [""] * len(fresh_x))[:, 0]
    grid = np.linspace(0.1, 0.8, 29)
    best = max(_f1(fresh_y[:, 0], scores >= t) for t in grid)
    chosen = clf.thresholds_[0]
    assert 0.1 < chosen < 0.6
    assert _f1(fresh_y[:, 0], scores >= chosen) >= best - 0.02


def test_small_training_sets_cut_lower_than_large_ones() -> None:
    # Same blobs; the small set's wider error band moves its cut further down.
    small = _fit(*_points(15, 45, gap=2.5)).thresholds_[0]
    large = _fit(*_points(1000, 3000, gap=2.5)).thresholds_[0]
    assert small < large


def test_unfitted_classifier_says_so() -> None:
    with pytest.raises(NotFittedError):
        ThemeClassifier().predict_proba(np.zeros((1, 8), dtype=np.float32), ["text"])


def test_the_theme_file_weighs_more_on_a_small_corpus() -> None:
    anchors = np.eye(1, 8, dtype=np.float32)   # one theme, its anchor along the axis that separates the blobs
    small = ThemeClassifier(tfidf_weight=0).fit(*_texts(_points(20, 40, gap=3.0)), anchors=anchors)
    mid = ThemeClassifier(tfidf_weight=0).fit(*_texts(_points(250, 750, gap=3.0)), anchors=anchors)
    large = ThemeClassifier(tfidf_weight=0).fit(*_texts(_points(2500, 7500, gap=3.0)), anchors=anchors)
    assert small.anchor_scale_ == pytest.approx(10 * small.anchor_weight)   # 60 rows: the capped boost
    assert mid.anchor_scale_ == pytest.approx(mid.anchor_weight)            # 1,000 rows: the plain weight
    assert large.anchor_scale_ == pytest.approx(0.1 * large.anchor_weight)  # 10,000 rows: a tenth of it
    # The scale reaches the scores: with the same coefficients, the small model's anchor column counts for more.
    x = np.eye(1, 8, dtype=np.float32)
    assert small._features(x, [""])[0, -1] > large._features(x, [""])[0, -1]


def _texts(points: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, list[str], np.ndarray]:
    x, y = points
    return x, [""] * len(x), y
