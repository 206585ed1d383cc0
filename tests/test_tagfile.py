"""The tag command: a corpus in, one row per article out (JSONL, CSV, Parquet), streamed and written atomically."""

from __future__ import annotations

import csv
import json
import re
import tracemalloc

import pyarrow.parquet as pq
import pytest

import model
import model.tagger
from model import UserInputError, to_dataframe
from model.cli import main
from model.tagfile import columns, open_writer, read_rows, tag_file

FORMATS = [".jsonl", ".csv", ".parquet"]


@pytest.fixture
def corpus(synthetic, tmp_path):
    """A JSONL corpus of fresh articles with ids, plus one that cleaning leaves empty (it gets a row, no themes)."""
    articles = [(f"new-{i}", text) for i, (_, text) in enumerate(synthetic.heldout)]
    articles.insert(3, ("links-only", "Related articles:\n- One\n- Two\n"))
    path = tmp_path / "news.jsonl"
    path.write_text("".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in articles), encoding="utf-8")
    return path, articles


def expected_rows(tagger, articles, batch_size=256):
    """tag_many's rows in tag_file's batches: float32 sums differ by an ulp with the batch's shape (BLAS kernels)."""
    results = tagger.tag_many([t for _, t in articles], batch_size=batch_size)
    return [r.to_row(i) for (i, _), r in zip(articles, results)]


@pytest.mark.parametrize("fmt", FORMATS)
def test_tag_file_round_trips(fmt, trained, corpus, tmp_path) -> None:
    path, articles = corpus
    out = tmp_path / f"tags{fmt}"
    assert tag_file(trained.tagger, path, out, batch_size=4, progress=False) == len(articles)
    rows = list(read_rows(out))
    expected = expected_rows(trained.tagger, articles, batch_size=4)
    assert rows == expected
    assert list(rows[0]) == columns(trained.tagger.themes)
    assert any(r["themes"] for r in rows) and any(len(r["themes"]) == 0 for r in rows)
    assert [r for r in rows if r["id"] == "links-only"][0]["themes"] == []
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == [], "no temporary file left behind"


def test_the_files_are_plain_tables(trained, corpus, tmp_path) -> None:
    """What another tool reads: a list in JSONL and Parquet, a ;-joined cell in CSV, a float per score."""
    path, articles = corpus
    for fmt in FORMATS:
        tag_file(trained.tagger, path, tmp_path / f"t{fmt}", progress=False)
    expected = expected_rows(trained.tagger, articles)
    with open(tmp_path / "t.csv", encoding="utf-8", newline="") as fh:
        table = list(csv.DictReader(fh))
    assert [r["themes"] for r in table] == [";".join(r["themes"]) for r in expected]
    assert [float(r[f"score:{trained.tagger.themes[0]}"]) for r in table] == \
        [r[f"score:{trained.tagger.themes[0]}"] for r in expected]
    first = json.loads((tmp_path / "t.jsonl").read_text(encoding="utf-8").splitlines()[0])
    assert first == expected[0] and isinstance(first["themes"], list)
    parquet = pq.read_table(tmp_path / "t.parquet")
    assert parquet.num_rows == len(articles)
    assert str(parquet.schema.field("themes").type) == "list<element: string>"
    assert parquet.column("id").to_pylist() == [i for i, _ in articles]


def test_reads_a_folder_and_a_csv_like_training(trained, synthetic, tmp_path) -> None:
    out = tmp_path / "folder.jsonl"
    tag_file(trained.tagger, synthetic.corpus_dir, out, progress=False)
    assert [r["id"] for r in read_rows(out)] == [a.id for a in synthetic.articles]
    table = tmp_path / "news.csv"
    with open(table, "w", encoding="utf-8", newline="") as fh:
        csv.writer(fh).writerows([["id", "text"], *[[a.id, a.text] for a in synthetic.articles[:5]]])
    tag_file(trained.tagger, table, tmp_path / "from-csv.csv", progress=False)
    assert list(read_rows(tmp_path / "from-csv.csv")) == list(read_rows(out))[:5]


def test_an_interrupted_run_leaves_the_old_table(trained, synthetic, tmp_path) -> None:
    """A bad row half way: the rows before it were tagged and written, yet nothing replaces the final name."""
    path = tmp_path / "news.jsonl"
    lines = [json.dumps({"id": f"a{i}", "text": synthetic.heldout[i % len(synthetic.heldout)][1]}) for i in range(30)]
    path.write_text("\n".join(lines[:20] + ['{"text": broken'] + lines[20:]) + "\n", encoding="utf-8")
    for fmt in FORMATS:
        out = tmp_path / f"tags{fmt}"
        out.write_bytes(b"the previous run's table")
        with pytest.raises(UserInputError, match=r"line 21: invalid JSON"):
            tag_file(trained.tagger, path, out, batch_size=4, progress=False)
        assert out.read_bytes() == b"the previous run's table"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["news.jsonl", "tags.csv", "tags.jsonl", "tags.parquet"]


