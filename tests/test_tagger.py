"""Tests for ThemeTagger: tagging one or many articles, evidence, and saving / loading the model folder."""

from __future__ import annotations

import json
import shutil
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from model import ParagraphTags, TagResult, ThemeTagger, UserInputError

FARM = ("Farmers in the village packed apples and honey from the orchard into parcels. "
        "The ecommerce webshop sold walnuts and mushrooms to buyers.\n\n"
        "The minister welcomed the guests at a banquet after the ceremony.\n\n"
        "Growers said the harvest of peaches and tea went to the webshop too.")
CITY = ("Traffic at the intersections eased after new signals and sensors went in. "
        "Buses and trams now get their own lanes, and commuters find parking faster.")
MIXED = ("Servers in the cloud datacentre store the databases, with cooling and bandwidth for analytics.\n\n"
         "Traffic sensors at the junctions send data about congestion, buses and parking.")
NONE = ("The delegation was welcomed at a banquet. The minister gave a speech of gratitude and friendship, "
        "and the guests raised a toast at the reception.")
SAMPLES = [FARM, CITY, MIXED, NONE, "", "Leave a Reply", "Short."]


def as_tuple(result: TagResult):
    """Everything a result says, for exact comparison."""
    return (result.scores, result.themes, [(p.text, p.scores, p.themes) for p in result.paragraphs])


def assert_same_results(got: list[TagResult], expected: list[TagResult]) -> None:
    """Same themes, paragraphs and order; scores equal up to float32 rounding (batching changes the BLAS path)."""
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        assert g.themes == e.themes
        assert g.scores == pytest.approx(e.scores, abs=1e-6)
        assert [(p.text, p.themes) for p in g.paragraphs] == [(p.text, p.themes) for p in e.paragraphs]
        for gp, ep in zip(g.paragraphs, e.paragraphs):
            assert gp.scores == pytest.approx(ep.scores, abs=1e-6)


def scores_of(tagger: ThemeTagger, texts=SAMPLES) -> np.ndarray:
    return np.array([[r.scores[t] for t in tagger.themes] for r in tagger.tag_many(texts)])


@pytest.fixture
def saved(trained, tmp_path) -> Path:
    """A private copy of the trained model folder, safe to damage."""
    path = tmp_path / "model"
    shutil.copytree(trained.out, path)
    return path


# ---------------------------------------------------------------------------------------------- tagging

@pytest.mark.parametrize("text", SAMPLES[:4], ids=["farm", "city", "mixed", "none"])
def test_tag_result_shape(trained, text) -> None:
    tagger = trained.tagger
    result = tagger.tag(text)
    assert isinstance(result, TagResult)
    assert list(result.scores) == tagger.themes
    assert all(isinstance(v, float) and 0.0 <= v <= 1.0 for v in result.scores.values())
    thresholds = tagger.thresholds
    assert set(result.themes) == {t for t in tagger.themes if result.scores[t] >= thresholds[t]}
    assert [result.scores[t] for t in result.themes] == sorted((result.scores[t] for t in result.themes),
                                                              reverse=True)
    assert result.paragraphs and all(isinstance(p, ParagraphTags) for p in result.paragraphs)
    for p in result.paragraphs:
        assert isinstance(p.text, str) and p.text.strip()
        assert list(p.scores) == tagger.themes
        assert all(0.0 <= v <= 1.0 for v in p.scores.values())
        assert set(p.themes) == {t for t in tagger.themes if p.scores[t] >= thresholds[t]}
        assert [p.scores[t] for t in p.themes] == sorted((p.scores[t] for t in p.themes), reverse=True)
    # An article scores what its best paragraph scores.
    for t in tagger.themes:
        assert result.scores[t] == pytest.approx(max(p.scores[t] for p in result.paragraphs))


