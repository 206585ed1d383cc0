"""The review loop: training writes assignments.csv; a person corrects clusters' themes and trains again."""

from __future__ import annotations

import csv
import io
import json
import re

import numpy as np
import pytest

import model
import model.pipeline
from model import UserInputError
from model.cli import main
from model.review import read_assignments
from model.themes import load_themes, parse_themes


def read_csv(path) -> list[dict]:
    with open(path, encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def write_csv(path, rows: list[dict]) -> None:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    path.write_text(out.getvalue(), encoding="utf-8")


def test_training_writes_one_row_per_cluster(trained) -> None:
    rows = read_csv(trained.out / "assignments.csv")
    clusters = sorted((i for i in trained.infos if i.id != -1), key=lambda i: i.id)
    assert [int(r["cluster"]) for r in rows] == [i.id for i in clusters]
    paragraphs = json.loads((trained.out / "map.json").read_text(encoding="utf-8"))["paragraphs"]["text"]
    for row, info in zip(rows, clusters):
        assert row["themes"] == ("; ".join(info.themes) or "none") == row["vote"]
        assert row["set_by"] == "vote"
        assert int(row["size"]) == info.size
        assert row["keywords"].split("; ") == info.keywords
        assert paragraphs[info.typical[0]].startswith(row["typical_paragraph"].rstrip(" …"))
        if info.themes:
            assert all(trained.tagger.theme_defs[trained.tagger.themes.index(t)].label in row["reason"]
                       for t in info.themes)
    assert len({r["corpus"] for r in rows}) == 1 and re.fullmatch(r"[0-9a-f]{16}", rows[0]["corpus"])
    assert {r["themes"] for r in rows} >= {"farm_shop", "cloud_data", "city_traffic", "none"}


@pytest.fixture(scope="module")
def first(synthetic, fake_embedder, tmp_path_factory):
    """A model trained with a cache, so the retrain can show that it reuses it."""
    root = tmp_path_factory.mktemp("review")
    tagger, summary = model.train(synthetic.corpus_dir, synthetic.themes_path, embedder=fake_embedder,
                                  cache_dir=root / "cache", progress=False, out=root / "model")
    return root, tagger


def carried(tagger, texts: list[str], theme: str) -> float:
    return float(np.mean([theme in r.themes for r in tagger.tag_many(texts)]))


def test_corrected_clusters_override_the_vote_and_change_the_tags(first, synthetic, fake_embedder) -> None:
    root, before = first
    rows = read_csv(root / "model" / "assignments.csv")
    data = json.loads((root / "model" / "map.json").read_text(encoding="utf-8"))
    texts, clusters = data["paragraphs"]["text"], np.asarray(data["paragraphs"]["cluster"])
    plain = next(int(r["cluster"]) for r in rows if r["themes"] == "none")       # the "none" pool: ceremonies
    farm = next(int(r["cluster"]) for r in rows if r["themes"] == "farm_shop")
    in_plain, in_farm = [t for t, c in zip(texts, clusters) if c == plain], clusters == farm
    for r in rows:
        if int(r["cluster"]) == plain:
            r["themes"] = "City traffic"          # a label works as well as an id
        elif int(r["cluster"]) == farm:
            r["themes"] = "none"
    write_csv(root / "edited.csv", rows)
    reduced = {p.name: p.stat().st_mtime_ns for p in (root / "cache" / "reduced").iterdir()}
    assert len(reduced) == 2, "the 5-D reduction for clustering and the 2-D one for the map"

    after, summary = model.train(synthetic.corpus_dir, synthetic.themes_path, embedder=fake_embedder,
                                 cache_dir=root / "cache", progress=False, out=root / "model2",
                                 assignments=root / "edited.csv")

    assert {p.name: p.stat().st_mtime_ns for p in (root / "cache" / "reduced").iterdir()} == reduced, \
        "the retrain reuses both UMAP results"
    assert summary.clusters_set_by_person == 2
    themes = after.themes
    labels = after.training_labels_
    assert labels.targets[clusters == plain].tolist() == [[t == "city_traffic" for t in themes]] * len(in_plain)
    assert not labels.targets[in_farm].any()
    assert labels.mask[clusters == plain].all() and labels.mask[in_farm].all()
    # The tags follow: the ceremony cluster is now city traffic; before, none of it was.
    assert carried(before, in_plain, "city_traffic") <= 0.2
    assert carried(after, in_plain, "city_traffic") >= 0.8

    again = {int(r["cluster"]): r for r in read_csv(root / "model2" / "assignments.csv")}
    assert (again[plain]["themes"], again[plain]["set_by"], again[plain]["vote"]) == ("city_traffic", "person", "none")
    assert (again[farm]["themes"], again[farm]["set_by"], again[farm]["vote"]) == ("none", "person", "farm_shop")
    for r in rows:   # every other cluster keeps the vote
        if int(r["cluster"]) not in (plain, farm):
            assert (again[int(r["cluster"])]["themes"], again[int(r["cluster"])]["set_by"]) == (r["themes"], "vote")
    report = (root / "model2" / "clusters.md").read_text(encoding="utf-8")
    assert report.count("themes set by a person") == 2
    assert f"## Cluster {plain} ({len(in_plain)} paragraphs, themes set by a person)" in report
    page = (root / "model2" / "report.html").read_text(encoding="utf-8")
    assert f"cluster {plain} (set by a person)" in page and "the vote gave: Farm produce sold online" in page

    # The rewritten file trains the same model again: the corrections are kept, marked `person`.
    third, summary = model.train(synthetic.corpus_dir, synthetic.themes_path, embedder=fake_embedder,
                                 cache_dir=root / "cache", progress=False, assignments=root / "model2" / "assignments.csv")
    assert summary.clusters_set_by_person == 2
    assert np.array_equal(third.training_labels_.targets, labels.targets)


def test_set_by_person_pins_a_cluster_as_the_vote_gave_it(trained, synthetic, tmp_path) -> None:
    rows = read_csv(trained.out / "assignments.csv")
    rows[0]["set_by"] = "person"
    write_csv(tmp_path / "a.csv", rows)
    read = read_assignments(tmp_path / "a.csv", load_themes(synthetic.themes_path))
    assert read.themes == {int(rows[0]["cluster"]): [t for t in rows[0]["themes"].split("; ") if t != "none"]}
    assert set(read.lines) == {int(r["cluster"]) for r in rows}


def test_a_file_saved_by_a_spreadsheet_with_semicolons(trained, synthetic, tmp_path) -> None:
    rows = read_csv(trained.out / "assignments.csv")
    rows[0]["themes"] = "cloud_data; city_traffic"
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]), delimiter=";", lineterminator="\r\n")
    writer.writeheader()
    writer.writerows(rows)
    (tmp_path / "a.csv").write_bytes(b"\xef\xbb\xbf" + out.getvalue().encode("utf-8"))   # with Excel's BOM
    read = read_assignments(tmp_path / "a.csv", load_themes(synthetic.themes_path))
    assert read.themes == {int(rows[0]["cluster"]): ["cloud_data", "city_traffic"]}
    assert read.fingerprint == rows[0]["corpus"]


