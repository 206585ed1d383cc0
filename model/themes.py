"""Parse and validate the theme file (TOML, one table per theme id)."""

from __future__ import annotations

import logging
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .corpus import UNSPACED, fix_unicode
from .errors import UserInputError

log = logging.getLogger(__name__)

_ID = re.compile(r"^[^\s\x00-\x1f](?:[^\x00-\x1f]*[^\s\x00-\x1f])?$")
_KEYS = {"label", "description", "keywords", "examples", "counterexamples"}


@dataclass(frozen=True)
class Theme:
    id: str
    label: str
    description: str
    keywords: tuple[str, ...] = ()
    examples: tuple[str, ...] = ()
    counterexamples: tuple[str, ...] = ()   # texts on a neighbouring subject that this theme does not cover

    def prompts(self) -> list[str]:
        """The texts whose embeddings stand for this theme."""
        texts = [self.label, self.description, *self.examples]
        if self.keywords:
            texts.append(f"{self.label}: {', '.join(self.keywords)}")
        return texts

    def to_dict(self) -> dict:
        return {"id": self.id, "label": self.label, "description": self.description,
                "keywords": list(self.keywords), "examples": list(self.examples),
                "counterexamples": list(self.counterexamples)}

    @classmethod
    def from_dict(cls, d: dict) -> Theme:
        return cls(d["id"], d["label"], d["description"], tuple(d["keywords"]), tuple(d["examples"]),
                   tuple(d.get("counterexamples", ())))   # models saved before counterexamples have none


def keyword_hits(texts: list[str], keywords: list[tuple[str, ...]] | list[list[str]]) -> np.ndarray:
    """(n, K) bool: the text names theme k, i.e. holds one of its keywords (whole words, any case, plural too).

    A theme's keywords are phrases that name it ("smart city", "cloud computing"): a paragraph that names a theme,
    even as one item of a list of areas of work, carries it (the classifier's floor, unless the model finds the
    paragraph about a theme it does not name)."""
    hits = np.zeros((len(texts), len(keywords)), dtype=bool)
    lowered = None
    for k, words in enumerate(keywords):
        if not words:
            continue
        lowered = lowered if lowered is not None else [t.lower() for t in texts]
        pattern = re.compile("|".join(_whole(w.lower()) for w in words))
        hits[:, k] = [bool(pattern.search(t)) for t in lowered]
    return hits


# A phrase in a script written without spaces is found inside a run of it.
_UNSPACED = re.compile(f"[{UNSPACED}]")


def _whole(phrase: str) -> str:
    """A regex for the phrase as whole words: no letter or digit may run on where its own edge is one ("city" is not
    in "citywide"). An edge that is punctuation ("C++", ".NET", "U.S.") or in an unspaced script needs no guard."""
    def guarded(ch: str) -> bool:
        return (ch.isalnum() or ch == "_") and not _UNSPACED.match(ch)

    return ((r"(?<!\w)" if guarded(phrase[0]) else "") + _plural(phrase)
            + (r"(?!\w)" if guarded(phrase[-1]) else ""))


def _plural(phrase: str) -> str:
    """A regex for the phrase, its last word in the singular or the plural ("smart city", "smart cities")."""
    if re.search(r"[^aeiou]y$", phrase):
        return re.escape(phrase[:-1]) + "(?:y|ies)"
    return re.escape(phrase) + "(?:s|es)?"


def _all_text(value, kinds: type | tuple[type, ...] = list) -> bool:
    """value is a `kinds` (a TOML array: a list) of non-empty strings."""
    return isinstance(value, kinds) and all(isinstance(v, str) and v.strip() for v in value)


def _strings(value, where: str) -> tuple[str, ...]:
    if not _all_text(value):
        raise UserInputError(f"{where} must be a list of non-empty strings")
    return tuple(v.strip() for v in value)


