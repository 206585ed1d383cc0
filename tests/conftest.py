"""Shared fixtures: a tiny deterministic embedder, a synthetic themed corpus, and one model trained on it.

Nothing here touches the network or the real embedding model; every file goes under pytest's tmp folders."""

from __future__ import annotations

import random
import re
import sys
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `import train` (the CLI script) and `import model` without an install
    sys.path.insert(0, str(ROOT))

import model  # noqa: E402
import model.cluster  # noqa: E402
from model.corpus import Article  # noqa: E402

# ---------------------------------------------------------------------------------------------- fake embedder

_WORD = re.compile(r"[a-z]+")


class HashEmbedder:
    """A hashed bag of words: each word has a fixed random vector (seeded by crc32), a text is their normalised sum.

    Texts that share words are similar, so clustering and labelling have real structure to find."""

    def __init__(self, dim: int = 64, model_id: str = "fake:hash-bow-64", max_words: int = 60):
        self.dim = dim
        self.id = model_id
        self.spec = "fake-hash-embedder"
        self.max_words = max_words
        self._vectors: dict[str, np.ndarray] = {}

    def _vector(self, word: str) -> np.ndarray:
        vec = self._vectors.get(word)
        if vec is None:
            vec = np.random.default_rng(zlib.crc32(word.encode("utf-8"))).standard_normal(self.dim)
            self._vectors[word] = vec
        return vec

    def encode(self, texts: Sequence[str], show_progress: bool = False) -> np.ndarray:
        rows = np.zeros((len(texts), self.dim), dtype=np.float64)
        for i, text in enumerate(texts):
            words = _WORD.findall(text.lower()) or ["<empty>"]
            for w in words:
                rows[i] += self._vector(w)
        rows /= np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-12)
        return rows.astype(np.float32)


@pytest.fixture(scope="session")
def fake_embedder() -> HashEmbedder:
    return HashEmbedder()


@pytest.fixture
def make_fake_embedder():
    """Factory for extra fake embedders (another id, dimension, ...)."""
    return HashEmbedder


# ---------------------------------------------------------------------------------------------- synthetic corpus

POOLS: dict[str, list[str]] = {
    "farm_shop": ("farmers village orchard apples honey walnuts mushrooms harvest produce growers "
                  "parcels ecommerce webshop countryside villagers peaches tea sellers").split(),
    "cloud_data": ("cloud servers datacentre storage computing racks cooling bandwidth databases "
                   "analytics virtualisation backups terabytes processors uptime gigabit").split(),
    "city_traffic": ("traffic intersections buses commuters congestion lanes signals parking "
                     "subway drivers junctions pedestrians sensors trams cameras roadworks").split(),
    None: ("delegation ceremony banquet speech minister handshake welcomed guests anniversary "
           "officials gratitude friendship protocol dignitaries toast reception").split(),
}
FILLER = "said this year new also more many local over".split()

# Order on purpose not alphabetical, so "follows the file order" can't pass by sorting.
THEME_IDS = ["farm_shop", "cloud_data", "city_traffic"]

THEMES_TOML = '''
# Synthetic themes for the tests; descriptions and keywords come from the corpus word pools.
[farm_shop]
label = "Farm produce sold online"
description = "Farmers and villagers sell orchard produce such as apples, honey, walnuts and mushrooms through an ecommerce webshop and ship parcels from the countryside."
keywords = ["farmers", "village", "orchard", "apples", "honey", "ecommerce", "webshop", "parcels"]
examples = ["Village growers ship parcels of apples and honey from their orchard webshop."]

[cloud_data]
label = "Cloud data centres"
description = "Cloud computing in a datacentre: servers in racks, storage, cooling, bandwidth, databases and analytics."
keywords = ["cloud", "servers", "datacentre", "storage", "computing", "databases", "analytics"]

[city_traffic]
label = "City traffic"
description = "City traffic: congestion at intersections, buses, trams and the subway, commuters, parking, signals and sensors on the roads."
keywords = ["traffic", "congestion", "intersections", "buses", "commuters", "parking", "signals"]
'''


def _sentence(rng: random.Random, theme: str | None) -> str:
    n = rng.randint(7, 11)
    words = []
    for _ in range(n):
        r = rng.random()
        if theme is not None and r < 0.7:
            words.append(rng.choice(POOLS[theme]))
        elif r < 0.88:
            words.append(rng.choice(POOLS[None]))
        else:
            words.append(rng.choice(FILLER))
    return " ".join(words).capitalize() + "."


