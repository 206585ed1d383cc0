"""The review loop: the cluster-to-theme assignments a person reads, corrects and trains with again.

Training writes assignments.csv beside the model: one row per cluster with its themes, what the automatic vote
gave, its size, keywords, a typical paragraph and the reason. A person edits the `themes` cell (theme ids or
labels, `;`-separated, or `none`) and retrains with `--assignments FILE`: the clusters whose themes differ from
the vote, or whose `set_by` says `person`, override the vote for all their paragraphs; the others keep the vote.
The `corpus` cell is a fingerprint of the paragraphs and their clusters, so a file from another corpus (or from
another seed, clusterer or embedding model, which cluster differently) is refused rather than misapplied.
"""

from __future__ import annotations

import csv
import hashlib
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .cluster import OUTLIER, ClusterInfo
from .errors import UserInputError
from .label import PseudoLabels
from .themes import Theme

FILE_NAME = "assignments.csv"
COLUMNS = ["cluster", "themes", "set_by", "vote", "size", "keywords", "typical_paragraph", "reason", "corpus"]
NONE = "none"
PERSON, VOTE = "person", "vote"


@dataclass
class Assignments:
    """What a person set in an assignments file: cluster id -> its theme ids (in the theme file's order)."""

    path: Path
    fingerprint: str
    themes: dict[int, list[str]]   # only the clusters a person set
    lines: dict[int, int]          # every cluster in the file -> its line number, for error messages


def fingerprint(texts: list[str], clusters: np.ndarray) -> str:
    """Identifies the paragraphs and the clusters they fell in: cluster ids mean nothing outside them."""
    h = hashlib.sha256()
    for text in texts:
        h.update(text.encode("utf-8") + b"\x00")
    h.update(np.asarray(clusters, dtype=np.int64).tobytes())
    return h.hexdigest()[:16]


def _clip(text: str, words: int = 60) -> str:
    parts = text.split()
    return " ".join(parts[:words]) + (" …" if len(parts) > words else "")


def assignments_csv(infos: list[ClusterInfo], texts: list[str], themes: list[Theme], corpus_fingerprint: str) -> str:
    """The assignments file's text: one row per cluster (the unclustered paragraphs have no row)."""
    labels = {t.id: t.label for t in themes}
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for info in sorted((i for i in infos if i.id != OUTLIER), key=lambda i: i.id):
        vote = info.vote if info.set_by_person else info.themes
        reason = "; ".join(f"{labels.get(t, t)}: {why}" for t, why in info.reasons.items())
        if info.set_by_person:
            reason = f"set by a person (the vote gave: {'; '.join(vote) or NONE})"
        writer.writerow([info.id, "; ".join(info.themes) or NONE, PERSON if info.set_by_person else VOTE,
                         "; ".join(vote) or NONE, info.size, "; ".join(info.keywords),
                         _clip(texts[info.typical[0]]) if info.typical else "", reason, corpus_fingerprint])
    return out.getvalue()


def _theme_names(cell: str, names: dict[str, str]) -> list[str]:
    """The theme names in a cell: `;` separates them, and so does `,` (ids are often typed that way), except within
    a whole cell or `;`-part that is a theme's label or id: a label may hold a comma ("Cloud computing, big data")."""
    cell = cell.strip()
    if cell.lower() in names:
        return [cell]
    parts = []
    for part in (p.strip() for p in cell.split(";")):
        parts += [part] if part.lower() in names else [p.strip() for p in part.split(",")]
    return [p for p in parts if p]


def _theme_list(cell: str, names: dict[str, str], where: str) -> list[str]:
    """The theme ids a person wrote in a `themes` cell; `none` is the one way to say no theme."""
    parts = _theme_names(cell, names)
    if not parts:   # a cleared cell is more likely a slip than a wish to take the cluster's themes away
        raise UserInputError(f"{where}: the `themes` cell is empty; write `none` for no theme, or the cluster's themes")
    if [p.lower() for p in parts] == [NONE]:
        return []
    found = []
    for part in parts:
        if part.lower() == NONE:
            raise UserInputError(f"{where}: `none` cannot be combined with themes in the `themes` cell ({cell!r})")
        theme_id = names.get(part.lower())
        if theme_id is None:
            known = ", ".join(dict.fromkeys(names.values()))
            raise UserInputError(f"{where}: unknown theme {part!r} in the `themes` cell; the themes are: {known} "
                                 "(or `none`)")
        found.append(theme_id)
    return found


def _vote_list(cell: str, names: dict[str, str]) -> list[str] | None:
    """What the vote gave, or None where the `vote` cell cannot say (blank, or a theme the theme file no longer has).

    Training wrote this cell only to tell the person what the vote gave, so it never blocks training: a vote that
    cannot be read counts as differing from the `themes` cell, which then applies, as when the column is missing."""
    parts = _theme_names(cell, names)
    if [p.lower() for p in parts] == [NONE]:
        return []
    ids = [names.get(p.lower()) for p in parts]
    return ids if ids and None not in ids else None


