"""The multi-label head: one logistic-loss linear model per theme over [embedding, TF-IDF], with calibrated scores.

Saved as plain arrays and a word list, so loading unpickles nothing."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from functools import partial

import numpy as np
import scipy.sparse as sp
from joblib import Parallel, cpu_count, delayed
from sklearn.base import BaseEstimator
from sklearn.exceptions import NotFittedError
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression, SGDClassifier
from sklearn.model_selection import StratifiedKFold
from threadpoolctl import threadpool_limits

from .corpus import terms
from .errors import UserInputError, whole_number
from .themes import keyword_hits

log = logging.getLogger(__name__)

CALIBRATION_SAMPLE = 4000
CUT = 0.5                 # on calibrated scores: a theme is given when it is more likely than not
ANCHOR_ROWS = 1000        # the training size at which the anchor features get exactly anchor_weight
MAX_ANCHOR_BOOST = 10.0   # a corpus of 100 rows or fewer gets 10x anchor_weight
MAX_KEYWORD_SCALE = 1.0   # a keyword hit is at most a plain indicator: never boosted with the anchors (see the class)
SGD_ABOVE = 5000


@dataclass
class TrainingFeatures:
    """ThemeClassifier.training_features(): the feature matrix of the training rows and what it was built with."""

    settings: tuple                          # the classifier settings that shape the features
    keywords: list[list[str]] | None
    anchors: np.ndarray
    anchor_scale: float
    keyword_scale: float
    vectorizer: TfidfVectorizer | None = None
    named: np.ndarray | None = None          # keyword hits per row and theme
    X: object = None                         # (rows, features), sparse when there are TF-IDF words


_WORD = re.compile(r"(?u)\b\w\w+\b")   # scikit-learn's own default; Chinese and other unspaced text: see terms()


def _tfidf(vocabulary=None, min_df: int = 1, max_features: int | None = None, pairs: bool = True) -> TfidfVectorizer:
    """pairs: unspaced scripts as pairs of characters (terms()); False for models saved before, whose vocabulary
    holds such runs whole, as scikit-learn's own pattern found them (English is the same either way)."""
    return TfidfVectorizer(sublinear_tf=True, stop_words="english", min_df=min_df, max_features=max_features,
                           vocabulary=vocabulary, dtype=np.float32,
                           tokenizer=partial(terms, word=_WORD) if pairs else None,
                           token_pattern=None if pairs else _WORD.pattern)


