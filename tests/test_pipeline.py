"""Tests for model.train (the whole pipeline) with the fake embedder, and for the embedding cache."""

from __future__ import annotations

import json
import logging
import re
import sqlite3
from importlib import metadata

import numpy as np
import pytest
import sklearn
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA

import model
import model.cluster
from model import UserInputError, load_themes
from model.corpus import Article, paragraphs_of, read_corpus
from model.classifier import ThemeClassifier
from model.embed import EmbeddingCache, embed_texts

THEME_IDS = ["farm_shop", "cloud_data", "city_traffic"]


def top_theme(result) -> str | None:
    return result.themes[0] if result.themes else None


def accuracy(tagger, pairs) -> float:
    """Share of theme articles whose best given theme is their own ("none" articles left out)."""
    themed = [(kind, text) for kind, text in pairs if kind is not None]
    results = tagger.tag_many([text for _, text in themed])
    return float(np.mean([top_theme(r) == kind for (kind, _), r in zip(themed, results)]))


def heldout_scores(tagger, synthetic) -> np.ndarray:
    results = tagger.tag_many([text for _, text in synthetic.heldout])
    return np.array([[r.scores[t] for t in tagger.themes] for r in results])


class Counting:
    """Wraps an embedder and records every text it is asked to encode."""

    def __init__(self, inner, model_id: str | None = None):
        self.inner = inner
        self.id = model_id or inner.id
        self.spec = inner.spec
        self.max_words = inner.max_words
        self.calls: list[list[str]] = []

    def encode(self, texts, show_progress: bool = False):
        self.calls.append(list(texts))
        return self.inner.encode(texts, show_progress=show_progress)

    @property
    def encoded(self) -> list[str]:
        return [t for call in self.calls for t in call]


# ---------------------------------------------------------------------------------------------- training

def test_themes_follow_the_theme_file_order(trained) -> None:
    assert trained.tagger.themes == THEME_IDS
    assert [t.id for t in trained.tagger.theme_defs] == THEME_IDS
    assert list(trained.tagger.thresholds) == THEME_IDS


def test_summary_counts_are_consistent(trained, synthetic, fake_embedder) -> None:
    s = trained.summary
    expected = paragraphs_of(read_corpus(synthetic.corpus_dir), fake_embedder.max_words)
    assert s.articles == len(synthetic.articles)
    assert s.paragraphs == len(expected) == len(trained.tagger.training_paragraphs_)
    assert [p.text for p in trained.tagger.training_paragraphs_] == [p.text for p in expected]
    assert list(s.paragraphs_per_theme) == THEME_IDS
    for theme, n in s.paragraphs_per_theme.items():
        assert 0 <= n <= s.paragraphs, theme
    targets = trained.tagger.training_labels_.targets
    assert targets.shape == (s.paragraphs, len(THEME_IDS))
    assert list(targets.sum(axis=0)) == list(s.paragraphs_per_theme.values())
    assert 1 <= s.clusters <= s.paragraphs
    assert s.seed == 0
    assert s.embedding_model == fake_embedder.spec
    assert s.out == str(trained.out)
    assert {"embed", "reduce", "cluster", "label", "classifier", "save"} <= set(s.seconds)
    assert all(v >= 0 for v in s.seconds.values())


def test_every_theme_gets_training_paragraphs_but_not_all(trained) -> None:
    # The corpus has paragraphs of every theme and "none" articles, so each theme is learnable.
    per_theme = trained.summary.paragraphs_per_theme
    assert all(0 < n < trained.summary.paragraphs for n in per_theme.values()), per_theme


def test_theme_articles_get_their_theme_first(trained, synthetic) -> None:
    training_pairs = [(synthetic.truth[a.id], a.text) for a in synthetic.articles]
    assert accuracy(trained.tagger, training_pairs) >= 0.7
    assert accuracy(trained.tagger, synthetic.heldout) >= 0.7


def test_each_theme_is_found_in_its_own_articles(trained, synthetic) -> None:
    # Per theme, not just overall: a theme that is never predicted cannot hide behind the others.
    for theme in THEME_IDS:
        own = [(k, t) for k, t in synthetic.heldout if k == theme]
        assert accuracy(trained.tagger, own) >= 0.5, theme


