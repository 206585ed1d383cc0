"""ThemeTagger: a saved model that tags new articles. Tagging runs the embedder and the classifier only."""

from __future__ import annotations

import json
import logging
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import import_module, metadata
from itertools import islice
from pathlib import Path

import numpy as np

from . import storage
from .classifier import ThemeClassifier
from .corpus import Article, paragraphs_of
from .embed import (_BUNDLED_ALIASES, BUNDLED, ONNX_EXTRA, CachedEmbedder, Embedder, OnnxEmbedder, OpenVinoEmbedder,
                    SentenceTransformerEmbedder, StaticEmbedder, load_embedder)
from .errors import UserInputError, whole_number
from .openvino_embed import OPENVINO_INSTALL
from .storage import CONFIG, FORMAT, FORMAT_VERSION, STATIC_DIR, VOCABULARY, WEIGHTS, check_output_dir  # noqa: F401
from .themes import Theme

log = logging.getLogger(__name__)

VERSIONED = ("theme-tagger", "numpy", "scikit-learn", "sentence-transformers", "torch", "model2vec", "onnxruntime")


def installed_versions() -> dict[str, str | None]:
    out = {}
    for name in VERSIONED:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def check_batch_size(batch_size) -> None:
    """A batch is a whole number of articles, at least one (0 would tag nothing, and say nothing about it)."""
    if not whole_number(batch_size) or batch_size < 1:
        raise UserInputError(f"batch_size must be a whole number of at least 1, got {batch_size!r}")


@dataclass
class ParagraphTags:
    text: str
    scores: dict[str, float]
    themes: list[str]


@dataclass
class TagResult:
    scores: dict[str, float]                  # every theme, in [0, 1]: the article's best paragraph
    themes: list[str]                         # past their thresholds, best first
    paragraphs: list[ParagraphTags] = field(default_factory=list)

    def evidence(self, theme: str) -> list[ParagraphTags]:
        """The paragraphs that carry `theme`, strongest first."""
        return sorted((p for p in self.paragraphs if theme in p.themes), key=lambda p: -p.scores[theme])

    def to_dict(self) -> dict:
        """A plain, JSON-ready dict: the themes, a score for every theme, and per theme carried its best paragraph."""
        return {"themes": list(self.themes), "scores": dict(self.scores),
                "evidence": {t: self.evidence(t)[0].text for t in self.themes}}

    def to_row(self, article_id: str) -> dict:
        """One flat output row (the tag command's and distributed tagging's): `id`, `themes` (a list), then
        `score:<theme>` for every theme and `evidence:<theme>` (the best paragraph carrying it, or "")."""
        row: dict = {"id": str(article_id), "themes": list(self.themes)}
        for t, s in self.scores.items():
            row[f"score:{t}"] = float(s)
            carried = self.evidence(t) if t in self.themes else []
            row[f"evidence:{t}"] = carried[0].text if carried else ""
        return row