def test_themes_are_exactly_those_past_their_thresholds(trained, synthetic) -> None:
    # The graded texts score all over [0, 1], so some land on either side of a theme's cut, and a wrong
    # comparison would show up.
    tagger = trained.tagger
    cut = tagger.thresholds
    texts = synthetic.graded + [a.text for a in synthetic.articles] + [t for _, t in synthetic.heldout]
    results = tagger.tag_many(texts)
    below = [r for r in results if any(0.001 < r.scores[t] < cut[t] for t in cut)]
    above = [r for r in results if any(cut[t] <= r.scores[t] < 0.999 for t in cut)]
    assert below and above, "no score landed on both sides of a cut; the check below would prove little"
    units = [(r.scores, r.themes) for r in results] + [(p.scores, p.themes) for r in results for p in r.paragraphs]
    for scores, themes in units:
        assert themes == sorted((t for t in tagger.themes if scores[t] >= cut[t]), key=lambda t: -scores[t])


def test_paragraphs_follow_the_article(trained) -> None:
    result = trained.tagger.tag(FARM)
    assert [p.text for p in result.paragraphs] == [part.strip() for part in FARM.split("\n\n")]


def test_themes_found_where_expected(trained) -> None:
    tagger = trained.tagger
    assert tagger.tag(FARM).themes[:1] == ["farm_shop"]
    assert tagger.tag(CITY).themes[:1] == ["city_traffic"]
    assert set(tagger.tag(MIXED).themes) >= {"cloud_data", "city_traffic"}
    assert tagger.tag(NONE).themes == []


def test_evidence(trained) -> None:
    result = trained.tagger.tag(MIXED)
    assert result.themes
    for theme in trained.tagger.themes:
        evidence = result.evidence(theme)
        assert all(theme in p.themes for p in evidence)
        assert len(evidence) == sum(theme in p.themes for p in result.paragraphs)
        assert [p.scores[theme] for p in evidence] == sorted((p.scores[theme] for p in evidence), reverse=True)
        # An article carries a theme exactly when one of its paragraphs does.
        assert bool(evidence) == (theme in result.themes)
    cloud = result.evidence("cloud_data")
    assert cloud and "datacentre" in cloud[0].text
    assert result.evidence("no_such_theme") == []


def test_farm_evidence_leaves_out_the_ceremony(trained) -> None:
    evidence = trained.tagger.tag(FARM).evidence("farm_shop")
    assert evidence
    assert all("banquet" not in p.text for p in evidence)


def test_tag_many_list_matches_tag(trained) -> None:
    tagger = trained.tagger
    one_by_one = [tagger.tag(t) for t in SAMPLES]
    for batch_size in (64, 3, 1):
        results = tagger.tag_many(SAMPLES, batch_size=batch_size)
        assert isinstance(results, list)
        assert_same_results(results, one_by_one)
    assert_same_results(tagger.tag_many(tuple(SAMPLES)), one_by_one)
    assert tagger.tag_many([]) == []


def test_tag_many_is_repeatable(trained) -> None:
    first = trained.tagger.tag_many(SAMPLES)
    assert [as_tuple(r) for r in trained.tagger.tag_many(SAMPLES)] == [as_tuple(r) for r in first]


def test_tag_many_generator_is_lazy(trained) -> None:
    tagger = trained.tagger
    pulled = []

    def articles():
        for text in SAMPLES * 3:
            pulled.append(text)
            yield text

    stream = tagger.tag_many(articles(), batch_size=4)
    assert not isinstance(stream, list)
    assert isinstance(stream, Iterator)
    assert pulled == [], "nothing should be read before the first result is asked for"
    first = next(stream)
    assert 1 <= len(pulled) <= 4
    rest = list(stream)
    assert len(pulled) == len(SAMPLES) * 3
    assert_same_results([first, *rest], tagger.tag_many(SAMPLES * 3, batch_size=4))


def test_tag_many_other_iterables(trained) -> None:
    tagger = trained.tagger
    expected = tagger.tag_many(SAMPLES)
    assert_same_results(list(tagger.tag_many(iter(SAMPLES))), expected)
    assert_same_results(list(tagger.tag_many(t for t in SAMPLES)), expected)


