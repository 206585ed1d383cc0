"""The evaluate command: figures that can be checked by hand, and a clear error for each bad input."""

from __future__ import annotations

import json
import re

import pytest

import evaluate as evaluate_cli
import model.evaluate
from model import UserInputError
from model.evaluate import evaluate, read_labelled, score

IDS = ["a", "b", "c"]


def write_jsonl(path, rows) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return str(path)


def test_multilabel_figures_by_hand() -> None:
    gold = [["a"], ["a", "b"], [], ["c"]]
    predicted = [["a"], ["b"], ["c"], []]
    f = score(IDS, gold, predicted, ["a", "b", "c", None], single=False)
    # a: tp 1, fn 1 -> P 1, R 0.5; b: tp 1 -> P 1, R 1; c: fp 1, fn 1 -> 0
    assert f["per_theme"]["a"] == pytest.approx({"precision": 1.0, "recall": 0.5, "f1": 2 / 3, "support": 2})
    assert f["per_theme"]["b"]["f1"] == pytest.approx(1.0)
    assert f["per_theme"]["c"]["f1"] == pytest.approx(0.0)
    assert f["macro_f1"] == pytest.approx((2 / 3 + 1 + 0) / 3)
    assert f["micro_f1"] == pytest.approx(2 * 2 / (2 * 2 + 1 + 2))   # tp 2, fp 1, fn 2
    assert "accuracy" not in f
    assert f["confusion"]["(none)"]["c"] == 1 and f["confusion"]["c"]["(none)"] == 1


def test_single_label_accuracy_and_confusion() -> None:
    gold = [["a"], ["b"], ["b"], ["c"]]
    top = ["a", "a", "b", "c"]
    f = score(IDS, gold, [[t] for t in top], top, single=True)
    assert f["accuracy"] == pytest.approx(0.75)
    assert f["confusion"]["b"]["a"] == 1 and f["confusion"]["b"]["b"] == 1
    assert "(none)" not in f["confusion"]


@pytest.mark.parametrize("rows, message", [
    ([], "is empty"),
    ([{"label": "a"}], 'string "text"'),
    ([{"text": "x", "label": "zzz"}], "'zzz' match no theme id"),
    ([{"text": "x", "labels": ["a", "nope"]}], "'nope' match no theme id"),
    ([{"text": "x"}], "needs `label`"),
    ([{"text": "x", "labels": "a"}], "must be a list"),
])
def test_bad_labelled_files(tmp_path, rows, message) -> None:
    with pytest.raises(UserInputError, match=message):
        read_labelled(write_jsonl(tmp_path / "d.jsonl", rows), IDS)


def test_evaluate_scores_the_tagger_on_held_out_articles(trained, synthetic, tmp_path) -> None:
    rows = [{"text": text, "labels": [truth] if truth else []} for truth, text in synthetic.heldout]
    figures = evaluate(trained.tagger, write_jsonl(tmp_path / "d.jsonl", rows))
    assert figures["n"] == len(rows)
    assert set(figures["per_theme"]) == set(trained.tagger.themes)
    assert sum(m["support"] for m in figures["per_theme"].values()) == sum(1 for t, _ in synthetic.heldout if t)
    assert figures["macro_f1"] >= 0.6   # the synthetic themes are easy; a broken tagger or scorer falls far below


def test_cli_checks_where_the_json_goes_before_evaluating(trained, tmp_path, capsys, monkeypatch) -> None:
    data = write_jsonl(tmp_path / "d.jsonl", [{"text": "x", "label": "a"}])
    monkeypatch.setattr(model.evaluate, "evaluate", lambda *a, **k: pytest.fail("evaluated before the check"))
    assert evaluate_cli.main([str(trained.out), data, "--json", str(tmp_path / "no-folder" / "f.json"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and re.match(r"error: --json .*f\.json: the folder .*no-folder does not exist", err[0])


def test_cli_reports_a_missing_model_in_one_line(tmp_path, capsys) -> None:
    data = write_jsonl(tmp_path / "d.jsonl", [{"text": "x", "label": "a"}])
    assert evaluate_cli.main([str(tmp_path / "no-model"), data, "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: no saved model")
