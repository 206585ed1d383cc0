"""The analyst's report: report.html (a map of the training paragraphs, the clusters, the articles) and map.png.

report.html is one self-contained file (plotly, with its JavaScript inlined) that opens offline with no server.
Both are drawn from map.json, which training writes beside the model, so `theme-tagger report` can draw them
again without retraining."""

from __future__ import annotations

import html
import io
import json
import textwrap
from pathlib import Path

import numpy as np

from .cluster import OUTLIER, ClusterInfo, LazyUMAP, reduce
from .corpus import Paragraph
from .errors import UserInputError
from .themes import Theme

MAP_DATA, HTML, PNG = "map.json", "report.html", "map.png"
GL_ABOVE = 10_000   # more points than this are drawn with WebGL: SVG grows slow to pan and hover
NO_THEME = "no theme"
GREYS = ["#c4c4c4", "#aeaeae", "#d4d4d4", "#b9b9b9", "#cacaca", "#a4a4a4"]   # light: unthemed points are background


# ------------------------------------------------------------------------------------------------- the data

def map_coordinates(embeddings: np.ndarray, seed: int = 0, cache_dir: Path | None = None) -> np.ndarray:
    """Two dimensions for the map: UMAP with the training seed, cached like the clustering's reduction."""
    n = len(embeddings)
    if n < 8:   # too few for UMAP: the two main directions
        centred = embeddings - embeddings.mean(axis=0)
        basis = np.linalg.svd(centred, full_matrices=False)[2][:2] if n > 1 else np.zeros((0, embeddings.shape[1]))
        coords = np.zeros((n, 2), dtype=np.float32)
        coords[:, :len(basis)] = centred @ basis.T
        return coords
    reducer = LazyUMAP(n_components=2, n_neighbors=max(2, min(15, n - 1)), min_dist=0.1, metric="cosine",
                       random_state=seed)
    return reduce(embeddings, seed, reducer, cache_dir)


def map_data(paragraphs: list[Paragraph], clusters: np.ndarray, infos: list[ClusterInfo], scores: np.ndarray,
             coords: np.ndarray, mapped: np.ndarray, themes: list[Theme], thresholds: np.ndarray,
             summary: dict) -> dict:
    """Everything the report shows, as JSON-ready data (map.json). coords: the rows `mapped` of the paragraphs."""
    x = np.full(len(paragraphs), np.nan)
    y = np.full(len(paragraphs), np.nan)
    x[mapped], y[mapped] = coords[:, 0], coords[:, 1]
    return {
        "summary": {k: summary[k] for k in ("articles", "paragraphs", "clusters", "embedding_model", "seed",
                                            "paragraphs_per_theme")},
        "themes": [{"id": t.id, "label": t.label} for t in themes],
        "thresholds": [round(float(c), 4) for c in thresholds],
        "paragraphs": {
            "article": [p.article_id for p in paragraphs], "index": [p.index for p in paragraphs],
            "text": [p.text for p in paragraphs], "cluster": [int(c) for c in clusters],
            "x": [None if np.isnan(v) else round(float(v), 4) for v in x],
            "y": [None if np.isnan(v) else round(float(v), 4) for v in y],
            "scores": np.round(scores.astype(float), 7).tolist(),   # 7 places: saturated scores stay apart
        },
        "clusters": [{"id": i.id, "size": i.size, "keywords": i.keywords, "typical": i.typical, "themes": i.themes,
                      "reasons": i.reasons, "set_by_person": i.set_by_person, "vote": i.vote} for i in infos],
    }


def read_map_data(model_dir: str | Path) -> dict:
    path = Path(model_dir) / MAP_DATA
    if not path.is_file():
        raise UserInputError(f"{model_dir} has no {MAP_DATA}: it was saved without a report; train it again "
                             "(theme-tagger train) to get one")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UserInputError(f"{path} is damaged: {exc}") from None


