"""Property-based tests (hypothesis): the paragraph splitter and the theme-file parser on any input.

Kept small (a few dozen examples each, no deadline) so the suite stays quick. No example database (a failure prints its
example); hypothesis's own files go under pytest's tmp folder (see conftest.py)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from model import UserInputError, parse_themes
from model.corpus import (MAX_WORD_CHARS, UNSPACED, Article, fix_unicode, paragraphs_of, terms,
                          wrap_long_words)


SMALL = settings(max_examples=80, deadline=None, database=None)
SURROGATES = re.compile("[\ud800-\udfff]")
SPACED_RUN = re.compile(f"[^\\s{UNSPACED}]+")   # a run without whitespace, but a character of Chinese is a word
UNSPACED_RUN = re.compile(f"[{UNSPACED}]+")

# Any Unicode, with lone surrogates, line breaks, sentence ends and NULs far more often than chance would give.
PIECE = st.one_of(st.characters(), st.sampled_from(["\ud83d", "\udfff", "\n", "\n\n", "\r\n", " ", "\t", ".",
                                                    "。", "?", "\x00", ":", "-", "©", "http://", "Mr.", "x" * 70]))
ANY_TEXT = st.lists(PIECE, max_size=150).map("".join)


def is_subsequence(small: str, big: str) -> bool:
    it = iter(big)
    return all(ch in it for ch in small)


@SMALL
@given(ANY_TEXT, st.integers(1, 40))
def test_any_unicode_text_gives_clean_bounded_paragraphs(text: str, max_words: int) -> None:
    paragraphs = paragraphs_of([Article("a", text)], max_words=max_words, warn_empty=False)
    assert [p.index for p in paragraphs] == list(range(len(paragraphs)))
    for p in paragraphs:
        assert p.text and p.text == p.text.strip(), "no empty paragraph, none padded with whitespace"
        assert not SURROGATES.search(p.text)
        p.text.encode("utf-8")                      # what a tokenizer, a hash and a UTF-8 file need
        words = p.text.split()
        assert 1 <= len(words) <= max_words
        assert all(len(w) <= MAX_WORD_CHARS for w in SPACED_RUN.findall(p.text))
    # Nothing is invented: the paragraphs' characters come from the text, in order (headings gain a full stop).
    source = "".join(fix_unicode(text)[0].split()).replace(".", "")
    assert is_subsequence("".join("".join(p.text.split()) for p in paragraphs).replace(".", ""), source)


WORDS = st.sampled_from("farmers sell apples honey walnuts online village county servers cloud storage traffic "
                        "buses sensors harvest market parcels couriers growers orchard poverty relief".split())
SENTENCE = st.lists(WORDS, min_size=4, max_size=30).map(lambda ws: " ".join(ws).capitalize() + ".")
PARAGRAPH = st.lists(SENTENCE, min_size=1, max_size=6).map(" ".join)
BOILERPLATE = st.sampled_from(["Leave a Reply", "Source: Xinhua News Agency", "https://example.com/a?b=1",
                               "Copyright © 2024 Example News. All rights reserved.", "Responsible editor: Li Wei",
                               "[Editor: Zhang]", "Your email address will not be published."])


@SMALL
@given(st.lists(st.tuples(PARAGRAPH, st.one_of(st.none(), BOILERPLATE)), min_size=1, max_size=8),
       st.integers(5, 200))
def test_no_prose_is_lost_only_boilerplate(blocks, max_words: int) -> None:
    text = "\n\n".join(p + (f"\n\n{b}" if b else "") for p, b in blocks)
    paragraphs = paragraphs_of([Article("a", text)], max_words=max_words)
    prose = " ".join(p for p, _ in blocks)
    assert " ".join(p.text for p in paragraphs).split() == prose.split()
    assert all(len(p.text.split()) <= max_words for p in paragraphs)


@SMALL
@given(st.lists(st.one_of(PIECE, st.sampled_from(["智慧城市" * 20, "云计算", "กิ" * 30, "，", "x" * 130, "Ｘ" * 60,
                                                   "人々", "ｱ" * 60])),
                max_size=60).map("".join), st.integers(1, 60))
def test_wrapping_long_words_keeps_every_character(text: str, limit: int) -> None:
    wrapped = wrap_long_words(text, limit)
    assert "".join(wrapped.split()) == "".join(text.split())
    assert all(len(w) <= limit for w in SPACED_RUN.findall(wrapped))
    # Only a word over the limit changes; a run of an unspaced script is words of one character, and stays as written.
    assert (wrapped == text) == all(len(w) <= limit for w in SPACED_RUN.findall(text))
    assert UNSPACED_RUN.findall(wrapped) == UNSPACED_RUN.findall(text)


@SMALL
@given(ANY_TEXT)
def test_terms_are_the_default_words_on_text_without_unspaced_scripts(text: str) -> None:
    # The TF-IDF features and cluster keywords of English (any text without Chinese, Japanese or Thai) are what
    # scikit-learn's own patterns give.
    text = UNSPACED_RUN.sub(" ", text)
    for word in (re.compile(r"(?u)\b\w\w+\b"), re.compile(r"(?u)\b[^\W\d_][\w-]+\b")):
        assert terms(text, word) == word.findall(text)


# ---------------------------------------------------------------------------------------------- the theme file

@SMALL
@given(ANY_TEXT)
def test_any_theme_file_text_parses_or_says_what_is_wrong(text: str) -> None:
    try:
        themes = parse_themes(text)
    except UserInputError as exc:
        assert str(exc).startswith("theme file: ")
        return
    assert themes and all(t.id and t.description for t in themes)


@SMALL
@given(st.lists(st.sampled_from(list('[]="\n .#abc_\\\'') + ["description", "label", "keywords", "examples"]),
                max_size=60).map("".join))
def test_theme_file_fragments_parse_or_say_what_is_wrong(text: str) -> None:
    try:
        parse_themes(text)
    except UserInputError:
        pass


def toml_string(s: str) -> str:
    """A TOML basic string: quote, backslash and control characters escaped, everything else as it is."""
    out = []
    for ch in s:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


PLAIN = st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=40).filter(lambda s: s.strip())
THEME = st.fixed_dictionaries({"description": PLAIN}, optional={"label": PLAIN, "keywords": st.lists(PLAIN, max_size=3),
                                                               "examples": st.lists(PLAIN, max_size=2)})
# Any printable id but for ";", which separates themes in the tag command's CSV (refused, tested in test_themes).
IDS = st.text(st.characters(exclude_categories=("Cs", "Cc", "Zs", "Zl", "Zp"), exclude_characters=";"), min_size=1,
              max_size=12)


@SMALL
@given(st.dictionaries(IDS, THEME, min_size=1, max_size=4))
def test_theme_file_round_trip(themes: dict) -> None:
    lines = []
    for theme_id, table in themes.items():
        lines.append(f"[{toml_string(theme_id)}]")
        for key, value in table.items():
            rendered = "[" + ", ".join(map(toml_string, value)) + "]" if isinstance(value, list) else toml_string(value)
            lines.append(f"{key} = {rendered}")
    parsed = parse_themes("\n".join(lines) + "\n")
    assert [t.id for t in parsed] == list(themes)
    for t, table in zip(parsed, themes.values()):
        assert t.description == table["description"].strip()
        assert t.label == table.get("label", t.id.replace("_", " ").strip() or t.id).strip()
        assert list(t.keywords) == [k.strip() for k in table.get("keywords", [])]
        assert list(t.examples) == [e.strip() for e in table.get("examples", [])]


# ---------------------------------------------------------------------------------------------- tagging

@settings(max_examples=25, deadline=None, database=None)
@given(st.lists(ANY_TEXT, min_size=1, max_size=4))
def test_tagging_takes_any_text(trained, texts: list[str]) -> None:
    results = trained.tagger.tag_many(texts)
    assert len(results) == len(texts)
    for r in results:
        assert list(r.scores) == trained.tagger.themes
        assert all(0.0 <= s <= 1.0 for s in r.scores.values())
        assert set(r.themes) <= set(trained.tagger.themes)


@pytest.mark.parametrize("text", ["\ud83d", "a\udc00b", "\x00" * 10, "。" * 500, "x" * 100_000])
def test_tag_takes_these_exactly(trained, text: str) -> None:
    result = trained.tagger.tag(text)
    assert all(not SURROGATES.search(p.text) for p in result.paragraphs)