def test_none_articles_get_fewer_themes(trained, synthetic) -> None:
    pairs = [(synthetic.truth[a.id], a.text) for a in synthetic.articles] + synthetic.heldout
    results = trained.tagger.tag_many([text for _, text in pairs])
    themed = [len(r.themes) for (k, _), r in zip(pairs, results) if k is not None]
    none = [len(r.themes) for (k, _), r in zip(pairs, results) if k is None]
    assert none and themed
    assert np.mean(none) < np.mean(themed)


def test_cluster_report_mentions_every_cluster(trained) -> None:
    report = (trained.out / "clusters.md").read_text(encoding="utf-8")
    s = trained.summary
    assert f"{s.paragraphs} paragraphs from {s.articles} articles" in report
    assert len(re.findall(r"^## Cluster ", report, flags=re.M)) == s.clusters
    labels = {t.id: t.label for t in trained.tagger.theme_defs}
    clustered = [i for i in trained.infos if i.id != model.cluster.OUTLIER]
    assert len(clustered) == s.clusters
    for info in trained.infos:
        assert info.keywords, f"cluster {info.id} has no keywords"
        section = report.split(f"({info.size} paragraphs)")
        assert len(section) >= 2, f"cluster {info.id} has no section"
        assert ", ".join(info.keywords) in report, (info.id, info.keywords)
        for theme in info.themes:
            assert labels[theme] in report


def test_config_json(trained, fake_embedder) -> None:
    config = json.loads((trained.out / "config.json").read_text(encoding="utf-8"))
    assert [t["id"] for t in config["themes"]] == THEME_IDS
    assert config["themes"][0]["keywords"][:2] == ["farmers", "village"]
    assert config["thresholds"] == pytest.approx(trained.tagger.thresholds)
    assert list(config["thresholds"]) == THEME_IDS
    assert all(0 < v < 1 for v in config["thresholds"].values())
    assert config["seed"] == 0
    assert config["clusterer"] == "hdbscan"
    assert config["versions"]["numpy"] == np.__version__
    assert config["versions"]["scikit-learn"] == sklearn.__version__
    assert config["versions"]["torch"] == metadata.version("torch")
    assert config["embedding_model"]["spec"] == fake_embedder.spec
    assert config["embedding_model"]["id"] == fake_embedder.id
    assert config["training"]["paragraphs"] == trained.summary.paragraphs
    assert config["training"]["paragraphs_per_theme"] == trained.summary.paragraphs_per_theme


def test_same_seed_gives_identical_model(trained, synthetic, fake_embedder) -> None:
    again, summary = model.train(synthetic.corpus_dir, synthetic.themes_path, embedder=fake_embedder,
                                 cache_dir=None, progress=False)
    assert summary.out is None
    assert summary.clusters == trained.summary.clusters
    assert summary.paragraphs_per_theme == trained.summary.paragraphs_per_theme
    assert again.thresholds == trained.tagger.thresholds
    np.testing.assert_array_equal(again.training_labels_.targets, trained.tagger.training_labels_.targets)
    np.testing.assert_array_equal(heldout_scores(again, synthetic), heldout_scores(trained.tagger, synthetic))


def test_in_memory_articles_and_themes(trained, synthetic, fake_embedder, tmp_path) -> None:
    articles = [Article(a.id, a.text) for a in synthetic.articles]
    themes = load_themes(synthetic.themes_path)
    tagger, summary = model.train(articles, themes, embedder=fake_embedder, cache_dir=None, progress=False,
                                  out=tmp_path / "m")
    assert tagger.themes == THEME_IDS
    config = json.loads((tmp_path / "m" / "config.json").read_text(encoding="utf-8"))
    assert config["training"]["corpus"] == "(in memory)"
    np.testing.assert_array_equal(heldout_scores(tagger, synthetic), heldout_scores(trained.tagger, synthetic))