class _View:
    """The map data with what each view needs worked out once: tags per paragraph and article, colours."""

    def __init__(self, data: dict):
        from plotly.colors import qualitative

        self.data = data
        p = data["paragraphs"]
        self.ids = [t["id"] for t in data["themes"]]
        self.label = {t["id"]: t["label"] for t in data["themes"]}
        self.scores = np.asarray(p["scores"], dtype=float).reshape(len(p["text"]), len(self.ids))
        self.passed = self.scores >= np.asarray(data["thresholds"], dtype=float)
        self.clusters = np.asarray(p["cluster"], dtype=int)
        self.mapped = np.flatnonzero([v is not None for v in p["x"]])
        palette = qualitative.Bold + qualitative.Safe
        self.colour = {t: palette[k % len(palette)] for k, t in enumerate(self.ids)}
        cluster_palette = qualitative.Dark24 + qualitative.Light24
        self.info = {c["id"]: c for c in data["clusters"]}
        self.cluster_colour = {c: ("#9a9a9a" if c == OUTLIER else cluster_palette[c % len(cluster_palette)])
                               for c in self.info}
        # A paragraph's colour on the map: its best theme past its threshold, if any.
        best = np.where(self.passed, self.scores, -1).argmax(axis=1) if self.ids else np.zeros(len(self.clusters))
        self.top = [self.ids[b] if self.passed[i].any() else None for i, b in enumerate(best)]
        # Articles in corpus order, each with its paragraphs' rows; an article's score is its best paragraph's, as
        # tagging gives it. Told apart by position, not id: a corpus may give two articles one id, and tagging keeps
        # them apart. paragraphs_of numbers each article's paragraphs from 0, so index 0 starts the next article.
        self.articles: list[tuple[str, list[int]]] = []
        for row, (a, index) in enumerate(zip(p["article"], p["index"])):
            if index == 0 or not self.articles:
                self.articles.append((a, []))
            self.articles[-1][1].append(row)

    def cluster_name(self, c: int) -> str:
        if c == OUTLIER:
            return "unclustered"
        return f"cluster {c}" + (" (set by a person)" if self.info.get(c, {}).get("set_by_person") else "")

    def article_tags(self, rows: list[int]) -> tuple[np.ndarray, list[str]]:
        best = self.scores[rows].max(axis=0)
        cut = np.asarray(self.data["thresholds"], dtype=float)
        return best, [self.ids[k] for k in np.argsort(-best) if best[k] >= cut[k]]

    def evidence(self, rows: list[int], theme: str) -> list[int]:
        k = self.ids.index(theme)
        return sorted((r for r in rows if self.passed[r, k]), key=lambda r: -self.scores[r, k])


# ------------------------------------------------------------------------------------------------- the map

def _plain(text: str) -> str:
    """Text for plotly's hover labels, which read a few tags (<br>, <b>) and only &amp; &lt; &gt; as entities."""
    return html.escape(text, quote=False)


def _hover(view: _View, row: int) -> list[str]:
    p = view.data["paragraphs"]
    words = p["text"][row].split()
    clipped = " ".join(words[:70]) + (" …" if len(words) > 70 else "")
    text = "<br>".join(_plain(line) for line in textwrap.wrap(clipped, 90))
    order = np.argsort(-view.scores[row])
    scores = " · ".join((f"<b>{_plain(view.label[view.ids[k]])} {view.scores[row, k]:.2f}</b>"
                         if view.passed[row, k] else f"{_plain(view.label[view.ids[k]])} {view.scores[row, k]:.2f}")
                        for k in order)
    return [_plain(f"{p['article'][row]} ¶{p['index'][row] + 1}"), _plain(view.cluster_name(p["cluster"][row])),
            text, scores]