def make_article(rng: random.Random, theme: str | None) -> str:
    paragraphs = [" ".join(_sentence(rng, theme) for _ in range(rng.randint(2, 3)))
                  for _ in range(rng.randint(2, 4))]
    return "\n\n".join(paragraphs) + "\n"


def make_graded(seed: int, steps: int = 25) -> list[str]:
    """Texts whose share of theme words (the rest from the "none" pool) rises from 0 to 60%."""
    rng = random.Random(seed)
    texts = []
    for theme in THEME_IDS:
        for i in range(steps):
            share = 0.6 * i / (steps - 1)
            words = [rng.choice(POOLS[theme] if rng.random() < share else POOLS[None]) for _ in range(12)]
            texts.append(" ".join(words).capitalize() + ".")
    return texts


def make_corpus(seed: int, per_theme: int, none: int) -> list[tuple[str | None, str]]:
    """(theme or None, article text) pairs, in a shuffled order."""
    rng = random.Random(seed)
    kinds = [t for t in THEME_IDS for _ in range(per_theme)] + [None] * none
    rng.shuffle(kinds)
    return [(kind, make_article(rng, kind)) for kind in kinds]


@dataclass
class Synthetic:
    corpus_dir: Path                  # one .txt file per article
    themes_path: Path
    articles: list[Article]
    truth: dict[str, str | None]      # article id -> its theme (None for the "none" pool)
    heldout: list[tuple[str | None, str]]   # fresh articles from the same generator, never trained on
    graded: list[str]                 # one-sentence texts from 0% to 60% theme words: scores across the range


@pytest.fixture(scope="session")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> Synthetic:
    root = tmp_path_factory.mktemp("synthetic")
    corpus_dir = root / "corpus"
    corpus_dir.mkdir()
    articles, truth = [], {}
    for i, (kind, text) in enumerate(make_corpus(0, per_theme=11, none=8)):
        ident = f"a{i:03d}"
        (corpus_dir / f"{ident}.txt").write_text(text, encoding="utf-8")
        articles.append(Article(ident, text))
        truth[ident] = kind
    themes_path = root / "themes.toml"
    themes_path.write_text(THEMES_TOML, encoding="utf-8")
    return Synthetic(corpus_dir, themes_path, articles, truth, make_corpus(1, per_theme=6, none=6), make_graded(2))


# ---------------------------------------------------------------------------------------------- trained model

@dataclass
class Trained:
    tagger: model.ThemeTagger
    summary: model.TrainSummary
    out: Path
    infos: list            # the ClusterInfo list the pipeline described (themes filled by labelling)


@pytest.fixture(scope="session")
def trained(synthetic: Synthetic, fake_embedder: HashEmbedder, tmp_path_factory: pytest.TempPathFactory) -> Trained:
    """Train once on the synthetic corpus folder; every test that only reads the model shares this one."""
    out = tmp_path_factory.mktemp("trained") / "model"
    captured: list = []
    real_describe = model.cluster.describe

    def spy(*args, **kwargs):
        infos = real_describe(*args, **kwargs)
        captured.append(infos)
        return infos

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(model.cluster, "describe", spy)
        tagger, summary = model.train(synthetic.corpus_dir, synthetic.themes_path, embedder=fake_embedder,
                                      cache_dir=None, progress=False, out=out)
    assert len(captured) == 1
    return Trained(tagger, summary, out, captured[0])


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config) -> None:
    """hypothesis writes a cache of its own while tests are collected (.hypothesis/ in the working folder): put it
    under pytest's tmp folder instead, like every other file the tests write."""
    factory = getattr(config, "_tmp_path_factory", None)
    try:
        from hypothesis.configuration import set_hypothesis_home_dir
    except ImportError:
        return
    if factory is not None:
        set_hypothesis_home_dir(factory.mktemp("hypothesis"))


@pytest.fixture(autouse=True, scope="session")
def _no_cache_in_home(tmp_path_factory: pytest.TempPathFactory):
    """Whatever defaults a test hits, the embedding cache never lands in the user's home folder."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("THEME_TAGGER_CACHE", str(tmp_path_factory.mktemp("default-cache")))
        yield
