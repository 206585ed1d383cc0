"""Scale out on Ray Data: tag a large corpus with a saved model folder, and embed a training corpus on a cluster.

Ray is an optional extra (pip install -e '.[ray]'); it is imported inside the functions, so `import model` works
without it. Each actor holds one model and one thread (OpenVINO's, ONNX Runtime's or torch's); Ray Data streams
blocks through the actor pool with backpressure, retries a task whose actor died, and reads and writes Parquet
locally or in object storage."""

from __future__ import annotations

import logging
import os
import shutil
import socket
import sys
from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from . import embed as _embed   # its CHUNK, read at call time
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
    if _starts_new_ray(address):
        kwargs["include_dashboard"] = False
        if workers is not None:
            kwargs["num_cpus"] = max(os.cpu_count() or 1, workers * threads + 1)
    elif address not in (None, "auto"):
        _check_address(address)
    try:
        ray.init(address=address, **kwargs)
    except (ConnectionError, ValueError) as exc:   # ValueError: an address Ray can't parse
        raise UserInputError(f"could not reach a Ray cluster at {address!r}: {exc}") from None
    try:
        yield ray
    finally:
        ray.shutdown()


def _starts_new_ray(address: str | None) -> bool:
    """Whether ray.init(address) starts a Ray here: with None it joins $RAY_ADDRESS or a `ray start` cluster on this
    machine if there is one, and Ray refuses num_cpus for a cluster it joins."""
    if address is None:
        from ray._private.services import canonicalize_bootstrap_address

        return canonicalize_bootstrap_address(None) is None
    return address == "local"


def _check_address(address: str) -> None:
    """Fail at once on an address that can't work: Ray retries an unreachable one for minutes."""
    if address.startswith("ray://"):
        try:
            import grpc  # noqa: F401   Ray Client's transport, in ray[client]
        except ImportError:
            raise UserInputError(f"a ray:// address needs Ray Client, which is not installed: {INSTALL}") from None
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not port.isdigit():
        raise UserInputError(f"Ray address {address!r} is not 'auto', 'local', host:port or ray://host:port")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=5).close()
    except OSError as exc:
        raise UserInputError(f"could not reach a Ray cluster at {address!r}: {exc.strerror or exc}") from None