def test_a_themes_counterexamples_reach_the_labelling_and_the_saved_model(synthetic, fake_embedder, tmp_path) -> None:
    from dataclasses import replace

    from conftest import POOLS
    from model import ThemeTagger

    # Without keywords a theme's paragraphs carry it by similarity alone. A counterexample made of the farm theme's
    # own vocabulary (and none of its "sold online" words) lies nearer to the farm paragraphs than the theme's texts
    # do, so the labelling must give farm_shop to fewer of them.
    themes = [replace(t, keywords=()) for t in load_themes(synthetic.themes_path)]
    plain, _ = model.train(synthetic.articles, themes, embedder=fake_embedder, cache_dir=None, progress=False)
    guarded = [replace(t, counterexamples=(" ".join(POOLS["farm_shop"]),)) if t.id == "farm_shop" else t
               for t in themes]
    after, summary = model.train(synthetic.articles, guarded, embedder=fake_embedder, cache_dir=None, progress=False,
                                 out=tmp_path / "m")
    before, now = (m.training_labels_.targets[:, 0].sum() for m in (plain, after))
    assert before > 0 and now < before
    loaded = ThemeTagger.load(tmp_path / "m", embedder=fake_embedder)
    assert [t.counterexamples for t in loaded.theme_defs] == [t.counterexamples for t in guarded]
    # clusters.md says so, where it decided a cluster's farm theme; the unguarded run says nothing of the kind.
    assert re.search(r"- Farm produce sold online: .*\d+ of its \d+ paragraphs look like it but are nearer to its counterexamples",
                     (tmp_path / "m" / "clusters.md").read_text(encoding="utf-8"))
    assert after.training_labels_.unlike[:, 0].any() and not after.training_labels_.unlike[:, 1:].any()
    assert plain.training_labels_.unlike is None
    # That counterexample is the theme's own vocabulary, and took most of what looked like the theme: training says so.
    assert any(w.startswith("theme 'farm_shop':") and "not the theme itself" in w for w in summary.warnings), \
        summary.warnings
    # One about a neighbouring subject (city traffic, for the farm theme) takes nothing and draws no such warning.
    neighbour = [replace(t, counterexamples=(" ".join(POOLS["city_traffic"]),)) if t.id == "farm_shop" else t
                 for t in themes]
    _, quiet = model.train(synthetic.articles, neighbour, embedder=fake_embedder, cache_dir=None, progress=False)
    assert not any("counterexamples" in w for w in quiet.warnings), quiet.warnings


def test_kmeans_clusterer(synthetic, fake_embedder, monkeypatch) -> None:
    made = []
    real_default = model.cluster.default_clusterer

    def spy(method, *args, **kwargs):
        made.append((method, real_default(method, *args, **kwargs)))
        return made[-1][1]

    monkeypatch.setattr(model.cluster, "default_clusterer", spy)
    tagger, summary = model.train(synthetic.corpus_dir, synthetic.themes_path, embedder=fake_embedder,
                                  cache_dir=None, progress=False, clusterer="kmeans")
    assert len(made) == 1 and made[0][0] == "kmeans"
    assert isinstance(made[0][1], KMeans), "the kmeans clusterer was not used"
    assert summary.clusters == made[0][1].n_clusters >= 2
    assert tagger.config["clusterer"] == "kmeans"
    assert accuracy(tagger, synthetic.heldout) >= 0.7