def map_figure(data: dict):
    """The plotly figure: one trace per theme (and one for no theme), one per cluster, and buttons between them."""
    import plotly.graph_objects as go

    view = _View(data)
    p = data["paragraphs"]
    rows = view.mapped
    n = len(rows)
    scatter = go.Scattergl if n > GL_ABOVE else go.Scatter
    size = 9 if n <= 500 else 6 if n <= 5000 else 4
    hover = "<b>%{customdata[0]}</b> · %{customdata[1]}<br>%{customdata[2]}<br>%{customdata[3]}<extra></extra>"
    xs, ys = np.asarray(p["x"], dtype=float), np.asarray(p["y"], dtype=float)
    custom = {r: _hover(view, r) for r in rows}

    def trace(name: str, members: list[int], colour, visible: bool, group: str):
        return scatter(x=xs[members], y=ys[members], mode="markers", name=name, visible=visible, legendgroup=group,
                       marker={"size": size, "color": colour, "line": {"width": 0.5, "color": "white"}},
                       customdata=[custom[r] for r in members], hovertemplate=hover)

    traces, by_theme = [], []
    for t in view.ids:
        members = [r for r in rows if view.top[r] == t]
        traces.append(trace(f"{view.label[t]} ({len(members)})", members, view.colour[t], True, "theme"))
        by_theme.append(True)
    plain = [r for r in rows if view.top[r] is None]
    if plain:   # no theme: grey, a shade per cluster, so the unthemed clusters stay apart
        traces.append(trace(f"{NO_THEME} ({len(plain)}; grey by cluster)", plain,
                            [GREYS[view.clusters[r] % len(GREYS)] for r in plain], True, "theme"))
        by_theme.append(True)
    for c in sorted(view.info, key=lambda c: (c == OUTLIER, c)):
        members = [r for r in rows if view.clusters[r] == c]
        if members:
            traces.append(trace(f"{view.cluster_name(c)} ({len(members)})", members, view.cluster_colour[c], False,
                                "cluster"))
            by_theme.append(False)
    by_cluster = [not v for v in by_theme]
    s = data["summary"]
    shown = "" if n == len(p["text"]) else f" (a seeded sample of {n:,} on the map)"
    fig = go.Figure(traces)
    fig.update_layout(
        title={"text": f"{s['paragraphs']:,} paragraphs from {s['articles']:,} articles{shown}, {s['clusters']} clusters"},
        template="plotly_white", height=700, hovermode="closest", legend={"title": {"text": "Theme"}},
        xaxis={"visible": False}, yaxis={"visible": False, "scaleanchor": "x"},
        hoverlabel={"align": "left", "bgcolor": "white", "font": {"size": 12}},
        margin={"t": 90},
        updatemenus=[{"type": "buttons", "direction": "right", "x": 1, "xanchor": "right", "y": 1.02, "yanchor": "bottom",
                      "showactive": True, "buttons": [
                          {"label": "Colour by theme", "method": "update",
                           "args": [{"visible": by_theme}, {"legend.title.text": "Theme"}]},
                          {"label": "Colour by cluster", "method": "update",
                           "args": [{"visible": by_cluster}, {"legend.title.text": "Cluster"}]}]}])
    return fig


def map_png(data: dict) -> bytes:
    """The map coloured by theme, as a PNG for slides and issues (matplotlib: no browser needed)."""
    from matplotlib.colors import to_rgb
    from matplotlib.figure import Figure   # not pyplot: no backend to pick, no window, a third of the import time

    view = _View(data)
    p = data["paragraphs"]
    rows = view.mapped
    xs, ys = np.asarray(p["x"], dtype=float), np.asarray(p["y"], dtype=float)
    size = 36 if len(rows) <= 500 else 12 if len(rows) <= 5000 else 3

    def rgb(colour: str):
        return tuple(int(v) / 255 for v in colour[4:-1].split(",")) if colour.startswith("rgb(") else to_rgb(colour)

    from matplotlib import patheffects

    fig = Figure(figsize=(9, 6.4), dpi=110)
    ax = fig.subplots()
    plain = [r for r in rows if view.top[r] is None]
    for t in view.ids:
        members = [r for r in rows if view.top[r] == t]
        ax.scatter(xs[members], ys[members], s=size, color=rgb(view.colour[t]), linewidths=0.3,
                   edgecolors="white", label=f"{view.label[t]} ({len(members)})", zorder=2)
    if plain:
        ax.scatter(xs[plain], ys[plain], s=size, c=[GREYS[view.clusters[r] % len(GREYS)] for r in plain],
                   linewidths=0, label=f"{NO_THEME} ({len(plain)})", zorder=1)
    halo = [patheffects.withStroke(linewidth=2.5, foreground="white")]
    for c, info in view.info.items():   # each cluster's number at its middle; * where a person set its themes
        members = [r for r in rows if view.clusters[r] == c]
        if c != OUTLIER and members:
            ax.annotate(f"{c}{'*' if info.get('set_by_person') else ''}", (np.median(xs[members]), np.median(ys[members])),
                        fontsize=8, color="#333333", ha="center", va="center", path_effects=halo, zorder=3)
    s = data["summary"]
    person = any(i.get("set_by_person") for i in view.info.values())
    ax.set_title(f"{s['paragraphs']:,} paragraphs from {s['articles']:,} articles, {s['clusters']} clusters "
                 f"(numbers: clusters{'; * themes set by a person' if person else ''})", fontsize=10)
    ax.set_xticks([])
    ax.set_yticks([])
    for side in ax.spines.values():
        side.set_visible(False)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.01), ncol=min(3, len(view.ids) + 1), frameon=False,
              fontsize=9, markerscale=1.2)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


