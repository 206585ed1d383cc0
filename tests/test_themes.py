"""Tests for model.themes: the default theme file, and one clear UserInputError per kind of mistake."""

from __future__ import annotations

from pathlib import Path

import pytest

from model import Theme, UserInputError, load_themes, parse_themes
from model.themes import keyword_hits

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_THEMES = ROOT / "seeds" / "themes.toml"


def test_default_theme_file_ids_in_order() -> None:
    themes = load_themes(DEFAULT_THEMES)
    assert [t.id for t in themes] == ["rural_ecommerce", "cloud_big_data", "poverty_alleviation", "smart_city"]


def test_default_theme_file_fields_are_filled() -> None:
    for theme in load_themes(DEFAULT_THEMES):
        assert isinstance(theme, Theme)
        assert theme.label.strip() and theme.description.strip()
        assert theme.keywords and all(isinstance(k, str) and k.strip() for k in theme.keywords)
        # Every text that stands for the theme reaches the embedder.
        prompts = theme.prompts()
        assert theme.label in prompts and theme.description in prompts
        assert all(example in prompts for example in theme.examples)
        assert any(theme.keywords[0] in p for p in prompts)


def test_optional_fields_have_defaults_and_whitespace_is_trimmed() -> None:
    (theme,) = parse_themes('[space_travel]\ndescription = "  Rockets and the people who fly them.  "\n')
    assert theme.id == "space_travel"
    assert theme.label == "space travel"
    assert theme.description == "Rockets and the people who fly them."
    assert theme.keywords == () and theme.examples == ()
    assert theme.prompts() == ["space travel", "Rockets and the people who fly them."]


def test_an_id_of_underscores_only_is_its_own_label() -> None:
    """Found by the property test: `[_]` is a valid id, and spaces for its underscores would leave a blank label."""
    themes = parse_themes('[_]\ndescription = "Anything."\n[__a_]\ndescription = "More."\n')
    assert [t.label for t in themes] == ["_", "a"]


def test_theme_dict_round_trip() -> None:
    for theme in load_themes(DEFAULT_THEMES):
        assert theme.counterexamples
        assert Theme.from_dict(theme.to_dict()) == theme
    # A theme saved before counterexamples existed has none.
    old = {k: v for k, v in load_themes(DEFAULT_THEMES)[0].to_dict().items() if k != "counterexamples"}
    assert Theme.from_dict(old).counterexamples == ()


def test_counterexamples_are_read_and_never_stand_for_the_theme() -> None:
    (theme,) = parse_themes('[farm]\ndescription = "Farm produce sold online."\n'
                            'counterexamples = [" Factories export appliances. ", "Seed varieties raise yields."]\n')
    assert theme.counterexamples == ("Factories export appliances.", "Seed varieties raise yields.")
    assert not set(theme.counterexamples) & set(theme.prompts())
    assert parse_themes('[farm]\ndescription = "Farm produce."\n')[0].counterexamples == ()


