"""The OpenVINO embedder: the ONNX embedder's folder and pipeline, the graph compiled by OpenVINO. Its cache id, a
model folder that carries it, loading without openvino, threads, its compiled-graph cache, and its fidelity.

The fast tests compile the tiny ONNX graph of test_onnx.py; the slow one the real bundled model's export."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

import model
from model import ThemeTagger, onnx_embed
from model.embed import EmbeddingCache, OnnxEmbedder, SentenceTransformerEmbedder, load_embedder
from model.errors import UserInputError

pytest.importorskip("onnx")
pytest.importorskip("openvino")

from model.openvino_embed import OpenVinoEmbedder, cpu_precision  # noqa: E402
from test_onnx import SENTENCES, assert_loading_without_names_the_extra, tiny_onnx_folder  # noqa: E402


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tiny_onnx_folder(tmp_path_factory.mktemp("onnx") / "tiny")


@pytest.fixture(scope="module")
def tiny(folder) -> OpenVinoEmbedder:
    return OpenVinoEmbedder(folder, "openvino:tiny")


@pytest.fixture(scope="module")
def saved(synthetic, tiny, tmp_path_factory):
    out = tmp_path_factory.mktemp("saved") / "model"
    tagger, _ = model.train(synthetic.corpus_dir, synthetic.themes_path, embedder=tiny, cache_dir=None,
                            progress=False, out=out)
    return tagger, out


def test_it_encodes_as_onnx_runtime_does(folder, tiny) -> None:
    """The same graph, tokens and pooling: the rows ONNX Runtime gives, up to OpenVINO's arithmetic (bfloat16 where
    the CPU has it, which keeps about three significant digits per weight)."""
    ours, theirs = tiny.encode(SENTENCES), OnnxEmbedder(folder, "onnx:tiny").encode(SENTENCES)
    assert ours.shape == theirs.shape == (len(SENTENCES), 16) and ours.dtype == np.float32
    assert np.allclose(np.linalg.norm(ours, axis=1), 1, atol=1e-5)
    assert (ours * theirs).sum(axis=1).min() > 0.999
    alone = np.vstack([tiny.encode([s]) for s in SENTENCES])   # padding and neighbours change nothing
    assert np.allclose(ours, alone, atol=1e-5)
    assert tiny.encode([]).shape == (0, 16)
    assert tiny.precision in ("f32", "bf16")


def test_training_embeds_with_openvino_and_the_model_tags_with_it(synthetic, folder, tiny, tmp_path) -> None:
    """The corpus a model learns from is embedded by the embedder it tags with: OpenVINO, every paragraph cached under
    its id and none under ONNX Runtime's."""
    tagger, summary = model.train(synthetic.corpus_dir, synthetic.themes_path, embedder=tiny,
                                  cache_dir=tmp_path / "cache", progress=False, report=False)
    assert tagger.embedder is tiny and summary.embedding_model == "openvino:tiny"
    cache = EmbeddingCache(tmp_path / "cache" / "embeddings.sqlite")
    texts = sorted({p.text for p in tagger.training_paragraphs_})
    found = cache.get([EmbeddingCache.key(tiny.id, t) for t in texts])
    assert len(found) == len(texts), "every paragraph embedded by OpenVINO"
    assert not cache.get([EmbeddingCache.key(OnnxEmbedder(folder, "onnx:tiny").id, t) for t in texts])
    np.testing.assert_allclose(np.vstack([found[EmbeddingCache.key(tiny.id, t)] for t in texts]), tiny.encode(texts),
                               atol=1e-6)


def test_its_cache_id_is_not_onnx_runtime_s(folder, tiny) -> None:
    """Another runtime, other rounding: its embeddings never mix with ONNX Runtime's in the cache."""
    assert tiny.id.startswith("ov:openvino:tiny#")
    assert tiny.id != OnnxEmbedder(folder, "onnx:tiny").id
    assert tiny.id == OpenVinoEmbedder(folder, "openvino:tiny").id


def test_its_cache_id_names_the_precision_it_computes_in(folder, tiny) -> None:
    """The same graph in bf16 and in f32 gives vectors up to 1e-3 apart: a shared cache, or a Ray cluster of CPUs
    with and without bf16, must not mix them under one id."""
    def computed(embedder: OpenVinoEmbedder) -> str:
        return embedder.session.get_property("INFERENCE_PRECISION_HINT").get_type_name()

    assert tiny.precision == cpu_precision() == computed(tiny) and tiny.id.endswith(f"@{tiny.precision}")
    other = "f32" if tiny.precision == "bf16" else "bf16"
    assert OpenVinoEmbedder(folder, "openvino:tiny", precision=other).id != tiny.id
    f32 = OpenVinoEmbedder(folder, "openvino:tiny", precision="f32")
    assert computed(f32) == "f32" and f32.id.endswith("@f32")
    copy = pickle.loads(pickle.dumps(f32))   # as Ray ships it: a worker computes as the driver does
    assert copy.precision == "f32" and copy.id == f32.id


