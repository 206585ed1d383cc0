"""The embedding layer: the embedding cache's file when another process locks it, when it is read-only and when it is
damaged; the static embedder's distillation cache; a model path given from the home folder; no texts at all.

The static test distils a tiny random teacher (one layer, about a thousand tokens) in a fraction of a second; two
tests load the bundled model through sentence-transformers."""

from __future__ import annotations

import ctypes
import json
import logging
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from model.embed import CachedEmbedder, EmbeddingCache, SentenceTransformerEmbedder, StaticEmbedder, _bundled_path

ROOT = Path(__file__).resolve().parents[1]


def tiny_sentence_transformer(path: Path, seed: int = 0, tokens: int = 2000) -> Path:
    """A sentence-transformers folder (Transformer -> mean Pooling -> Normalize) around a random one-layer BERT of
    width 8, with the bundled model's tokenizer cut to its first `tokens` ids: a teacher that distils, and a model
    that exports to ONNX, in well under a second."""
    import torch
    from transformers import BertConfig, BertModel

    source = Path(_bundled_path())
    path.mkdir(parents=True)
    for name in ("tokenizer_config.json", "special_tokens_map.json", "modules.json", "sentence_bert_config.json"):
        shutil.copy2(source / name, path / name)
    (path / "1_Pooling").mkdir()
    shutil.copy2(source / "1_Pooling" / "config.json", path / "1_Pooling" / "config.json")
    tokenizer = json.loads((source / "tokenizer.json").read_text(encoding="utf-8"))
    tokenizer["model"]["vocab"] = {t: i for t, i in tokenizer["model"]["vocab"].items() if i < tokens}
    (path / "tokenizer.json").write_text(json.dumps(tokenizer), encoding="utf-8")
    (path / "vocab.txt").write_text("".join((source / "vocab.txt").read_text(encoding="utf-8")
                                            .splitlines(keepends=True)[:tokens]), encoding="utf-8")
    torch.manual_seed(seed)
    BertModel(BertConfig(vocab_size=tokens, hidden_size=8, num_hidden_layers=1, num_attention_heads=1,
                         intermediate_size=8, max_position_embeddings=512)).save_pretrained(str(path))
    return path


# ---------------------------------------------------------------------------------------------- the cache file

def test_a_cache_another_process_holds_locked_is_left_alone(tmp_path, caplog) -> None:
    """A lock is another run's commit in progress, not damage: the file stays, that run's commit lands, and this one
    goes on without the cache."""
    path = tmp_path / "embeddings.sqlite"
    EmbeddingCache(path).put(["ours"], np.ones((1, 4), np.float32))
    inode = path.stat().st_ino
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    other.execute("INSERT INTO vectors VALUES ('theirs', 1, x'00000000', 'x')")
    with caplog.at_level(logging.WARNING, logger="model.embed"):
        cache = EmbeddingCache(path, timeout=0.1)
        assert cache.get(["ours"]) == {}
        cache.put(["new"], np.ones((1, 4), np.float32))   # nothing written, nothing raised
    assert [r.getMessage() for r in caplog.records] == [
        f"embedding cache {path} cannot be used (database is locked); going on without it"]
    other.execute("COMMIT")
    other.close()
    assert path.stat().st_ino == inode
    rows = sqlite3.connect(path).execute("SELECT key FROM vectors ORDER BY key").fetchall()
    assert rows == [("ours",), ("theirs",)]


def _without_write_rights(code: str) -> subprocess.CompletedProcess:
    """Run `code` in a process that file permissions hold to: as root, one without CAP_DAC_OVERRIDE (which lets
    root write a read-only file), dropped in the child only, so that this process keeps it."""
    libc = ctypes.CDLL(None, use_errno=True)

    def drop() -> None:
        if os.geteuid() == 0 and libc.prctl(24, 1, 0, 0, 0) != 0:   # PR_CAPBSET_DROP, CAP_DAC_OVERRIDE
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")

    try:
        return subprocess.run([sys.executable, "-c", code], preexec_fn=drop, capture_output=True, text=True,
                              cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)
    except subprocess.SubprocessError as exc:   # no CAP_SETPCAP to drop it with
        pytest.skip(f"running as root, and cannot drop the right to write read-only files ({exc})")


def test_a_read_only_cache_is_read_and_never_replaced(tmp_path) -> None:
    v2 = tmp_path / "v2.sqlite"
    EmbeddingCache(v2).put(["k"], np.full((1, 4), 0.5, np.float32))
    v1 = tmp_path / "v1.sqlite"   # the first format: left alone, unread
    with sqlite3.connect(v1) as db:
        db.execute("CREATE TABLE emb (key TEXT PRIMARY KEY, vec BLOB)")
    (tmp_path / "damaged.sqlite").write_bytes(b"not a database " * 300)
    for f in (v1, v2, tmp_path / "damaged.sqlite"):
        f.chmod(0o444)
    tmp_path.chmod(0o555)   # nor may a file be deleted from the folder
    try:
        done = _without_write_rights(
            "import logging, sys, numpy as np; from model.embed import EmbeddingCache\n"
            "logging.basicConfig(level=logging.WARNING, format='%(message)s')\n"
            "for name in ('v2', 'v1', 'damaged'):\n"
            f"    c = EmbeddingCache({str(tmp_path)!r} + f'/{{name}}.sqlite')\n"
            "    for key in ('a', 'b'):\n"
            "        c.put([key], np.ones((1, 4), np.float32))\n"
            "    print(name, sorted(c.get(['k', 'a'])), flush=True)\n")
    finally:
        tmp_path.chmod(0o755)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["v2 ['k']", "v1 []", "damaged []"]
    warnings = done.stderr.splitlines()
    assert warnings == [
        f"embedding cache {v2} is read-only; reading it, adding nothing",   # once, not for every write
        f"embedding cache {v1} cannot be used (attempt to write a readonly database); going on without it",
        f"embedding cache {tmp_path / 'damaged.sqlite'} is damaged; starting a new one",
        f"embedding cache {tmp_path / 'damaged.sqlite'} cannot be replaced ([Errno 13] Permission denied: "
        f"'{tmp_path / 'damaged.sqlite'}'); going on without it"], done.stderr
    with sqlite3.connect(v1) as db:
        assert db.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall() == [("emb",)]


