"""The ONNX Runtime encoder: a sentence-transformer exported to ONNX locally (torch's exporter), kept in
fp32 (`onnx`, the same embeddings) or quantised (`int8`); encode does what the sentence-transformers pipeline does.
The same fp32 export is what the default encoder, OpenVINO's (openvino_embed.py), compiles."""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import sys
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .embed import (_BUNDLED_ALIASES, BUNDLED, ONNX_EXTRA, _bundled_path, _complete, _content_hash, _fingerprint,
                    _normalise, _publish)
from .errors import UserInputError

log = logging.getLogger(__name__)

# Threads for every session made from here on (a Ray actor's share of the CPUs); None: torch's count where torch is
# in use, else ONNX Runtime's own choice (one per core).
_THREADS: int | None = None


def set_threads(threads: int | None) -> None:
    global _THREADS
    _THREADS = threads


def thread_count() -> int:
    """The threads a new session gets: set_threads' count, else torch's where torch is in use, else 0 (the
    runtime's own choice, one per core)."""
    torch = sys.modules.get("torch")
    return _THREADS or (torch.get_num_threads() if torch is not None else 0)


def _source_path(source: str) -> Path:
    if source in _BUNDLED_ALIASES:
        return Path(_bundled_path())
    path = Path(source).expanduser()
    if not path.is_dir():
        raise UserInputError(f"the ONNX embedder is built from the bundled model or a local sentence-transformers "
                             f"folder; {source!r} is neither")
    return path


