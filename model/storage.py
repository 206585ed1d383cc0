"""The model folder on disk: its schema, checked on load, and a save that never loses the model already there.

A save writes the new model into a hidden folder beside the target, then swaps it in with two renames (target ->
`.NAME.old-PID`, new -> target). A process killed between the two leaves no model at the target for a moment; the
next save or load into that folder finds the complete old copy and puts it back. Saves into the same parent folder
take a lock on that folder for the whole save, so two overlapping saves run one after the other (the last one's
model stays), and whatever hidden folder a save finds under the lock is a dead process's, safe to remove."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .errors import UserInputError

log = logging.getLogger(__name__)

FORMAT = "theme-tagger"
# 2: the classifier's keyword columns have a scale of their own ("keyword_scale" in classifier.npz); a release that
# reads only 1 would scale them as the anchors and score such a model wrongly, so it must refuse it instead.
FORMAT_VERSION = 2
CONFIG, WEIGHTS, VOCABULARY, STATIC_DIR, REPORT = "config.json", "classifier.npz", "vocabulary.json", "embedder", \
    "clusters.md"
# What a model folder holds when its config.json does not list its files (models saved before the list existed).
MODEL_FILES = (CONFIG, WEIGHTS, VOCABULARY, REPORT, STATIC_DIR)


# ---------------------------------------------------------------------------------------------- the schema

class _Strict(BaseModel):
    # Unknown keys are allowed (a newer minor version may add some); known keys must have exactly their type.
    model_config = ConfigDict(strict=True, extra="ignore")


# A number must be finite (JSON lets NaN through, and a NaN weight makes every score NaN) and a phrase must hold
# more than spaces (an empty keyword would match every text).
_Finite = Annotated[float, Field(allow_inf_nan=False)]
_Phrase = Annotated[str, Field(pattern=r"\S")]


class _Theme(_Strict):
    id: str = Field(min_length=1)
    label: str
    description: str
    keywords: list[_Phrase]
    examples: list[str]
    counterexamples: list[str] = []   # models saved before counterexamples have none


class _Classifier(_Strict):
    C: _Finite
    tfidf_weight: _Finite
    anchor_weight: _Finite
    max_features: int | None
    random_state: int | None
    keywords: list[list[_Phrase]] | None = None   # models saved before keyword features have none
    words: Literal["terms"] | None = None          # TF-IDF words by terms(); older models: scikit-learn's pattern


class _EmbeddingModel(_Strict):
    spec: str = Field(min_length=1)
    id: str
    kind: Literal["sentence-transformers", "static", "onnx", "openvino"]


class ConfigSchema(_Strict):
    format: Literal["theme-tagger"]
    format_version: int = Field(ge=1, le=FORMAT_VERSION)
    themes: list[_Theme] = Field(min_length=1)
    thresholds: dict[str, _Finite] = {}
    classifier: _Classifier
    embedding_model: _EmbeddingModel
    versions: dict[str, str | None] = {}
    files: list[str] | None = None
    seed: int | None = None


def config_problems(config) -> list[str]:
    """Every way `config` (parsed config.json) differs from the schema, one line each; [] if none."""
    if not isinstance(config, dict):
        return [f"{CONFIG} is not a JSON object"]
    if config.get("format") != FORMAT:
        return [f"{CONFIG} is not a {FORMAT} config (format {config.get('format')!r})"]
    version = config.get("format_version")
    if isinstance(version, int) and not isinstance(version, bool) and version > FORMAT_VERSION:
        return [f"saved by a newer version of theme-tagger (format {version}; this one reads {FORMAT_VERSION})"]
    try:
        ConfigSchema.model_validate(config)
    except ValidationError as exc:
        problems = [f"{'.'.join(str(part) for part in e['loc']) or '(top)'}: {e['msg']}" for e in exc.errors()]
    else:
        problems = []
    themes = config.get("themes")
    ids = [t.get("id") for t in themes if isinstance(t, dict)] if isinstance(themes, list) else []
    if len(ids) != len(set(map(str, ids))):
        problems.append("themes: a theme id appears twice")
    return problems


def read_config(path: Path) -> dict:
    """config.json of the model at `path`, checked against the schema; ValueError naming every problem."""
    config = json.loads((path / CONFIG).read_text(encoding="utf-8"))
    problems = config_problems(config)
    if problems:
        raise ValueError(f"{CONFIG}: " + "; ".join(problems))
    return config


# ---------------------------------------------------------------------------------------------- locking

@contextlib.contextmanager
def folder_lock(folder: Path, shared: bool = False) -> Iterator[None]:
    """An advisory lock on a folder (flock on the folder itself, so no lock file is left behind).

    Where the folder cannot be opened or locked (missing, or a file system without locks) it goes on unlocked."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        yield
        return
    try:
        mode = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
        try:
            fcntl.flock(fd, mode | fcntl.LOCK_NB)
        except BlockingIOError:
            log.warning("waiting for another process saving a model in %s ...", folder)
            fcntl.flock(fd, mode)
        except OSError as exc:
            if exc.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.EINVAL):
                raise
            log.debug("no lock on %s (%s); going on without", folder, exc)
        yield
    finally:
        os.close(fd)   # closing the descriptor releases the lock