def test_custom_reducer_and_clusterer_are_used(synthetic, fake_embedder, monkeypatch, tmp_path) -> None:
    seen = {}

    class SpyPCA(PCA):
        def fit_transform(self, X, y=None):
            seen["reduce_in"] = np.asarray(X).shape
            out = super().fit_transform(X, y)
            seen["reduce_out"] = out.shape
            return out

    class SpyKMeans(KMeans):
        def fit_predict(self, X, y=None, sample_weight=None):
            seen["cluster_in"] = np.asarray(X).shape
            return super().fit_predict(X, y, sample_weight=sample_weight)

    def no_default(*args, **kwargs):
        raise AssertionError("the default stage was used although a custom one was passed")

    monkeypatch.setattr(model.cluster, "default_reducer", no_default)
    monkeypatch.setattr(model.cluster, "default_clusterer", no_default)
    tagger, summary = model.train(synthetic.corpus_dir, synthetic.themes_path, embedder=fake_embedder,
                                  cache_dir=None, progress=False, out=tmp_path / "m",
                                  reducer_model=SpyPCA(n_components=6, random_state=0),
                                  clusterer_model=SpyKMeans(n_clusters=3, n_init=3, random_state=0))
    assert seen["reduce_in"] == (summary.paragraphs, 64)
    assert seen["reduce_out"] == (summary.paragraphs, 6)
    assert seen["cluster_in"] == (summary.paragraphs, 6)
    assert summary.clusters == 3
    assert len(re.findall(r"^## Cluster ", (tmp_path / "m" / "clusters.md").read_text(), flags=re.M)) == 3
    assert accuracy(tagger, synthetic.heldout) >= 0.7


def test_custom_classifier_is_used(synthetic, fake_embedder) -> None:
    head = model.classifier.ThemeClassifier(C=0.5, tfidf_weight=0.0, random_state=0)
    tagger, _ = model.train(synthetic.corpus_dir, synthetic.themes_path, embedder=fake_embedder,
                            cache_dir=None, progress=False, classifier=head)
    # Like scikit-learn's meta-estimators, train() fits clones: the settings carry over, the caller's object stays unfitted.
    assert tagger.classifier.get_params() == head.get_params()
    assert not hasattr(head, "coef_")
    assert tagger.classifier.vectorizer_ is None  # tfidf_weight=0: no word features
    assert accuracy(tagger, synthetic.heldout) >= 0.7


def test_unknown_clusterer(synthetic, fake_embedder) -> None:
    with pytest.raises(UserInputError, match=r"clusterer must be one of hdbscan, kmeans"):
        model.train(synthetic.corpus_dir, synthetic.themes_path, embedder=fake_embedder, cache_dir=None,
                    progress=False, clusterer="dbscan")


def test_out_with_unrelated_files_fails_before_embedding(synthetic, fake_embedder, tmp_path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "thesis.docx").write_bytes(b"precious")
    counting = Counting(fake_embedder)
    with pytest.raises(UserInputError, match=r"holds files that are not a saved model"):
        model.train(synthetic.corpus_dir, synthetic.themes_path, embedder=counting, cache_dir=None,
                    progress=False, out=out)
    assert counting.calls == []
    assert [p.name for p in out.iterdir()] == ["thesis.docx"]
    assert (out / "thesis.docx").read_bytes() == b"precious"


def test_corpus_with_nothing_left_after_cleaning(synthetic, fake_embedder) -> None:
    articles = [Article("a", "Leave a Reply"), Article("b", "http://example.com/x")]
    with pytest.raises(UserInputError, match=r"no paragraphs left"):
        model.train(articles, synthetic.themes_path, embedder=fake_embedder, cache_dir=None, progress=False)


def test_training_reuses_the_embedding_cache(synthetic, fake_embedder, tmp_path) -> None:
    first = Counting(fake_embedder)
    tagger1, summary = model.train(synthetic.corpus_dir, synthetic.themes_path, embedder=first,
                                   cache_dir=tmp_path / "cache", progress=False)
    assert (tmp_path / "cache" / "embeddings.sqlite").is_file()
    paragraphs = {p.text for p in tagger1.training_paragraphs_}
    assert paragraphs <= set(first.encoded)

    second = Counting(fake_embedder)
    tagger2, _ = model.train(synthetic.corpus_dir, synthetic.themes_path, embedder=second,
                             cache_dir=tmp_path / "cache", progress=False)
    prompts = {p for t in tagger2.theme_defs for p in t.prompts()}
    assert set(second.encoded) <= prompts, "cached paragraphs were embedded again"
    np.testing.assert_array_equal(heldout_scores(tagger1, synthetic), heldout_scores(tagger2, synthetic))


# ---------------------------------------------------------------------------------------------- embedding cache

