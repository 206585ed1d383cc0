"""Distributed tagging and embedding on a real local Ray cluster, with the fake embedder.

The cluster has three logical CPUs on this two-core machine: two for the actors, one for the light tasks that read
and split the data beside them (model.distributed keeps one free, or Ray would wait forever).

The cluster starts once for this module. Ray workers are other processes: they find `model`, `conftest` (the fake
embedder) and this module (the crashing embedder) through PYTHONPATH, which they inherit from the cluster."""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import HashEmbedder, make_article

import model
from model import ThemeTagger, UserInputError
from model.cli import main
from model.corpus import paragraphs_of
from model.distributed import embed_corpus, tag_dataset, tag_path
from model.embed import EmbeddingCache, embed_texts

ROOT = Path(__file__).resolve().parents[1]
KINDS = ["farm_shop", "cloud_data", "city_traffic", None]


@pytest.fixture(scope="module")
def cluster(trained, tmp_path_factory):
    """The local cluster. Its job ships a folder holding a copy of the trained model, at `model` in each
    worker's working folder (runtime_env working_dir): the route for a cluster without shared storage."""
    ray = pytest.importorskip("ray", reason="the distributed tests need the [ray] extra")
    import ray.data

    job = tmp_path_factory.mktemp("job")
    shutil.copytree(trained.out, job / "model")

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), str(ROOT / "tests"), os.environ.get("PYTHONPATH", "")]))
        mp.setenv("RAY_DISABLE_USAGE_STATS", "1")
        ray.init(num_cpus=3, include_dashboard=False, logging_level="WARNING",
                 _temp_dir=str(tmp_path_factory.mktemp("ray")), runtime_env={"working_dir": str(job)})
        ray.data.DataContext.get_current().enable_progress_bars = False
        try:
            yield ray
        finally:
            ray.shutdown()


@pytest.fixture(scope="module")
def articles() -> list[tuple[str, str]]:
    """200 fresh articles (id, text), a few of them empty or boilerplate only."""
    rng = random.Random(14)
    out = [(f"n{i:03d}", make_article(rng, rng.choice(KINDS))) for i in range(197)]
    return out + [("n197", ""), ("n198", "Leave a Reply"), ("n199", "Short.")]


def as_rows(tagger: ThemeTagger, articles) -> dict[str, dict]:
    return {i: r.to_row(i) for (i, _), r in zip(articles, tagger.tag_many([t for _, t in articles]))}


def assert_same_rows(got: list[dict], expected: dict[str, dict]) -> None:
    assert sorted(r["id"] for r in got) == sorted(expected), "every input row exactly once"
    for row in got:
        want = expected[row["id"]]
        assert list(row) == list(want)
        assert row["themes"] == want["themes"]
        for column, value in want.items():
            if column.startswith("score:"):
                assert row[column] == pytest.approx(value, abs=1e-6)
            else:
                assert row[column] == value


def dataset(ray, articles, block: int = 20):
    import pyarrow as pa

    table = pa.table({"id": [i for i, _ in articles], "text": [t for _, t in articles]})
    return ray.data.from_arrow([table.slice(i, block) for i in range(0, len(articles), block)])


# ---------------------------------------------------------------------------------------------- tagging

def test_distributed_rows_equal_tag_many(cluster, trained, fake_embedder, articles) -> None:
    tagged = tag_dataset(dataset(cluster, articles), trained.out, workers=2, batch_size=25,
                         embedder=HashEmbedder())
    rows = tagged.take_all()
    expected = as_rows(ThemeTagger.load(trained.out, embedder=fake_embedder), articles)
    assert_same_rows(rows, expected)
    assert any(r["themes"] for r in rows) and any(not r["themes"] for r in rows)
    with pytest.raises(UserInputError, match="take all 3 CPUs"):
        tag_dataset(dataset(cluster, articles), trained.out, workers=3, embedder=HashEmbedder())