class ThemeClassifier(BaseEstimator):
    """Scores in [0, 1] for every theme, calibrated on out-of-fold scores; `thresholds_` (0.5) turns them into themes.

    Features: the embedding; its cosine to each theme's anchor, the theme file's own centre; whether it names each
    theme (one of the theme's keywords); and TF-IDF of the words (scaled by tfidf_weight; 0 turns them off). A
    paragraph that names a theme carries it, as the theme file says: its score for that theme is at least the cut,
    unless the model finds the paragraph about another theme that it does not name (the name is then a means, as
    in "with the help of big data" in a paragraph on city parking).
    The anchor features are scaled by
    anchor_weight * ANCHOR_ROWS / training rows (at most MAX_ANCHOR_BOOST times): a large scale makes their
    coefficients cheap under the regularisation, so a small corpus leans on the theme file's meaning, and its pull
    fades as the corpus grows and its own labels can speak (the fade in proportion to the rows, not their square
    root: AG News 0.879 -> 0.882, BBC 0.962 -> 0.965, the seeds' check sets the same). The keyword features fade
    with them on a large corpus but are never boosted above a plain 0/1 indicator (MAX_KEYWORD_SCALE): on a small
    corpus every paragraph a theme learns from may name it (the seeds' smart city is named in lists of areas,
    nowhere else, and a user's examples often name their theme), and a cheap name feature then explains all of
    them, so the model learns the theme as its names and gives it to nothing that does not name it; the floor above
    already gives named paragraphs their theme.
    C: inverse regularisation of each logistic regression. max_features: the TF-IDF vocabulary size."""

    def __init__(self, C: float = 3.0, tfidf_weight: float = 2.0, anchor_weight: float = 3.0,
                 max_features: int = 50_000, random_state: int = 0):
        self.C = C
        self.tfidf_weight = tfidf_weight
        self.anchor_weight = anchor_weight
        self.max_features = max_features
        self.random_state = random_state

    # -- features ---------------------------------------------------------------------------------------------
    def _features(self, embeddings: np.ndarray, texts: list[str], named=None):
        """named: keyword_hits(texts, self.keywords_), when the caller has it already."""
        if self.keywords_ is not None and named is None:
            named = keyword_hits(texts, self.keywords_)
        words = self.vectorizer_.transform(texts) if self.vectorizer_ is not None else None
        return _stack(embeddings, self.anchors_, self.anchor_scale_, named, words, self.tfidf_weight,
                      self.keyword_scale_)

    # -- training ---------------------------------------------------------------------------------------------
    def training_features(self, embeddings: np.ndarray, texts: list[str], anchors: np.ndarray,
                          keywords: list[list[str]] | None = None) -> TrainingFeatures:
        """The training rows' features, built before any label is known: fit() takes them (features=), so that
        self-training's second fit and the scores in between build them once (the same texts give the same TF-IDF
        words and matrix; at 20k paragraphs, about 4 s a round). anchors: (K, dim) unit rows, one per theme."""
        self._check_settings()   # here, before the long work, rather than deep in the first fit
        keywords = [list(k) for k in keywords] if keywords is not None and any(keywords) else None
        anchor_scale = float(min(MAX_ANCHOR_BOOST, ANCHOR_ROWS / len(texts))) * self.anchor_weight
        f = TrainingFeatures(settings=self._feature_settings(), keywords=keywords,
                             anchors=np.asarray(anchors, dtype=np.float32), anchor_scale=anchor_scale,
                             keyword_scale=min(MAX_KEYWORD_SCALE, anchor_scale))
        words = None
        if self.tfidf_weight > 0:
            vec = _tfidf(min_df=2 if len(texts) >= 50 else 1, max_features=self.max_features)
            try:
                words = vec.fit_transform(texts)
                f.vectorizer = vec
            except ValueError:  # no usable words at all
                log.warning("no words left for TF-IDF features; using the embeddings alone")
        f.named = keyword_hits(texts, keywords) if keywords is not None else None
        f.X = _stack(embeddings, f.anchors, f.anchor_scale, f.named, words, self.tfidf_weight, f.keyword_scale)
        return f

    def _check_settings(self) -> None:
        ok = (_positive(self.C) and _positive(self.tfidf_weight, 0) and _positive(self.anchor_weight, 0)
              and (self.max_features is None or (whole_number(self.max_features) and self.max_features >= 1)))
        if not ok:
            raise UserInputError(f"ThemeClassifier settings: C must be above 0, tfidf_weight and anchor_weight 0 or "
                                 f"more, max_features a whole number from 1 (or None); got C={self.C!r}, "
                                 f"tfidf_weight={self.tfidf_weight!r}, anchor_weight={self.anchor_weight!r}, "
                                 f"max_features={self.max_features!r}")

    def _feature_settings(self) -> tuple:
        return self.tfidf_weight, self.anchor_weight, self.max_features

    def fit(self, embeddings: np.ndarray, texts: list[str], targets: np.ndarray, mask: np.ndarray | None = None,
            anchors: np.ndarray | None = None, keywords: list[list[str]] | None = None,
            features: TrainingFeatures | None = None):
        """targets: (n, K) 0/1; mask: (n, K) which cells to learn from (default all); anchors: (K, dim) unit rows;
        keywords: per theme, the phrases that name it (the theme file's); a hit is a feature, at most a plain 0/1
        and fading with the anchors on a large corpus (see the class). features: training_features() of these same
        rows, anchors and keywords (built here if None)."""
        targets = np.asarray(targets, dtype=bool)
        if anchors is None and features is None:
            anchors = np.zeros((targets.shape[1], embeddings.shape[1]), dtype=np.float32)
        if features is None:
            features = self.training_features(embeddings, texts, anchors, keywords)
        elif features.settings != self._feature_settings() or features.X.shape[0] != len(targets):
            raise ValueError("these training features were built for other rows or other settings")
        self.keywords_, self.anchors_, self.anchor_scale_, self.vectorizer_ = \
            features.keywords, features.anchors, features.anchor_scale, features.vectorizer
        self.keyword_scale_ = features.keyword_scale
        mask = np.ones_like(targets) if mask is None else np.asarray(mask, dtype=bool)
        X = features.X
        k_count = targets.shape[1]
        self.coef_ = np.zeros((k_count, X.shape[1]), dtype=np.float32)
        self.intercept_ = np.full(k_count, -10.0, dtype=np.float32)  # a theme with nothing to learn scores ~0
        self.thresholds_ = np.full(k_count, CUT, dtype=np.float32)
        self.calibration_ = _identity(k_count)
        self.trained_ = np.zeros(k_count, dtype=bool)
        with threadpool_limits(1, user_api="blas"):
            self._fit_themes(X, targets, mask)
        return self

    def _fit_themes(self, X, targets: np.ndarray, mask: np.ndarray) -> None:
        """One logistic fit and its calibration per theme, each on one BLAS thread (lbfgs's many small vector steps
        gain nothing from BLAS threads, and on 2 busy cores OpenBLAS's threads made the seeds' 40 fits take 4-20 s,
        not 0.7), side by side on the machine's cores instead: every theme's fit and each of its calibration's fold
        fits is a task of its own, so that five themes on two cores do not leave one core waiting while the last
        theme fits alone. Each fit depends on its own rows and the seed alone, so the coefficients are the same to
        the bit however many run at once."""
        jobs = []
        for k in range(targets.shape[1]):
            rows = np.flatnonzero(mask[:, k])
            y = targets[rows, k]
            if y.sum() < 2 or (~y).sum() < 2:
                log.warning("theme %d has %d positive and %d negative training paragraphs: left untrained",
                            k, int(y.sum()), int((~y).sum()))
                continue
            jobs.append((k, rows, y, self._calibration_folds(rows, y)))
        if not jobs:
            return
        # (rows to fit on, their labels, rows to score out of fold or None for the theme's own model)
        tasks = []
        for _, rows, y, folds in jobs:
            tasks.append((rows, y, None))
            if folds is not None:
                tasks += [(train, train_y, test) for train, train_y, test, _ in folds[1]]
        done = iter(Parallel(n_jobs=min(len(tasks), cpu_count()), prefer="threads")(
            delayed(self._fit_rows)(X, rows, y, score) for rows, y, score in tasks))
        for k, _, _, folds in jobs:
            self.coef_[k], self.intercept_[k] = next(done)
            self.calibration_[k] = _identity(1)[0]
            if folds is not None:
                labels, splits = folds
                z = np.zeros(len(labels))
                for *_, places in splits:
                    z[places] = next(done)
                self.calibration_[k] = _platt(z, labels)
            self.trained_[k] = True

    def _fit_rows(self, X, rows: np.ndarray, y: np.ndarray, score: np.ndarray | None):
        """The logistic fit on X's `rows`: its (coefficients, intercept), or its raw scores of the rows `score`."""
        model = self._model(len(y)).fit(X[rows], y)
        return (model.coef_.ravel(), model.intercept_[0]) if score is None else model.decision_function(X[score])

    def _model(self, n_rows: int):
        """Logistic regression with inverse regularisation C, fitted exactly (lbfgs) on a small training set and by
        SGD on a large one, where lbfgs over TF-IDF columns costs 3-4 s a theme (BBC, 11k paragraphs) against
        0.6 s, with no loss of accuracy in our benchmarks. SGD on a few hundred rows is too noisy to use there.

        SGD stops by scikit-learn's own rule, when five passes in a row have not lowered the loss by 0.001: on 20k
        BBC paragraphs that took 7-8 passes, and the models decided 99.96-100% of the rows as 30 fixed passes did
        (scores correlated 0.9998)."""
        if n_rows <= SGD_ABOVE:
            return LogisticRegression(C=self.C, max_iter=2000, random_state=self.random_state)
        return SGDClassifier(loss="log_loss", alpha=1.0 / (self.C * n_rows), random_state=self.random_state)

    def _calibration_folds(self, rows: np.ndarray, y: np.ndarray):
        """The folds whose out-of-fold scores calibrate a theme: (labels, [(train rows, their labels, test rows, the
        test rows' places among the labels), ...]), or None where too few rows leave the fit uncalibrated.

        Platt scaling (a, b): P(theme) = sigmoid(a * z + b) for the model's raw score z, fitted on out-of-fold
        scores, so that a score says how often a paragraph scored like this carries the theme (identity if too few).
        A logistic fit on a clean training set is sure of everything (scores of 0.99+ or 0.001); the folds show how
        sure it may be on text it did not learn from. With calibrated scores one cut serves every theme: 0.5, more
        likely than not (mission dev paragraphs, 3 seeds: macro-F1 0.777 -> 0.801 against the earlier rule, the
        lowest cut within one bootstrap standard error of the best out-of-fold F1 on a grid of 0.1-0.8)."""
        if len(y) > CALIBRATION_SAMPLE:  # a few thousand rows fix two numbers well; the folds' fits would dominate
            keep = np.random.RandomState(self.random_state).choice(len(y), CALIBRATION_SAMPLE, replace=False)
            rows, y = rows[keep], y[keep]
        folds = min(3, int(y.sum()), int((~y).sum()))
        if folds < 2:
            return None
        split = list(StratifiedKFold(folds, shuffle=True, random_state=self.random_state).split(rows, y))
        if any(y[train].all() or not y[train].any() for train, _ in split):
            return None
        return y, [(rows[train], y[train], rows[test], test) for train, test in split]

    # -- scoring ----------------------------------------------------------------------------------------------
    def predict_proba(self, embeddings: np.ndarray, texts: list[str]) -> np.ndarray:
        if not hasattr(self, "coef_"):
            raise NotFittedError("ThemeClassifier is not fitted; call fit() first")
        if len(texts) == 0:
            return np.zeros((0, len(self.coef_)), dtype=np.float32)
        named = keyword_hits(texts, self.keywords_) if self.keywords_ is not None else None
        return self._scores(self._features(embeddings, texts, named=named), named)

    def training_scores(self, features: TrainingFeatures, rows: int) -> np.ndarray:
        """predict_proba of the first `rows` training rows, from the features this classifier was fitted on."""
        if not hasattr(self, "coef_"):
            raise NotFittedError("ThemeClassifier is not fitted; call fit() first")
        X = features.X[:rows]
        if sp.issparse(X):
            # fit_transform leaves each row's words unsorted and transform sorts them: sorted, the products sum in
            # predict_proba's order and the scores equal its own to the bit.
            X = X.sorted_indices()
        return self._scores(X, None if features.named is None else features.named[:rows])

    def _scores(self, X, named: np.ndarray | None) -> np.ndarray:
        z = (X @ self.coef_.T + self.intercept_) * self.calibration_[:, 0] + self.calibration_[:, 1]
        p = (1.0 / (1.0 + np.exp(-np.clip(z, -30, 30)))).astype(np.float32)
        if named is not None:
            # A paragraph that names a theme carries it (the theme file says so): its score is at least the cut. But
            # not where the model finds it about a theme it does not name: there the name is a means to another end
            # ("drivers are guided to free parking spaces with the help of big data" is about the city), not an area
            # of work. A list of areas that names each of its themes keeps them all.
            named = np.asarray(named, dtype=bool)
            elsewhere = ((p >= self.thresholds_) & ~named).any(axis=1, keepdims=True)
            p = np.maximum(p, (named & ~elsewhere) * self.thresholds_).astype(np.float32)
        return p

    # -- persistence as data ------------------------------------------------------------------------------------
    def to_arrays(self) -> tuple[dict[str, np.ndarray], dict]:
        arrays = {"coef": self.coef_, "intercept": self.intercept_, "thresholds": self.thresholds_,
                  "trained": self.trained_, "anchors": self.anchors_, "calibration": self.calibration_,
                  "anchor_scale": np.array([self.anchor_scale_], dtype=np.float32),
                  "keyword_scale": np.array([self.keyword_scale_], dtype=np.float32)}
        meta = {"C": self.C, "tfidf_weight": self.tfidf_weight, "anchor_weight": self.anchor_weight,
                "max_features": self.max_features,
                "random_state": self.random_state, "vocabulary": None, "keywords": self.keywords_, "words": "terms"}
        if self.vectorizer_ is not None:
            arrays["idf"] = self.vectorizer_.idf_.astype(np.float32)
            meta["vocabulary"] = self.vectorizer_.get_feature_names_out().tolist()
        return arrays, meta

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], meta: dict) -> ThemeClassifier:
        clf = cls(C=meta["C"], tfidf_weight=meta["tfidf_weight"], anchor_weight=meta["anchor_weight"],
                  max_features=meta["max_features"], random_state=meta["random_state"])
        clf.anchors_ = arrays["anchors"]
        if any(np.shape(arrays.get(name, [0])) != (1,) for name in ("anchor_scale", "keyword_scale")):
            raise ValueError("classifier arrays do not fit together")
        clf.anchor_scale_ = float(arrays["anchor_scale"][0])
        # models saved before the keyword features had a scale of their own (format 1) scaled them as the anchors
        clf.keyword_scale_ = float(arrays.get("keyword_scale", arrays["anchor_scale"])[0])
        clf.coef_ = arrays["coef"]
        clf.intercept_ = arrays["intercept"]
        clf.thresholds_ = arrays["thresholds"]
        clf.trained_ = arrays["trained"]
        k_count = len(clf.coef_)
        clf.calibration_ = arrays.get("calibration", _identity(k_count))   # older models: uncalibrated
        clf.keywords_ = meta.get("keywords")   # models saved before keyword features have none
        clf.vectorizer_ = None
        if meta["vocabulary"] is not None:
            clf.vectorizer_ = _tfidf(vocabulary=meta["vocabulary"], pairs=meta.get("words") == "terms")
            clf.vectorizer_.idf_ = arrays["idf"]
        words = 0 if clf.vectorizer_ is None else len(meta["vocabulary"])
        k_count = len(clf.coef_)
        if (clf.coef_.ndim != 2 or clf.anchors_.ndim != 2 or len(clf.anchors_) != k_count
                or clf.intercept_.shape != (k_count,) or clf.thresholds_.shape != (k_count,)
                or clf.trained_.shape != (k_count,) or np.shape(clf.calibration_) != (k_count, 2)
                or clf.coef_.shape[1] != clf.anchors_.shape[1] + k_count * (1 + (clf.keywords_ is not None)) + words
                or (clf.keywords_ is not None and len(clf.keywords_) != k_count)):
            raise ValueError("classifier arrays do not fit together")
        return clf