class ThemeTagger:
    """Tags articles with themes. Build one with `model.train(...)`, or `ThemeTagger.load(folder)`."""

    def __init__(self, themes: list[Theme], embedder: Embedder, classifier: ThemeClassifier, config: dict):
        self.theme_defs = themes
        self.embedder = embedder
        self.classifier = classifier
        self.config = config

    @property
    def themes(self) -> list[str]:
        return [t.id for t in self.theme_defs]

    @property
    def thresholds(self) -> dict[str, float]:
        return {t: float(x) for t, x in zip(self.themes, self.classifier.thresholds_)}

    # -- tagging ------------------------------------------------------------------------------------------------
    def tag(self, text: str) -> TagResult:
        """Tag one article."""
        if not isinstance(text, str):
            raise TypeError(f"tag() takes one article as a str, got {type(text).__name__}; use tag_many() for several")
        return next(self._tag_stream([text], batch_size=1, progress=False))

    def tag_many(self, texts: Iterable[str], batch_size: int = 256, progress: bool = False):
        """Tag many articles, in order, embedding the paragraphs of `batch_size` articles at a time.

        Larger batches pad better (the encoder sorts a batch by length): 64 articles ran at 0.87x a raw encode of
        the same paragraphs, one batch of all at 0.97x.

        A list or tuple gives a list back. Any other iterable (a generator, a file) gives a lazy iterator back, so
        memory stays flat however many articles stream through."""
        if isinstance(texts, str):
            raise TypeError("tag_many() takes a list of articles; use tag() for one string")
        check_batch_size(batch_size)
        stream = self._tag_stream(texts, batch_size, progress)
        return list(stream) if isinstance(texts, (list, tuple)) else stream

    def _tag_stream(self, texts: Iterable[str], batch_size: int, progress: bool) -> Iterator[TagResult]:
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(desc="tag", unit="article", total=len(texts) if hasattr(texts, "__len__") else None)
        it = iter(texts)
        while batch := list(islice(it, batch_size)):
            yield from self._tag_batch(batch)
            if bar is not None:
                bar.update(len(batch))
        if bar is not None:
            bar.close()

    def _tag_batch(self, texts: list[str]) -> list[TagResult]:
        for t in texts:
            if not isinstance(t, str):
                raise TypeError(f"articles must be str, got {type(t).__name__}")
        articles = [Article(str(i), t) for i, t in enumerate(texts)]
        paragraphs = paragraphs_of(articles, max_words=self.embedder.max_words, warn_empty=False)
        para_texts = [p.text for p in paragraphs]
        scores = np.zeros((0, len(self.themes)), dtype=np.float32)
        if para_texts:
            vectors = self.embedder.encode(para_texts)
            trained_on = self.classifier.anchors_.shape[1]
            if vectors.ndim != 2 or vectors.shape[1] != trained_on:   # another embedder, named at load
                raise UserInputError(
                    f"the embedding model {self.embedder.spec!r} gives vectors of {vectors.shape[-1]} numbers, but "
                    f"this model was trained on vectors of {trained_on}: tag with the embedding model it was trained "
                    "with")
            scores = self.classifier.predict_proba(vectors, para_texts)
        per_article: list[list[int]] = [[] for _ in texts]
        for row, p in enumerate(paragraphs):
            per_article[int(p.article_id)].append(row)
        return [self._result(rows, para_texts, scores) for rows in per_article]

    def _result(self, rows: list[int], texts: list[str], scores: np.ndarray) -> TagResult:
        ids, cut = self.themes, self.classifier.thresholds_
        paragraphs = []
        for r in rows:
            s = scores[r]
            passed = sorted((k for k in range(len(ids)) if s[k] >= cut[k]), key=lambda k: -s[k])
            paragraphs.append(ParagraphTags(texts[r], {t: float(x) for t, x in zip(ids, s)}, [ids[k] for k in passed]))
        article = scores[rows].max(axis=0) if rows else np.zeros(len(ids))
        passed = sorted((k for k in range(len(ids)) if article[k] >= cut[k]), key=lambda k: -article[k])
        return TagResult({t: float(x) for t, x in zip(ids, article)}, [ids[k] for k in passed], paragraphs)

    # -- saving -------------------------------------------------------------------------------------------------
    def save(self, path: str | Path, extra_files: dict[str, str | bytes] | None = None) -> Path:
        """Write the model folder. A half-written folder never carries the final name, the model already there
        is never lost (see model/storage.py), and overlapping saves run one after the other."""

        def write(folder: Path) -> None:
            arrays, meta = self.classifier.to_arrays()
            vocabulary = meta.pop("vocabulary")
            # The classifier's rows are the themes in config.json's order; their ids go beside the rows (as UTF-8
            # bytes, since the file holds numbers only), so that a config.json edited by hand cannot swap names.
            arrays["theme_ids"] = np.frombuffer("\n".join(self.themes).encode("utf-8"), dtype=np.uint8)
            np.savez(folder / WEIGHTS, **arrays)
            (folder / VOCABULARY).write_text(json.dumps(vocabulary), encoding="utf-8")
            embedder = _unwrapped(self.embedder)
            if isinstance(embedder, StaticEmbedder):
                embedder.model.save_pretrained(str(folder / STATIC_DIR))
            elif isinstance(embedder, OnnxEmbedder):
                embedder.save(folder / STATIC_DIR)
            for name, content in (extra_files or {}).items():
                (folder / name).write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
            config = {**self.config, "format": FORMAT, "format_version": FORMAT_VERSION,
                      "themes": [t.to_dict() for t in self.theme_defs], "thresholds": self.thresholds,
                      "classifier": meta, "versions": installed_versions(),
                      "embedding_model": {"spec": self.embedder.spec, "id": self.embedder.id,
                                          "kind": _kind(self.embedder)},
                      "files": sorted({CONFIG, *(p.name for p in folder.iterdir())}),
                      "saved": datetime.now(timezone.utc).isoformat(timespec="seconds")}
            # config.json is written last: its presence is what marks a folder as a complete model.
            (folder / CONFIG).write_text(json.dumps(config, indent=2, ensure_ascii=False), encoding="utf-8")

        return storage.write_model_folder(Path(path), write)

    # -- loading ------------------------------------------------------------------------------------------------
    @classmethod
    def load(cls, path: str | Path, embedder: Embedder | None = None,
             embedding_model: str | None = None) -> ThemeTagger:
        """Load a saved model folder. Reads JSON and plain arrays only; runs neither UMAP nor the clusterer.

        The embedder comes from the folder: the bundled model, or the static one stored inside it. A model trained
        with any other embedder loads only when you name that embedder here (embedding_model: a local folder or a
        downloaded name), so a shared folder's config.json cannot point loading at a model of its choosing.
        embedder: use this object instead (tests pass a small fake)."""
        path = Path(path)
        storage.recover(path)   # an interrupted save may have left the model beside its place
        if not path.is_dir():
            raise UserInputError(f"no saved model at {path} (train one with: python train.py --out {path})")
        if not (path / CONFIG).is_file():
            raise UserInputError(f"{path} is not a complete saved model: {CONFIG} is missing")
        try:
            with storage.folder_lock(path.parent, shared=True):   # not half one save's files, half another's
                config = storage.read_config(path)
                themes = [Theme.from_dict(t) for t in config["themes"]]
                classifier, row_ids = _read_classifier(path, config["classifier"])
            if len(classifier.coef_) != len(themes):
                raise ValueError(f"{len(themes)} themes but {len(classifier.coef_)} classifier rows")
            if row_ids is not None and row_ids != [t.id for t in themes]:   # older models saved no ids
                raise ValueError(f"{CONFIG} lists the themes {[t.id for t in themes]}, but the classifier's rows are "
                                 f"{row_ids}: was {CONFIG} edited? The rows must be in the order they were saved")
        except UserInputError:
            raise
        except Exception as exc:  # noqa: BLE001 - whatever a damaged file raises, the user hears one line
            raise UserInputError(f"saved model at {path} is damaged: {exc.__class__.__name__}: {exc}") from None
        _warn_on_version_change(config.get("versions", {}))
        if embedder is None:
            embedder = _saved_embedder(path, config["embedding_model"], embedding_model)
        return cls(themes, embedder, classifier, config)


