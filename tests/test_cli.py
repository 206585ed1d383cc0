"""Tests for the train.py command line, run in-process with the fake embedder."""

from __future__ import annotations

import json
import re

import pytest

import model.pipeline
import train as cli
from model import ThemeTagger
from model.corpus import paragraphs_of, read_corpus

FLAGS = ["--corpus", "--themes", "--out", "--seed", "--embedding-model"]


@pytest.fixture(autouse=True)
def fake_model(monkeypatch, fake_embedder, tmp_path):
    """No real embedding model and no cache outside tmp_path, whatever the test does."""
    loaded = []

    def load_embedder(spec, cache_dir=None):
        loaded.append(spec)
        return fake_embedder

    monkeypatch.setattr(model.pipeline, "load_embedder", load_embedder)
    monkeypatch.setenv("THEME_TAGGER_CACHE", str(tmp_path / "cache"))
    return loaded


def run(argv: list[str], capsys) -> tuple[int, str, str]:
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_error_line(err: str, pattern: str) -> str:
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1, err
    assert lines[-1] == errors[0], "the error should be the last thing printed, on one line"
    assert re.search(pattern, errors[0]), errors[0]
    return errors[0]


def test_help_lists_the_flags(capsys) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for flag in FLAGS:
        assert flag in out, flag


@pytest.mark.parametrize("argv", [["--seed", "abc"], ["--clusterer", "dbscan"], ["--no-such-flag"]])
def test_bad_flags_are_usage_errors(capsys, argv) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "error:" in err and "Traceback" not in err


# Each case: (name, builds the arguments in tmp_path, what the error line must say)
def _corpus_missing(tmp, syn):
    return ["--corpus", tmp / "nope", "--themes", syn.themes_path], r"corpus path .*nope does not exist"


def _corpus_empty_folder(tmp, syn):
    (tmp / "empty").mkdir()
    return ["--corpus", tmp / "empty", "--themes", syn.themes_path], r"has no \.txt files"


def _corpus_blank_files(tmp, syn):
    folder = tmp / "blank"
    folder.mkdir()
    (folder / "a.txt").write_text("", encoding="utf-8")
    (folder / "b.txt").write_text("  \n\n ", encoding="utf-8")
    return ["--corpus", folder, "--themes", syn.themes_path], r"has no text"


def _corpus_binary_file(tmp, syn):
    folder = tmp / "binary"
    folder.mkdir()
    (folder / "good.txt").write_text("Farmers sell apples online.\n", encoding="utf-8")
    (folder / "photo.txt").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe")
    return ["--corpus", folder, "--themes", syn.themes_path], r"photo\.txt is not a UTF-8 text file"


def _themes(text: str, pattern: str):
    def build(tmp, syn):
        path = tmp / "themes.toml"
        path.write_text(text, encoding="utf-8")
        return ["--corpus", syn.corpus_dir, "--themes", path], pattern
    return build


def _themes_missing_file(tmp, syn):
    return ["--corpus", syn.corpus_dir, "--themes", tmp / "none.toml"], r"theme file .*none\.toml does not exist"


def _out_with_unrelated_files(tmp, syn):
    out = tmp / "out"
    out.mkdir()
    (out / "holiday.jpg").write_bytes(b"\xff\xd8\xff not really a photo")
    return ["--corpus", syn.corpus_dir, "--themes", syn.themes_path], r"--out .*holds files that are not a saved model"


CASES = [
    ("missing-corpus", _corpus_missing),
    ("empty-folder", _corpus_empty_folder),
    ("only-empty-txt", _corpus_blank_files),
    ("binary-txt", _corpus_binary_file),
    ("theme-missing-description", _themes('[a]\nlabel = "A"\n', r"\[a\].*missing `description`")),
    ("theme-duplicate-id", _themes('[a]\ndescription = "A."\n[a]\ndescription = "Again."\n',
                                   r"may appear only once")),
    ("theme-empty-id", _themes('[""]\ndescription = "Nameless."\n', r"empty id")),
    ("theme-unknown-key", _themes('[a]\ndescription = "A."\ndescripton = "typo"\n', r"unknown key\(s\) descripton")),
    ("theme-file-missing", _themes_missing_file),
    ("theme-file-empty", _themes("", r"defines no themes")),
    ("out-holds-other-files", _out_with_unrelated_files),
]