TEXTS = ["farmers sell apples online", "servers in the datacentre", "traffic at the intersections",
         "the minister welcomed the guests"]


def test_cache_skips_texts_it_has(fake_embedder, tmp_path) -> None:
    emb = Counting(fake_embedder)
    cache = EmbeddingCache(tmp_path / "emb.sqlite")
    first = embed_texts(TEXTS, emb, cache)
    assert sorted(emb.encoded) == sorted(TEXTS)
    np.testing.assert_array_equal(first, fake_embedder.encode(TEXTS))

    emb.calls.clear()
    more = TEXTS + ["a brand new text about honey"]
    second = embed_texts(more, emb, cache)
    assert emb.encoded == ["a brand new text about honey"]
    assert second.dtype == np.float32 and second.shape == (5, 64)
    np.testing.assert_array_equal(second, fake_embedder.encode(more))

    emb.calls.clear()
    reopened = EmbeddingCache(tmp_path / "emb.sqlite")   # the cache lives on disk, not in the object
    third = embed_texts(list(reversed(more)), emb, reopened)
    assert emb.calls == []
    np.testing.assert_array_equal(third, fake_embedder.encode(list(reversed(more))))


def test_cache_keys_on_the_embedder_id(fake_embedder, tmp_path) -> None:
    cache = EmbeddingCache(tmp_path / "emb.sqlite")
    embed_texts(TEXTS, Counting(fake_embedder), cache)
    other = Counting(fake_embedder, model_id="fake:another-model")
    embed_texts(TEXTS, other, cache)
    assert sorted(other.encoded) == sorted(TEXTS)


def test_damaged_cache_file_is_replaced(fake_embedder, tmp_path, caplog) -> None:
    path = tmp_path / "emb.sqlite"
    path.write_bytes(bytes(range(256)) * 32)
    emb = Counting(fake_embedder)
    with caplog.at_level(logging.WARNING, logger="model.embed"):
        cache = EmbeddingCache(path)
        out = embed_texts(TEXTS, emb, cache)
    assert "damaged" in caplog.text
    assert sorted(emb.encoded) == sorted(TEXTS)
    np.testing.assert_array_equal(out, fake_embedder.encode(TEXTS))
    # The new file works as a cache again.
    emb.calls.clear()
    embed_texts(TEXTS, emb, EmbeddingCache(path))
    assert emb.calls == []


def test_cache_with_foreign_table_is_not_trusted(fake_embedder, tmp_path, caplog) -> None:
    path = tmp_path / "emb.sqlite"
    db = sqlite3.connect(path)
    db.execute(f"CREATE TABLE {EmbeddingCache.TABLE} (something TEXT)")
    db.commit()
    db.close()
    emb = Counting(fake_embedder)
    with caplog.at_level(logging.WARNING, logger="model.embed"):
        out = embed_texts(TEXTS, emb, EmbeddingCache(path))
    assert sorted(emb.encoded) == sorted(TEXTS)
    np.testing.assert_array_equal(out, fake_embedder.encode(TEXTS))
    assert caplog.records, "a cache it cannot use should be reported"


def test_cache_row_with_wrong_length_is_ignored(fake_embedder, tmp_path) -> None:
    path = tmp_path / "emb.sqlite"
    embed_texts(TEXTS, fake_embedder, EmbeddingCache(path))
    db = sqlite3.connect(path)
    key = EmbeddingCache.key(fake_embedder.id, TEXTS[1])
    assert db.execute("UPDATE vectors SET vec = ? WHERE key = ?", (b"\x00" * 10, key)).rowcount == 1
    other = EmbeddingCache.key(fake_embedder.id, TEXTS[2])
    assert db.execute("UPDATE vectors SET dim = 7 WHERE key = ?", (other,)).rowcount == 1
    db.commit()
    db.close()

    emb = Counting(fake_embedder)
    out = embed_texts(TEXTS, emb, EmbeddingCache(path))
    assert sorted(emb.encoded) == sorted([TEXTS[1], TEXTS[2]])
    np.testing.assert_array_equal(out, fake_embedder.encode(TEXTS))


