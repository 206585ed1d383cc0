"""The cluster report a person reads (clusters.md): what each cluster is about and why it got its themes."""

from __future__ import annotations

from .cluster import OUTLIER, ClusterInfo
from .themes import Theme


def _clip(text: str, words: int = 60, chars: int = 600) -> str:
    """The start of a paragraph: at most `words` words and `chars` characters, so no paragraph floods the report."""
    parts = text.split()
    clipped = " ".join(parts[:words])
    if len(clipped) > chars:
        clipped = clipped[:chars]
    return clipped + (" …" if clipped != " ".join(parts) else "")


def cluster_report(infos: list[ClusterInfo], texts: list[str], themes: list[Theme], summary: dict) -> str:
    labels = {t.id: t.label for t in themes}
    lines = ["# Clusters", "",
             f"{summary['paragraphs']} paragraphs from {summary['articles']} articles; "
             f"{summary['clusters']} clusters; embedding model `{summary['embedding_model']}`; seed {summary['seed']}.",
             "", "Paragraphs per theme (training labels): " +
             ", ".join(f"{labels[t]} {n}" for t, n in summary["paragraphs_per_theme"].items()), ""]
    for info in infos:
        title = "Unclustered paragraphs" if info.id == OUTLIER else f"Cluster {info.id}"
        mark = ", themes set by a person" if info.set_by_person else ""
        lines += [f"## {title} ({info.size} paragraphs{mark})", ""]
        if info.id == OUTLIER:
            lines += ["Not labelled as a group: each of these paragraphs keeps the themes its own similarity gives.", ""]
        else:
            given = ", ".join(labels[t] for t in info.themes) or "none of the themes"
            if info.set_by_person:
                vote = ", ".join(labels.get(t, t) for t in info.vote) or "none of the themes"
                given += f" (**set by a person** in the assignments file; the vote gave: {vote})"
            lines += [f"**Themes:** {given}", ""]
            for theme_id, why in info.reasons.items():
                lines.append(f"- {labels[theme_id]}: {why}")
            if info.reasons:
                lines.append("")
        lines += [f"**Keywords:** {_clip(', '.join(info.keywords), chars=1000) or '(none)'}", "", "**Typical paragraphs:**", ""]
        lines += [f"> {_clip(texts[i])}\n" for i in info.typical]
    return "\n".join(lines).rstrip() + "\n"
