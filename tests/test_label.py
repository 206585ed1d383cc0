"""Neighbour smoothing in labelling and self-training: who votes, by how much, and how many keep each theme."""

from __future__ import annotations

import numpy as np

from model.label import nearest, same_count_cuts, smooth


def _unit(rows) -> np.ndarray:
    rows = np.asarray(rows, dtype=np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def test_a_paragraph_is_averaged_with_its_nearest_neighbour_not_itself() -> None:
    # Two tight pairs on opposite axes: with one neighbour each, a paragraph's neighbour is its partner.
    emb = _unit([[1, 0.01], [1, -0.01], [0.01, 1], [-0.01, 1]])
    neighbours = nearest(emb, k=1, per_neighbour=1)
    assert neighbours[:, 0].tolist() == [1, 0, 3, 2]
    scores = np.array([[0.9], [0.1], [0.6], [0.2]], dtype=np.float32)
    np.testing.assert_allclose(smooth(scores, neighbours)[:, 0], [0.5, 0.5, 0.4, 0.4], rtol=1e-6)


def test_paragraphs_outside_the_pool_take_neighbours_from_the_pool_only() -> None:
    # Paragraph 2 is outside the pool; its nearest paragraph (3, also outside) must not be its neighbour.
    emb = _unit([[1, 0.2], [0.2, 1], [1, 0.0], [1, 0.01]])
    neighbours = nearest(emb, pool=np.array([0, 1]), k=1, per_neighbour=1)
    assert neighbours[:, 0].tolist() == [1, 0, 0, 0]


def test_neighbours_are_at_most_one_per_hundred_paragraphs() -> None:
    emb = _unit(np.random.default_rng(0).standard_normal((250, 8)))
    assert nearest(emb[:99]).shape == (99, 0)
    assert nearest(emb).shape == (250, 2)
    scores = np.random.default_rng(1).random((99, 2))
    np.testing.assert_array_equal(smooth(scores, nearest(emb[:99])), scores)   # nobody to vote: unchanged


def test_each_theme_keeps_as_many_paragraphs_past_its_cut() -> None:
    rng = np.random.default_rng(0)
    emb = _unit(rng.standard_normal((300, 16)))
    scores = rng.random((300, 3)).astype(np.float32)
    cuts = np.array([0.3, 0.5, 0.9], dtype=np.float32)
    smoothed = smooth(scores, nearest(emb, k=10, per_neighbour=1))
    assert not np.allclose(smoothed, scores)
    moved = same_count_cuts(scores, smoothed, cuts)
    np.testing.assert_array_equal((smoothed >= moved).sum(axis=0), (scores >= cuts).sum(axis=0))