@pytest.mark.parametrize("build", [c[1] for c in CASES], ids=[c[0] for c in CASES])
def test_user_mistakes_give_one_error_line(build, synthetic, tmp_path, capsys) -> None:
    argv, pattern = build(tmp_path, synthetic)
    out_dir = tmp_path / "out"
    before = {p: p.read_bytes() for p in out_dir.rglob("*") if p.is_file()} if out_dir.exists() else None
    code, _, err = run([*argv, "--out", out_dir], capsys)
    assert code != 0
    assert code == 2
    assert_one_error_line(err, pattern)
    if before is None:
        assert not out_dir.exists(), "a failed run should not create the output folder"
    else:
        assert {p: p.read_bytes() for p in out_dir.rglob("*") if p.is_file()} == before


def test_successful_run_prints_a_summary(synthetic, fake_embedder, fake_model, tmp_path, capsys) -> None:
    out_dir = tmp_path / "models" / "synthetic"
    code, out, err = run(["--corpus", synthetic.corpus_dir, "--themes", synthetic.themes_path,
                          "--out", out_dir, "--seed", "3", "--quiet"], capsys)
    assert code == 0, err
    assert "Traceback" not in err and "error:" not in err
    assert fake_model == ["openvino"], "the default embedding model (OpenVINO) should be asked for, once"

    config = json.loads((out_dir / "config.json").read_text(encoding="utf-8"))
    training = config["training"]
    paragraphs = len(paragraphs_of(read_corpus(synthetic.corpus_dir), fake_embedder.max_words))
    assert training["paragraphs"] == paragraphs
    assert config["seed"] == 3

    assert re.search(rf"\b{paragraphs} paragraphs from {len(synthetic.articles)} articles\b", out), out
    assert re.search(rf"\b{training['clusters']} clusters\b", out), out
    per_theme = re.search(r"^Paragraphs per theme: (.*)$", out, flags=re.M)
    assert per_theme, out
    printed = dict(item.rsplit(" ", 1) for item in per_theme.group(1).split(", "))
    assert {k: int(v) for k, v in printed.items()} == training["paragraphs_per_theme"]
    assert list(printed) == ["farm_shop", "cloud_data", "city_traffic"]
    assert str(out_dir) in out
    assert str(out_dir / "clusters.md") in out

    tagger = ThemeTagger.load(out_dir, embedder=fake_embedder)
    assert tagger.tag("Farmers ship apples and honey from the village webshop.").themes[:1] == ["farm_shop"]
    # The embedding cache went where THEME_TAGGER_CACHE points, not into the home folder.
    assert (tmp_path / "cache" / "embeddings.sqlite").is_file()


def test_second_run_replaces_the_model(synthetic, fake_embedder, tmp_path, capsys) -> None:
    out_dir = tmp_path / "model"
    base = ["--corpus", synthetic.corpus_dir, "--themes", synthetic.themes_path, "--out", out_dir, "--quiet"]
    assert run([*base, "--no-cache"], capsys)[0] == 0
    code, _, err = run([*base, "--no-cache", "--clusterer", "kmeans", "--seed", "1"], capsys)
    assert code == 0, err
    config = json.loads((out_dir / "config.json").read_text(encoding="utf-8"))
    assert config["clusterer"] == "kmeans" and config["seed"] == 1
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "cache") == ["model"]
    assert not (tmp_path / "cache").exists(), "--no-cache should not create a cache"


def test_jsonl_corpus(synthetic, fake_embedder, tmp_path, capsys) -> None:
    path = tmp_path / "news.jsonl"
    path.write_text("".join(json.dumps({"id": a.id, "text": a.text}) + "\n" for a in synthetic.articles),
                    encoding="utf-8")
    code, out, err = run(["--corpus", path, "--themes", synthetic.themes_path, "--out", tmp_path / "m",
                          "--quiet", "--no-cache"], capsys)
    assert code == 0, err
    assert f"from {len(synthetic.articles)} articles" in out