def test_a_damaged_cache_file_is_replaced(tmp_path, caplog) -> None:
    path = tmp_path / "embeddings.sqlite"
    path.write_bytes(b"not a database " * 300)
    with caplog.at_level(logging.WARNING, logger="model.embed"):
        cache = EmbeddingCache(path)
    assert "is damaged; starting a new one" in caplog.text
    cache.put(["k"], np.ones((1, 4), np.float32))
    assert list(EmbeddingCache(path).get(["k"])) == ["k"]


# ---------------------------------------------------------------------------------------------- the static embedder

def test_a_static_distillation_is_its_teacher_s(tmp_path, monkeypatch) -> None:
    """"static:./model" in two projects are two teachers, and so is one folder retrained in place: each gets its
    own distillation and id, never the other's from the cache."""
    pytest.importorskip("model2vec")
    cache, text = tmp_path / "cache", ["the farmers sell honey and walnuts online"]
    for project, seed in (("a", 0), ("b", 1)):
        tiny_sentence_transformer(tmp_path / project / "model", seed=seed)

    def static():
        return StaticEmbedder.distill("./model", cache_dir=cache, pca_dims=4)

    monkeypatch.chdir(tmp_path / "a")
    a = static()
    assert static().id == a.id   # distilled once, then read from the cache
    monkeypatch.chdir(tmp_path / "b")
    b = static()
    assert b.id != a.id and not np.allclose(b.encode(text), a.encode(text))
    # Project b retrains its model in place (later, as a retraining is): another teacher again.
    weights = tiny_sentence_transformer(tmp_path / "retrained", seed=2) / "model.safetensors"
    shutil.copy2(weights, tmp_path / "b" / "model" / weights.name)
    os.utime(tmp_path / "b" / "model" / weights.name, (weights.stat().st_mtime + 10,) * 2)
    again = static()
    assert again.id not in (a.id, b.id) and not np.allclose(again.encode(text), b.encode(text))
    assert len(list((cache / "static").iterdir())) == 3
    assert again.encode([]).shape == (0, 4)


# ---------------------------------------------------------------------------------------------- sentence-transformers

def test_a_model_under_the_home_folder_encodes(tmp_path, monkeypatch) -> None:
    """"~/minilm" is a folder, not a hub name, for loading as for the id and the window."""
    (tmp_path / "minilm").symlink_to(_bundled_path(), target_is_directory=True)
    monkeypatch.setenv("HOME", str(tmp_path))
    embedder = SentenceTransformerEmbedder("~/minilm")
    out = embedder.encode(["Farmers sell walnuts online.", "The bank reported a loss."])
    assert out.shape == (2, 384) and np.allclose(np.linalg.norm(out, axis=1), 1, atol=1e-5)
    assert embedder.id.startswith(f"st:{Path(_bundled_path()).resolve()}#")


def test_a_hub_model_is_read_and_cached_at_its_revision(tmp_path) -> None:
    """A hub name's id names the commit on disk, and the model loads at that commit: when a newer revision of the
    same name is downloaded, its vectors are another model's and must not be served from the old one's cache."""
    hub = tmp_path / "hf" / "hub" / "models--acme--tiny"
    (hub / "refs").mkdir(parents=True)
    code = ("import json; from model.embed import SentenceTransformerEmbedder as E; e = E('acme/tiny'); "
            "print(json.dumps([e.id, e.encode(['farmers sell walnuts online']).tolist()]))")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1"}
    seen = []
    for seed, commit in enumerate(("a" * 40, "b" * 40)):
        tiny_sentence_transformer(hub / "snapshots" / commit, seed=seed)
        (hub / "refs" / "main").write_text(commit)
        run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
        assert run.returncode == 0, run.stderr[-2000:]
        seen.append(json.loads(run.stdout.strip().splitlines()[-1]))
    assert [s[0] for s in seen] == ["st:acme/tiny@" + "a" * 40, "st:acme/tiny@" + "b" * 40]
    assert not np.allclose(seen[0][1], seen[1][1])   # each read its own revision's weights


def test_no_texts_give_no_rows_of_the_model_s_width(tmp_path) -> None:
    """As the ONNX embedder does: (0, width), which np.vstack and a classifier take, where sentence-transformers
    gives a flat []."""
    bundled = SentenceTransformerEmbedder()
    assert bundled.encode([]).shape == (0, 384)
    cached = CachedEmbedder(bundled, EmbeddingCache(tmp_path / "embeddings.sqlite"))
    assert cached.encode([]).shape == (0, 384) and cached.encode([]).dtype == np.float32