def test_tag_path_reads_jsonl_and_parquet_and_writes_parquet(cluster, trained, fake_embedder, articles,
                                                            tmp_path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    some = [(i, t) for i, t in articles[:60] if t.strip()]   # the corpus reader skips empty articles
    jsonl = tmp_path / "in.jsonl"
    jsonl.write_text("".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in some), encoding="utf-8")
    expected = as_rows(ThemeTagger.load(trained.out, embedder=fake_embedder), some)

    n = tag_path(jsonl, tmp_path / "one.parquet", trained.out, workers=1, batch_size=16, embedder=HashEmbedder())
    assert n == len(some)
    assert_same_rows(pq.read_table(tmp_path / "one.parquet").to_pylist(), expected)

    pq.write_table(pa.table({"id": [i for i, _ in some], "text": [t for _, t in some]}), tmp_path / "in.parquet")
    n = tag_path(tmp_path / "in.parquet", tmp_path / "parts", trained.out, workers=1, batch_size=16,
                 embedder=HashEmbedder())
    assert n == len(some)
    assert len(list((tmp_path / "parts").glob("*.parquet"))) >= 2   # written by the workers, block by block
    assert_same_rows(pq.read_table(tmp_path / "parts").to_pylist(), expected)

    with pytest.raises(UserInputError, match="not empty"):
        tag_path(tmp_path / "in.parquet", tmp_path / "parts", trained.out, embedder=HashEmbedder())
    with pytest.raises(UserInputError, match="no 'body' column"):
        tag_path(tmp_path / "in.parquet", tmp_path / "x.parquet", trained.out, text_column="body",
                 embedder=HashEmbedder())
    with pytest.raises(UserInputError, match="no saved model"):
        tag_path(jsonl, tmp_path / "y.parquet", tmp_path / "missing-model", embedder=HashEmbedder())
    assert not (tmp_path / "x.parquet").exists() and not (tmp_path / "y.parquet").exists()


