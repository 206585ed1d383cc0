"""Scale out on Ray Data: tag a large corpus with a saved model folder, and embed a training corpus on a cluster.

Ray is an optional extra (pip install -e '.[ray]'); it is imported inside the functions, so `import model` works
without it. Each actor holds one model and one thread (OpenVINO's, ONNX Runtime's or torch's); Ray Data streams
blocks through the actor pool with backpressure, retries a task whose actor died, and reads and writes Parquet
locally or in object storage."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from .embed import DEFAULT, EmbeddingCache, Embedder, SentenceTransformerEmbedder, default_cache_dir, load_embedder
from .errors import UserInputError
from .onnx_embed import set_threads

log = logging.getLogger(__name__)

INSTALL = "pip install -e '.[ray]'"


def require_ray():
    """The ray module, or a UserInputError that says what to install."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise UserInputError(f"distributed runs need Ray, which is not installed: {INSTALL}") from None
    return ray


@contextmanager
def ray_session(address: str | None = None, workers: int | None = None, threads: int = 1,
                runtime_env: dict | None = None):
    """Join the Ray instance this process already started, or connect to `address`, or start a local one.

    address: None or "local": a new Ray on this machine (or the cluster in $RAY_ADDRESS); "auto": the cluster
    already running on this machine; "ray://host:10001": a remote cluster through Ray Client. A session this
    function opened is closed again at the end. A local Ray started for `workers` actors gets a CPU more than
    they take, for the light tasks that read, split and write the data beside them."""
    ray = require_ray()
    if ray.is_initialized():
        if runtime_env:
            raise UserInputError("Ray is already running in this process, so the model folder can't be shipped "
                                 "with the job: pass runtime_env={'working_dir': ...} to your own ray.init")
        yield ray
        return
    kwargs = {"logging_level": logging.WARNING, "runtime_env": runtime_env}
    if address in (None, "local"):
        kwargs["include_dashboard"] = False
        if workers is not None:
            kwargs["num_cpus"] = max(os.cpu_count() or 1, workers * threads + 1)
    try:
        ray.init(address=address, **kwargs)
    except ConnectionError as exc:
        raise UserInputError(f"could not reach a Ray cluster at {address!r}: {exc}") from None
    try:
        yield ray
    finally:
        ray.shutdown()


