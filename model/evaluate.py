"""Score a saved tagger against labelled JSONL (`text` plus `label` or `labels`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.metrics import precision_recall_fscore_support

from .corpus import jsonl_rows
from .errors import UserInputError

NONE = "(none)"


@dataclass
class LabelledSet:
    texts: list[str]
    labels: list[list[str]]
    single: bool            # every row had one `label`: accuracy and a top-theme confusion table make sense


def read_labelled(path: str | Path, theme_ids: list[str]) -> LabelledSet:
    path = Path(path)
    if not path.is_file():
        raise UserInputError(f"labelled file {path} does not exist")
    texts, labels, single = [], [], True
    known = set(theme_ids)
    for n, row in jsonl_rows(path):
        if "labels" in row:
            gold, single = row["labels"], False
            if not isinstance(gold, list) or not all(isinstance(g, str) for g in gold):
                raise UserInputError(f"{path}, line {n}: `labels` must be a list of theme ids")
        elif isinstance(row.get("label"), str):
            gold = [row["label"]]
        else:
            raise UserInputError(f"{path}, line {n}: each line needs `label` (a theme id) or `labels` (a list)")
        unknown = sorted(set(gold) - known)
        if unknown:
            raise UserInputError(f"{path}, line {n}: label(s) {', '.join(map(repr, unknown))} match no theme id; "
                                 f"the model's themes are {', '.join(theme_ids)}")
        texts.append(row["text"])
        labels.append(gold)
    if not texts:
        raise UserInputError(f"labelled file {path} is empty")
    return LabelledSet(texts, labels, single)


def score(theme_ids: list[str], gold: list[list[str]], predicted: list[list[str]], top: list[str | None],
          single: bool) -> dict:
    """Per-theme precision/recall/F1/support, micro and macro F1, accuracy (single-label) and a confusion table.

    predicted: the themes past their thresholds; top: the best-scoring theme whatever its score."""
    y = np.array([[t in g for t in theme_ids] for g in gold])
    p = np.array([[t in pr for t in theme_ids] for pr in predicted])
    prec, rec, f1, support = precision_recall_fscore_support(y, p, average=None, zero_division=0)
    micro = precision_recall_fscore_support(y, p, average="micro", zero_division=0)
    macro = precision_recall_fscore_support(y, p, average="macro", zero_division=0)
    out = {
        "n": len(gold),
        "per_theme": {t: {"precision": float(prec[k]), "recall": float(rec[k]), "f1": float(f1[k]),
                          "support": int(support[k])} for k, t in enumerate(theme_ids)},
        "micro_f1": float(micro[2]), "macro_f1": float(macro[2]),
    }
    rows = theme_ids + ([] if single else [NONE])
    columns = theme_ids + [NONE]
    table = {r: {c: 0 for c in columns} for r in rows}
    for g, pr, tp in zip(gold, predicted, top):
        guess = (tp or NONE) if single else (pr[0] if pr else NONE)
        for r in (g or [NONE]):
            table[r][guess] += 1
    out["confusion"] = table
    out["confusion_columns"] = "top-scoring theme" if single else "best theme past its threshold"
    if single:
        out["accuracy"] = float(np.mean([tp == g[0] for g, tp in zip(gold, top)]))
    return out


def format_report(figures: dict) -> str:
    ids = list(figures["per_theme"])
    width = max(12, *(len(t) for t in ids))
    lines = [f"{'theme':<{width}}  precision  recall     f1  support"]
    for t, m in figures["per_theme"].items():
        lines.append(f"{t:<{width}}  {m['precision']:9.3f}  {m['recall']:6.3f}  {m['f1']:5.3f}  {m['support']:7d}")
    lines += ["", f"micro-F1 {figures['micro_f1']:.3f}   macro-F1 {figures['macro_f1']:.3f}   n = {figures['n']}"]
    if "accuracy" in figures:
        lines.append(f"accuracy (top theme against the label) {figures['accuracy']:.3f}")
    cols = list(next(iter(figures["confusion"].values())))
    cw = max(8, *(len(c) for c in cols))
    lines += ["", f"confusion: rows are the labels, columns the {figures['confusion_columns']}",
              " " * width + "  " + "  ".join(f"{c:>{cw}}" for c in cols)]
    for r, counts in figures["confusion"].items():
        lines.append(f"{r:<{width}}  " + "  ".join(f"{counts[c]:>{cw}d}" for c in cols))
    return "\n".join(lines)


def evaluate(tagger, path: str | Path, progress: bool = False) -> dict:
    data = read_labelled(path, tagger.themes)
    results = tagger.tag_many(data.texts, progress=progress)
    predicted = [r.themes for r in results]
    top = [max(r.scores, key=r.scores.get) if any(r.scores.values()) else None for r in results]
    return score(tagger.themes, data.labels, predicted, top, data.single)


def cosine_baseline(tagger, path: str | Path) -> dict:
    """Zero-shot baseline: cosine between each text and each theme's description, with the bundled embedder.

    Multi-label data: a theme passes at the one global cut that scores best on these very labels (an oracle,
    so the baseline is flattered). Single-label data: the closest description."""
    data = read_labelled(path, tagger.themes)
    emb = tagger.embedder.encode(data.texts)
    sim = emb @ tagger.embedder.encode([t.description for t in tagger.theme_defs]).T
    ids = tagger.themes
    top = [ids[k] for k in sim.argmax(axis=1)]
    best = None
    for cut in np.linspace(0.0, 0.8, 81):
        predicted = [[ids[k] for k in np.argsort(-row) if row[k] >= cut] for row in sim]
        figures = score(ids, data.labels, predicted, top, data.single)
        if best is None or figures["macro_f1"] > best["macro_f1"]:
            best = {**figures, "cut": float(cut)}
    return best