class CrashOnce(HashEmbedder):
    """The fake embedder, except that the first worker process to encode anything dies at once (os._exit),
    as a worker does when the machine kills it. A flag file makes it happen once in the whole job."""

    def __init__(self, flag: str):
        super().__init__()
        self.flag = flag

    def encode(self, texts, show_progress: bool = False):
        try:
            fd = os.open(self.flag, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return super().encode(texts, show_progress)
        os.write(fd, str(os.getpid()).encode())
        os.close(fd)
        os._exit(1)


def test_killed_actor_loses_no_row_and_repeats_none(cluster, trained, fake_embedder, articles, tmp_path) -> None:
    flag = tmp_path / "crashed"
    tagged = tag_dataset(dataset(cluster, articles), trained.out, workers=2, batch_size=25,
                         embedder=CrashOnce(str(flag)))
    rows = tagged.take_all()
    assert flag.is_file(), "no worker crashed, so this test showed nothing"
    assert int(flag.read_text()) != os.getpid()
    assert_same_rows(rows, as_rows(ThemeTagger.load(trained.out, embedder=fake_embedder), articles))


def test_model_folder_shipped_with_runtime_env(cluster, trained, fake_embedder, articles, tmp_path,
                                               monkeypatch) -> None:
    """The workers read the model from the job's working_dir, not from a path this process knows."""
    monkeypatch.chdir(tmp_path)     # no "model" folder here
    assert not (tmp_path / "model").exists()
    some = articles[:50]
    tagged = tag_dataset(dataset(cluster, some), "model", workers=1, batch_size=10, embedder=HashEmbedder())
    assert_same_rows(tagged.take_all(), as_rows(ThemeTagger.load(trained.out, embedder=fake_embedder), some))
    with pytest.raises(UserInputError, match="already running"):   # shipping by tag_path needs its own session
        tag_path(tmp_path / "in.jsonl", tmp_path / "o.parquet", trained.out, ship_model=True)


# ---------------------------------------------------------------------------------------------- embedding

def test_embed_corpus_fills_the_cache_with_the_same_vectors(cluster, synthetic, fake_embedder, tmp_path) -> None:
    texts = [p.text for p in paragraphs_of(synthetic.articles, fake_embedder.max_words)]
    cache_dir = tmp_path / "cache"
    assert embed_corpus(texts, HashEmbedder(), cache_dir, workers=2, batch_size=16, progress=False) == len(set(texts))
    assert embed_corpus(texts, HashEmbedder(), cache_dir, workers=2, progress=False) == 0   # all there now

    cache = EmbeddingCache(cache_dir / "embeddings.sqlite")
    found = cache.get([EmbeddingCache.key(fake_embedder.id, t) for t in texts])
    assert len(found) == len(set(texts))
    single = embed_texts(texts, fake_embedder)   # the single-process embed, no cache
    np.testing.assert_array_equal(np.vstack([found[EmbeddingCache.key(fake_embedder.id, t)] for t in texts]), single)


class Counting(HashEmbedder):
    def __init__(self):
        super().__init__()
        self.encoded: list[str] = []

    def encode(self, texts, show_progress: bool = False):
        self.encoded += list(texts)
        return super().encode(texts, show_progress)


def test_train_on_ray_embeds_on_the_cluster_and_trains_the_same_model(cluster, synthetic, trained,
                                                                      tmp_path) -> None:
    local = Counting()
    tagger, summary = model.train(synthetic.corpus_dir, synthetic.themes_path, embedder=local,
                                  cache_dir=tmp_path / "cache", progress=False, ray_address="local", ray_workers=1)
    prompts = {p for t in model.load_themes(synthetic.themes_path) for p in t.prompts()}
    assert set(local.encoded) <= prompts, "paragraphs were embedded in this process, not on the cluster"
    assert summary.paragraphs == trained.summary.paragraphs
    texts = [t for _, t in synthetic.heldout]
    np.testing.assert_allclose([list(r.scores.values()) for r in tagger.tag_many(texts)],
                               [list(r.scores.values()) for r in trained.tagger.tag_many(texts)], atol=1e-6)
    with pytest.raises(UserInputError, match="cache"):
        model.train(synthetic.corpus_dir, synthetic.themes_path, embedder=local, cache_dir=None, progress=False,
                    ray_address="local")


# ---------------------------------------------------------------------------------------------- without Ray

WITHOUT_RAY = """
import sys
sys.modules["ray"] = None      # as if Ray were not installed
import model, model.distributed
from model import UserInputError
try:
    model.distributed.tag_path({inputs!r}, {out!r}, {model_dir!r})
except UserInputError as exc:
    print("tag_path:", exc)
from model.cli import main
print("tag command exit", main(["tag", {model_dir!r}, {inputs!r}, "-o", {out!r}, "--ray"]))
sys.argv = ["train.py", "--corpus", {inputs!r}, "--ray", "--no-cache", "--quiet", "--out", {out_dir!r}]
import runpy
runpy.run_path({train!r}, run_name="__main__")
"""


def test_without_ray_one_clear_error(synthetic, trained, tmp_path) -> None:
    code = WITHOUT_RAY.format(inputs=str(synthetic.corpus_dir), out=str(tmp_path / "o.parquet"),
                              model_dir=str(trained.out), out_dir=str(tmp_path / "m"), train=str(ROOT / "train.py"))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert "tag_path: distributed runs need Ray, which is not installed: pip install -e '.[ray]'" in proc.stdout
    assert "tag command exit 2" in proc.stdout                    # theme-tagger tag --ray
    assert proc.returncode == 2, proc.stderr                      # train.py --ray
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert errors == ["error: distributed runs need Ray, which is not installed: pip install -e '.[ray]'"] * 2
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "m").exists()


# ---------------------------------------------------------------------------------------------- same as without Ray