def test_large_corpus_clusters_a_sample_and_assigns_the_rest(synthetic, fake_embedder) -> None:
    # max_fit below the corpus size: UMAP and the clusterer see a sample, every paragraph still gets a cluster.
    seen = {}

    class SpyKMeans(KMeans):
        def fit_predict(self, X, y=None, sample_weight=None):
            seen["fitted_rows"] = len(X)
            return super().fit_predict(X)

    tagger, summary = model.train(synthetic.corpus_dir, synthetic.themes_path, embedder=fake_embedder,
                                  cache_dir=None, progress=False, max_fit=40,
                                  clusterer_model=SpyKMeans(n_clusters=3, n_init=3, random_state=0))
    assert seen["fitted_rows"] == 40 < summary.paragraphs
    assert summary.clusters == 3
    assert accuracy(tagger, synthetic.heldout) >= 0.7


@pytest.mark.parametrize(("themes", "pattern"), [
    ([], r"a non-empty list of Theme objects"),
    (["farm"], r"every item must be a Theme, got str"),
    ([model.Theme("a", "A", "One."), model.Theme("a", "A", "Two.")], r"the id\(s\) 'a' appear more than once"),
    ([model.Theme("a\nb", "A", "One.")], r"may not hold control characters"),
    ([model.Theme("a\n", "A", "One.")], r"may not hold control characters"),
    ([model.Theme(" a", "A", "One.")], r"may not start or end with spaces"),
    ([model.Theme("a;b", "A", "One.")], r"or ';'"),
    ([model.Theme("a", "A", "One.", counterexamples="Factories export goods.")],
     r"theme 'a': `counterexamples` must be a list of non-empty strings"),
    ([model.Theme("a", "A", "One.", keywords=("farm", " "))], r"theme 'a': `keywords` must be a list"),
    ("[a]\ndescription = 'A theme file's text, not its path.'\n", r"parse a theme file's text with"),
])
def test_themes_given_as_objects_are_checked_as_a_theme_file_is(synthetic, fake_embedder, themes, pattern) -> None:
    # checked before the embedding: two themes of one id once trained, and tagging kept only one score of the two
    with pytest.raises(UserInputError, match=pattern):
        model.train(synthetic.corpus_dir, themes, embedder=fake_embedder, cache_dir=None, progress=False)


@pytest.mark.parametrize("settings", [{"self_training_rounds": -1}, {"self_training_rounds": 1.5},
                                      {"classifier": ThemeClassifier(C=0)},
                                      {"classifier": ThemeClassifier(max_features=0)}])
def test_bad_training_settings_are_one_clear_error(synthetic, fake_embedder, settings) -> None:
    with pytest.raises(UserInputError, match=r"self_training_rounds must be|ThemeClassifier settings"):
        model.train(synthetic.corpus_dir, synthetic.themes_path, embedder=fake_embedder, cache_dir=None,
                    progress=False, **settings)


def test_a_theme_the_model_cannot_learn_is_named_in_the_summary(fake_embedder) -> None:
    # One theme and a corpus of one paragraph over and over: nothing is against it, so the classifier is left
    # untrained; that was a log line naming "theme 0", not a warning in the summary.
    themes = [model.Theme("cloud_data", "Cloud data", "Cloud computing in a datacentre: servers, storage.")]
    articles = [Article(f"a{i}", "Cloud servers in the datacentre racks store backups.") for i in range(5)]
    tagger, summary = model.train(articles, themes, embedder=fake_embedder, cache_dir=None, progress=False)
    assert not tagger.classifier.trained_[0]
    assert any(w.startswith("theme 'cloud_data': too few training paragraphs") for w in summary.warnings)