def _pool_size(ray, workers: int | None, threads: int) -> int:
    """Actors for the pool: one CPU of the cluster stays free, or the tasks that read and split the data beside
    the actors never get one, and the job waits forever."""
    cpus = int(ray.cluster_resources().get("CPU", 1))
    if workers is None:
        return max(1, (cpus - 1) // threads)
    if workers < 1:
        raise UserInputError(f"workers must be at least 1, got {workers}")
    if workers * threads > cpus - 1:
        raise UserInputError(f"{workers} workers of {threads} CPU take all {cpus} CPUs of the Ray cluster, and "
                             "leave none for reading the data: use fewer, or give Ray more CPUs")
    return workers


# ---------------------------------------------------------------------------------------------- tagging

def output_schema(themes: Sequence[str]):
    """The Arrow schema of the tag rows (TagResult.to_row): fixed, so that every block and file agrees."""
    import pyarrow as pa

    fields = [("id", pa.string()), ("themes", pa.list_(pa.string()))]
    for t in themes:
        fields += [(f"score:{t}", pa.float64()), (f"evidence:{t}", pa.string())]
    return pa.schema(fields)


def _torch_threads(embedder: Embedder, threads: int) -> None:
    """torch's thread count, where the actor runs torch: imported only then (seconds of an actor's start)."""
    if isinstance(embedder, SentenceTransformerEmbedder) or "torch" in sys.modules:
        import torch

        torch.set_num_threads(threads)


class _Tagger:
    """A Ray Data actor: loads the model folder once, then tags one batch of articles per call."""

    def __init__(self, model_dir: str, text_column: str, id_column: str, embedder=None, threads: int = 1):
        from .tagger import ThemeTagger

        set_threads(threads)   # before the load makes the ONNX session
        self.tagger = ThemeTagger.load(model_dir, embedder=embedder)
        _torch_threads(self.tagger.embedder, threads)
        self.text_column, self.id_column = text_column, id_column
        self.schema = output_schema(self.tagger.themes)

    def __call__(self, batch):
        import pyarrow as pa

        texts = [t if isinstance(t, str) else "" for t in batch.column(self.text_column).to_pylist()]
        ids = batch.column(self.id_column).to_pylist()
        results = self.tagger.tag_many(texts, batch_size=max(1, len(texts)))
        return pa.Table.from_pylist([r.to_row(i) for r, i in zip(results, ids)], schema=self.schema)


def tag_dataset(ds, model_dir: str | os.PathLike, *, text_column: str = "text", id_column: str = "id",
                workers: int | None = None, batch_size: int = 128, threads: int = 1, embedder: Embedder | None = None,
                **map_batches_args):
    """Tag every row of a Ray Dataset with a saved model; returns a (lazy) Dataset of tag rows.

    The rows are TagResult.to_row's, as the single-process tag command writes them: `id`, `themes` (a list),
    `score:<theme>` and `evidence:<theme>` for every theme. They come in no particular order.

    model_dir: the model folder as each actor sees it (shared storage, or a path inside the job's `runtime_env`
    working_dir). workers: actors in the pool, each with `threads` threads and as many CPUs (default: all
    the cluster's CPUs but one, which the tasks that split the data need). batch_size: articles per call; blocks
    are cut to this size (streaming), so the actors share the work.
    embedder: use this one instead of the folder's (tests pass a small fake; it is pickled to each actor).
    map_batches_args: passed on to Dataset.map_batches, e.g. memory=..., max_restarts=..., max_task_retries=...
    (Ray Data restarts a dead actor and retries its task, without limit, by default)."""
    ray = require_ray()
    _check_columns(ds, (id_column, text_column))
    model_dir = str(model_dir)
    size = _pool_size(ray, workers, threads)
    args = {"num_cpus": threads, **map_batches_args}
    return (ds.repartition(target_num_rows_per_block=batch_size)
            .map_batches(_Tagger, batch_size=batch_size, batch_format="pyarrow",
                         compute=ray.data.ActorPoolStrategy(size=size),
                         fn_constructor_kwargs={"model_dir": model_dir, "text_column": text_column,
                                                "id_column": id_column, "embedder": embedder, "threads": threads},
                         **args))


def _check_columns(ds, columns) -> None:
    names = ds.schema().names
    for column in columns:
        if column not in names:
            raise UserInputError(f"the input has no {column!r} column (it has: {', '.join(names)})")


def _is_parquet(path: str) -> bool:
    if "://" in path:
        return True
    p = Path(path)
    return p.suffix.lower() == ".parquet" or (p.is_dir() and any(p.glob("*.parquet")))


def read_articles(inputs: str | os.PathLike, batch_size: int = 128, text_column: str = "text",
                  id_column: str = "id"):
    """A Ray Dataset of `id` and `text` rows: Parquet (a file, a folder, or a URI such as s3://...) is read by
    Ray in parallel; a folder of .txt, a .txt, .jsonl or .csv by the project's own reader (model/corpus.py, the
    same ids and text as single-process training and tagging), on this machine."""
    ray = require_ray()
    path = str(inputs)
    if _is_parquet(path):
        if "://" not in path and not Path(path).exists():
            raise UserInputError(f"input {path} does not exist")
        ds = ray.data.read_parquet(path)
        _check_columns(ds, (id_column, text_column))
        return ds.select_columns(list(dict.fromkeys([id_column, text_column])))
    import pyarrow as pa

    from .corpus import read_corpus

    articles = read_corpus(path)
    table = pa.table({id_column: [a.id for a in articles], text_column: [a.text for a in articles]})
    return ray.data.from_arrow([table.slice(i, batch_size) for i in range(0, table.num_rows, batch_size)])


def tag_path(inputs: str | os.PathLike, out: str | os.PathLike, model_dir: str | os.PathLike, *,
             address: str | None = None, workers: int | None = None, batch_size: int = 128, threads: int = 1,
             ship_model: bool = False, text_column: str = "text", id_column: str = "id",
             embedder: Embedder | None = None) -> int:
    """Tag a corpus on Ray and write Parquet; returns the number of rows written.

    inputs: a folder of .txt, a .txt, .jsonl or .csv file, or Parquet (file, folder or URI) with `id` and `text`.
    out: a path ending in `.parquet` gets one file, streamed through this process and replaced atomically; any
    other path is a folder (new or empty) that the workers fill with one part file per block, in parallel.
    address: see ray_session (None: a local Ray on this machine). ship_model: send the model folder to the
    workers with the job (`runtime_env` working_dir, so this call starts the Ray session) instead of reading it
    from storage they share."""
    out = str(out)
    single = out.lower().endswith(".parquet")
    if "://" not in out:
        out = os.path.abspath(out)   # the workers' working folder is not ours
        if not single and os.path.isdir(out) and any(os.scandir(out)):
            raise UserInputError(f"output folder {out} is not empty; give a new folder, or a path ending in .parquet")
        if single and os.path.isdir(out):
            raise UserInputError(f"output {out} is a folder; give a file path ending in .parquet")
    model_path = Path(model_dir)
    if ship_model or address in (None, "local") or model_path.exists():
        # Check here, before any work, what can be checked here; a remote cluster may see another filesystem.
        from .tagger import ThemeTagger

        ThemeTagger.load(model_path, embedder=embedder or _NoEmbedder())
    runtime_env = None
    if ship_model:   # the job's working folder on every node is then a copy of the model folder
        runtime_env, model_dir = {"working_dir": str(model_path.resolve())}, "."
    with ray_session(address, workers, threads, runtime_env) as ray:
        ds = read_articles(inputs, batch_size, text_column, id_column)
        tagged = tag_dataset(ds, model_dir, text_column=text_column, id_column=id_column, workers=workers,
                             batch_size=batch_size, threads=threads, embedder=embedder)
        if not single:
            tagged.write_parquet(out)
            return ray.data.read_parquet(out).count()
        return _write_one_file(tagged, out)


class _NoEmbedder:
    """Stands in for the embedder when the driver only checks that a model folder loads."""

    id = spec = "none"
    max_words = 1


def _write_one_file(tagged, out: str) -> int:
    import pyarrow.parquet as pq

    tmp = f"{out}.tmp-{os.getpid()}"
    rows = 0
    writer = None
    try:
        for batch in tagged.iter_batches(batch_format="pyarrow", batch_size=None):
            if writer is None:
                writer = pq.ParquetWriter(tmp, batch.schema)
            writer.write_table(batch)
            rows += batch.num_rows
        if writer is None:
            raise UserInputError("the input has no articles")
        writer.close()
        os.replace(tmp, out)
    finally:
        if writer is not None:
            writer.close()
        if os.path.exists(tmp):
            os.remove(tmp)
    return rows


# ---------------------------------------------------------------------------------------------- embedding

def check_ray_training(cache_root: Path | None) -> None:
    """Fail before the long work: training on Ray needs Ray, and the embedding cache it fills."""
    require_ray()
    if cache_root is None:
        raise UserInputError("training on Ray hands the embeddings over through the embedding cache; "
                             "turn the cache on (drop --no-cache / cache_dir=None)")


class _Embed:
    """A Ray Data actor: one embedder, one thread; returns each text's cache key and float32 vector bytes."""

    def __init__(self, spec: str, expected_id: str, embedder=None, threads: int = 1):
        set_threads(threads)
        self.embedder = embedder if embedder is not None else load_embedder(spec)
        _torch_threads(self.embedder, threads)
        if self.embedder.id != expected_id:   # another model or version on this node: its vectors would not fit
            raise RuntimeError(f"the embedder on this worker is {self.embedder.id}, the driver's is {expected_id}")

    def __call__(self, batch):
        import pyarrow as pa

        vectors = self.embedder.encode(batch.column("text").to_pylist()).astype(np.float32)
        return pa.table({"key": batch.column("key"), "vector": [v.tobytes() for v in vectors]})


def embed_corpus(texts: Sequence[str], embedding_model: str | Embedder = DEFAULT,
                 cache_dir: str | os.PathLike | EmbeddingCache = "default", *, address: str | None = None,
                 workers: int | None = None, batch_size: int = 256, threads: int = 1, progress: bool = True) -> int:
    """Embed texts on a Ray cluster into the embedding cache, so that a following train() finds them all there.

    Only texts the cache lacks are sent. The vectors come back to this process, which alone writes the cache
    (one SQLite file), as they arrive. Returns how many texts were embedded.

    embedding_model: a spec that each worker loads (load_embedder), or an embedder object: a sentence-transformer
    is loaded by its spec on each worker, any other is pickled to them (an ONNX one as the path of its build, which
    every worker must see; static, a test's fake). Each worker checks its embedder's id against this one's, so the
    vectors fit the cache keys."""
    if isinstance(cache_dir, EmbeddingCache):
        cache = cache_dir
    else:
        root = default_cache_dir() if cache_dir == "default" else Path(cache_dir)
        cache = EmbeddingCache(root / "embeddings.sqlite")
    embedder = load_embedder(embedding_model) if isinstance(embedding_model, str) else embedding_model
    shipped = None if isinstance(embedder, SentenceTransformerEmbedder) else embedder
    keys = {EmbeddingCache.key(embedder.id, t): t for t in texts}
    found = cache.get(list(keys))
    todo = [(k, t) for k, t in keys.items() if k not in found]
    log.info("embedding cache: %d of %d distinct texts found; %d to embed on Ray", len(found), len(keys), len(todo))
    if not todo:
        return 0
    import pyarrow as pa

    with ray_session(address, workers, threads) as ray:
        table = pa.table({"key": [k for k, _ in todo], "text": [t for _, t in todo]})
        ds = ray.data.from_arrow([table.slice(i, batch_size) for i in range(0, table.num_rows, batch_size)])
        vectors = ds.map_batches(_Embed, batch_size=batch_size, batch_format="pyarrow", num_cpus=threads,
                                 compute=ray.data.ActorPoolStrategy(size=_pool_size(ray, workers, threads)),
                                 fn_constructor_kwargs={"spec": embedder.spec, "expected_id": embedder.id,
                                                        "embedder": shipped, "threads": threads})
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(todo), desc="embed on Ray", unit="para")
        done = 0
        for batch in vectors.iter_batches(batch_format="pyarrow", batch_size=None):
            blobs = batch.column("vector").to_pylist()
            cache.put(batch.column("key").to_pylist(), np.vstack([np.frombuffer(b, dtype=np.float32) for b in blobs]))
            done += batch.num_rows
            if bar is not None:
                bar.update(batch.num_rows)
        if bar is not None:
            bar.close()
    return done