@pytest.mark.parametrize("text", ["", "   \n\n  ", "Leave a Reply", "* * *"])
def test_article_with_no_text_gets_no_themes(trained, text) -> None:
    result = trained.tagger.tag(text)
    assert list(result.scores) == trained.tagger.themes
    assert all(v == pytest.approx(0.0, abs=1e-6) for v in result.scores.values())
    assert result.themes == [] and result.paragraphs == []
    assert result.evidence("farm_shop") == []


def test_empty_article_in_a_batch_keeps_its_place(trained) -> None:
    results = trained.tagger.tag_many(["", FARM, "", CITY])
    assert [r.themes[:1] for r in results] == [[], ["farm_shop"], [], ["city_traffic"]]


def test_tag_and_tag_many_agree_on_one_article(trained) -> None:
    (many,) = trained.tagger.tag_many([FARM])
    assert as_tuple(many) == as_tuple(trained.tagger.tag(FARM))   # one article: the very same computation


@pytest.mark.parametrize("bad", [[FARM], (FARM,), None, b"bytes", 3])
def test_tag_takes_one_str(trained, bad) -> None:
    with pytest.raises(TypeError, match="str"):
        trained.tagger.tag(bad)


def test_tag_many_refuses_a_str(trained) -> None:
    with pytest.raises(TypeError, match="tag_many"):
        trained.tagger.tag_many(FARM)


def test_tag_many_refuses_non_str_items(trained) -> None:
    with pytest.raises(TypeError, match="str"):
        trained.tagger.tag_many([FARM, 3])


@pytest.mark.parametrize("size", [0, -1, 1.5, True])
def test_tag_many_refuses_a_batch_of_no_articles(trained, size) -> None:
    # 0 once tagged nothing and said nothing: an empty list back, an empty table from the tag command
    with pytest.raises(UserInputError, match=r"batch_size must be a whole number of at least 1"):
        trained.tagger.tag_many([FARM], batch_size=size)


def test_an_embedder_of_another_size_is_a_clear_error(saved) -> None:
    from conftest import HashEmbedder

    tagger = ThemeTagger.load(saved, embedder=HashEmbedder(dim=32))   # the model was trained on 64 numbers
    with pytest.raises(UserInputError, match=r"vectors of 32 numbers, but this model was trained on vectors of 64"):
        tagger.tag(FARM)


# ---------------------------------------------------------------------------------------------- save / load