def _check_mean_pooled(path: Path) -> int:
    """The ONNX encoder re-implements Transformer -> mean Pooling -> Normalize; refuse a model that is not that.
    Returns its max_seq_length."""
    try:
        modules = [m["type"].rsplit(".", 1)[-1] for m in json.loads((path / "modules.json").read_text())]
        pooling = json.loads((path / "1_Pooling" / "config.json").read_text())
        length = json.loads((path / "sentence_bert_config.json").read_text())["max_seq_length"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UserInputError(f"{path} is not a sentence-transformers folder the ONNX embedder can read ({exc})") \
            from None
    if modules != ["Transformer", "Pooling", "Normalize"] or not pooling.get("pooling_mode_mean_tokens") or any(
            v for k, v in pooling.items() if k.startswith("pooling_mode_") and k != "pooling_mode_mean_tokens"):
        raise UserInputError(f"the ONNX embedder supports Transformer -> mean Pooling -> Normalize models only; "
                             f"{path} has {' -> '.join(modules)}")
    return int(length)


class OnnxEmbedder:
    """A sentence-transformer exported to ONNX, run by ONNX Runtime: in fp32 (`onnx`) the same
    embeddings as torch (cosine 1.0000) at 1.5-2.4x a raw SentenceTransformer.encode on two cores (2.4x with
    AVX-512, 1.5-1.7x with AVX2 only); quantised to 8 bits (`int8`), a cosine of about 0.999 to them.

    The folder holds model.onnx, the model's own tokenizer and onnx_config.json; encode does what the
    sentence-transformers pipeline does (tokenise, sort by tokens, batch, mean-pool over the mask, normalise)."""

    CONFIG = "onnx_config.json"
    FILES = ("model.onnx", CONFIG, "tokenizer.json")   # a build without one of them is damaged, and built again
    KIND = "onnx"   # the spec's prefix for the fp32 graph (OpenVinoEmbedder runs the same graph as "openvino")
    # Bumped whenever the export or the quantisation changes, so an old build is never reused from the cache.
    RECIPE = "torchscript-opset17/matmulnbits-8bit-block128-symmetric-accuracy4/v3"
    RECIPE_FP32 = "torchscript-opset17/fp32/v1"

    # Texts sorted by tokens, in batches of 16. On two cores, 639 news paragraphs took 2.8 s in batches of 16, 2.9 s
    # of 8, 3.1 s of 32, 3.6 s of 64; sorted by characters instead, 3.6 s in batches of 8 (BENCHMARKS.md).
    BATCH = 16

    def __init__(self, path: str | Path, spec: str, batch_size: int = BATCH):
        try:
            import onnxruntime  # noqa: F401  (here, so that a missing package is named before any work)
        except ImportError:
            raise UserInputError(f"the ONNX embedder needs onnxruntime: {ONNX_EXTRA}") from None
        path = Path(path)
        config = json.loads((path / self.CONFIG).read_text(encoding="utf-8"))
        self.spec, self.batch_size, self.path = spec, batch_size, path
        self.max_seq_length = int(config["max_seq_length"])
        self.max_words = max(16, int((self.max_seq_length - 2) / 1.4))   # as SentenceTransformerEmbedder's
        self.id = f"ort:{spec}#{_content_hash(path)}"
        # The model's own fast tokenizer, read with the `tokenizers` library that transformers wraps: the same ids,
        # without importing torch and transformers (about 4 s of a cold fp32 train.py on two cores).
        self.tokenizer, self.pad_id = _tokenizer(path, self.max_seq_length)
        self._session = None

    @property
    def session(self):
        """The ONNX Runtime session, made on the first encode (or at ThemeTagger.load), with set_threads' count."""
        if self._session is None:
            import onnxruntime as ort

            options = ort.SessionOptions()
            options.intra_op_num_threads = thread_count()
            options.inter_op_num_threads = 1
            self._session = ort.InferenceSession(str(self.path / "model.onnx"), options,
                                                 providers=["CPUExecutionProvider"])
            self.inputs = {i.name for i in self._session.get_inputs()}
        return self._session

    @classmethod
    def build(cls, source: str = BUNDLED, cache_dir: Path | None = None, int8: bool = True) -> OnnxEmbedder:
        """Export `source` to ONNX and quantise it (int8=False: keep fp32), locally, once; later calls load the
        cached build."""
        spec, recipe = (f"int8:{source}", cls.RECIPE) if int8 else (f"{cls.KIND}:{source}", cls.RECIPE_FP32)
        path = _source_path(source)
        max_seq_length = _check_mean_pooled(path)
        key = hashlib.sha256(f"{_fingerprint(path)}:{recipe}".encode()).hexdigest()[:16]
        root = Path(cache_dir) if cache_dir is not None else Path(tempfile.mkdtemp(prefix="theme-tagger-onnx-"))
        target = root / "onnx" / key
        if _complete(target, cls.FILES):
            return cls(target, spec)
        try:
            import onnx  # noqa: F401
            import onnxruntime.quantization  # noqa: F401
            if int8:
                import onnx_ir  # noqa: F401  (ONNX Runtime's MatMulNBits quantiser needs it, and does not require it)
        except ImportError:
            raise UserInputError(f"building the {'int8' if int8 else 'ONNX'} embedder needs onnxruntime, onnx"
                                 f"{' and onnx-ir' if int8 else ''}: {ONNX_EXTRA}") from None
        log.info("exporting %s to ONNX%s (once, locally)", source, " and quantising it to int8" if int8 else "")
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f"{key}.tmp"))
        try:
            export_onnx(path, tmp / "fp32.onnx")
            if int8:
                quantise(tmp / "fp32.onnx", tmp / "model.onnx")
                (tmp / "fp32.onnx").unlink()
            else:
                (tmp / "fp32.onnx").rename(tmp / "model.onnx")
            for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt"):
                if (path / name).is_file():
                    shutil.copy2(path / name, tmp / name)
            (tmp / cls.CONFIG).write_text(json.dumps({"source": source, "recipe": recipe,
                                                      "max_seq_length": max_seq_length}, indent=2))
            _publish(tmp, target, cls.FILES)
        except BaseException as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            if isinstance(exc, Exception) and not isinstance(exc, (UserInputError, OSError)):
                # torch's exporter or the quantiser failed (another torch or transformers than tested): say what to do.
                raise UserInputError(
                    f"could not build the {'int8' if int8 else 'ONNX'} embedder from {source} "
                    f"({exc.__class__.__name__}: {str(exc)[:300]}); train with --embedding-model {BUNDLED} to run the "
                    "same model through sentence-transformers instead") from exc
            raise
        return cls(target, spec)

    def __reduce__(self):
        """Pickled (to Ray's workers) as its folder and spec: an ONNX Runtime session itself does not pickle."""
        return type(self), (self.path, self.spec, self.batch_size)

    def save(self, folder: Path) -> None:
        shutil.copytree(self.path, folder)

    def width(self) -> int:
        """The graph's output dimensions, as it declares them (0 where it leaves them open; the first batch tells)."""
        width = self.session.get_outputs()[0].shape[-1]
        return width if isinstance(width, int) else 0

    def infer(self, tokens: dict[str, np.ndarray]) -> np.ndarray:
        """One padded batch through the graph: its last hidden state (rows, tokens, dimensions)."""
        return self.session.run(None, {k: v for k, v in tokens.items() if k in self.inputs})[0]

    def encode(self, texts: Sequence[str], show_progress: bool = False) -> np.ndarray:
        texts = list(texts)
        out = np.zeros((len(texts), self.width()), dtype=np.float32)
        encoded = self.tokenizer.encode_batch(texts)   # truncated, not padded
        # Sorted by tokens, not characters (as sentence-transformers does), so a batch's rows need little padding.
        order = np.argsort([-len(e.ids) for e in encoded], kind="stable")
        for start in range(0, len(texts), self.batch_size):
            rows = order[start:start + self.batch_size]
            tokens = self.pad([encoded[i] for i in rows])
            hidden = self.infer(tokens)
            if out.shape[1] != hidden.shape[-1]:
                out = np.zeros((len(texts), hidden.shape[-1]), dtype=np.float32)
            mask = tokens["attention_mask"][..., None].astype(np.float32)
            out[rows] = (hidden * mask).sum(axis=1) / np.maximum(mask.sum(axis=1), 1e-9)
        return _normalise(out)

    def pad(self, encoded: list) -> dict[str, np.ndarray]:
        """Tokenised texts as the model's inputs, padded to the longest (as transformers' padding=True does)."""
        width = max((len(e.ids) for e in encoded), default=0)
        tokens = {"input_ids": np.full((len(encoded), width), self.pad_id, dtype=np.int64),
                  "attention_mask": np.zeros((len(encoded), width), dtype=np.int64),
                  "token_type_ids": np.zeros((len(encoded), width), dtype=np.int64)}
        for row, e in enumerate(encoded):
            tokens["input_ids"][row, :len(e.ids)] = e.ids
            tokens["attention_mask"][row, :len(e.ids)] = e.attention_mask
            tokens["token_type_ids"][row, :len(e.ids)] = e.type_ids
        return tokens