def _pool_size(ray, workers: int | None, threads: int) -> int:
    """Actors for the pool: one CPU of the cluster stays free, or the tasks that read and split the data beside
    the actors never get one, and the job waits forever."""
    cpus = int(ray.cluster_resources().get("CPU", 1))
    if workers is None:   # on a one-CPU cluster this is refused below: a pool of none would wait forever too
        workers = max(1, (cpus - 1) // threads)
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
    import pyarrow as pa

    path = str(inputs)
    if _is_parquet(path):
        if "://" not in path and not Path(path).exists():
            raise UserInputError(f"input {path} does not exist")
        ds = ray.data.read_parquet(path)
        _check_columns(ds, (id_column, text_column))
        if ds.count() == 0:   # from the files' metadata; with no rows there would be no output to write
            raise UserInputError(f"input {path} has no articles")
        kind = ds.schema().base_schema.field(text_column).type
        if not (pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_null(kind)):
            raise UserInputError(f"the input's {text_column!r} column holds {kind}, not text")
        ds = ds.select_columns(list(dict.fromkeys([id_column, text_column])))
        if _missing_ids(path, id_column):
            ds = _numbered(ray, path, batch_size, text_column, id_column)
        # As the project's readers do: an article without text is skipped (tag_path warns how many), not tagged.
        return ds.map_batches(_with_text, batch_format="pyarrow", fn_kwargs={"text_column": text_column})
    from .corpus import read_corpus

    articles = read_corpus(path)
    table = pa.table({id_column: [a.id for a in articles], text_column: [a.text for a in articles]})
    return _in_blocks(ray, table, batch_size)


def _in_blocks(ray, table, batch_size: int):
    """A Ray dataset of an Arrow table in blocks of batch_size rows, in order."""
    return ray.data.from_arrow([table.slice(i, batch_size) for i in range(0, table.num_rows, batch_size)])


def _missing_ids(path: str, id_column: str) -> bool:
    """Whether a Parquet input (a path, or a URI: s3://, file://) has a row with a null or empty id."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    try:
        ids = pq.read_table(path, columns=[id_column]).column(id_column)   # the ids alone: small beside the texts
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError) as exc:
        if "://" not in path:
            raise
        # A scheme that Ray reads through fsspec (http://, say) but pyarrow does not know
        log.warning("could not read the ids of %s here to number the rows without one (%s); such rows keep no id",
                    path, str(exc).splitlines()[0][:200])
        return False
    return ids.null_count > 0 or bool(pc.any(pc.equal(ids.cast("string"), "")).as_py())


def _numbered(ray, path: str, batch_size: int, text_column: str, id_column: str):
    """The Parquet read here rather than by Ray, whose parallel read has no row numbers: a row without an id gets
    "row-N", its number in the input, as the JSONL reader's "line-N"."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pq.read_table(path, columns=list(dict.fromkeys([id_column, text_column])))
    ids = [f"row-{n}" if i is None or str(i) == "" else str(i)
           for n, i in enumerate(table.column(id_column).to_pylist(), 1)]
    table = table.set_column(table.schema.get_field_index(id_column), id_column, pa.array(ids, pa.string()))
    return _in_blocks(ray, table, batch_size)


def _with_text(batch, text_column: str):
    """The rows whose text is more than white space."""
    import pyarrow.compute as pc

    text = pc.utf8_trim_whitespace(batch.column(text_column).cast("string"))
    return batch.filter(pc.fill_null(pc.greater(pc.utf8_length(text), 0), False))


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
        _check_output(out, single)
    model_path = Path(model_dir)
    # "auto" is a cluster on this machine, which sees this filesystem too.
    if ship_model or address in (None, "local", "auto") or model_path.exists():
        # Check here, before any work, what can be checked here; a remote cluster may see another filesystem.
        from .tagger import ThemeTagger

        ThemeTagger.load(model_path, embedder=embedder or _NoEmbedder())
    runtime_env = None
    if ship_model:   # the job's working folder on every node is then a copy of the model folder
        runtime_env, model_dir = {"working_dir": str(model_path.resolve())}, "."
    # A folder is written under a hidden name beside it and renamed at the end, as one file is (_write_one_file),
    # so a failed or interrupted run leaves nothing under the final name. Object storage has no rename.
    tmp = None if single or "://" in out else os.path.join(os.path.dirname(out),
                                                           f".{os.path.basename(out)}.tmp-{os.getpid()}")
    try:
        with ray_session(address, workers, threads, runtime_env) as ray:
            ds = read_articles(inputs, batch_size, text_column, id_column)
            tagged = tag_dataset(ds, model_dir, text_column=text_column, id_column=id_column, workers=workers,
                                 batch_size=batch_size, threads=threads, embedder=embedder)
            if single:
                rows = _write_one_file(tagged, out)
            else:
                tagged.write_parquet(tmp or out)
                if tmp is not None and not any(Path(tmp).glob("*.parquet")):
                    raise UserInputError("the input has no articles")
                rows = ray.data.read_parquet(tmp or out).count()
                if tmp is not None:
                    os.replace(tmp, out)   # over an empty folder too
            if _is_parquet(str(inputs)):   # the other readers warn of each empty article as they skip it
                skipped = ray.data.read_parquet(str(inputs)).count() - rows
                if skipped:
                    log.warning("skipped %d articles without text in %s", skipped, inputs)
            return rows
    finally:
        if tmp is not None:   # after the session: one this call started has stopped its workers, which wrote here
            shutil.rmtree(tmp, ignore_errors=True)


def _check_output(out: str, single: bool) -> None:
    """Before any work: a place the output can go."""
    if not os.path.isdir(os.path.dirname(out)):
        raise UserInputError(f"output {out}: there is no folder {os.path.dirname(out)}")
    if single and os.path.isdir(out):
        raise UserInputError(f"output {out} is a folder; give a file path ending in .parquet")
    if not single and os.path.exists(out) and not os.path.isdir(out):
        raise UserInputError(f"output {out} is a file; give a new folder, or a path ending in .parquet")
    if not single and os.path.isdir(out) and any(os.scandir(out)):
        raise UserInputError(f"output folder {out} is not empty; give a new folder, or a path ending in .parquet")


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
                 workers: int | None = None, batch_size: int | None = None, threads: int = 1,
                 progress: bool = True) -> int:
    """Embed texts on a Ray cluster into the embedding cache, so that a following train() finds them all there.

    Only texts the cache lacks are sent. The vectors come back to this process, which alone writes the cache
    (one SQLite file), as they arrive. Returns how many texts were embedded.

    embedding_model: a spec that each worker loads (load_embedder), or an embedder object: a sentence-transformer
    is loaded by its spec on each worker, any other is pickled to them (an ONNX one as the path of its build, which
    every worker must see; static, a test's fake). Each worker checks its embedder's id against this one's, so the
    vectors fit the cache keys. batch_size: texts per encode call, by default embed_texts' chunk: OpenVINO's bf16
    vectors depend on which texts share a call, so only the same chunks give the vectors a run without Ray gets."""
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

    batch_size = batch_size or _embed.CHUNK
    with ray_session(address, workers, threads) as ray:
        table = pa.table({"key": [k for k, _ in todo], "text": [t for _, t in todo]})
        ds = _in_blocks(ray, table, batch_size)
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