def test_saved_folder_contents(trained) -> None:
    names = {p.name for p in trained.out.iterdir()}
    assert {"config.json", "classifier.npz", "clusters.md"} <= names
    with np.load(trained.out / "classifier.npz", allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    assert arrays, "classifier.npz holds no arrays"
    assert all(a.dtype != object for a in arrays.values())
    leftovers = [p.name for p in trained.out.parent.iterdir() if p.name != "model"]
    assert leftovers == [], "saving left temporary folders behind"


def test_round_trip_gives_identical_scores(trained, fake_embedder) -> None:
    loaded = ThemeTagger.load(trained.out, embedder=fake_embedder)
    assert loaded.themes == trained.tagger.themes
    assert loaded.theme_defs == trained.tagger.theme_defs
    assert loaded.thresholds == trained.tagger.thresholds
    np.testing.assert_array_equal(scores_of(loaded), scores_of(trained.tagger))
    assert [as_tuple(r) for r in loaded.tag_many(SAMPLES)] == [as_tuple(r) for r in trained.tagger.tag_many(SAMPLES)]


def test_save_then_load_again(trained, fake_embedder, tmp_path) -> None:
    loaded = ThemeTagger.load(trained.out, embedder=fake_embedder)
    path = loaded.save(tmp_path / "nested" / "again")
    assert path == tmp_path / "nested" / "again"
    reloaded = ThemeTagger.load(path, embedder=fake_embedder)
    np.testing.assert_array_equal(scores_of(reloaded), scores_of(trained.tagger))


def test_load_accepts_a_str_path(trained, fake_embedder) -> None:
    assert ThemeTagger.load(str(trained.out), embedder=fake_embedder).themes == trained.tagger.themes


def test_load_missing_folder(tmp_path, fake_embedder) -> None:
    with pytest.raises(UserInputError, match=r"no saved model at .*nowhere"):
        ThemeTagger.load(tmp_path / "nowhere", embedder=fake_embedder)


def test_load_folder_without_config(saved, fake_embedder) -> None:
    (saved / "config.json").unlink()
    with pytest.raises(UserInputError, match=r"not a complete saved model: config\.json is missing"):
        ThemeTagger.load(saved, embedder=fake_embedder)


def test_load_empty_folder(tmp_path, fake_embedder) -> None:
    with pytest.raises(UserInputError, match=r"config\.json is missing"):
        ThemeTagger.load(tmp_path, embedder=fake_embedder)


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(b'{"format": "theme-tagger", "themes": [', id="truncated-json"),
        pytest.param(b"\xff\xfe\x00garbage", id="not-utf8"),
        pytest.param(b"", id="empty"),
        pytest.param(b'{"format": "something-else"}', id="other-format"),
        pytest.param(b'{"format": "theme-tagger", "format_version": 1}', id="missing-fields"),
        pytest.param(b'{"format": "theme-tagger", "format_version": 99}', id="newer-format"),
        pytest.param(b"[1, 2, 3]", id="json-list"),
    ],
)
def test_load_damaged_config(saved, fake_embedder, content) -> None:
    (saved / "config.json").write_bytes(content)
    with pytest.raises(UserInputError, match=r"saved model at .* is damaged"):
        ThemeTagger.load(saved, embedder=fake_embedder)


def test_load_config_with_wrong_theme_count(saved, fake_embedder) -> None:
    config = json.loads((saved / "config.json").read_text(encoding="utf-8"))
    config["themes"] = config["themes"][:2]
    (saved / "config.json").write_text(json.dumps(config), encoding="utf-8")
    with pytest.raises(UserInputError, match=r"is damaged"):
        ThemeTagger.load(saved, embedder=fake_embedder)


def test_load_refuses_themes_reordered_in_config(saved, fake_embedder) -> None:
    # The classifier's rows follow the saved order; a hand-edited config.json that reorders the themes would give
    # each theme another's scores, with nothing to show for it.
    config = json.loads((saved / "config.json").read_text(encoding="utf-8"))
    config["themes"] = config["themes"][::-1]
    (saved / "config.json").write_text(json.dumps(config), encoding="utf-8")
    with pytest.raises(UserInputError, match=r"is damaged.*classifier's rows are .*was config.json edited"):
        ThemeTagger.load(saved, embedder=fake_embedder)


def test_load_model_saved_before_theme_ids(saved, fake_embedder) -> None:
    # A folder saved before the rows carried their theme ids loads as it did.
    before = ThemeTagger.load(saved, embedder=fake_embedder).tag(FARM).scores
    with np.load(saved / "classifier.npz", allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files if k != "theme_ids"}
    assert len(arrays) < len(np.load(saved / "classifier.npz").files)
    np.savez(saved / "classifier.npz", **arrays)
    assert ThemeTagger.load(saved, embedder=fake_embedder).tag(FARM).scores == before


def test_load_model_saved_before_counterexamples(saved, fake_embedder) -> None:
    # A folder saved before theme files had counterexamples has no such key in its themes: it loads, with none.
    before = ThemeTagger.load(saved, embedder=fake_embedder).tag(FARM).scores
    config = json.loads((saved / "config.json").read_text(encoding="utf-8"))
    for theme in config["themes"]:
        theme.pop("counterexamples")
    (saved / "config.json").write_text(json.dumps(config), encoding="utf-8")
    old = ThemeTagger.load(saved, embedder=fake_embedder)
    assert all(t.counterexamples == () for t in old.theme_defs)
    assert old.tag(FARM).scores == before