def parse_themes(text: str, source: str = "theme file") -> list[Theme]:
    """Parse theme-file text; raise UserInputError naming the first problem."""
    if not isinstance(text, str):
        raise UserInputError(f"{source}: expected the theme file's text as a str, got {type(text).__name__}")
    text, bad = fix_unicode(text)
    if bad:
        log.warning("%s: %d lone surrogate(s) replaced with U+FFFD", source, bad)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        hint = " (a theme id may appear only once)" if "twice" in str(exc) or "overwrite" in str(exc) else ""
        raise UserInputError(f"{source}: not valid TOML: {exc}{hint}") from None
    if not data:
        raise UserInputError(f"{source}: defines no themes; add a table such as [my_theme] with a description")
    themes = []
    for theme_id, table in data.items():
        where = f"{source}: theme [{theme_id}]"
        if not theme_id.strip():
            raise UserInputError(f"{source}: a theme has an empty id")
        if not _ID.fullmatch(theme_id):   # fullmatch: "$" alone lets a final newline through
            raise UserInputError(f"{source}: theme {theme_id!r}: an id may not start or end with spaces or hold "
                                 "control characters")
        if ";" in theme_id:   # the tag command's CSV joins an article's themes with ";"
            raise UserInputError(f"{where}: an id may not hold ';' (it separates themes in tables); use the label "
                                 "for free text")
        if not isinstance(table, dict):
            raise UserInputError(f"{where} must be a table, e.g. [{theme_id}] followed by description = \"...\"")
        unknown = sorted(set(table) - _KEYS)
        if unknown:
            raise UserInputError(f"{where}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(_KEYS))}")
        description = table.get("description")
        if not isinstance(description, str) or not description.strip():
            raise UserInputError(f"{where}: missing `description` (one or two sentences saying what the theme covers)")
        # By default the id with spaces for underscores; an id of underscores only ("_") is its own label.
        label = table.get("label", theme_id.replace("_", " ").strip() or theme_id)
        if not isinstance(label, str) or not label.strip():
            raise UserInputError(f"{where}: `label` must be a non-empty string")
        themes.append(Theme(
            id=theme_id,
            label=label.strip(),
            description=description.strip(),
            keywords=_strings(table.get("keywords", []), f"{where}: `keywords`"),
            examples=_strings(table.get("examples", []), f"{where}: `examples`"),
            counterexamples=_strings(table.get("counterexamples", []), f"{where}: `counterexamples`"),
        ))
    return themes


def load_themes(path: str | Path) -> list[Theme]:
    """Read and validate a theme file."""
    if isinstance(path, str) and "\n" in path:
        raise UserInputError("theme file: got a text of several lines where its path goes; parse a theme file's text "
                             "with model.parse_themes(text)")
    path = Path(path)
    try:
        found = path.is_file()
    except OSError:   # e.g. a name too long: the theme file's text given where its path goes
        found = False
    if not found:
        raise UserInputError(f"theme file {str(path)[:200]} does not exist")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise UserInputError(f"theme file {path} is not a UTF-8 text file") from None
    return parse_themes(text, source=str(path))


def check_themes(themes) -> list[Theme]:
    """Themes given as objects rather than a file, checked as a theme file is: at least one, each a Theme, the ids
    unique, without ';', control characters, or spaces at either end, and its keywords, examples and counterexamples
    each a list (or tuple) of non-empty strings (a plain string would be read letter by letter)."""
    if not isinstance(themes, (list, tuple)) or not themes:
        raise UserInputError("themes: give a theme file's path or a non-empty list of Theme objects")
    for t in themes:
        if not isinstance(t, Theme):
            raise UserInputError(f"themes: every item must be a Theme, got {type(t).__name__}")
        if not isinstance(t.id, str) or not _ID.fullmatch(t.id) or ";" in t.id:
            raise UserInputError(f"themes: a theme id must be a non-empty string, may not start or end with spaces, "
                                 f"and may not hold control characters or ';', got {t.id!r}")
        for field in ("keywords", "examples", "counterexamples"):
            value = getattr(t, field)
            if not _all_text(value, (list, tuple)):
                raise UserInputError(f"themes: theme {t.id!r}: `{field}` must be a list of non-empty strings, got "
                                     f"{value!r:.80}")
    ids = [t.id for t in themes]
    twice = sorted({i for i in ids if ids.count(i) > 1})
    if twice:
        raise UserInputError(f"themes: the id(s) {', '.join(map(repr, twice))} appear more than once")
    return list(themes)
