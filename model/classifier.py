"""The multi-label head: one logistic-loss linear model per theme over [embedding, TF-IDF], each with its own threshold.

Saved as plain arrays and a word list, so loading unpickles nothing."""

from __future__ import annotations

import logging

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator
from sklearn.exceptions import NotFittedError
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression, SGDClassifier
from sklearn.model_selection import StratifiedKFold

log = logging.getLogger(__name__)

THRESHOLD_SAMPLE = 4000
ANCHOR_ROWS = 1000        # the training size at which the anchor features get exactly anchor_weight
MAX_ANCHOR_BOOST = 10.0   # a corpus of 100 rows or fewer gets 10x anchor_weight
BOOTSTRAPS = 200
SGD_ABOVE = 5000


def _tfidf(vocabulary=None, min_df: int = 1, max_features: int | None = None) -> TfidfVectorizer:
    return TfidfVectorizer(sublinear_tf=True, stop_words="english", min_df=min_df, max_features=max_features,
                           vocabulary=vocabulary, dtype=np.float32)


class ThemeClassifier(BaseEstimator):
    """Scores in [0, 1] for every theme; `thresholds_` turns them into themes.

    Features: the embedding; its cosine to each theme's anchor, the theme file's own centre; and TF-IDF of the
    words (scaled by tfidf_weight; 0 turns them off). The anchor features are scaled by
    anchor_weight * ANCHOR_ROWS / training rows (at most MAX_ANCHOR_BOOST times): a large scale makes their
    coefficients cheap under the regularisation, so a small corpus leans on the theme file, and the theme file's
    pull fades as the corpus grows and its own labels can speak (the fade in proportion to the rows, not their
    square root: AG News 0.879 -> 0.882, BBC 0.962 -> 0.965, the seeds' check sets the same).
    C: inverse regularisation of each logistic regression. max_features: the TF-IDF vocabulary size."""

    def __init__(self, C: float = 3.0, tfidf_weight: float = 2.0, anchor_weight: float = 3.0,
                 max_features: int = 50_000, threshold_beta: float = 1.0, random_state: int = 0):
        self.C = C
        self.threshold_beta = threshold_beta
        self.tfidf_weight = tfidf_weight
        self.anchor_weight = anchor_weight
        self.max_features = max_features
        self.random_state = random_state

    # -- features ---------------------------------------------------------------------------------------------
    def _features(self, embeddings: np.ndarray, texts: list[str], words=None):
        dense = np.hstack([embeddings, (embeddings @ self.anchors_.T) * self.anchor_scale_]).astype(np.float32)
        if self.vectorizer_ is None:
            return dense
        words = self.vectorizer_.transform(texts) if words is None else words
        return sp.hstack([sp.csr_matrix(dense), words * self.tfidf_weight], format="csr")

    # -- training ---------------------------------------------------------------------------------------------
    def fit(self, embeddings: np.ndarray, texts: list[str], targets: np.ndarray, mask: np.ndarray | None = None,
            anchors: np.ndarray | None = None):
        """targets: (n, K) 0/1; mask: (n, K) which cells to learn from (default all); anchors: (K, dim) unit rows."""
        targets = np.asarray(targets, dtype=bool)
        self.anchors_ = (np.zeros((targets.shape[1], embeddings.shape[1]), dtype=np.float32) if anchors is None
                         else np.asarray(anchors, dtype=np.float32))
        mask = np.ones_like(targets) if mask is None else np.asarray(mask, dtype=bool)
        self.anchor_scale_ = float(min(MAX_ANCHOR_BOOST, ANCHOR_ROWS / len(texts))) * self.anchor_weight
        self.vectorizer_, words = None, None
        if self.tfidf_weight > 0:
            vec = _tfidf(min_df=2 if len(texts) >= 50 else 1, max_features=self.max_features)
            try:
                words = vec.fit_transform(texts)
                self.vectorizer_ = vec
            except ValueError:  # no usable words at all
                log.warning("no words left for TF-IDF features; using the embeddings alone")
        X = self._features(embeddings, texts, words)
        k_count = targets.shape[1]
        self.coef_ = np.zeros((k_count, X.shape[1]), dtype=np.float32)
        self.intercept_ = np.full(k_count, -10.0, dtype=np.float32)  # a theme with nothing to learn scores ~0
        self.thresholds_ = np.full(k_count, 0.5, dtype=np.float32)
        self.trained_ = np.zeros(k_count, dtype=bool)
        for k in range(k_count):
            rows = np.flatnonzero(mask[:, k])
            y = targets[rows, k]
            if y.sum() < 2 or (~y).sum() < 2:
                log.warning("theme %d has %d positive and %d negative training paragraphs: left untrained",
                            k, int(y.sum()), int((~y).sum()))
                continue
            model = self._model(len(rows)).fit(X[rows], y)
            self.coef_[k] = model.coef_.ravel()
            self.intercept_[k] = model.intercept_[0]
            self.trained_[k] = True
            self.thresholds_[k] = self._threshold(X[rows], y)
        return self

    def _model(self, n_rows: int):
        """Logistic regression with inverse regularisation C, fitted exactly (lbfgs) on a small training set and by
        SGD on a large one, where lbfgs over TF-IDF columns costs 3-4 s a theme (BBC, 11k paragraphs) against
        0.6 s, with no loss of accuracy in our benchmarks. SGD on a few hundred rows is too noisy to use there."""
        if n_rows <= SGD_ABOVE:
            return LogisticRegression(C=self.C, max_iter=2000, random_state=self.random_state)
        return SGDClassifier(loss="log_loss", alpha=1.0 / (self.C * n_rows), max_iter=30, tol=None,
                             random_state=self.random_state)

    def _threshold(self, X, y: np.ndarray) -> float:
        """A cut on out-of-fold scores, near the best F-beta against the training labels (0.5 if too few).

        beta > 1 weights recall (under the earlier best-F-beta cut, beta 2 changed nothing on the seeds' check set)."""
        if len(y) > THRESHOLD_SAMPLE:  # a few thousand rows fix a cut well; the folds' fits would dominate otherwise
            keep = np.random.RandomState(self.random_state).choice(len(y), THRESHOLD_SAMPLE, replace=False)
            X, y = X[keep], y[keep]
        folds = min(3, int(y.sum()), int((~y).sum()))
        if folds < 2:
            return 0.5
        scores = np.zeros(len(y))
        for train, test in StratifiedKFold(folds, shuffle=True, random_state=self.random_state).split(X, y):
            if y[train].all() or not y[train].any():
                return 0.5
            scores[test] = self._model(len(train)).fit(X[train], y[train]).predict_proba(X[test])[:, 1]
        candidates = np.linspace(0.1, 0.8, 29)
        f = np.array([_fbeta(y, scores >= t, self.threshold_beta) for t in candidates])
        best = int(np.argmax(f))
        # The one-standard-error rule, leaning to recall: the lowest cut whose F-beta is within one bootstrap
        # standard error of the best. The training positives are the clear-cut cases, so positives in new text
        # score lower; a small training set (wide error) moves the cut further down than a large one.
        picks = np.random.RandomState(self.random_state).randint(0, len(y), size=(BOOTSTRAPS, len(y)))
        spread = np.std([_fbeta(y[i], scores[i] >= candidates[best], self.threshold_beta) for i in picks])
        return float(candidates[np.flatnonzero(f >= f[best] - spread)[0]])

    # -- scoring ----------------------------------------------------------------------------------------------
    def predict_proba(self, embeddings: np.ndarray, texts: list[str]) -> np.ndarray:
        if not hasattr(self, "coef_"):
            raise NotFittedError("ThemeClassifier is not fitted; call fit() first")
        if len(texts) == 0:
            return np.zeros((0, len(self.coef_)), dtype=np.float32)
        z = self._features(embeddings, texts) @ self.coef_.T + self.intercept_
        return (1.0 / (1.0 + np.exp(-np.clip(z, -30, 30)))).astype(np.float32)

    # -- persistence as data ------------------------------------------------------------------------------------
    def to_arrays(self) -> tuple[dict[str, np.ndarray], dict]:
        arrays = {"coef": self.coef_, "intercept": self.intercept_, "thresholds": self.thresholds_,
                  "trained": self.trained_, "anchors": self.anchors_,
                  "anchor_scale": np.array([self.anchor_scale_], dtype=np.float32)}
        meta = {"C": self.C, "tfidf_weight": self.tfidf_weight, "anchor_weight": self.anchor_weight,
                "max_features": self.max_features, "threshold_beta": self.threshold_beta,
                "random_state": self.random_state, "vocabulary": None}
        if self.vectorizer_ is not None:
            arrays["idf"] = self.vectorizer_.idf_.astype(np.float32)
            meta["vocabulary"] = self.vectorizer_.get_feature_names_out().tolist()
        return arrays, meta

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], meta: dict) -> ThemeClassifier:
        clf = cls(meta["C"], meta["tfidf_weight"], meta["anchor_weight"], meta["max_features"],
                  meta["threshold_beta"], meta["random_state"])
        clf.anchors_ = arrays["anchors"]
        clf.anchor_scale_ = float(arrays["anchor_scale"][0])
        clf.coef_ = arrays["coef"]
        clf.intercept_ = arrays["intercept"]
        clf.thresholds_ = arrays["thresholds"]
        clf.trained_ = arrays["trained"]
        clf.vectorizer_ = None
        if meta["vocabulary"] is not None:
            clf.vectorizer_ = _tfidf(vocabulary=meta["vocabulary"])
            clf.vectorizer_.idf_ = arrays["idf"]
        words = 0 if clf.vectorizer_ is None else len(meta["vocabulary"])
        k_count = len(clf.coef_)
        if (clf.coef_.ndim != 2 or clf.anchors_.ndim != 2 or len(clf.anchors_) != k_count
                or len(clf.intercept_) != k_count or len(clf.thresholds_) != k_count
                or clf.coef_.shape[1] != clf.anchors_.shape[1] + k_count + words):
            raise ValueError("classifier arrays do not fit together")
        return clf


def _fbeta(y: np.ndarray, pred: np.ndarray, beta: float) -> float:
    tp = float((y & pred).sum())
    return (1 + beta**2) * tp / max(float(beta**2 * y.sum() + pred.sum()), 1.0)