def test_load_model_saved_in_format_1(saved, fake_embedder) -> None:
    # Format 1 had no keyword scale of its own: such a folder loads, its keyword columns scaled as its anchors.
    config = json.loads((saved / "config.json").read_text(encoding="utf-8"))
    assert config["format_version"] == 2
    (saved / "config.json").write_text(json.dumps({**config, "format_version": 1}), encoding="utf-8")
    with np.load(saved / "classifier.npz", allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files if k != "keyword_scale"}
    np.savez(saved / "classifier.npz", **arrays)
    old = ThemeTagger.load(saved, embedder=fake_embedder).classifier
    assert old.keyword_scale_ == old.anchor_scale_


def test_load_model_saved_before_character_pairs(saved, fake_embedder) -> None:
    # Before terms(), a run of Chinese was one TF-IDF word as scikit-learn's pattern found it; such a folder must
    # still read its vocabulary that way, or those features would silently never fire.
    vocabulary = json.loads((saved / "vocabulary.json").read_text(encoding="utf-8"))
    vocabulary[0] = "智慧城市建设"
    (saved / "vocabulary.json").write_text(json.dumps(vocabulary, ensure_ascii=False), encoding="utf-8")
    assert ThemeTagger.load(saved, embedder=fake_embedder).classifier.vectorizer_.transform(["智慧城市建设"]).nnz == 0
    config = json.loads((saved / "config.json").read_text(encoding="utf-8"))
    assert config["classifier"].pop("words") == "terms"
    (saved / "config.json").write_text(json.dumps(config), encoding="utf-8")
    old = ThemeTagger.load(saved, embedder=fake_embedder).classifier.vectorizer_
    assert old.transform(["智慧城市建设"])[0, 0] > 0
    assert old.transform([FARM]).nnz > 0   # its English words as before


@pytest.mark.parametrize(
    "damage",
    [
        "truncated",
        "empty",
        "missing",
        "not-npz",
    ],
)
def test_load_damaged_weights(saved, fake_embedder, damage) -> None:
    weights = saved / "classifier.npz"
    if damage == "truncated":
        weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    elif damage == "empty":
        weights.write_bytes(b"")
    elif damage == "missing":
        weights.unlink()
    else:
        weights.write_bytes(b"this is not a numpy file at all, just text" * 10)
    with pytest.raises(UserInputError, match=r"saved model at .* is damaged"):
        ThemeTagger.load(saved, embedder=fake_embedder)