# ------------------------------------------------------------------------------------------------- the page

_CSS = """
body { font: 15px/1.45 system-ui, sans-serif; margin: 1.5rem auto; max-width: 1200px; padding: 0 1rem; color: #222; }
table { border-collapse: collapse; width: 100%; margin: .5rem 0 1.5rem; font-size: 14px; }
th, td { border-bottom: 1px solid #ddd; padding: .35rem .5rem; text-align: left; vertical-align: top; }
th { background: #f4f4f4; position: sticky; top: 0; }
.tag { display: inline-block; white-space: nowrap; border-radius: 3px; padding: 0 .4rem; margin: 0 .2rem .2rem 0; color: white; font-size: 13px; }
.person { background: #222; }
.muted, .why { color: #666; font-size: 13px; }
.score-pass { font-weight: bold; }
blockquote { margin: .2rem 0; padding-left: .6rem; border-left: 3px solid #ddd; font-size: 13px; }
p.para { margin: .4rem 0; }
p.para:target { background: #fff6cc; }
"""


def _e(text) -> str:
    return html.escape(str(text))


def _tag(view: _View, theme: str) -> str:
    return f'<span class="tag" style="background:{view.colour[theme]}">{_e(view.label[theme])}</span>'


def _clusters_table(view: _View) -> str:
    p = view.data["paragraphs"]
    head = "<tr><th>Cluster</th><th>Size</th><th>Themes, and why</th><th>Keywords</th><th>Typical paragraphs</th></tr>"
    body = []
    for c in view.data["clusters"]:
        name = "unclustered" if c["id"] == OUTLIER else str(c["id"])
        if c["id"] == OUTLIER:
            themes = '<span class="why">each paragraph keeps the themes its own score gives</span>'
        else:
            themes = "".join(_tag(view, t) for t in c["themes"]) or '<span class="muted">none of the themes</span>'
            if c["set_by_person"]:
                vote = ", ".join(view.label.get(t, t) for t in c["vote"]) or "none"
                themes += f'<br><span class="tag person">set by a person</span><span class="why">the vote gave: {_e(vote)}</span>'
            else:
                themes += "".join(f'<div class="why">{_e(view.label.get(t, t))}: {_e(why)}</div>'
                                  for t, why in c["reasons"].items())
        typical = "".join(f'<blockquote><a href="#p-{r}">{_e(p["article"][r])} ¶{p["index"][r] + 1}</a>: '
                          f'{_e(_words(p["text"][r], 40))}</blockquote>' for r in c["typical"])
        body.append(f'<tr id="c-{c["id"]}"><td>{name}</td><td>{c["size"]}</td><td>{themes}</td>'
                    f'<td>{_e(", ".join(c["keywords"]))}</td><td>{typical}</td></tr>')
    return f"<table>{head}{''.join(body)}</table>"


def _words(text: str, n: int) -> str:
    words = text.split()
    return " ".join(words[:n]) + (" …" if len(words) > n else "")


def _articles_table(view: _View) -> str:
    p = view.data["paragraphs"]
    head = ("<tr><th>Article</th><th>Themes</th>" + "".join(f"<th>{_e(view.label[t])}</th>" for t in view.ids) +
            "<th>Evidence</th></tr>")
    body = []
    for a, (article, rows) in enumerate(view.articles):
        best, themes = view.article_tags(rows)
        scores = "".join(f'<td class="{"score-pass" if t in themes else ""}">{best[k]:.2f}</td>'
                         for k, t in enumerate(view.ids))
        evidence = "<br>".join(
            f"{_e(view.label[t])}: " + ", ".join(f'<a href="#p-{r}">¶{p["index"][r] + 1}</a>' for r in view.evidence(rows, t))
            for t in themes)
        body.append(f'<tr><td><a href="#a-{a}">{_e(article)}</a></td>'
                    f'<td>{"".join(_tag(view, t) for t in themes) or "<span class=muted>none</span>"}</td>'
                    f"{scores}<td>{evidence}</td></tr>")
    return f"<table>{head}{''.join(body)}</table>"