def test_a_ray_actor_s_thread_count_reaches_the_compiled_graph(folder) -> None:
    onnx_embed.set_threads(1)
    try:
        assert OpenVinoEmbedder(folder, "openvino:tiny").session.get_property("INFERENCE_NUM_THREADS") == 1
    finally:
        onnx_embed.set_threads(None)


def test_it_pickles_as_its_folder_and_spec(tiny) -> None:
    """As Ray ships it to a worker: the compiled graph does not pickle, the folder and spec rebuild it."""
    copy = pickle.loads(pickle.dumps(tiny))
    assert type(copy) is OpenVinoEmbedder and copy.path == tiny.path and copy.id == tiny.id
    assert np.allclose(copy.encode(SENTENCES[:2]), tiny.encode(SENTENCES[:2]), atol=1e-6)


def test_the_compiled_graph_is_cached_under_the_tool_s_cache(folder, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("THEME_TAGGER_CACHE", str(tmp_path / "cache"))
    OpenVinoEmbedder(folder, "openvino:tiny").encode(SENTENCES[:1])
    assert any((tmp_path / "cache" / "openvino").iterdir())
    # A cache that cannot be written costs the compile, never the encode.
    (tmp_path / "file").write_text("")
    monkeypatch.setenv("THEME_TAGGER_CACHE", str(tmp_path / "file"))
    assert OpenVinoEmbedder(folder, "openvino:tiny").encode(SENTENCES[:1]).shape == (1, 16)


def test_a_model_folder_carries_its_openvino_embedder(synthetic, tiny, saved) -> None:
    tagger, out = saved
    assert (out / "embedder" / "model.onnx").is_file()
    loaded = ThemeTagger.load(out)
    assert type(loaded.embedder) is OpenVinoEmbedder and loaded.embedder.path == out / "embedder"
    assert loaded.embedder.id == tiny.id and loaded.config["embedding_model"]["kind"] == "openvino"
    texts = [text for _, text in synthetic.heldout]
    before, after = tagger.tag_many(texts), loaded.tag_many(texts)
    assert [r.themes for r in before] == [r.themes for r in after]
    assert np.allclose([list(r.scores.values()) for r in before], [list(r.scores.values()) for r in after],
                       atol=1e-6)


def test_loading_without_openvino_names_the_extra(saved, tmp_path, monkeypatch) -> None:
    assert_loading_without_names_the_extra("openvino", 'pip install "openvino>=2024.0"', saved[1], "openvino",
                                           tmp_path / "cache", monkeypatch)


def test_a_damaged_graph_is_reported_when_the_model_loads(saved, tmp_path) -> None:
    import shutil

    copy = tmp_path / "model"
    shutil.copytree(saved[1], copy)
    (copy / "embedder" / "model.onnx").write_bytes(b"not an onnx graph")
    with pytest.raises(UserInputError, match=r"damaged: its ONNX embedder does not load"):
        ThemeTagger.load(copy)


@pytest.mark.slow
def test_the_real_model_keeps_torch_s_embeddings(tmp_path) -> None:
    """The bundled model's fp32 export, compiled by OpenVINO, against the sentence-transformers pipeline."""
    ours = load_embedder("openvino", cache_dir=tmp_path)
    a, b = ours.encode(SENTENCES), SentenceTransformerEmbedder().encode(SENTENCES)
    cosine = (a * b).sum(axis=1)
    # fp32: 1.0000; bfloat16 (AVX-512 BF16 or AMX): 0.99997 on 639 news paragraphs, the least 0.99997.
    assert cosine.min() >= (0.99999 if ours.precision == "f32" else 0.9995), (ours.precision, cosine)
    assert ((a @ b.T).argmax(axis=1) == np.arange(len(SENTENCES))).all()
    # Compiled for f32 on any CPU: torch's embeddings, under their own id where this CPU computes in bf16.
    f32 = OpenVinoEmbedder(ours.path, ours.spec, precision="f32")
    assert np.allclose(f32.encode(SENTENCES), b, atol=1e-5)
    assert (f32.id == ours.id) == (ours.precision == "f32")