def test_load_weights_missing_an_array(saved, fake_embedder) -> None:
    with np.load(saved / "classifier.npz", allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays.pop(sorted(arrays)[0])
    np.savez(saved / "classifier.npz", **arrays)
    with pytest.raises(UserInputError, match=r"is damaged"):
        ThemeTagger.load(saved, embedder=fake_embedder)


def test_load_warns_when_versions_changed(saved, fake_embedder) -> None:
    config = json.loads((saved / "config.json").read_text(encoding="utf-8"))
    config["versions"]["numpy"] = "0.0.1"
    (saved / "config.json").write_text(json.dumps(config), encoding="utf-8")
    with pytest.warns(UserWarning, match=r"numpy 0\.0\.1 -> " + np.__version__.replace(".", r"\.")):
        loaded = ThemeTagger.load(saved, embedder=fake_embedder)
    assert loaded.themes


def test_load_same_versions_does_not_warn(trained, fake_embedder) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ThemeTagger.load(trained.out, embedder=fake_embedder)


def test_save_over_existing_model_replaces_it(trained, fake_embedder, tmp_path) -> None:
    path = tmp_path / "model"
    trained.tagger.save(path, {"clusters.md": "first report\n"})
    other = ThemeTagger(trained.tagger.theme_defs, fake_embedder, trained.tagger.classifier,
                        {**trained.tagger.config, "marker": "second"})
    assert other.save(path) == path
    config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    assert config["marker"] == "second"
    assert not (path / "clusters.md").exists(), "files of the old model should not survive a replace"
    assert [p.name for p in tmp_path.iterdir()] == ["model"], "no temporary or old folders left behind"
    np.testing.assert_array_equal(scores_of(ThemeTagger.load(path, embedder=fake_embedder)),
                                  scores_of(trained.tagger))


@pytest.mark.parametrize("kind", ["unrelated-files", "file"])
def test_save_refuses_to_overwrite_other_things(trained, tmp_path, kind) -> None:
    path = tmp_path / "out"
    if kind == "file":
        path.write_text("my notes\n", encoding="utf-8")
        before = {path: b"my notes\n"}
    else:
        path.mkdir()
        (path / "notes.txt").write_text("my notes\n", encoding="utf-8")
        (path / "sub").mkdir()
        (path / "sub" / "data.csv").write_text("a,b\n", encoding="utf-8")
        # A config.json that is not a model's must not make the folder look like one.
        (path / "config.json").write_text('{"name": "my app"}', encoding="utf-8")
        before = {p: p.read_bytes() for p in path.rglob("*") if p.is_file()}
    with pytest.raises(UserInputError, match=r"--out"):
        trained.tagger.save(path)
    after = {p: p.read_bytes() for p in ([path] if kind == "file" else path.rglob("*")) if p.is_file()}
    assert after == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_save_into_empty_existing_folder(trained, fake_embedder, tmp_path) -> None:
    (tmp_path / "out").mkdir()
    trained.tagger.save(tmp_path / "out")
    assert ThemeTagger.load(tmp_path / "out", embedder=fake_embedder).themes == trained.tagger.themes


def test_interrupted_save_leaves_nothing_behind(trained, fake_embedder, tmp_path, monkeypatch) -> None:
    path = tmp_path / "model"

    def broken_savez(*args, **kwargs):
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(np, "savez", broken_savez)
    with pytest.raises(OSError, match="disk full"):
        trained.tagger.save(path)
    assert not path.exists()
    assert list(tmp_path.iterdir()) == [], "a failed save left a temporary folder"

    monkeypatch.undo()
    trained.tagger.save(path)
    assert [p.name for p in tmp_path.iterdir()] == ["model"]
    np.testing.assert_array_equal(scores_of(ThemeTagger.load(path, embedder=fake_embedder)),
                                  scores_of(trained.tagger))


def test_interrupted_save_keeps_the_old_model(trained, fake_embedder, tmp_path, monkeypatch) -> None:
    path = tmp_path / "model"
    trained.tagger.save(path)
    before = {p.name: p.read_bytes() for p in path.iterdir()}

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez", interrupted)
    with pytest.raises(KeyboardInterrupt):
        trained.tagger.save(path)
    monkeypatch.undo()
    assert {p.name: p.read_bytes() for p in path.iterdir()} == before
    assert [p.name for p in tmp_path.iterdir()] == ["model"]
    ThemeTagger.load(path, embedder=fake_embedder)


def test_save_cleans_up_a_crashed_earlier_save(trained, tmp_path) -> None:
    # A process killed mid-save (no chance to clean up) leaves its temporary folder behind.
    stale = tmp_path / ".model.tmp-99999999"
    stale.mkdir()
    (stale / "classifier.npz").write_bytes(b"half written")
    trained.tagger.save(tmp_path / "model")
    assert [p.name for p in tmp_path.iterdir()] == ["model"]


def test_result_rows_carry_every_score_and_the_evidence_of_the_themes_carried():
    from model.tagger import ParagraphTags, TagResult

    paras = [ParagraphTags("a farm shop", {"x": 0.9, "y": 0.1}, ["x"]),
             ParagraphTags("more farm", {"x": 0.95, "y": 0.2}, ["x"])]
    result = TagResult({"x": 0.95, "y": 0.2}, ["x"], paras)
    assert result.to_dict() == {"themes": ["x"], "scores": {"x": 0.95, "y": 0.2}, "evidence": {"x": "more farm"}}
    row = result.to_row(7)
    assert row == {"id": "7", "themes": ["x"], "score:x": 0.95, "evidence:x": "more farm",
                   "score:y": 0.2, "evidence:y": ""}