# ------------------------------------------------------------------------------------------------ mistakes

def _edit(rows, change):
    rows = [dict(r) for r in rows]
    change(rows)
    return rows


PARSE_CASES = [
    ("unknown-theme", lambda rows: rows[0].update(themes="smartcity"),
     r"line 2 \(cluster 0\): unknown theme 'smartcity' in the `themes` cell; the themes are: farm_shop, cloud_data, "
     r"city_traffic"),
    ("none-and-a-theme", lambda rows: rows[1].update(themes="none; cloud_data"), r"`none` cannot be combined"),
    ("cleared-themes", lambda rows: rows[0].update(themes=""),
     r"line 2 \(cluster 0\): the `themes` cell is empty; write `none` for no theme"),
    ("twice", lambda rows: rows.append(dict(rows[0])), r"cluster 0 appears twice \(first on line 2\)"),
    ("not-a-number", lambda rows: rows[0].update(cluster="first"), r"cluster 'first' is not a cluster number"),
    ("bad-set-by", lambda rows: rows[0].update(set_by="me"), r"set_by must be `person` or `vote`, got 'me'"),
    ("two-corpora", lambda rows: rows[0].update(corpus="0123456789abcdef"),
     r"rows from different corpora \(corpus fingerprints 0123456789abcdef \(line 2\), [0-9a-f]{16} \(line 3\)\)"),
    ("no-fingerprint", lambda rows: [r.update(corpus="") for r in rows], r"no row has a `corpus` fingerprint"),
]


@pytest.mark.parametrize("change,pattern", [c[1:] for c in PARSE_CASES], ids=[c[0] for c in PARSE_CASES])
def test_bad_files_are_refused_before_training(change, pattern, trained, synthetic, tmp_path) -> None:
    write_csv(tmp_path / "a.csv", _edit(read_csv(trained.out / "assignments.csv"), change))
    with pytest.raises(UserInputError, match=pattern):
        read_assignments(tmp_path / "a.csv", load_themes(synthetic.themes_path))


