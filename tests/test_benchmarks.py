"""The accuracy benchmark's scoring, on the synthetic corpus with the fake embedder (no shared data, no real model)."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from conftest import ROOT, THEMES_TOML, make_corpus
from model import load_themes
from model.corpus import Article
from model.embed import EmbeddingCache

sys.path.insert(0, str(ROOT / "benchmarks"))
import accuracy  # noqa: E402
import sections  # noqa: E402
import shapes  # noqa: E402
import unthemed  # noqa: E402


@pytest.fixture(scope="module")
def labelled():
    pairs = make_corpus(5, per_theme=20, none=0)
    return [Article(str(i), text) for i, (_, text) in enumerate(pairs)], [kind for kind, _ in pairs]


def test_held_out_trains_on_one_half_and_scores_the_other(labelled, fake_embedder, tmp_path, monkeypatch) -> None:
    articles, gold = labelled
    seen: list[int] = []
    real_train = accuracy.train

    def spy(corpus, *args, **kwargs):
        seen.append(len(corpus))
        return real_train(corpus, *args, **kwargs)

    monkeypatch.setattr(accuracy, "train", spy)
    themes = tmp_path / "themes.toml"
    themes.write_text(THEMES_TOML, encoding="utf-8")
    row = accuracy.run_set("synthetic", articles, gold, themes, fake_embedder,
                           EmbeddingCache(tmp_path / "cache.sqlite"), seed=0, split=True)
    assert seen == [len(articles), len(articles) // 2]   # the full set, then one half
    for key in ("cosine", "ours", "ceiling", "half_seen", "half_new"):
        assert 0.0 <= row[key] <= 1.0
    assert row["ours"] >= 0.7 and row["half_new"] >= 0.7   # the synthetic themes are easy to tell apart
    text = accuracy.table([row])
    assert f"**{row['ours']:.3f}**" in text and f"**{row['half_new']:.3f}**" in text


def test_accuracy_of_scores_the_top_theme(trained, synthetic) -> None:
    themed = [(kind, text) for kind, text in synthetic.heldout if kind is not None]
    articles = [Article(str(i), text) for i, (_, text) in enumerate(themed)]
    right, pred = accuracy.accuracy_of(trained.tagger, articles, [kind for kind, _ in themed])
    wrong, _ = accuracy.accuracy_of(trained.tagger, articles, ["no-such-theme"] * len(themed))
    assert right == pytest.approx(sum(p == k for p, (k, _) in zip(pred, themed)) / len(themed))
    assert wrong == 0.0


def test_cosine_oracle_finds_the_cut_that_leaves_the_left_out_class_untagged() -> None:
    # Three texts of two kept themes, well matched; two of a left-out class, nearest "b" but weaker than any themed text.
    sims = np.array([[0.9, 0.1], [0.8, 0.2], [0.1, 0.7], [0.2, 0.5], [0.3, 0.4]])
    f1, none, cut = unthemed.cosine_oracle(sims, ["a", "b"], [["a"], ["a"], ["b"], [], []])
    assert f1 == 1.0 and none == 1.0 and 0.5 < cut <= 0.7


def test_unthemed_gives_a_row_per_left_out_class(labelled, fake_embedder, tmp_path) -> None:
    articles, gold = labelled
    themes = tmp_path / "themes.toml"
    themes.write_text(THEMES_TOML, encoding="utf-8")
    rows = unthemed.run_set("synthetic", articles, gold, themes, fake_embedder,
                            EmbeddingCache(tmp_path / "cache.sqlite"), seed=0)
    assert [r["left_out"] for r in rows] == [t.id for t in load_themes(themes)]
    for r in rows:
        assert r["left_out_n"] == gold.count(r["left_out"]) and r["n"] == len(articles)
        for key in ("ours", "cosine_oracle", "ours_none_left_out", "cosine_none_left_out", "ours_none_themed"):
            assert 0.0 <= r[key] <= 1.0
        assert r["ours"] >= 0.7 and r["ours_none_themed"] <= 0.2   # the kept synthetic themes are easy to tell apart
    text = unthemed.table(rows)
    assert text.count("| synthetic |") == len(rows) and "| **synthetic** | mean |" in text


def test_unthemed_can_give_the_left_out_class_as_every_themes_counterexample(labelled, fake_embedder, tmp_path,
                                                                            monkeypatch) -> None:
    articles, gold = labelled
    themes = tmp_path / "themes.toml"
    themes.write_text(THEMES_TOML, encoding="utf-8")
    given: list[list] = []
    real_train = unthemed.train

    def spy(corpus, theme_list, *args, **kwargs):
        given.append(theme_list)
        return real_train(corpus, theme_list, *args, **kwargs)

    monkeypatch.setattr(unthemed, "train", spy)
    unthemed.run_set("synthetic", articles, gold, themes, fake_embedder, EmbeddingCache(tmp_path / "cache.sqlite"),
                     seed=0, counterexamples=True)
    everyone = load_themes(themes)
    for left, theme_list in zip(everyone, given):
        assert [t.id for t in theme_list] == [t.id for t in everyone if t.id != left.id]
        assert all(t.counterexamples == (left.description,) for t in theme_list)


def test_unbalanced_classes_shrink_from_the_smallest_full_class_to_its_share() -> None:
    gold = ["a"] * 400 + ["b"] * 300 + ["c"] * 500 + ["d"] * 350
    picked = shapes.unbalanced(gold, imbalance=30, seed=3)
    sizes = sorted((sum(gold[i] == c for i in picked) for c in "abcd"), reverse=True)
    assert sizes == [300, round(300 / 30 ** (1 / 3)), round(300 / 30 ** (2 / 3)), 10]
    assert len(set(picked)) == len(picked) and picked == shapes.unbalanced(gold, imbalance=30, seed=3)
    assert picked != shapes.unbalanced(gold, imbalance=30, seed=4)    # another seed, another order of the classes
    assert min(sum(gold[i] == c for i in shapes.unbalanced(gold, 1000, seed=0)) for c in "abcd") == 5
    few = gold + ["e"] * 3                                             # a class smaller than the floor: all of it
    assert sum(few[i] == "e" for i in shapes.unbalanced(few, 1000, seed=0)) == 3


def test_relabelled_keeps_only_the_mapped_classes_and_renumbers_them() -> None:
    articles = [Article(str(i), f"text {i}") for i in range(5)]
    kept, gold = shapes.relabelled(articles, ["x", "y", "z", "x", "w"], {"x": "one", "z": "two"})
    assert [a.text for a in kept] == ["text 0", "text 2", "text 3"] and gold == ["one", "two", "one"]
    assert [a.id for a in kept] == ["0", "1", "2"]


def test_publish_prints_writes_the_json_and_replaces_only_its_own_section(tmp_path, monkeypatch, capsys) -> None:
    md = tmp_path / "BENCHMARKS.md"
    md.write_text("# Benchmarks\n\n<!-- other:start -->\nkept\n<!-- other:end -->\n", encoding="utf-8")
    monkeypatch.setattr(sections, "BENCHMARKS_MD", md)
    for figure in ("0.5", "0.7"):   # the second run replaces the first's section
        sections.publish(f"| a | {figure} |", [{"a": float(figure)}], json_path=str(tmp_path / "rows.json"),
                         write=True, title="Probe", script="benchmarks/probe.py", argv=["--write"], started=0.0,
                         marker="probe")
    text = md.read_text(encoding="utf-8")
    assert "kept" in text and text.count("### Probe") == 1 and "| a | 0.7 |" in text and "| a | 0.5 |" not in text
    assert "Command: `python benchmarks/probe.py --write`" in text
    assert (tmp_path / "rows.json").read_text(encoding="utf-8").replace(" ", "").replace("\n", "") == '[{"a":0.7}]'
    assert capsys.readouterr().out.splitlines() == ["| a | 0.5 |", "| a | 0.7 |"]


def test_every_variant_theme_file_has_its_sets_classes() -> None:
    """A variant (names only, keywords, another author's wording) is scored against the set's labels: it must load and
    name exactly the classes of the set's own theme file, or its accuracy would count a missing class as wrong."""
    folder = accuracy.ROOT / "benchmarks" / "themes"
    variants = [f for f in folder.glob("*_*.toml") if f.stem.rsplit("_", 1)[0] in accuracy.SETS]
    assert {f.stem.rsplit("_", 1)[1] for f in variants} >= {"names", "keywords", "authorA", "authorB"}
    for f in variants:
        base = folder / f"{f.stem.rsplit('_', 1)[0]}.toml"
        assert [t.id for t in load_themes(f)] == [t.id for t in load_themes(base)], f.name
    # The mission's other authors' files stand in for the default theme file, scored against the same labels.
    default = [t.id for t in load_themes(accuracy.ROOT / "seeds" / "themes.toml")]
    for name in accuracy.MISSION_AUTHORS:
        assert [t.id for t in load_themes(folder / name)] == default, name
