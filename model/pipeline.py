"""Training: articles -> paragraphs -> embeddings -> clusters -> themed clusters -> classifier -> saved model."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from sklearn.base import clone

from . import cluster as clustering
from . import html_report, review
from .classifier import ThemeClassifier
from .corpus import Article, paragraphs_of, read_corpus, warn_about_size
from .embed import DEFAULT, EmbeddingCache, Embedder, check_cache_dir, default_cache_dir, embed_texts, load_embedder
from .errors import UserInputError, whole_number
from .label import anchors, label, nearest, relabel, same_count_cuts, smooth, too_few_clusters, unlike_centres
from .report import cluster_report
from .storage import check_output_dir
from .tagger import ThemeTagger
from .themes import Theme, check_themes, load_themes

log = logging.getLogger(__name__)


@dataclass
class TrainSummary:
    articles: int
    paragraphs: int
    clusters: int
    paragraphs_per_theme: dict[str, int]
    embedding_model: str
    seed: int
    out: str | None = None
    clusters_set_by_person: int = 0                           # from an assignments file
    seconds: dict[str, float] = field(default_factory=dict)   # per stage
    warnings: list[str] = field(default_factory=list)         # what the user should know about the model


class _Stages:
    """Times each stage and logs it, so a long run shows where it is."""

    def __init__(self):
        self.seconds: dict[str, float] = {}

    def run(self, name: str, fn, *args, **kwargs):
        log.info("%s ...", name)
        start = time.perf_counter()
        result = fn(*args, **kwargs)
        self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start
        log.info("%s done in %.1f s", name, self.seconds[name])
        return result


def check_seed(seed) -> None:
    """One seed feeds numpy, UMAP and scikit-learn, which all take 0 <= seed < 2**32."""
    if not whole_number(seed) or not 0 <= seed < 2**32:
        raise UserInputError(f"seed must be a whole number from 0 to {2**32 - 1}, got {seed!r}")


def train(corpus: str | Path | list[Article], themes: str | Path | list[Theme], *, out: str | Path | None = None,
          seed: int = 0, embedding_model: str = DEFAULT, clusterer: str = "hdbscan",
          cache_dir: str | Path | None = "default", embedder: Embedder | None = None,
          reducer_model=None, clusterer_model=None, classifier: ThemeClassifier | None = None,
          self_training_rounds: int = 1, max_fit: int | None = clustering.MAX_FIT,
          progress: bool = True, assignments: str | Path | None = None, report: bool = True,
          ray_address: str | None = None, ray_workers: int | None = None) -> tuple[ThemeTagger, TrainSummary]:
    """Train a ThemeTagger from a corpus and a theme file; save it to `out` if given.

    cache_dir: where embeddings are kept between runs ("default": ~/.cache/theme-tagger; None: no cache).
    embedder / reducer_model / clusterer_model / classifier: swap in your own stages (any object with
    encode / fit_transform / fit_predict, or a configured ThemeClassifier, cloned for each fit).
    self_training_rounds: relabel with the classifier's own scores and retrain this many times.
    max_fit: fit UMAP and the clusterer on at most this many paragraphs (None: all); the rest take the cluster
    of their most similar fitted paragraph.
    assignments: an assignments.csv a person corrected (model/review.py): the clusters it sets override the vote.
    report: with `out`, also write report.html, map.png and map.json (the map costs one more UMAP, cached).
    ray_address: embed the paragraphs on Ray ("local", "auto", "ray://host:port") into the embedding cache first,
    with ray_workers actors (model/distributed.py); the stages after the embedding run here, as without Ray."""
    if clusterer not in clustering.CLUSTER_METHODS:
        raise UserInputError(f"clusterer must be one of {', '.join(clustering.CLUSTER_METHODS)}, got {clusterer!r}")
    check_seed(seed)
    # As for the seed: 0 or a fraction would fail deep in the sampling with numpy's message, not ours.
    if max_fit is not None and (not whole_number(max_fit) or max_fit < 1):
        raise UserInputError(f"max_fit must be a whole number of at least 1 (None: all paragraphs), got {max_fit!r}")
    stages = _Stages()
    if not whole_number(self_training_rounds) or self_training_rounds < 0:
        raise UserInputError(f"self_training_rounds must be a whole number, 0 or more, got {self_training_rounds!r}")
    theme_list = check_themes(themes) if isinstance(themes, (list, tuple)) else load_themes(themes)
    corrections = review.read_assignments(assignments, theme_list) if assignments is not None else None
    if out is not None:
        check_output_dir(Path(out))   # fail before the long work, not after it
    articles = corpus if isinstance(corpus, list) else read_corpus(corpus)
    cache_root = default_cache_dir() if cache_dir == "default" else (Path(cache_dir) if cache_dir else None)
    if cache_root is not None:
        check_cache_dir(cache_root)
    if ray_address is not None:
        from .distributed import check_ray_training, embed_corpus
        check_ray_training(cache_root)
    if embedder is None:
        embedder = stages.run("load embedder", load_embedder, embedding_model, cache_root)
    cache = EmbeddingCache(cache_root / "embeddings.sqlite") if cache_root else None

    paragraphs = stages.run("clean and split", paragraphs_of, articles, embedder.max_words)
    texts = [p.text for p in paragraphs]
    if not texts:
        raise UserInputError("no paragraphs left after cleaning the corpus")
    log.info("%d articles -> %d paragraphs", len(articles), len(texts))
    warn_about_size(articles, paragraphs)
    if ray_address is not None:   # fills the cache, so that embed_texts below finds every paragraph there
        stages.run("embed", embed_corpus, texts, embedder, cache, address=ray_address, workers=ray_workers,
                   progress=progress)
    embeddings = stages.run("embed", embed_texts, texts, embedder, cache, progress)
    # Through the cache too, one theme at a time as before: retraining with the same theme file loads no model.
    prompt_vectors = stages.run("embed", lambda: [embed_texts(t.prompts(), embedder, cache) for t in theme_list])
    # Labelling refines these anchors on the corpus; the classifier keeps the theme file's own, so new text is
    # scored against what the user wrote (seeds' check sets 0.79 -> 0.82 and 0.77 -> 0.82; AG News, BBC same).
    theme_anchors = anchors(prompt_vectors)

    # What the theme file says each theme is not (a theme's counterexamples: a neighbouring subject), where it says.
    unlike = stages.run("embed", lambda: unlike_centres(
        [embed_texts(list(t.counterexamples), embedder, cache) if t.counterexamples else None for t in theme_list],
        embeddings.shape[1]))
    prompt_texts = [p for t in theme_list for p in t.prompts()]
    prompt_targets = np.vstack([np.eye(len(theme_list), dtype=bool)[[k] * len(v)]
                                for k, v in enumerate(prompt_vectors)])
    template = classifier if classifier is not None else ThemeClassifier(random_state=seed)
    train_x = np.vstack([embeddings, *prompt_vectors])

    sample = clustering.fit_sample(len(embeddings), max_fit, seed)
    reducing = clustering.start_reduce(embeddings[sample], seed, reducer_model, cache_root)
    try:
        # Meanwhile, what needs no clusters (on a large corpus UMAP runs in a worker process, on one core).
        neighbours = stages.run("label", nearest, embeddings, sample, seed=seed)
        # The theme file's own texts are labelled examples too: they keep a small corpus's classifier on course. The
        # features are built once: every fit learns from the same rows, only their labels change.
        features = stages.run("classifier", template.training_features, train_x, texts + prompt_texts,
                              theme_anchors, [list(t.keywords) for t in theme_list])
        counted = stages.run("describe", clustering.count_terms, texts)
        reduced = stages.run("reduce", reducing)
    finally:
        reducing.cancel()   # after an error or Ctrl-C: stop UMAP's worker, not wait for it (no-op once done)
    labels = stages.run("cluster", clustering.cluster, reduced, clusterer, seed, clusterer_model)
    if len(sample) < len(embeddings):
        labels = stages.run("cluster", clustering.assign_to_nearest, embeddings, sample, labels)
    infos = stages.run("describe", clustering.describe, texts, embeddings, labels, counted=counted)
    fingerprint = review.fingerprint(texts, labels)
    if corrections is not None:
        review.check_assignments(corrections, fingerprint, infos)
    pseudo = stages.run("label", label, embeddings, texts, theme_list, theme_anchors, labels, infos, seed,
                        neighbours, np.array([p.article_id for p in paragraphs]), unlike)
    pseudo = review.apply_assignments(pseudo, labels, infos, corrections, theme_list)

    def fit(pseudo_labels):
        return clone(template).fit(train_x, texts + prompt_texts, np.vstack([pseudo_labels.targets, prompt_targets]),
                                   np.vstack([pseudo_labels.mask, np.ones_like(prompt_targets)]),
                                   features=features)

    head = stages.run("classifier", fit, pseudo)
    for _ in range(self_training_rounds):
        scores = stages.run("classifier", head.training_scores, features, len(texts))
        smoothed = smooth(scores, neighbours)
        cuts = same_count_cuts(scores, smoothed, head.thresholds_)
        pseudo = stages.run("label", relabel, smoothed, cuts, labels, infos, theme_list, pseudo)
        pseudo = review.apply_assignments(pseudo, labels, infos, corrections, theme_list)
        head = stages.run("classifier", fit, pseudo)

    notes = _theme_notes(theme_list, pseudo, prompt_targets, head)
    found = len(set(labels.tolist()) - {clustering.OUTLIER})
    if too_few_clusters(infos, theme_list):
        notes.insert(0, f"the clusterer found {found} cluster{'s' * (found != 1)} for {len(theme_list)} themes, too "
                        "few to stand for them, so no cluster voted: each paragraph's themes are its own (a larger "
                        "corpus gives more clusters)")
    for note in notes:
        log.warning("%s", note)
    summary = TrainSummary(
        articles=len(articles), paragraphs=len(texts),
        clusters=found,
        paragraphs_per_theme={t.id: int(n) for t, n in zip(theme_list, pseudo.targets.sum(axis=0))},
        embedding_model=embedder.spec, seed=seed, seconds=stages.seconds, warnings=notes,
        clusters_set_by_person=sum(i.set_by_person for i in infos))
    config = {"seed": seed, "clusterer": clusterer,
              "training": {"corpus": str(corpus) if not isinstance(corpus, list) else "(in memory)",
                           "articles": summary.articles, "paragraphs": summary.paragraphs,
                           "clusters": summary.clusters, "paragraphs_per_theme": summary.paragraphs_per_theme}}
    tagger = ThemeTagger(theme_list, embedder, head, config)
    if corrections is not None:
        config["training"]["assignments"] = str(corrections.path)
    if out is not None:
        files = {"clusters.md": cluster_report(infos, texts, theme_list, vars(summary)),
                 review.FILE_NAME: review.assignments_csv(infos, texts, theme_list, fingerprint)}
        if report:
            files |= stages.run("report", html_report.training_report, paragraphs, embeddings, sample, labels, infos,
                                head.training_scores(features, len(texts)), theme_list, head.thresholds_, vars(summary),
                                seed, cache_root, f"theme-tagger report: {Path(out).name}")
        summary.out = str(stages.run("save", tagger.save, out, files))
    tagger.training_labels_ = pseudo   # kept on the object for inspection and benchmarks; not saved
    tagger.training_paragraphs_ = paragraphs
    return tagger, summary


def _theme_notes(themes: list[Theme], pseudo, prompt_targets: np.ndarray, head: ThemeClassifier) -> list[str]:
    """What the user should know about a theme the model learnt badly or not at all, one line each."""
    learnt = (pseudo.targets & pseudo.mask).sum(axis=0)           # the corpus's paragraphs it learnt the theme from
    against = (~pseudo.targets & pseudo.mask).sum(axis=0)         # and those it learnt it is not
    positives = learnt + prompt_targets.sum(axis=0)
    negatives = against + (~prompt_targets).sum(axis=0)
    notes = []
    for k, t in enumerate(themes):
        if not head.trained_[k]:
            notes.append(f"theme {t.id!r}: too few training paragraphs for and against it ({positives[k]} and "
                         f"{negatives[k]}, the theme file's texts included) to learn it, so the model gives it only "
                         "to a paragraph that names it (one of its keywords) and is about no theme it does not name. "
                         "Add a theme, or articles that are not about it, to the corpus")
        elif learnt[k] == 0:
            notes.append(f"theme {t.id!r}: no paragraph of the corpus was labelled with it, so the model knows it only "
                         "from the theme file's own texts and will give it rarely, if ever. Add keywords (phrases that "
                         "name the theme) or examples in the corpus's own words to the theme file, or a few articles "
                         "about it to the corpus")
        elif against[k] == 0:
            notes.append(f"theme {t.id!r}: every paragraph of the corpus it learnt from carries it, so only the "
                         "other themes' texts show the model what it is not, and it may be given to text about "
                         "anything else. Check its keywords (does one match every paragraph?), or add articles that "
                         "are not about it to the corpus")
        guarded = 0 if pseudo.unlike is None else int(pseudo.unlike[:, k].sum())
        if guarded > learnt[k]:
            # More paragraphs that looked like the theme went to its counterexamples than it kept: they likely
            # describe the theme itself, not a neighbour.
            notes.append(f"theme {t.id!r}: {guarded} paragraphs that look like it were left without it because they "
                         f"are nearer to its counterexamples, more than the {learnt[k]} it learnt from. Check that "
                         "its counterexamples are about a neighbouring subject, not the theme itself")
    return notes
