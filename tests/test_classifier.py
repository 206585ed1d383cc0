"""The classifier head on its own: calibrated scores, the cut, keyword evidence, and unfitted use."""

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


def _calibration_error(scores: np.ndarray, y: np.ndarray, bins: int = 10) -> float:
    which = np.minimum((scores * bins).astype(int), bins - 1)
    return float(sum(abs(scores[which == b].mean() - y[which == b].mean()) * (which == b).mean()
                     for b in range(bins) if (which == b).any()))


def test_scores_on_new_data_are_calibrated_where_the_raw_fit_is_overconfident() -> None:
    # 200 rows in 200 dimensions, one of which carries the signal: the logistic fit separates its training rows
    # and is sure of everything; the out-of-fold Platt scaling brings its scores back to observed frequencies.
    def data(n, seed):
        rng = np.random.default_rng(seed)
        x = rng.standard_normal((n, 200)).astype(np.float32)
        y = rng.random(n) < 1 / (1 + np.exp(-2 * x[:, 0]))
        return x, y[:, None]

    x, y = data(200, 0)
    clf = _fit(x, y)
    fresh_x, fresh_y = data(4000, 1)
    calibrated = clf.predict_proba(fresh_x, [""] * len(fresh_x))[:, 0]
    a, b = clf.calibration_[0]
    clf.calibration_[0] = (1.0, 0.0)
    raw = clf.predict_proba(fresh_x, [""] * len(fresh_x))[:, 0]
    assert a < 1.0   # the scaling softens the overconfident fit
    assert _calibration_error(calibrated, fresh_y[:, 0]) < 0.5 * _calibration_error(raw, fresh_y[:, 0])
    assert _calibration_error(calibrated, fresh_y[:, 0]) < 0.1


def test_every_trained_theme_is_cut_at_even_odds() -> None:
    x, y = _points(60, 140, gap=2.5)
    two = np.hstack([y, ~y])
    clf = _fit(x, two)
    assert clf.thresholds_.tolist() == [0.5, 0.5]
    scores = clf.predict_proba(x, [""] * len(x))
    assert ((scores[:, 0] >= 0.5) == y[:, 0]).mean() > 0.8


def test_a_paragraph_that_names_a_theme_carries_it() -> None:
    x, y = _points(40, 80, gap=3.0)
    texts = ["an ordinary paragraph"] * len(x)
    clf = ThemeClassifier(anchor_weight=0).fit(x, texts, y, keywords=[["smart city"]])
    far = np.full((2, 8), -3.0, dtype=np.float32)      # deep inside the negative blob
    scores = clf.predict_proba(far, ["nothing to see", "the smart cities of the delta"])[:, 0]
    assert scores[0] < 0.5 <= scores[1]

def test_a_theme_named_as_a_means_to_another_theme_is_not_forced() -> None:
    # Two themes: the city along the first axis, data along the second. A paragraph the model finds about the city
    # that names big data as its tool does not carry data for the name alone; one about neither does, and a list
    # that names both themes carries both.
    rng = np.random.default_rng(0)
    x = rng.standard_normal((240, 8)).astype(np.float32)
    y = np.zeros((240, 2), dtype=bool)
    x[:60, 0] += 3.0
    y[:60, 0] = True
    x[60:120, 1] += 3.0
    y[60:120, 1] = True
    clf = ThemeClassifier(anchor_weight=0).fit(x, ["an ordinary paragraph"] * len(x), y,
                                               keywords=[["smart city"], ["big data"]])
    city, nowhere = np.zeros((1, 8), dtype=np.float32), np.zeros((1, 8), dtype=np.float32)
    city[0, :2] = (4.0, -3.0)
    nowhere[0, :2] = (-3.0, -3.0)
    means = "drivers are guided to free parking spaces with the help of big data"
    scores = clf.predict_proba(np.vstack([city, nowhere, city]), [means, means, "smart city and big data projects"])
    assert scores[0, 0] >= 0.5 > scores[0, 1]          # about the city, big data only its means
    assert scores[1, 1] >= 0.5 > scores[1, 0]          # about nothing the model knows: the name decides
    assert (scores[2] >= 0.5).all()                    # a list of areas carries each theme it names


def test_a_theme_whose_every_training_paragraph_names_it_is_learnt_beyond_its_names() -> None:
    # A small corpus in which every paragraph about the theme names it (the seeds' smart city, named only in lists;
    # a user's examples that all say "smart city"): the model must still learn what the theme is about from the
    # theme file's meaning and the paragraphs, not the name alone, or it gives the theme to nothing unnamed.
    x, y = _points(20, 40, gap=3.0)
    texts = ["the smart city plan" if label else "an ordinary paragraph" for label in y[:, 0]]
    clf = ThemeClassifier(tfidf_weight=0).fit(x, texts, y, anchors=np.eye(1, 8, dtype=np.float32),
                                              keywords=[["smart city"]])
    centres = np.zeros((2, 8), dtype=np.float32)
    centres[0, 0] = 3.0   # the centre of the theme's paragraphs, and below it the centre of the others
    unnamed = clf.predict_proba(centres, ["traffic lights that adapt"] * 2)[:, 0]
    assert unnamed[0] >= 0.5 > unnamed[1]
    assert clf.predict_proba(centres[1:], ["the smart city plan"])[0, 0] >= 0.5   # a name still carries it