def _unwrapped(embedder: Embedder) -> Embedder:
    """The embedder itself: a CachedEmbedder changes where vectors come from, not which model makes them."""
    return embedder.inner if isinstance(embedder, CachedEmbedder) else embedder


def _kind(embedder: Embedder) -> str:
    embedder = _unwrapped(embedder)
    if isinstance(embedder, StaticEmbedder):
        return "static"
    if isinstance(embedder, OnnxEmbedder):
        return embedder.KIND   # "onnx" (ONNX Runtime, fp32 or int8) or "openvino": the same folder, another runtime
    return "sentence-transformers"


# A saved ONNX graph's kind -> the runtime that runs it: its name, package, extra and embedder class.
_GRAPH_RUNTIMES = {"onnx": ("ONNX", "onnxruntime", ONNX_EXTRA, OnnxEmbedder),
                   "openvino": ("OpenVINO", "openvino", OPENVINO_INSTALL, OpenVinoEmbedder)}


def _read_classifier(path: Path, meta: dict) -> tuple[ThemeClassifier, list[str] | None]:
    """The classifier, and the theme ids its rows were saved for (None: a model saved before they were)."""
    with np.load(path / WEIGHTS, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    for name, array in arrays.items():
        if not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)
                or array.dtype == bool):
            raise ValueError(f"{WEIGHTS}: array {name!r} holds {array.dtype}, not real numbers")
        if np.issubdtype(array.dtype, np.inexact) and not np.isfinite(array).all():
            raise ValueError(f"{WEIGHTS}: array {name!r} holds NaN or infinite values")
    vocabulary = json.loads((path / VOCABULARY).read_text(encoding="utf-8"))
    if vocabulary is not None:
        if not isinstance(vocabulary, list) or not all(isinstance(w, str) for w in vocabulary):
            raise ValueError(f"{VOCABULARY} is not a list of words")
        if len(set(vocabulary)) != len(vocabulary):
            raise ValueError(f"{VOCABULARY} lists a word twice")
        if "idf" not in arrays or arrays["idf"].shape != (len(vocabulary),):
            raise ValueError(f"{VOCABULARY} has {len(vocabulary)} words but {WEIGHTS} no idf array of that length")
    ids = arrays.pop("theme_ids", None)
    if ids is not None:
        if ids.dtype != np.uint8 or ids.ndim != 1:
            raise ValueError(f"{WEIGHTS}: array 'theme_ids' is not UTF-8 text")
        ids = ids.tobytes().decode("utf-8").split("\n")
    return ThemeClassifier.from_arrays(arrays, {**meta, "vocabulary": vocabulary}), ids