# ---------------------------------------------------------------------------------------------- output checks

def _is_model(path: Path) -> dict | None:
    try:
        config = json.loads((path / CONFIG).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return config if isinstance(config, dict) and config.get("format") == FORMAT else None


def _nearest_existing(path: Path) -> Path:
    path = path.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_output_dir(path: Path) -> None:
    """Before the long work: refuse an --out that holds anything but a saved model, or that cannot be written."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UserInputError(f"--out {path} is a file, not a folder")
    if path.is_dir() and any(path.iterdir()):
        config = _is_model(path)
        if config is None:
            raise UserInputError(f"--out {path} holds files that are not a saved model; choose an empty or new folder")
        listed = config.get("files")
        known = set(listed) | {CONFIG} if isinstance(listed, list) and all(isinstance(f, str) for f in listed) \
            else set(MODEL_FILES)
        others = sorted(p.name for p in path.iterdir() if p.name not in known)
        if others:
            raise UserInputError(
                f"--out {path} holds a saved model and other files ({', '.join(others[:5])}"
                f"{', ...' if len(others) > 5 else ''}) that replacing the model would delete; move them out first, "
                "or choose another folder")
    # Writing needs the parent (the swap renames in it), or the nearest folder that exists above it.
    where = _nearest_existing(path.parent)
    if not where.is_dir():
        raise UserInputError(f"--out {path}: {where} is a file, not a folder")
    try:
        tempfile.TemporaryDirectory(dir=where, prefix=f".{path.name}.probe-").cleanup()
    except OSError as exc:
        raise UserInputError(f"--out {path}: cannot write in {where} ({exc.strerror or exc})") from None


# ---------------------------------------------------------------------------------------------- save and recover

def _leftovers(path: Path, kind: str) -> list[Path]:
    """Hidden folders of earlier saves into `path`: kind "tmp" (being written) or "old" (the model being replaced)."""
    # The whole name: a save of model "a.old-1" leaves ".a.old-1.old-PID", which is not one of model "a"'s.
    name = re.compile(rf"\.{re.escape(path.name)}\.{kind}-\d+")
    try:
        found = [p for p in path.parent.iterdir() if name.fullmatch(p.name) and p.is_dir()]
    except OSError:
        return []
    return sorted(found, key=lambda p: p.stat().st_mtime)


def needs_recovery(path: Path) -> bool:
    return bool(_leftovers(path, "old") or _leftovers(path, "tmp"))


def _recover_locked(path: Path) -> None:
    """Under the folder lock: put back a model an interrupted save took away, then remove dead saves' folders."""
    if not (path / CONFIG).is_file():
        complete = [old for old in _leftovers(path, "old") if _is_model(old) is not None]
        if complete and (not path.exists() or (path.is_dir() and not any(path.iterdir()))):
            if path.exists():
                path.rmdir()
            os.rename(complete[-1], path)
            log.warning("restored the model at %s, which an interrupted save had moved to %s", path,
                        complete[-1].name)
    # An old copy goes only once a complete model stands at the path again.
    for stale in [*_leftovers(path, "tmp"), *(_leftovers(path, "old") if (path / CONFIG).is_file() else [])]:
        shutil.rmtree(stale, ignore_errors=True)


def recover(path: Path) -> None:
    """Finish what an interrupted save left: restore the old model if none stands at `path`, and clean up."""
    path = Path(path)
    if not needs_recovery(path):
        return
    with folder_lock(path.parent):
        try:
            _recover_locked(path)
        except OSError as exc:   # e.g. a read-only shared folder: load what is there, say what could not be done
            log.warning("could not clean up an interrupted save at %s (%s)", path, exc)


def write_model_folder(path: Path, write: Callable[[Path], None]) -> Path:
    """Run `write(folder)` on a new hidden folder, then swap it in at `path`; the old model is never lost."""
    path = Path(path)
    check_output_dir(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with folder_lock(path.parent):
        _recover_locked(path)
        check_output_dir(path)   # again, under the lock: another process may have saved here meanwhile
        tmp = path.parent / f".{path.name}.tmp-{os.getpid()}"
        tmp.mkdir()
        try:
            write(tmp)
            old = None
            if path.exists():
                old = path.parent / f".{path.name}.old-{os.getpid()}"
                os.rename(path, old)
            try:
                os.rename(tmp, path)
            except BaseException:
                if old is not None:
                    os.rename(old, path)   # put the previous model back rather than leave nothing
                raise
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return path