def test_fewer_clusters_than_themes_is_named_in_the_summary(synthetic, fake_embedder) -> None:
    # One cluster for the synthetic corpus's themes: the clusters cannot stand for them, and the summary says so.
    from sklearn.cluster import KMeans

    themes = load_themes(synthetic.themes_path)
    assert len(themes) > 1
    _, summary = model.train(synthetic.corpus_dir, themes, embedder=fake_embedder, cache_dir=None, progress=False,
                             clusterer="kmeans", clusterer_model=KMeans(n_clusters=1, n_init=1, random_state=0))
    assert summary.clusters == 1
    assert any(w.startswith(f"the clusterer found 1 cluster for {len(themes)} themes") for w in summary.warnings)
    assert all(n > 0 for n in summary.paragraphs_per_theme.values())   # no theme was voted away


def test_a_theme_every_paragraph_carries_is_named_in_the_summary(synthetic, fake_embedder) -> None:
    # A keyword in every paragraph gives the theme every training row of the corpus: nothing shows what it is not.
    farm = load_themes(synthetic.themes_path)
    keyword = farm[0].keywords[0]
    articles = [Article(a.id, "\n\n".join(f"{p.strip()} {keyword}." for p in a.text.split("\n\n") if p.strip()))
                for a in synthetic.articles]
    _, summary = model.train(articles, farm, embedder=fake_embedder, cache_dir=None, progress=False)
    assert any(w.startswith(f"theme {farm[0].id!r}: every paragraph of the corpus it learnt from carries it")
               for w in summary.warnings), summary.warnings


@pytest.mark.parametrize("max_fit", [0, -5, 2.5, True])
def test_max_fit_must_be_a_whole_number_of_at_least_one(synthetic, fake_embedder, max_fit) -> None:
    with pytest.raises(UserInputError, match=r"max_fit must be a whole number of at least 1"):
        model.train(synthetic.corpus_dir, synthetic.themes_path, embedder=fake_embedder, cache_dir=None,
                    progress=False, max_fit=max_fit)


def test_reduced_coordinates_are_cached_and_damage_is_recomputed(tmp_path) -> None:
    from model.cluster import reduce

    class CountingPCA:
        calls = 0

        def fit_transform(self, x):
            CountingPCA.calls += 1
            return x[:, :3] * 2

        def __repr__(self):
            return "CountingPCA(3)"

    x = np.random.RandomState(0).rand(20, 8).astype(np.float32)
    first = reduce(x, seed=0, reducer=CountingPCA(), cache_dir=tmp_path)
    again = reduce(x, seed=0, reducer=CountingPCA(), cache_dir=tmp_path)
    assert CountingPCA.calls == 1 and np.array_equal(first, again)
    reduce(x, seed=1, reducer=CountingPCA(), cache_dir=tmp_path)           # another seed is another key
    assert CountingPCA.calls == 2
    for f in (tmp_path / "reduced").glob("*.npz"):
        f.write_bytes(b"garbage")
    assert np.array_equal(reduce(x, seed=0, reducer=CountingPCA(), cache_dir=tmp_path), first)
    assert CountingPCA.calls == 3


def test_a_theme_no_paragraph_carries_is_warned_about(synthetic, fake_embedder, caplog) -> None:
    # Twelve articles of farm words only: nothing in them is about cloud computing or city traffic.
    import random

    from conftest import POOLS

    rng = random.Random(0)
    farm_only = [Article(f"f{i}", "\n\n".join(" ".join(rng.choices(POOLS["farm_shop"], k=12)).capitalize() + "."
                                                for _ in range(3))) for i in range(12)]
    with caplog.at_level("WARNING", logger="model.pipeline"):
        _, summary = model.train(farm_only, synthetic.themes_path, embedder=fake_embedder, cache_dir=None,
                                 progress=False)
    assert summary.paragraphs_per_theme["farm_shop"] > 0
    assert summary.paragraphs_per_theme["city_traffic"] == 0
    warned = [w for w in summary.warnings if "'city_traffic'" in w]
    assert len(warned) == 1 and "keywords" in warned[0]              # it says what to add
    # farm_shop is learnt, from every paragraph: that warning, not the one for a theme no paragraph carries
    farm = [w for w in summary.warnings if "'farm_shop'" in w]
    assert len(farm) == 1 and farm[0].startswith("theme 'farm_shop': every paragraph of the corpus"), farm
    assert any("'city_traffic'" in r.getMessage() for r in caplog.records)