def _paragraphs(view: _View) -> str:
    p = view.data["paragraphs"]
    parts = []
    for a, (article, rows) in enumerate(view.articles):
        parts.append(f'<h3 id="a-{a}">{_e(article)}</h3>')
        for r in rows:
            tags = "".join(_tag(view, view.ids[k]) for k in np.argsort(-view.scores[r]) if view.passed[r, k])
            cluster = (f'<a href="#c-{p["cluster"][r]}">{_e(view.cluster_name(p["cluster"][r]))}</a>')
            parts.append(f'<p class="para" id="p-{r}"><span class="muted">¶{p["index"][r] + 1} · {cluster}</span> '
                         f'{tags}<br>{_e(p["text"][r])}</p>')
    return "".join(parts)


def report_html(data: dict, title: str = "theme-tagger report") -> str:
    view = _View(data)
    s = data["summary"]
    per_theme = ", ".join(f"{view.label.get(t, t)} {n}" for t, n in s["paragraphs_per_theme"].items())
    figure = map_figure(data).to_html(full_html=False, include_plotlyjs=True, div_id="map",
                                      config={"displaylogo": False, "responsive": True})
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{_e(title)}</title><style>{_CSS}</style></head>
<body>
<h1>{_e(title)}</h1>
<p>{s['paragraphs']:,} paragraphs from {s['articles']:,} articles in {s['clusters']} clusters; embedding model
<code>{_e(s['embedding_model'])}</code>; seed {s['seed']}. Training paragraphs per theme: {_e(per_theme)}.</p>
<p><a href="#map-section">Map</a> · <a href="#clusters">Clusters</a> · <a href="#articles">Articles</a> ·
<a href="#paragraphs">Paragraphs</a></p>
<h2 id="map-section">Map</h2>
<p class="muted">Each point is a paragraph, placed by UMAP from its embedding (nearby points say similar things).
Hover for its text, article, cluster and scores (bold: past the theme's threshold); the buttons switch between
colouring by theme and by cluster. To correct a cluster's themes, edit assignments.csv beside the model and train
again with <code>--assignments</code>.</p>
{figure}
<h2 id="clusters">Clusters</h2>
{_clusters_table(view)}
<h2 id="articles">Articles</h2>
<p class="muted">An article's score for a theme is its best paragraph's; bold scores pass the theme's threshold.
The evidence links go to the paragraphs that carry each theme, strongest first.</p>
{_articles_table(view)}
<h2 id="paragraphs">Paragraphs</h2>
{_paragraphs(view)}
</body></html>
"""


def report_files(data: dict, title: str = "theme-tagger report") -> dict[str, str | bytes]:
    """map.json, report.html and map.png, by name, for saving beside the model."""
    return {MAP_DATA: json.dumps(data, ensure_ascii=False), HTML: report_html(data, title), PNG: map_png(data)}


def write_report(model_dir: str | Path, out_dir: str | Path | None = None) -> tuple[Path, Path]:
    """Draw report.html and map.png again from a saved model's map.json (into out_dir, default the model's)."""
    data = read_map_data(model_dir)
    out = Path(out_dir) if out_dir is not None else Path(model_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = report_files(data, f"theme-tagger report: {Path(model_dir).resolve().name}")
    paths = []
    for name in (HTML, PNG):
        target, content = out / name, files[name]
        tmp = target.with_name(f".{name}.tmp")
        tmp.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
        tmp.replace(target)
        paths.append(target)
    return paths[0], paths[1]


def training_report(paragraphs: list[Paragraph], embeddings: np.ndarray, sample: np.ndarray, clusters: np.ndarray,
                    infos: list[ClusterInfo], scores: np.ndarray, themes: list[Theme], thresholds: np.ndarray,
                    summary: dict, seed: int, cache_dir: Path | None, title: str) -> dict[str, str | bytes]:
    """The report files for a model being trained: the map covers the paragraphs UMAP was fitted on."""
    coords = map_coordinates(embeddings[sample], seed, Path(cache_dir) if cache_dir else None)
    data = map_data(paragraphs, clusters, infos, scores, coords, sample, themes, thresholds, summary)
    return report_files(data, title)