def test_file_with_bom_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "themes.toml"
    path.write_bytes("\ufeff[a]\ndescription = \"About a.\"\n".encode("utf-8"))
    assert [t.id for t in load_themes(path)] == ["a"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param('[a]\nlabel = "A"\n', r"\[a\].*missing `description`", id="missing-description"),
        pytest.param('[a]\ndescription = ""\n', r"\[a\].*missing `description`", id="empty-description"),
        pytest.param('[a]\ndescription = "   "\n', r"\[a\].*missing `description`", id="blank-description"),
        pytest.param('[a]\ndescription = 3\n', r"\[a\].*missing `description`", id="description-not-text"),
        pytest.param('[a]\ndescription = "A."\n\n[b]\ndescription = "B."\n\n[a]\ndescription = "again"\n',
                     r"not valid TOML.*twice.*may appear only once", id="duplicate-id"),
        pytest.param('[""]\ndescription = "Nameless."\n', r"empty id", id="empty-id"),
        pytest.param('["  "]\ndescription = "Blank."\n', r"empty id", id="blank-id"),
        pytest.param('[" padded "]\ndescription = "Padded."\n', r"may not start or end with spaces", id="padded-id"),
        pytest.param('[a]\ndescription = "A."\nkeyword = ["x"]\n',
                     r"\[a\].*unknown key\(s\) keyword; allowed: counterexamples, description, examples, keywords, label",
                     id="unknown-key"),
        pytest.param('[a]\ndescription = "A."\nkeywords = "farm, shop"\n',
                     r"\[a\].*`keywords` must be a list of non-empty strings", id="keywords-not-list"),
        pytest.param('[a]\ndescription = "A."\nkeywords = ["farm", 3]\n',
                     r"\[a\].*`keywords` must be a list of non-empty strings", id="keywords-not-strings"),
        pytest.param('[a]\ndescription = "A."\nkeywords = ["farm", " "]\n',
                     r"\[a\].*`keywords` must be a list of non-empty strings", id="keywords-blank-string"),
        pytest.param('[a]\ndescription = "A."\nexamples = [1]\n',
                     r"\[a\].*`examples` must be a list of non-empty strings", id="examples-not-strings"),
        pytest.param('[a]\ndescription = "A."\ncounterexamples = "Factories export goods."\n',
                     r"\[a\].*`counterexamples` must be a list of non-empty strings", id="counterexamples-not-list"),
        pytest.param('[a]\ndescription = "A."\nlabel = ""\n', r"\[a\].*`label` must be a non-empty string",
                     id="empty-label"),
        pytest.param('["a;b"]\ndescription = "A."\n', r"\[a;b\].*may not hold ';'", id="separator-in-id"),
        pytest.param('["a\\n"]\ndescription = "A."\n', r"may not start or end with spaces or hold control",
                     id="newline-ending-id"),
        pytest.param('description = "not in a table"\n', r"must be a table", id="not-a-table"),
        pytest.param("", r"defines no themes", id="empty-file"),
        pytest.param("# only a comment\n\n", r"defines no themes", id="comments-only"),
        pytest.param('[a]\ndescription = "unterminated\n', r"not valid TOML", id="invalid-toml"),
        pytest.param("[a\ndescription = 'x'\n", r"not valid TOML", id="invalid-header"),
    ],
)
def test_mistakes_give_user_input_error(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "themes.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(UserInputError, match=message) as info:
        load_themes(path)
    msg = str(info.value)
    assert str(path) in msg, "the message should name the file"
    assert "\n" not in msg, "the message is shown as one line"


def test_first_problem_is_reported_after_good_themes() -> None:
    text = '[good]\ndescription = "Fine."\n\n[bad]\nlabel = "No description"\n'
    with pytest.raises(UserInputError, match=r"\[bad\].*missing `description`"):
        parse_themes(text)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(UserInputError, match=r"theme file .*nope\.toml does not exist"):
        load_themes(tmp_path / "nope.toml")


def test_folder_instead_of_file(tmp_path: Path) -> None:
    with pytest.raises(UserInputError, match=r"does not exist"):
        load_themes(tmp_path)


def test_non_utf8_file(tmp_path: Path) -> None:
    path = tmp_path / "themes.toml"
    path.write_bytes('[caf\u00e9]\ndescription = "x"\n'.encode("latin-1"))
    with pytest.raises(UserInputError, match=r"not a UTF-8 text file"):
        load_themes(path)


def test_user_input_error_is_a_value_error() -> None:
    # Library users can catch it as a ValueError; the CLI catches it by name.
    with pytest.raises(ValueError):
        parse_themes("")


@pytest.mark.parametrize(("keyword", "text", "found"), [
    ("smart city", "Plans for smart cities were shown.", True),
    ("city", "A citywide plan.", False),                      # a letter runs on past the keyword's own letter
    ("C++", "They write C++ code.", True),                    # an edge that is punctuation needs no word around it
    ("U.S.", "The U.S. economy grew.", True),
    (".NET", "The service is built on .NET today.", True),
    ("5G", "5G base stations", True),
    ("5G", "a 45G link", False),
    ("智慧城市", "省政府建设智慧城市项目", True),                 # unspaced script: found inside a run of characters
])
def test_keywords_match_as_whole_phrases(keyword, text, found) -> None:
    assert keyword_hits([text], [[keyword]])[0, 0] == found