def test_memory_stays_flat_as_the_corpus_grows(trained, synthetic, tmp_path) -> None:
    """Ten times the articles, about the same peak: rows are read, tagged and written a batch at a time."""
    peaks = []
    for n in (200, 2000):
        path = tmp_path / f"news-{n}.jsonl"
        with open(path, "w", encoding="utf-8") as fh:
            for i in range(n):
                fh.write(json.dumps({"id": str(i), "text": synthetic.heldout[i % len(synthetic.heldout)][1]}) + "\n")
        tracemalloc.start()
        tag_file(trained.tagger, path, tmp_path / f"tags-{n}.jsonl", batch_size=50, progress=False)
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    assert peaks[1] < 1.5 * peaks[0], peaks


def test_writer_refuses_rows_of_another_table(trained, tmp_path) -> None:
    row = trained.tagger.tag("Farmers sell apples and honey in the village webshop.").to_row("x")
    with pytest.raises(ValueError, match="differ"):
        with open_writer(tmp_path / "t.jsonl", trained.tagger.themes) as w:
            w.write({**row, "extra": 1})
    assert not (tmp_path / "t.jsonl").exists()


@pytest.mark.parametrize(("name", "message"), [("tags.xlsx", r"unknown format '\.xlsx'"),
                                              ("tags", r"unknown format '\(none\)'"),
                                              ("missing/tags.csv", r"output folder .*missing does not exist")])
def test_bad_output_names(name, message, trained, corpus, tmp_path) -> None:
    with pytest.raises(UserInputError, match=message):
        tag_file(trained.tagger, corpus[0], tmp_path / name, progress=False)


def test_to_dataframe(trained, synthetic) -> None:
    texts = [t for _, t in synthetic.heldout]
    results = trained.tagger.tag_many(texts)
    frame = to_dataframe(results, ids=[f"n{i}" for i in range(len(texts))])
    assert list(frame.columns) == columns(trained.tagger.themes)
    assert frame.shape == (len(texts), len(columns(trained.tagger.themes)))
    assert frame["themes"].tolist() == [r.themes for r in results]
    theme = trained.tagger.themes[1]
    assert frame[f"score:{theme}"].tolist() == [r.scores[theme] for r in results]
    assert to_dataframe(results)["id"].tolist() == [str(i) for i in range(len(texts))]
    with pytest.raises(ValueError, match="3 ids for"):
        to_dataframe(results, ids=["a", "b", "c"])


# ------------------------------------------------------------------------------------------------ the command

@pytest.fixture
def fake_loaded_embedder(monkeypatch, fake_embedder):
    """Naming the fake embedder the model was trained with (--embedding-model) loads the fake itself."""
    monkeypatch.setattr(model.tagger, "load_embedder", lambda spec: fake_embedder)


@pytest.mark.parametrize("fmt", FORMATS)
def test_tag_command(fmt, trained, corpus, tmp_path, capsys, fake_loaded_embedder) -> None:
    path, articles = corpus
    out = tmp_path / f"tags{fmt}"
    assert main(["tag", str(trained.out), "--embedding-model", "fake-hash-embedder", str(path), "--out", str(out), "--quiet"]) == 0
    assert f"Tagged {len(articles)} articles into {out}" in capsys.readouterr().out
    assert list(read_rows(out)) == expected_rows(trained.tagger, articles)


def test_tag_command_shows_articles_per_second(trained, corpus, tmp_path, capsys, fake_loaded_embedder) -> None:
    assert main(["tag", str(trained.out), "--embedding-model", "fake-hash-embedder", str(corpus[0]), "-o", str(tmp_path / "t.csv")]) == 0
    assert "article/s" in capsys.readouterr().err


@pytest.mark.parametrize(("argv", "pattern"), [
    (["{model}", "{corpus}", "-o", "{tmp}/t.xlsx"], r"unknown format '\.xlsx'"),
    (["{tmp}/no-model", "{corpus}", "-o", "{tmp}/t.csv"], r"no saved model at .*no-model"),
    (["{model}", "{tmp}/nope.jsonl", "-o", "{tmp}/t.csv"], r"corpus path .*nope\.jsonl does not exist"),
    (["{model}", "{corpus}", "-o", "{corpus}"], r"is the corpus itself"),
    (["{model}", "{corpus}", "-o", "{tmp}/t.csv", "--batch-size", "0"], r"--batch-size must be at least 1"),
    # checked before Ray starts (nothing starts it here: the check comes first)
    (["{model}", "{corpus}", "-o", "{tmp}/t.csv", "--batch-size", "0", "--ray"], r"--batch-size must be at least 1"),
    # a name the file system takes, but not with the temporary file's prefix and suffix around it
    (["{model}", "{corpus}", "-o", "{tmp}/" + "t" * 248 + ".csv"], r"cannot write .*\(File name too long\)"),
])
def test_tag_command_mistakes_give_one_error_line(argv, pattern, trained, corpus, tmp_path, capsys,
                                                 fake_loaded_embedder) -> None:
    argv = [a.format(model=trained.out, corpus=corpus[0], tmp=tmp_path) for a in argv]
    before = corpus[0].read_bytes()
    assert main(["tag", *argv, "--embedding-model", "fake-hash-embedder", "--quiet"]) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in err and len(lines) == 1 and lines[0].startswith("error:"), err
    assert re.search(pattern, lines[0]), lines[0]
    assert corpus[0].read_bytes() == before
    assert not (tmp_path / "t.csv").exists()