def _tokenizer(path: Path, max_length: int):
    """The folder's tokenizer.json as transformers' fast tokenizer runs it with truncation=True and max_length:
    [CLS] ... [SEP], cut at max_length tokens (OnnxEmbedder.pad then pads as padding=True does); and its pad id."""
    from tokenizers import Tokenizer

    if not (path / "tokenizer.json").is_file():
        raise UserInputError(f"{path} has no tokenizer.json (a fast tokenizer), which the ONNX embedder reads")
    tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
    config = json.loads((path / "tokenizer_config.json").read_text(encoding="utf-8")) \
        if (path / "tokenizer_config.json").is_file() else {}
    pad = config.get("pad_token", "[PAD]")
    pad = pad.get("content", "[PAD]") if isinstance(pad, dict) else pad
    pad_id = tokenizer.token_to_id(pad)
    if pad_id is None:
        raise UserInputError(f"{path}: the tokenizer has no pad token {pad!r}")
    tokenizer.enable_truncation(max_length=max_length)
    tokenizer.no_padding()
    return tokenizer, pad_id


def quantise(fp32: Path, out: Path) -> None:
    """Every MatMul's weights to 8 bits in blocks of 128 inputs (one scale per block and output, symmetric), run by
    ONNX Runtime's MatMulNBits with int8 compute (accuracy_level 4), which quantises the activations per row and block of
    128 too, as it goes. Cosine to fp32 0.999; ONNX Runtime's dynamic quantisation (one activation scale per
    tensor) held 0.997 at best, and cost BBC up to 0.8 points."""
    import onnx
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    logging.disable(logging.INFO)   # the quantiser logs a line per node
    try:
        quantiser = MatMulNBitsQuantizer(onnx.load(str(fp32)), bits=8, block_size=128, is_symmetric=True,
                                         accuracy_level=4)
        quantiser.process()
        quantiser.model.save_model_to_file(str(out), use_external_data_format=False)
    finally:
        logging.disable(logging.NOTSET)


def export_onnx(path: Path, out: Path) -> None:
    """The transformer of a sentence-transformers folder as an fp32 ONNX graph: token ids, mask and token types
    in (any batch, any length), the last hidden state out. Runs torch's TorchScript exporter, offline."""
    import torch
    from transformers import AutoModel

    class Hidden(torch.nn.Module):
        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.model(input_ids=input_ids, attention_mask=attention_mask,
                              token_type_ids=token_type_ids).last_hidden_state

    # Eager attention: the SDPA path's mask handling does not trace into a graph that takes any length.
    model = Hidden(AutoModel.from_pretrained(str(path), attn_implementation="eager", local_files_only=True).eval())
    ids = torch.full((2, 16), 1000, dtype=torch.long)
    names = ["input_ids", "attention_mask", "token_type_ids"]
    axes = {n: {0: "batch", 1: "tokens"} for n in [*names, "last_hidden_state"]}
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")   # the tracer's warnings about shapes held constant (none are, here)
        torch.onnx.export(model, (ids, torch.ones_like(ids), torch.zeros_like(ids)), str(out), input_names=names,
                          output_names=["last_hidden_state"], dynamic_axes=axes, opset_version=17, dynamo=False)