def test_a_model_saved_before_keywords_had_their_own_scale_loads_as_it_was_trained() -> None:
    x, texts, y = _worded(300)
    clf = ThemeClassifier().fit(x, texts, y, anchors=np.eye(2, 8, dtype=np.float32), keywords=[["market"], ["cloud"]])
    arrays, meta = clf.to_arrays()
    np.testing.assert_array_equal(ThemeClassifier.from_arrays(arrays, meta).predict_proba(x, texts),
                                  clf.predict_proba(x, texts))
    del arrays["keyword_scale"]   # as saved before: its keyword columns were scaled as the anchor columns
    old = ThemeClassifier.from_arrays(arrays, meta)
    assert old.keyword_scale_ == old.anchor_scale_ != clf.keyword_scale_
    clf.keyword_scale_ = clf.anchor_scale_
    np.testing.assert_array_equal(old.predict_proba(x, texts), clf.predict_proba(x, texts))
    for name in ("anchor_scale", "keyword_scale"):   # a damaged file: a scale that is not one number
        with pytest.raises(ValueError, match="do not fit together"):
            ThemeClassifier.from_arrays({**clf.to_arrays()[0], name: np.zeros(0, dtype=np.float32)}, meta)


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
    # A keyword hit fades with them, but is never boosted above a plain 0/1.
    assert small.keyword_scale_ == mid.keyword_scale_ == 1.0 and large.keyword_scale_ == large.anchor_scale_
    # The scale reaches the scores: with the same coefficients, the small model's anchor column counts for more.
    x = np.eye(1, 8, dtype=np.float32)
    assert small._features(x, [""])[0, -1] > large._features(x, [""])[0, -1]


def _texts(points: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, list[str], np.ndarray]:
    x, y = points
    return x, [""] * len(x), y


def _worded(n: int, seed: int = 0) -> tuple[np.ndarray, list[str], np.ndarray]:
    """Blobs as in _points, each row with a few words, some of which go with the label."""
    x, y = _points(n // 3, n - n // 3, gap=1.0, seed=seed)
    rng = np.random.default_rng(seed)
    vocab = ["market", "shares", "league", "goal", "vote", "minister", "cloud", "data", "village", "farm"]
    texts = [" ".join(rng.choice(vocab[:5] if label else vocab[5:], 6)) + f" word{i % 17} zeta{i % 5}"
             for i, label in enumerate(y[:, 0])]
    return x, texts, np.hstack([y, rng.random((n, 1)) < 0.4])


def test_features_built_once_give_the_same_model_and_scores_as_fitting_from_scratch() -> None:
    # Self-training fits twice on the same rows: the second fit and the scores in between take the first's
    # features. Everything must come out as if each fit had built them itself, to the bit.
    x, texts, y = _worded(300)
    anchors = np.eye(2, 8, dtype=np.float32)
    keywords = [["market shares"], ["cloud"]]
    template = ThemeClassifier()
    features = template.training_features(x, texts, anchors, keywords)
    assert template.get_params() == ThemeClassifier().get_params() and not hasattr(template, "vectorizer_")
    for labels in (y, ~y):
        plain = ThemeClassifier().fit(x, texts, labels, anchors=anchors, keywords=keywords)
        shared = ThemeClassifier().fit(x, texts, labels, features=features)
        for name in ("coef_", "intercept_", "calibration_", "thresholds_", "anchors_"):
            np.testing.assert_array_equal(getattr(plain, name), getattr(shared, name))
        assert shared.anchor_scale_ == plain.anchor_scale_ and shared.keywords_ == plain.keywords_
        assert shared.vectorizer_.get_feature_names_out().tolist() == plain.vectorizer_.get_feature_names_out().tolist()
        np.testing.assert_array_equal(shared.training_scores(features, 250), plain.predict_proba(x[:250], texts[:250]))
    with pytest.raises(ValueError, match="other rows or other settings"):
        ThemeClassifier(tfidf_weight=1.0).fit(x, texts, y, features=features)
    with pytest.raises(ValueError, match="other rows or other settings"):
        ThemeClassifier().fit(x[:10], texts[:10], y[:10], features=features)


def test_themes_fitted_side_by_side_give_the_same_model_as_one_after_another(monkeypatch) -> None:
    # The themes' fits run on the machine's cores at once; each depends on its own rows and the seed alone.
    import model.classifier as classifier

    x, texts, y = _worded(300)
    y = np.column_stack([y, y[:, :1] ^ y[:, 1:]])   # a third theme, so that more themes than cores may queue
    anchors = np.eye(3, 8, dtype=np.float32)
    fitted = {}
    for cores in (1, 2, 3):
        monkeypatch.setattr(classifier, "cpu_count", lambda cores=cores: cores)
        fitted[cores] = ThemeClassifier().fit(x, texts, y, anchors=anchors)
        assert fitted[cores].trained_.all()
    for cores in (2, 3):
        for name in ("coef_", "intercept_", "calibration_"):
            np.testing.assert_array_equal(getattr(fitted[cores], name), getattr(fitted[1], name))