def _stack(embeddings: np.ndarray, anchors: np.ndarray, anchor_scale: float, named: np.ndarray | None, words,
           tfidf_weight: float, keyword_scale: float):
    """[embedding, cosine to each anchor * anchor_scale, keyword hits * keyword_scale], then the TF-IDF words if any."""
    parts = [embeddings, (embeddings @ anchors.T) * anchor_scale]
    if named is not None:
        parts.append(named * keyword_scale)
    dense = np.hstack(parts).astype(np.float32)
    if words is None:
        return dense
    return sp.hstack([sp.csr_matrix(dense), words * tfidf_weight], format="csr")


def _positive(x, floor: float | None = None) -> bool:
    """x is a finite number above 0 (or at least `floor`, where given)."""
    if isinstance(x, bool) or not isinstance(x, (int, float, np.number)) or not np.isfinite(x):
        return False
    return x >= floor if floor is not None else x > 0


def _platt(z: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Platt's (a, b) for raw scores z against labels y."""
    platt = LogisticRegression(C=1e4).fit(z[:, None], y)
    return np.array([platt.coef_[0, 0], platt.intercept_[0]], dtype=np.float32)


def _identity(k_count: int) -> np.ndarray:
    """(k_count, 2) Platt parameters (a, b) that leave the scores as the logistic fit gives them."""
    return np.tile(np.array([1.0, 0.0], dtype=np.float32), (k_count, 1))