def _saved_embedder(path: Path, saved: dict, named: str | None) -> Embedder:
    """The embedder a saved model may load: the bundled one, one stored in the folder, or one the caller names."""
    if named is not None:
        embedder = load_embedder(named)
        if embedder.id != saved["id"]:
            warnings.warn(f"this model was trained with the embedding model {saved['spec']!r} ({saved['id']}); "
                          f"tagging with {named!r} ({embedder.id}) instead: scores are only right if it is the same "
                          "model", UserWarning, stacklevel=3)
        return embedder
    if saved["kind"] == "static":
        if not (path / STATIC_DIR).is_dir():
            raise UserInputError(f"saved model at {path} is damaged: its static embedder ({STATIC_DIR}/) is missing")
        try:
            return StaticEmbedder.load(path / STATIC_DIR, saved["spec"])
        except Exception as exc:  # noqa: BLE001
            raise UserInputError(f"saved model at {path} is damaged: its static embedder does not load: "
                                 f"{exc.__class__.__name__}: {str(exc)[:200]}") from None
    if saved["kind"] in _GRAPH_RUNTIMES:
        if not (path / STATIC_DIR).is_dir():
            raise UserInputError(f"saved model at {path} is damaged: its ONNX embedder ({STATIC_DIR}/) is missing")
        runtime, package, extra, cls = _GRAPH_RUNTIMES[saved["kind"]]
        try:
            import_module(package)
        except ImportError:
            raise UserInputError(f"the model at {path} tags with the {runtime} embedder stored in it, which needs "
                                 f"{package}: {extra}") from None
        try:
            embedder = cls(path / STATIC_DIR, saved["spec"])
            embedder.session   # made now, so that a damaged graph is reported here, not at the first tag
            return embedder
        except Exception as exc:  # noqa: BLE001
            raise UserInputError(f"saved model at {path} is damaged: its ONNX embedder does not load: "
                                 f"{exc.__class__.__name__}: {str(exc)[:200]}") from None
    if saved["spec"] in _BUNDLED_ALIASES:
        return SentenceTransformerEmbedder(BUNDLED)
    raise UserInputError(
        f"the model at {path} was trained with the embedding model {saved['spec']!r}, which is neither the bundled "
        "one nor stored in the folder; a saved model does not load other models by itself. If you trust it, name "
        f"it: ThemeTagger.load({str(path)!r}, embedding_model={saved['spec']!r}) (command line: --embedding-model)")


def _warn_on_version_change(saved: dict) -> None:
    now = installed_versions()
    changed = [f"{name} {saved[name]} -> {now.get(name)}" for name in saved
               if saved.get(name) and now.get(name) and saved[name] != now[name]]
    if changed:
        warnings.warn("this model was saved with other package versions (" + ", ".join(changed) +
                      "); scores may differ slightly. Retrain to be sure.", UserWarning, stacklevel=3)