class BatchSensitive(HashEmbedder):
    """The fake embedder, plus a trace of how many texts shared the call: as OpenVINO's bf16 vectors differ a little
    with the batch a text is in, these differ with it, so only the very same batches give the same vectors."""

    def encode(self, texts, show_progress: bool = False):
        return super().encode(texts, show_progress) + np.float32(1e-3 * len(texts))


def test_embed_corpus_sends_the_chunks_embed_texts_sends(cluster, tmp_path) -> None:
    texts = [f"paragraph {i} about harvest {i % 7} and cloud {i % 11}" for i in range(1100)]   # two chunks
    assert embed_corpus(texts, BatchSensitive(), tmp_path / "ray", workers=2, progress=False) == len(texts)
    found = EmbeddingCache(tmp_path / "ray" / "embeddings.sqlite").get(
        [EmbeddingCache.key(BatchSensitive().id, t) for t in texts])
    ray_vectors = np.vstack([found[EmbeddingCache.key(BatchSensitive().id, t)] for t in texts])
    local = embed_texts(texts, BatchSensitive(), EmbeddingCache(tmp_path / "local.sqlite"))   # training's embed
    np.testing.assert_array_equal(ray_vectors, local)


# ---------------------------------------------------------------------------------------------- output and input checks

def test_tag_never_writes_over_its_corpus(trained, tmp_path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    corpus = tmp_path / "victim.parquet"
    pq.write_table(pa.table({"id": ["a"], "text": ["Some article."]}), corpus)
    before = corpus.read_bytes()
    assert main(["tag", str(trained.out), str(corpus), "--out", str(corpus), "--ray"]) == 2
    assert corpus.read_bytes() == before


def test_output_checked_before_any_work(cluster, trained, tmp_path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    jsonl = tmp_path / "in.jsonl"
    jsonl.write_text(json.dumps({"id": "a", "text": "Some article about the farm shop."}) + "\n", encoding="utf-8")
    with pytest.raises(UserInputError, match="there is no folder"):
        tag_path(jsonl, tmp_path / "no" / "such" / "tags.parquet", trained.out, embedder=HashEmbedder())
    (tmp_path / "afile").write_text("keep me", encoding="utf-8")
    with pytest.raises(UserInputError, match="is a file"):
        tag_path(jsonl, tmp_path / "afile", trained.out, embedder=HashEmbedder())
    assert (tmp_path / "afile").read_text(encoding="utf-8") == "keep me"
    empty = tmp_path / "empty.parquet"
    pq.write_table(pa.table({"id": pa.array([], pa.string()), "text": pa.array([], pa.string())}), empty)
    with pytest.raises(UserInputError, match="no articles"):
        tag_path(empty, tmp_path / "tags", trained.out, embedder=HashEmbedder())
    binary = tmp_path / "binary.parquet"
    pq.write_table(pa.table({"id": ["a"], "text": pa.array([b"bytes"], pa.binary())}), binary)
    with pytest.raises(UserInputError, match="not text"):
        tag_path(binary, tmp_path / "tags", trained.out, embedder=HashEmbedder())
    with pytest.raises(UserInputError, match="no saved model"):   # checked here: "auto" is on this machine
        tag_path(jsonl, tmp_path / "t.parquet", tmp_path / "missing-model", address="auto", embedder=HashEmbedder())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile", "binary.parquet", "empty.parquet", "in.jsonl"]


@pytest.mark.parametrize("as_uri", [False, True], ids=["path", "uri"])
def test_parquet_rows_read_as_the_other_readers_read_them(cluster, trained, fake_embedder, articles,
                                                         tmp_path, as_uri) -> None:
    """Articles without text are skipped, not tagged; a row without an id gets its row number, as JSONL's line-N.
    Read from a URI (file://, as s3:// would be) too: its missing ids came out as "None"."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    some = articles[:30] + [("blank", "   "), ("null", None), (None, articles[40][1]), ("", articles[41][1])]
    pq.write_table(pa.table({"id": [i for i, _ in some], "text": [t for _, t in some]}), tmp_path / "in.parquet")
    source = (tmp_path / "in.parquet").as_uri() if as_uri else tmp_path / "in.parquet"
    n = tag_path(source, tmp_path / "tags", trained.out, workers=1, batch_size=8, embedder=HashEmbedder())
    kept = [(i or f"row-{n}", t) for n, (i, t) in enumerate(some, 1) if t and t.strip()]
    assert [i for i, _ in kept[-2:]] == ["row-33", "row-34"]
    assert n == len(kept)
    assert_same_rows(pq.read_table(tmp_path / "tags").to_pylist(),
                     as_rows(ThemeTagger.load(trained.out, embedder=fake_embedder), kept))


class FailOn(HashEmbedder):
    """The fake embedder, except that it raises on one article: a job that fails part-way."""

    def encode(self, texts, show_progress: bool = False):
        if any("FAIL HERE" in t for t in texts):
            raise RuntimeError("this batch fails")
        return super().encode(texts, show_progress)


def test_a_failed_folder_output_leaves_nothing_under_its_name(cluster, trained, articles, tmp_path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    some = [(i, t) for i, t in articles[:60] if t.strip()] + [("last", "FAIL HERE")]
    pq.write_table(pa.table({"id": [i for i, _ in some], "text": [t for _, t in some]}), tmp_path / "in.parquet")
    with pytest.raises(Exception, match="this batch fails"):
        tag_path(tmp_path / "in.parquet", tmp_path / "tags", trained.out, workers=1, batch_size=8, embedder=FailOn())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.parquet"]   # no part files, no temporary folder


ADDRESSES = """
from model.cli import main
for address in ("bogus", "127.0.0.1:1", "ray://127.0.0.1:1"):
    print("exit", main(["tag", {model_dir!r}, {inputs!r}, "--out", {out!r}, "--ray", address]))
"""


def test_a_bad_address_is_one_error_line_at_once(synthetic, trained, tmp_path) -> None:
    """Not a traceback (an address Ray can't parse), nor minutes of Ray's retries (nothing listens at port 1)."""
    code = ADDRESSES.format(model_dir=str(trained.out), inputs=str(synthetic.corpus_dir), out=str(tmp_path / "o"))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RAY_DISABLE_USAGE_STATS": "1"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert proc.stdout.split() == ["exit", "2"] * 3, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 3 and "Traceback" not in proc.stderr, proc.stderr
    assert "'bogus'" in errors[0] and "'127.0.0.1:1'" in errors[1]
    assert "'ray://127.0.0.1:1'" in errors[2] or "Ray Client" in errors[2]
    assert not (tmp_path / "o").exists()


ONE_CPU = """
import ray
from conftest import HashEmbedder
from model import UserInputError
from model.distributed import tag_path
ray.init(num_cpus=1, include_dashboard=False, _temp_dir={temp!r})
try:
    tag_path({inputs!r}, {out!r}, {model_dir!r}, embedder=HashEmbedder())
except UserInputError as exc:
    print("refused:", exc)
"""


def test_a_one_cpu_cluster_is_refused_not_waited_on(synthetic, trained, tmp_path, tmp_path_factory) -> None:
    """With --workers left out too: a pool of one actor there would take the only CPU, and the job would wait."""
    code = ONE_CPU.format(inputs=str(synthetic.corpus_dir), out=str(tmp_path / "o.parquet"), model_dir=str(trained.out),
                          temp=str(tmp_path_factory.mktemp("cpu1")))   # a short path: Ray's sockets are in it
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")]),
           "RAY_DISABLE_USAGE_STATS": "1"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=180)
    assert "refused: 1 workers of 1 CPU take all 1 CPUs of the Ray cluster" in proc.stdout, proc.stderr
    assert not (tmp_path / "o.parquet").exists()