def _themes_with(synthetic, tmp_path, old: str, new: str):
    """The synthetic theme file with one piece of text changed."""
    text = synthetic.themes_path.read_text(encoding="utf-8")
    assert old in text
    (tmp_path / "themes.toml").write_text(text.replace(old, new), encoding="utf-8")
    return load_themes(tmp_path / "themes.toml")


def test_a_stale_vote_cell_does_not_block_a_renamed_theme(trained, synthetic, tmp_path) -> None:
    """Renaming a theme leaves the clusters (and the fingerprint) as they were, so the old file still applies; the
    `vote` cell only says what the vote gave, so its old theme id must not stop the corrected `themes` cell."""
    themes = _themes_with(synthetic, tmp_path, "[city_traffic]", "[road_traffic]")
    rows = read_csv(trained.out / "assignments.csv")
    traffic = [r for r in rows if r["themes"] == "city_traffic"]
    farm = next(r for r in rows if r["themes"] == "farm_shop")
    assert traffic and all(r["vote"] == "city_traffic" for r in traffic)
    for r in traffic:
        r["themes"] = "road_traffic"
    farm["vote"] = ""   # a cleared vote cell says nothing either: the row's themes apply
    write_csv(tmp_path / "a.csv", rows)
    read = read_assignments(tmp_path / "a.csv", themes)
    assert read.themes == {int(r["cluster"]): ["road_traffic"] for r in traffic} | {int(farm["cluster"]): ["farm_shop"]}
    # A theme cell that still names the old id is refused, and the message says which column.
    traffic[0]["themes"] = "city_traffic"
    write_csv(tmp_path / "a.csv", rows)
    with pytest.raises(UserInputError, match=r"unknown theme 'city_traffic' in the `themes` cell"):
        read_assignments(tmp_path / "a.csv", themes)


def test_a_label_with_a_comma_can_be_typed(trained, synthetic, tmp_path) -> None:
    themes = _themes_with(synthetic, tmp_path, 'label = "Cloud data centres"', 'label = "Cloud computing, big data"')
    rows = read_csv(trained.out / "assignments.csv")
    edits = {0: "Cloud computing, big data", 1: "city traffic; cloud computing, big data",
             2: "farm_shop, city_traffic"}   # a comma between ids works as before
    for k, cell in edits.items():
        rows[k].update(themes=cell, set_by="person")
    write_csv(tmp_path / "a.csv", rows)
    read = read_assignments(tmp_path / "a.csv", themes)
    assert [read.themes[int(rows[k]["cluster"])] for k in edits] == \
        [["cloud_data"], ["cloud_data", "city_traffic"], ["farm_shop", "city_traffic"]]


@pytest.mark.parametrize("delimiter", [",", ";"])
def test_blank_lines_before_the_header_are_skipped(trained, synthetic, tmp_path, delimiter) -> None:
    rows = read_csv(trained.out / "assignments.csv")
    rows[0]["themes"] = "cloud_data; city_traffic"
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]), delimiter=delimiter, lineterminator="\r\n")
    writer.writeheader()
    writer.writerows(rows)
    (tmp_path / "a.csv").write_text("\r\n  \r\n" + out.getvalue(), encoding="utf-8", newline="")
    read = read_assignments(tmp_path / "a.csv", load_themes(synthetic.themes_path))
    assert read.themes == {int(rows[0]["cluster"]): ["cloud_data", "city_traffic"]}
    assert read.lines[int(rows[0]["cluster"])] == 4, "line numbers count the blank lines"


def test_a_row_added_by_hand_without_a_fingerprint(trained, synthetic, tmp_path) -> None:
    """A row deleted and typed in again with only its cluster and themes: the other rows carry the fingerprint."""
    rows = read_csv(trained.out / "assignments.csv")
    gone = rows.pop()
    write_csv(tmp_path / "a.csv", rows)
    with open(tmp_path / "a.csv", "a", encoding="utf-8") as fh:
        fh.write(f"{gone['cluster']},city_traffic\n")
    read = read_assignments(tmp_path / "a.csv", load_themes(synthetic.themes_path))
    assert read.fingerprint == rows[0]["corpus"]
    assert read.themes == {int(gone["cluster"]): ["city_traffic"]}
    assert read.lines[int(gone["cluster"])] == len(rows) + 2


def test_a_cell_longer_than_csvs_default_limit(trained, synthetic, tmp_path) -> None:
    """A whole article pasted into a cell passes csv's default 128 KiB field limit; the corpus reader allows it too."""
    rows = read_csv(trained.out / "assignments.csv")
    rows[1]["typical_paragraph"] = "word " * 40_000
    rows[1]["themes"] = "none"
    write_csv(tmp_path / "a.csv", rows)
    read = read_assignments(tmp_path / "a.csv", load_themes(synthetic.themes_path))
    assert read.themes.get(int(rows[1]["cluster"]), []) == [] and len(read.lines) == len(rows)