def read_assignments(path: str | Path, themes: list[Theme]) -> Assignments:
    """Parse and check an assignments file against the theme file; the clusters are checked once they exist."""
    path = Path(path)
    if not path.is_file():
        raise UserInputError(f"assignments file {path} does not exist")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeError):
        raise UserInputError(f"assignments file {path} is not a readable UTF-8 text file") from None
    order = [t.id for t in themes]
    # A label never hides another theme's id: training writes ids into the cells a person edits.
    names = {t.label.lower(): t.id for t in themes} | {t.id.lower(): t.id for t in themes}
    # A spreadsheet set to a European locale saves CSV with semicolons between the cells. Blank lines before the
    # header are skipped, as they are between rows, so the header is the first line with text.
    first = next((line for line in text.splitlines() if line.strip()), "")
    # A cell pasted from an article can exceed csv's default 128 KiB field limit (the corpus reader raises it too).
    csv.field_size_limit(max(csv.field_size_limit(), 2**31 - 1))
    rows = csv.reader(io.StringIO(text, newline=""), delimiter=";" if first.count(";") > first.count(",") else ",")
    try:
        return _parse(rows, path, names, order)
    except csv.Error as exc:
        raise UserInputError(f"{path}, line {rows.line_num}: bad CSV ({exc})") from None


def _parse(rows, path: Path, names: dict[str, str], order: list[str]) -> Assignments:
    """The header and rows of a csv.reader (its line_num gives each row's line for the messages), checked."""
    header = [h.strip().lower() for h in next((row for row in rows if any(cell.strip() for cell in row)), [])]
    missing = [c for c in ("cluster", "themes", "corpus") if c not in header]
    if missing:
        raise UserInputError(f"{path}: not an assignments file: no {', '.join(missing)} column "
                             f"(train once without --assignments to get one)")
    col = {name: header.index(name) for name in header if name}
    chosen: dict[int, list[str]] = {}
    lines: dict[int, int] = {}
    prints: dict[str, int] = {}   # each corpus fingerprint -> the first line that has it
    for row in rows:
        if not any(cell.strip() for cell in row):
            continue
        n = rows.line_num
        cell = {name: (row[i].strip() if i < len(row) else "") for name, i in col.items()}
        try:
            cluster = int(cell["cluster"])
        except ValueError:
            raise UserInputError(f"{path}, line {n}: cluster {cell['cluster']!r} is not a cluster number") from None
        where = f"{path}, line {n} (cluster {cluster})"
        if cluster in lines:
            raise UserInputError(f"{where}: cluster {cluster} appears twice (first on line {lines[cluster]})")
        lines[cluster] = n
        if cell["corpus"]:   # a row added by hand may leave it out: the other rows carry the fingerprint
            prints.setdefault(cell["corpus"], n)
        given = _theme_list(cell["themes"], names, where)
        vote = _vote_list(cell["vote"], names) if "vote" in cell else None
        set_by = cell.get("set_by", "").lower() or VOTE
        if set_by not in (PERSON, VOTE):
            raise UserInputError(f"{where}: set_by must be `{PERSON}` or `{VOTE}`, got {cell['set_by']!r}")
        if set_by == PERSON or vote is None or set(given) != set(vote):
            chosen[cluster] = [t for t in order if t in given]
    if len(prints) > 1:
        found = ", ".join(f"{fp} (line {n})" for fp, n in prints.items())
        raise UserInputError(f"{path}: rows from different corpora (corpus fingerprints {found})")
    if lines and not prints:
        raise UserInputError(f"{path}: no row has a `corpus` fingerprint; train once without --assignments and "
                             "copy the `corpus` cell from the file it writes")
    return Assignments(path, next(iter(prints), ""), chosen, lines)


def check_assignments(assignments: Assignments, corpus_fingerprint: str, infos: list[ClusterInfo]) -> None:
    """Refuse a file written for other paragraphs or clusters, and rows for clusters that do not exist."""
    if assignments.fingerprint != corpus_fingerprint:
        raise UserInputError(
            f"{assignments.path} was written for another corpus or clustering (fingerprint "
            f"{assignments.fingerprint or '(none)'}, this run {corpus_fingerprint}): cluster numbers only hold for "
            "the same corpus, seed, clusterer and embedding model; train without --assignments for a fresh file")
    known = {i.id for i in infos if i.id != OUTLIER}
    for cluster, n in assignments.lines.items():
        if cluster not in known:
            what = ("the unclustered paragraphs have no themes as a group"
                    if cluster == OUTLIER else f"the clusters are 0 to {max(known)}" if known else "there are none")
            raise UserInputError(f"{assignments.path}, line {n}: cluster {cluster} does not exist ({what})")


def apply_assignments(pseudo: PseudoLabels, clusters: np.ndarray, infos: list[ClusterInfo],
                      assignments: Assignments | None, themes: list[Theme]) -> PseudoLabels:
    """The clusters a person set override the vote: all their paragraphs learn those themes, confidently.

    Called after each labelling round (the vote runs again in self-training and would undo the correction)."""
    if assignments is None:
        return pseudo
    ids = [t.id for t in themes]
    for info in infos:
        chosen = assignments.themes.get(info.id)
        if chosen is None or info.id == OUTLIER:
            continue
        if not info.set_by_person:   # the first round's vote: self-training's already learned from the person
            info.vote = list(info.themes)
        info.themes, info.set_by_person = list(chosen), True
        info.reasons = {t: "set by a person in the assignments file" for t in chosen}
        rows = clusters == info.id
        pseudo.targets[rows] = np.isin(ids, chosen)
        pseudo.mask[rows] = True
    return pseudo
