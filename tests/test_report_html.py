"""report.html and map.png: written by training, drawn again by `theme-tagger report`, and shown in a real browser."""

from __future__ import annotations

import os
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import pytest

import model
from model.cli import main
from model.corpus import Article
from model.html_report import _View, read_map_data

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# Flags for a closed network and a root user (see .ci/run): no sandbox, no background connections.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


class _Resources(HTMLParser):
    def __init__(self):
        super().__init__()
        self.found: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if (tag in ("script", "img", "iframe") and attrs.get("src")) or (tag == "link" and attrs.get("href")):
            self.found.append(f"{tag}: {attrs.get('src') or attrs.get('href')}")


def _external_resources(page: str) -> list[str]:
    parser = _Resources()
    parser.feed(page)
    return parser.found


def test_training_writes_the_report_files(trained) -> None:
    data = read_map_data(trained.out)
    n = trained.summary.paragraphs
    assert len(data["paragraphs"]["text"]) == n
    assert sum(x is not None for x in data["paragraphs"]["x"]) == n, "every paragraph is on the map"
    assert [p.text for p in trained.tagger.training_paragraphs_] == data["paragraphs"]["text"]
    assert {c["id"] for c in data["clusters"]} == {i.id for i in trained.infos}
    page = (trained.out / "report.html").read_text(encoding="utf-8")
    assert _external_resources(page) == [], "self-contained: plotly.js is inlined"
    assert page.count('class="para"') == n
    png = (trained.out / "map.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 10_000


def _same_as_tagging(view: _View, tagger, articles) -> None:
    """Each article in the report is one entry, in corpus order, tagged as tagging tags it."""
    results = tagger.tag_many([a.text for a in articles])
    assert [a for a, _ in view.articles] == [a.id for a in articles]
    for (_, rows), article, result in zip(view.articles, articles, results):
        scores, themes = view.article_tags(rows)
        assert themes == result.themes, article.id
        assert scores.tolist() == pytest.approx([result.scores[t] for t in view.ids], abs=1e-3)
        for theme in themes:
            best = view.evidence(rows, theme)[0]
            assert view.data["paragraphs"]["text"][best] == result.evidence(theme)[0].text


def test_articles_in_the_report_are_tagged_as_tagging_does(trained, synthetic) -> None:
    _same_as_tagging(_View(read_map_data(trained.out)), trained.tagger, synthetic.articles)


def test_articles_that_share_an_id_stay_apart(synthetic, fake_embedder, tmp_path) -> None:
    """The corpus readers accept a repeated id; tagging keeps such articles apart, and so must the report."""
    articles = [Article("same", a.text) if i < 3 else a for i, a in enumerate(synthetic.articles)]
    tagger, summary = model.train(articles, synthetic.themes_path, embedder=fake_embedder, cache_dir=None,
                                  progress=False, out=tmp_path / "model")
    view = _View(read_map_data(tmp_path / "model"))
    assert len(view.articles) == summary.articles == len(articles)
    _same_as_tagging(view, tagger, articles)
    page = (tmp_path / "model" / "report.html").read_text(encoding="utf-8")
    assert re.findall(r'<h3 id="a-\d+">([^<]*)</h3>', page) == [a.id for a in articles]


def test_report_command_draws_the_same_report(trained, tmp_path, capsys) -> None:
    assert main(["report", str(trained.out), "--out", str(tmp_path)]) == 0
    assert str(tmp_path / "report.html") in capsys.readouterr().out
    assert (tmp_path / "report.html").read_text(encoding="utf-8") == \
        (trained.out / "report.html").read_text(encoding="utf-8")
    assert (tmp_path / "map.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_report_command_on_a_folder_without_map_data(tmp_path, capsys) -> None:
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "has no map.json" in err and "\n" not in err


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install chromium; "
                                              ".ci/run installs it)")
def test_report_renders_in_a_real_browser(trained, tmp_path) -> None:
    from playwright.sync_api import sync_playwright

    n = trained.summary.paragraphs
    first_article = read_map_data(trained.out)["paragraphs"]["article"]
    problems, requests = [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1300, "height": 900})
        page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
        page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
        page.on("request", lambda r: requests.append(r.url) if not r.url.startswith(("file:", "data:", "blob:")) else None)
        page.goto((trained.out / "report.html").as_uri())
        page.wait_for_selector("#map .scatterlayer .point")
        points = page.locator("#map .scatterlayer .point")
        assert points.count() == n, "one point per paragraph, coloured by theme"

        box = points.first.bounding_box()
        page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        page.wait_for_selector("#map .hoverlayer .hovertext")
        hover = page.locator("#map .hoverlayer .hovertext").first.text_content()
        assert any(a in hover for a in set(first_article)) and "cluster" in hover.lower(), hover
        shot = tmp_path / "report-by-theme.png"
        page.screenshot(path=str(shot))

        page.get_by_text("Colour by cluster").click()
        page.wait_for_function("document.querySelector('#map .legendtitletext').textContent === 'Cluster'")
        assert points.count() == n, "one point per paragraph, coloured by cluster"
        page.screenshot(path=str(tmp_path / "report-by-cluster.png"))
        browser.close()
    assert problems == []
    assert requests == [], "the report opens offline"
    keep = os.environ.get("THEME_TAGGER_TEST_ARTIFACTS")
    if keep:   # CI keeps the screenshots (.ci/run sets this to the git-ignored tests/artifacts)
        Path(keep).mkdir(parents=True, exist_ok=True)
        for png in tmp_path.glob("report-*.png"):
            shutil.copy(png, Path(keep) / png.name)
    print(f"screenshots: {shot} and {tmp_path / 'report-by-cluster.png'}")