def test_a_csv_error_names_the_file_and_line(trained, synthetic, tmp_path, monkeypatch) -> None:
    """Where csv refuses the file (here a field limit that cannot be raised, as on some platforms), one line."""
    rows = read_csv(trained.out / "assignments.csv")
    limit = max(len(cell) for r in rows for cell in r.values()) + 1
    rows[2]["typical_paragraph"] = "w" * (limit + 1)
    write_csv(tmp_path / "a.csv", rows)
    real = csv.field_size_limit
    old = real(limit)
    monkeypatch.setattr(csv, "field_size_limit", lambda *new: limit)
    try:
        with pytest.raises(UserInputError, match=r"a\.csv, line 4: bad CSV \(field larger than field limit"):
            read_assignments(tmp_path / "a.csv", load_themes(synthetic.themes_path))
    finally:
        real(old)


def test_not_an_assignments_file(synthetic, tmp_path) -> None:
    (tmp_path / "tags.csv").write_text("id,themes\na1,farm_shop\n", encoding="utf-8")
    with pytest.raises(UserInputError, match=r"not an assignments file: no cluster, corpus column"):
        read_assignments(tmp_path / "tags.csv", load_themes(synthetic.themes_path))
    with pytest.raises(UserInputError, match=r"assignments file .*nope\.csv does not exist"):
        read_assignments(tmp_path / "nope.csv", load_themes(synthetic.themes_path))


@pytest.fixture
def cli_env(monkeypatch, fake_embedder, tmp_path):
    monkeypatch.setattr(model.pipeline, "load_embedder", lambda spec, cache_dir=None: fake_embedder)
    monkeypatch.setenv("THEME_TAGGER_CACHE", str(tmp_path / "cache"))


def _missing_cluster(rows):
    rows.append({**rows[0], "cluster": "99"})


def _unclustered(rows):
    rows.append({**rows[0], "cluster": "-1"})


def _other_corpus(rows):
    for r in rows:
        r["corpus"] = "0123456789abcdef"


CLI_CASES = [
    ("missing-cluster", _missing_cluster, r"line \d+: cluster 99 does not exist \(the clusters are 0 to \d+\)"),
    ("unclustered", _unclustered, r"cluster -1 does not exist \(the unclustered paragraphs have no themes"),
    ("other-corpus", _other_corpus, r"was written for another corpus or clustering \(fingerprint 0123456789abcdef"),
    ("unknown-theme", lambda rows: rows[0].update(themes="farm_shop; smart_city"), r"unknown theme 'smart_city'"),
]


@pytest.mark.parametrize("change,pattern", [c[1:] for c in CLI_CASES], ids=[c[0] for c in CLI_CASES])
def test_train_with_a_bad_file_gives_one_error_line(change, pattern, trained, synthetic, tmp_path, capsys,
                                                    cli_env) -> None:
    write_csv(tmp_path / "a.csv", _edit(read_csv(trained.out / "assignments.csv"), change))
    code = main(["train", "--corpus", str(synthetic.corpus_dir), "--themes", str(synthetic.themes_path),
                 "--out", str(tmp_path / "out"), "--assignments", str(tmp_path / "a.csv"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in err and lines[-1].startswith("error:") and len(lines) == 1, err
    assert re.search(pattern, lines[-1]), lines[-1]
    assert not (tmp_path / "out").exists()


def test_a_file_from_another_corpus_is_refused(trained, synthetic, fake_embedder, tmp_path) -> None:
    """Same themes, fewer articles: the cluster numbers mean other things, so the file must not apply."""
    with pytest.raises(UserInputError, match="written for another corpus"):
        model.train(synthetic.articles[:-3], synthetic.themes_path, embedder=fake_embedder, cache_dir=None,
                    progress=False, assignments=trained.out / "assignments.csv")


def test_a_label_never_hides_another_themes_id(tmp_path) -> None:
    # training writes ids into the themes cells: "traffic" is the id of one theme and the label of another
    themes = parse_themes('[traffic]\nlabel = "Road traffic"\ndescription = "Congestion, buses and parking."\n'
                          '[transport]\nlabel = "Traffic"\ndescription = "Public transport tickets and fares."\n')
    path = tmp_path / "a.csv"
    path.write_text("cluster,themes,set_by,vote,corpus\n0,traffic,person,none,abc\n1,Traffic; road traffic,person,"
                    "none,abc\n", encoding="utf-8")
    assert read_assignments(path, themes).themes == {0: ["traffic"], 1: ["traffic"]}
