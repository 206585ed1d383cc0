"""Read a news corpus (folder of .txt, .jsonl or .csv) and cut it into clean paragraphs."""

from __future__ import annotations

import csv
import json
import logging
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from model.errors import UserInputError

log = logging.getLogger(__name__)


# ---------------------------------------------------------------- text rules

# One rule for invalid Unicode everywhere text comes in (corpus files, tag(), tag_many(), the theme file): a lone
# surrogate (valid JSON, "\ud83d", but not a character) becomes U+FFFD, with a warning. Tokenizers, hashing and
# UTF-8 files all reject lone surrogates, so they must not get past the door.
_SURROGATE = re.compile("[\ud800-\udfff]")
REPLACEMENT = "\ufffd"
# No real word is this long; a longer run without whitespace (a base64 blob, a pasted binary, a 50 MB line) is
# wrapped into pieces of this many characters, so no vocabulary entry, keyword or report line grows without bound.
# (A run of Chinese is words of one character each, never wrapped: see wrap_long_words and terms.)
MAX_WORD_CHARS = 50
# Warn, once per corpus, when this share of the paragraphs repeat others, when there are this many to embed (a
# quarter of an hour or more for the transformer on a laptop CPU), or when one of a few articles gives this many.
REPEATED_SHARE, LARGE_CORPUS, LONG_ARTICLE = 0.3, 20_000, 1_000


def fix_unicode(text: str) -> tuple[str, int]:
    """`text` with lone surrogates replaced by U+FFFD, and how many were replaced."""
    return _SURROGATE.subn(REPLACEMENT, text)


def fix_unicode_all(texts: list[str], what: str = "texts") -> list[str]:
    """fix_unicode on each text; one warning for the lot."""
    out, bad = [], 0
    for text in texts:
        fixed, n = fix_unicode(text)
        out.append(fixed)
        bad += n > 0
    if bad:
        log.warning("%d of %d %s held invalid Unicode (lone surrogates); replaced with U+FFFD", bad, len(texts), what)
    return out


def wrap_long_words(text: str, limit: int = MAX_WORD_CHARS) -> str:
    """Cut every run of more than `limit` characters without whitespace into pieces of `limit`, with a space between
    them; no character is lost. In a script written without spaces (Chinese, Japanese, Thai) each character is a word
    of its own, as count_words() counts them, so a run of such a script is never cut and keeps its text as written
    (a space inside it would split a keyword there, and show in the evidence)."""
    long_run = _LONG_RUN if limit == MAX_WORD_CHARS else re.compile(f"[^\\s{UNSPACED}]{{{limit + 1},}}")
    return long_run.sub(lambda m: " ".join(m[0][i:i + limit] for i in range(0, len(m[0]), limit)), text)


@dataclass(frozen=True)
class Article:
    id: str
    text: str


@dataclass(frozen=True)
class Paragraph:
    article_id: str
    index: int
    text: str


# ---------------------------------------------------------------- reading

def read_corpus(path: str | os.PathLike) -> list[Article]:
    """Read a folder of .txt files, a .jsonl file or a .csv file into articles."""
    return list(iter_corpus(path))


def iter_corpus(path: str | os.PathLike) -> Iterator[Article]:
    """The articles of a corpus one at a time, read lazily: memory stays flat however large the file.

    The path and file type are checked at once; a bad row raises when the reader reaches it."""
    path = Path(path)
    if not path.exists():
        raise UserInputError(f"corpus path {path} does not exist")
    if path.is_dir():
        # Dotfiles are skipped because editors and macOS leave binary "._x.txt" files behind. The suffix is matched
        # in any case, as for a single file ("A.TXT" from Windows); sorting keeps the order the same on every system.
        files = sorted(p for p in path.iterdir()
                       if p.suffix.lower() == ".txt" and p.is_file() and not p.name.startswith("."))
        if not files:
            raise UserInputError(f"corpus folder {path} has no .txt files")
        articles: Iterator[Article] = (Article(p.stem, _read_text(p)) for p in files)
    elif path.suffix.lower() == ".txt":
        articles = iter([Article(path.stem, _read_text(path))])
    elif path.suffix.lower() == ".jsonl":
        articles = _read_jsonl(path)
    elif path.suffix.lower() == ".csv":
        articles = _read_csv(path)
    else:
        raise UserInputError(
            f"corpus {path} has unsupported type {path.suffix or '(none)'!r}; "
            "give a folder of .txt files, a .txt, .jsonl or .csv file")
    return _non_empty(articles, path)


def _non_empty(articles: Iterator[Article], path: Path) -> Iterator[Article]:
    """The articles with text, lone surrogates replaced by U+FFFD (one warning at the end for the lot)."""
    kept = bad = 0
    for article in articles:
        text, n = fix_unicode(article.text)
        bad += n > 0
        article = Article(fix_unicode(article.id)[0], text)
        if article.text.strip():
            kept += 1
            yield article
        else:
            log.warning("skipping empty article %r in %s", article.id, path)
    if bad:
        log.warning("%d articles in %s held invalid Unicode (lone surrogates); replaced with U+FFFD", bad, path)
    if not kept:
        raise UserInputError(f"corpus {path} has no text")


def _read_text(path: Path) -> str:
    """File contents as text with Unix line endings; a BOM is accepted."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UserInputError(f"cannot read {path}: {exc.strerror}") from None
    try:
        # NUL bytes decode fine as UTF-8 but mean the file is binary.
        if b"\x00" in data:
            raise UnicodeError
        text = data.decode("utf-8-sig")
    except UnicodeError:
        raise UserInputError(f"{path} is not a UTF-8 text file") from None
    return _unix_newlines(text)


def _text_lines(path: Path, newline: str | None = None) -> Iterator[str]:
    """The file's lines, decoded one buffer at a time, with the same checks as _read_text."""
    try:
        with open(path, encoding="utf-8-sig", newline=newline) as fh:
            for line in fh:
                if "\x00" in line:
                    raise UnicodeError
                yield line
    except UnicodeError:
        raise UserInputError(f"{path} is not a UTF-8 text file") from None
    except OSError as exc:
        raise UserInputError(f"cannot read {path}: {exc.strerror}") from None


# A Windows file converted twice has "\r\r\n" line ends: a run of \r before \n is one line end, not a blank line.
_CRLF = re.compile(r"\r+\n")


def _unix_newlines(text: str) -> str:
    return _CRLF.sub("\n", text).replace("\r", "\n")


def jsonl_rows(path: Path) -> Iterator[tuple[int, dict]]:
    """(line number, object) for each non-blank line; every object must have a string "text"."""
    for n, line in enumerate(_text_lines(path), 1):   # universal newlines: \r\n and \r end a line too
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise UserInputError(f"{path}, line {n}: invalid JSON ({exc.msg})") from None
        if not isinstance(obj, dict) or not isinstance(obj.get("text"), str):
            raise UserInputError(f'{path}, line {n}: expected a JSON object with a string "text" field')
        yield n, obj


def _read_jsonl(path: Path) -> Iterator[Article]:
    for n, obj in jsonl_rows(path):
        ident = obj.get("id")
        ident = f"line-{n}" if ident is None or str(ident) == "" else str(ident)
        yield Article(ident, _unix_newlines(obj["text"]))


def _read_csv(path: Path) -> Iterator[Article]:
    # Whole articles sit in one cell and can exceed csv's default 128 KiB field limit.
    csv.field_size_limit(max(csv.field_size_limit(), 2**31 - 1))
    reader = csv.reader(_text_lines(path, newline=""))
    try:
        header = [h.strip().lower() for h in next(reader, [])]
        if "text" not in header:
            raise UserInputError(f'{path}: no "text" column in the header row')
        text_col, id_col = header.index("text"), header.index("id") if "id" in header else None
        for n, row in enumerate(reader, 1):
            if not any(cell.strip() for cell in row):
                continue
            text = row[text_col] if text_col < len(row) else ""
            ident = row[id_col] if id_col is not None and id_col < len(row) else ""
            yield Article(ident.strip() or f"row-{n}", _unix_newlines(text))
    except csv.Error as exc:
        raise UserInputError(f"{path}, line {reader.line_num}: bad CSV ({exc})") from None


# ---------------------------------------------------------------- cleaning

_ENDS_SENTENCE = re.compile(r"[.!?…。！？][\"'”’»)\]」』】》]*$")
_ENDS_QUESTION = re.compile(r"[?？][\"'”’»)\]」』】》]*$")

# Every pattern must match a whole line, and only lines shorter than _BOILERPLATE_MAX_WORDS
# are tested, so that real prose mentioning these words survives.
_BOILERPLATE: tuple[re.Pattern[str], ...] = tuple(re.compile(p, re.IGNORECASE) for p in (
    # Comment forms under the article ("Leave a deep impression" is prose, hence whole lines).
    r"leave a (reply|comment)\W*",
    r"(your )?e-?mail address will not be published\b.*",
    r"required fields are marked\b.*",
    r"(post|submit) (a )?comment\W*|cancel reply\W*|\d+ (comments?|replies)\W*",
    r"save my name, e-?mail,? and website\b.*|notify me of (follow-up comments|new posts)\b.*",
    # Link lines: the line is, starts with or ends with a URL ("Read more: https://..."), or a scraped link token,
    # or it is a markdown link ("[Title](url)", "- [Title](url)"); a URL inside a sentence leaves it alone.
    r"\S*(https?://|www\.).*|.*(https?://|www\.)\S*|.*\?link=.*|geturls\b.*",
    r"([-•*·]\s*)?\[[^\[\]]*\]\([^()]*\)",
    # Source / copyright footers: bracketed credits, bylines, reprint notices.
    r"\[[^\[\]]*\]|【[^【】]*】",
    # A credit names a person or outlet, and a name ends no sentence: "Reporter: Will the tax rise?" (an interview
    # question) and "Sources: two officials said ... ." (a sentence) are prose.
    rf"(source|editor|responsible editor|author|reporter|translator)s?\s*[:：](?!.*{_ENDS_SENTENCE.pattern}).*"
    r"|responsible editor\b.*",
    r".*\b(copyright belongs to|all rights reserved|forward and share)\b.*",
    # A reprint notice asks something of the reader; a headline that reports a reprint is news.
    r".*\b(do not|don't|without|please)\b.*\breprint(ed|ing)?\b.*|.*\breprint(ed|ing)? (with|by) permission\b.*",
    # "(c)" is a copyright sign only after "Copyright" or before a year ("(c) 2020 Xinhua"); else it letters a list
    # item ("(c) The minister shall publish ...").
    r"(copyright\s*)?©.*|copyright\s*\(c\).*|\(c\)\s*\d{4}\b.*",
))
_BOILERPLATE_MAX_WORDS = 30

# A "related articles" heading; the link list after it is dropped too.
_RELATED_HEADING = re.compile(
    r"[-|•*#>\s]*(((related|recommended|further|more) (reading|articles?|news|stories|posts|links))"
    r"|read more|see also|you may also like)\s*[:：]?", re.IGNORECASE)
_LIST_MARK = re.compile(r"[-|•*·>]")
# An item of a bulleted or numbered list ("- More buses", "2) Cheaper fares").
_LIST_ITEM = re.compile(r"([-•*·]|\d{1,2}[.)])\s")
_HAS_ALNUM = re.compile(r"[^\W_]")
# A line ending like this is cut mid-sentence even if the next line starts with a capital.
_MID_SENTENCE = re.compile(r"([,;，；、]|\b(and|or|but|of|the|to|in|with|for|a|an|by|on|at|from|as))$")
_HEADING_MAX_WORDS = 20


def _n_words(text: str) -> int:
    return sum(1 for w in text.split() if _HAS_ALNUM.search(w))


def _is_boilerplate(line: str) -> bool:
    return _n_words(line) < _BOILERPLATE_MAX_WORDS and any(p.fullmatch(line) for p in _BOILERPLATE)


def _is_link_item(line: str) -> bool:
    """Bullet, lone separator or Title Case Line, as found in "related reading" lists."""
    if _LIST_MARK.match(line) or not _HAS_ALNUM.search(line):
        return True
    words = [w for w in line.split() if w[0].isalpha()]
    capitalised = sum(w[0].isupper() for w in words)
    return _n_words(line) < _BOILERPLATE_MAX_WORDS and bool(words) and capitalised >= 0.6 * len(words)


# E-mail and newsgroup messages (RFC 5322 / RFC 1036): a header of "Field: value" lines before the first blank
# line, reply quoting ("> ") under an attribution line ("... writes:"), and a signature under a "-- " line.
_HEADER_FIELD = re.compile(r"[A-Za-z][A-Za-z0-9-]*:.*")
_MESSAGE_FIELDS = ("from", "subject", "newsgroups", "message-id")   # one of them makes a header a message's
# A message saved from a mailbox (mbox) opens with an envelope line, "From alice@example.org Mon Apr  5 10:00:00
# 1993": no colon after "From", a date with a time of day.
_MBOX_FROM = re.compile(r"From \S+ .*\d:\d\d.*")
_REPLY_PREFIX = re.compile(r"^\s*((re|fwd?|aw)\s*:\s*)+", re.IGNORECASE)
_QUOTE_MARKS = re.compile(r"(>\s?)+")
# An attribution names the quoted message by address or date ("In article <...> bob@x.com (Bob) writes:", "On Tue,
# 5 Apr 1993, Bob Smith wrote:"); a line of prose ending "said:" above a markdown blockquote does neither.
_ATTRIBUTION = re.compile(r"(.*@|in article <|on .*\d).*\b(writes|wrote|said)\s*:", re.IGNORECASE)
# PGP armour of a signed post (RFC 4880, 7): the opening line with its "Hash:" lines, and the signature block.
_PGP_SIGNED, _PGP_HASH = "-----BEGIN PGP SIGNED MESSAGE-----", re.compile(r"Hash:.*")
_PGP_SIGNATURE, _PGP_SIGNATURE_END = "-----BEGIN PGP SIGNATURE-----", "-----END PGP SIGNATURE-----"
_SIGNATURE_DELIMITER = "-- "     # RFC 3676, 4.3; a bare "--" (trailing space lost) is taken before a short block:
_SHORT_SIGNATURE_LINES = 4       # the four lines Usenet etiquette allowed a signature


def _strip_pgp(lines: list[str]) -> list[str]:
    """The lines without PGP armour: it is no part of what the post says."""
    out: list[str] = []
    armour = in_signature = False   # armour: the opening line or one of the "Hash:" lines under it
    for line in lines:
        text = line.strip()
        armour = text == _PGP_SIGNED or (armour and bool(_PGP_HASH.fullmatch(text)))
        if in_signature:
            in_signature = text != _PGP_SIGNATURE_END
        elif text == _PGP_SIGNATURE:
            in_signature = True
        elif not armour:
            out.append(line)
    return out


def _header_fields(header: list[str]) -> list[list[str]] | None:
    """[name, value] for each field of a header block, a folded field's continuation lines joined to its value;
    None if a line is neither."""
    fields: list[list[str]] = []
    for line in header:
        if line[:1].isspace() and fields:
            fields[-1][1] += " " + line.strip()
        elif _HEADER_FIELD.fullmatch(line):
            fields.append(line.split(":", 1))
        else:
            return None
    return fields


def _strip_message(lines: list[str]) -> list[str]:
    """A message's lines without PGP armour, its header (but for its subject, kept as a title line, and after any
    mbox envelope line) and its signature.

    Text that does not open with a message header is left as it is, but for a signature delimiter: a news page
    keeps any line of dashes that is not one."""
    lines = _strip_pgp(lines)
    start = next((i for i, line in enumerate(lines) if line.strip()), len(lines))
    if start < len(lines) and _MBOX_FROM.fullmatch(lines[start]):
        start += 1
    end = next((i for i in range(start, len(lines)) if not lines[i].strip()), len(lines))
    fields = _header_fields(lines[start:end])
    if (fields and end - start >= 2
            and any(name.strip().lower() in _MESSAGE_FIELDS for name, _ in fields)):
        subject = [_REPLY_PREFIX.sub("", value).strip() for name, value in fields if name.lower() == "subject"]
        lines = [s for s in subject[:1] if s] + lines[end:]
    last = next((i for i in range(len(lines) - 1, -1, -1) if lines[i].rstrip() == "--"), None)
    if last is not None and (lines[last] == _SIGNATURE_DELIMITER
                             or sum(1 for line in lines[last + 1:] if line.strip()) <= _SHORT_SIGNATURE_LINES):
        lines = lines[:last]
    return lines


def _blocks(raw_lines: list[str]) -> list[list[str]]:
    """Blank-line separated blocks of normalised lines, with boilerplate lines blanked out.

    Quoted lines of a reply ("> ...") lose their marks and form blocks of their own, and the attribution line
    above them ("In article <...> Bob writes:") goes."""
    blocks: list[list[str]] = [[]]
    in_link_list = was_quoted = False
    quoted_at = [raw.lstrip().startswith(">") for raw in raw_lines]
    # Whether the next non-blank line is quoted: an attribution may stand a blank line above its quote.
    quote_follows, quote_next = [False] * len(raw_lines), False
    for n in range(len(raw_lines) - 1, -1, -1):
        quote_follows[n] = quote_next
        quote_next = quoted_at[n] if raw_lines[n].strip() else quote_next
    for n, raw in enumerate(raw_lines):
        line = " ".join(raw.split())
        if in_link_list:
            if not line or _is_link_item(line):
                continue
            in_link_list = False
        quoted = quoted_at[n]
        if quoted != was_quoted and blocks[-1]:
            blocks.append([])   # where quoting starts or stops, a paragraph does
        was_quoted = quoted
        if quoted:
            line = _QUOTE_MARKS.sub("", line, count=1)
        if _RELATED_HEADING.fullmatch(line):
            in_link_list, line = True, ""
        elif not _HAS_ALNUM.search(line) or _is_boilerplate(line):
            line = ""
        elif not quoted and quote_follows[n] and _ATTRIBUTION.fullmatch(line):
            line = ""
        if line:
            blocks[-1].append(line)
        elif blocks[-1]:
            blocks.append([])
    return [b for b in blocks if b]


def _looks_like_title(line: str, next_line: str) -> bool:
    """First line of a file directly followed by body text, e.g. a headline without a blank line."""
    return (3 <= _n_words(line) <= _HEADING_MAX_WORDS and not _ENDS_SENTENCE.search(line)
            and not _MID_SENTENCE.search(line) and not next_line[:1].islower())


def _is_wrapped(block: list[str]) -> bool:
    """Hard-wrapped text (e-mail, newsgroup posts, plain-text wires): most of the block's line breaks fall
    mid-sentence, so its breaks are the wrapping's, and one that happens to follow a full stop is no paragraph end.
    Scraped news puts a paragraph on each line instead, and nearly every line ends a sentence."""
    inner = block[:-1]
    return len(inner) >= 2 and sum(not _ENDS_SENTENCE.search(line) for line in inner) * 2 > len(inner)


def _units(blocks: list[list[str]]) -> list[str]:
    """Join lines inside each block; a line ending a sentence also ends the unit, unless the block is wrapped."""
    units = []
    for b, block in enumerate(blocks):
        wrapped = _is_wrapped(block)
        current: list[str] = []
        for i, line in enumerate(block):
            current.append(line)
            is_last = i == len(block) - 1
            if (is_last or (_ENDS_SENTENCE.search(line) and not wrapped)
                    or (b == i == 0 and _looks_like_title(line, block[1]))):
                units.append(" ".join(current))
                current = []
    return units


def _is_heading(text: str, questions: bool = True) -> bool:
    """Short line without a full stop (or, optionally, a short question)."""
    return _n_words(text) <= _HEADING_MAX_WORDS and (
        not _ENDS_SENTENCE.search(text) or (questions and bool(_ENDS_QUESTION.search(text))))


def clean_article(text: str) -> list[str]:
    """Turn raw scraped article text into clean paragraphs (before length splitting)."""
    blocks = _blocks(_strip_message(_unix_newlines(text).splitlines()))
    units = _units(blocks)
    # A text that ends with a list (its last line an item, under another item or a lead-in ending with a colon)
    # ends with content, not with a heading; a lone "- Reuters" under a paragraph is a sign-off.
    last_lines = [line for block in blocks[-2:] for line in block][-2:]
    ends_with_list = (len(last_lines) == 2 and bool(_LIST_ITEM.match(last_lines[1]))
                      and (bool(_LIST_ITEM.match(last_lines[0])) or last_lines[0].endswith((":", "："))))
    paragraphs: list[str] = []
    headings: list[str] = []
    carry = ""  # text cut mid-sentence, waiting for the rest
    for i, unit in enumerate(units):
        text, carry = f"{carry} {unit}" if carry else unit, ""
        following = units[i + 1] if i + 1 < len(units) else None
        if following is None:
            # A trailing heading or sign-off has nothing to introduce, unless it is all there is; a list's last
            # item is content, kept with its lead-in and the items above it (held as headings).
            if not paragraphs or not _is_heading(text, questions=False) or ends_with_list:
                paragraphs.append(" ".join([*headings, text]))
        elif not _ENDS_SENTENCE.search(text) and (following[:1].islower() or _MID_SENTENCE.search(text)):
            carry = text
        elif text.endswith((":", "：")):
            carry = text
        elif _is_heading(text):
            heading = text.rstrip(" ~-|*#")
            headings.append(heading if _ENDS_SENTENCE.search(heading) else heading + ".")
        else:
            paragraphs.append(" ".join([*headings, text]))
            headings = []
    return [p for p in paragraphs if _HAS_ALNUM.search(p)]


# ---------------------------------------------------------------- splitting

_ABBREVIATIONS = frozenset(
    "mr mrs ms dr prof sr jr st mt no nos vs etc inc ltd co corp dept gov gen col lt sgt rep sen "
    "fig approx est jan feb mar apr jun jul aug sep sept oct nov dec u.s u.k u.n e.g i.e a.m p.m".split())
# Western stops need following whitespace (so "39.5%" is safe); CJK stops do not.
_SENTENCE_END = re.compile(r"[.!?…]+[\"'”’»)\]]*(?=\s)|[。！？]+[\"'”’」』）)]*")


def _word_start(text: str, start: int, end: int) -> int:
    """Where the word that ends at `end` begins, looking no further back than `start`.

    It walks back over that word only, so that splitting stays linear however long a sentence runs on."""
    while end > start and not text[end - 1].isspace():
        end -= 1
    return end


def _opens_sentence_or_follows_colon(text: str, start: int, at: int) -> bool:
    """Nothing but space between `start` and `at`, or a colon just before the space ("steps: 1.")."""
    while at > start and text[at - 1].isspace():
        at -= 1
    return at == start or text[at - 1] in ":："


def split_sentences(text: str) -> list[str]:
    """Split text into sentences at . ! ? 。 ！ ？, keeping abbreviations like "Mr." intact."""
    sentences, start = [], 0
    for match in _SENTENCE_END.finditer(text):
        if match.group().startswith("."):
            at = _word_start(text, start, match.start())
            word = text[at:match.start()].lstrip("\"'“‘(").lower()
            # Abbreviations and initials ("J. Smith") are not sentence ends, nor is the number of an inline list
            # item ("steps: 1. Buy the land. 2. Build"): a lone number that opens the sentence or follows a colon.
            if (word in _ABBREVIATIONS or (len(word) == 1 and word.isalpha())
                    or (word.isdigit() and _opens_sentence_or_follows_colon(text, start, at))):
                continue
        sentence = text[start:match.end()].strip()
        if sentence:
            sentences.append(sentence)
        start = match.end()
    if text[start:].strip():
        sentences.append(text[start:].strip())
    return sentences


# Scripts written without spaces between words (Thai, kana, CJK ideographs; the iteration marks and numerals of CJK
# punctuation's block, such as 々 and 〇; half-width katakana), as a character class's body.
UNSPACED = ("\u0e00-\u0e7f\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u3005-\u3007\u3021-\u3029"
            "\u3031-\u3035\u3038-\u303c\uff66-\uff9f\U00020000-\U0003134f")
_MARKS = "\u0e31\u0e34-\u0e3a\u0e47-\u0e4e\u3099\u309a"   # Thai vowel and tone marks, kana voicing marks
# CJK punctuation and the full-width forms' punctuation and signs; full-width letters and digits are words as any
# letters are (a run of them is wrapped and counted like Latin).
CJK_PUNCT = "\u3000-\u303f\uff01-\uff0f\uff1a-\uff20\uff3b-\uff40\uff5b-\uff65\uffe0-\uffef"
# A word: a run of non-space characters, except that in an unspaced script each character (with its marks) counts as
# one, as the encoders' tokenizers read them, and CJK punctuation counts as none. To str.split() a Chinese paragraph
# was a few "words" (runs wrapped at MAX_WORD_CHARS), so it was never cut to the encoder's window, which then dropped
# all but its first ~250 characters.
_WORD = re.compile(f"[{UNSPACED}][{_MARKS}]*|[^\\s{UNSPACED}{CJK_PUNCT}]+")
_CJK_EDGE = re.compile(f"[{UNSPACED}{CJK_PUNCT}]")
_LONG_RUN = re.compile(f"[^\\s{UNSPACED}]{{{MAX_WORD_CHARS + 1},}}")   # see wrap_long_words


def count_words(text: str) -> int:
    """Words as the length limit counts them: whitespace-separated runs, each unspaced-script character one."""
    return sum(1 for _ in _WORD.finditer(text))


UNSPACED_RUN = re.compile(f"[{UNSPACED}]+")
CHARACTER = re.compile(f"[{UNSPACED}][{_MARKS}]*")


def character_pairs(run: str) -> list[str]:
    """A run of an unspaced script as terms() reads it: its overlapping pairs of characters (a lone one: itself)."""
    chars = CHARACTER.findall(run)
    return ["".join(chars[i:i + 2]) for i in range(max(1, len(chars) - 1))]


def terms(text: str, word: re.Pattern) -> list[str]:
    """The terms of `text` for scikit-learn's vectorizers (TF-IDF features, cluster keywords): `word`'s matches, except
    that a run of a script written without spaces gives its overlapping pairs of characters (a lone character:
    itself), as search engines index Chinese without a dictionary; to `word` such a run was one term as long as the
    paragraph. On text without such a run, exactly word.findall(text)."""
    found, start = [], 0
    for run in UNSPACED_RUN.finditer(text):
        found += word.findall(text[start:run.start()]) + character_pairs(run[0])
        start = run.end()
    return found + word.findall(text[start:])


def _split_clauses(sentence: str, max_words: int) -> list[str]:
    """Cut an over-long sentence after ; or , and hard-cut clauses that are still too long."""
    pieces = []
    for clause in re.split(r"(?<=[;,])\s+|(?<=[；，])\s*", sentence):
        if not clause:
            continue
        starts = [m.start() for m in _WORD.finditer(clause)][max_words::max_words]
        # cut where a word begins: the text between two words (punctuation, marks) stays with the piece before it
        cuts = [0, *starts, len(clause)]
        pieces += [clause[a:b].strip() for a, b in zip(cuts, cuts[1:]) if clause[a:b].strip()]
    return pieces


def split_long(paragraph: str, max_words: int) -> list[str]:
    """Split a paragraph into pieces of at most max_words words (count_words), at sentence boundaries if possible."""
    if max_words < 1:
        raise ValueError("max_words must be at least 1")
    if count_words(paragraph) <= max_words:
        return [paragraph]
    units = []
    for sentence in split_sentences(paragraph):
        units += [sentence] if count_words(sentence) <= max_words else _split_clauses(sentence, max_words)
    pieces: list[str] = []
    current: list[str] = []
    count = 0
    for unit in units:
        n = count_words(unit)
        if current and count + n > max_words:
            pieces.append(_join(current))
            current, count = [], 0
        current.append(unit)
        count += n
    if current:
        pieces.append(_join(current))
    return pieces


def _join(units: list[str]) -> str:
    """Sentences and clauses joined again: with a space, but none between two in an unspaced script."""
    out = units[0]
    for unit in units[1:]:
        out += ("" if _CJK_EDGE.match(out[-1]) and _CJK_EDGE.match(unit[0]) else " ") + unit
    return out


def paragraphs_of(articles: list[Article], max_words: int = 180, warn_empty: bool = True) -> list[Paragraph]:
    """Clean and length-split every article, keeping article order and paragraph order.

    Lone surrogates become U+FFFD (one warning); runs of over MAX_WORD_CHARS non-space characters are wrapped."""
    result = []
    texts = fix_unicode_all([a.text for a in articles], "articles")
    for article, text in zip(articles, texts):
        pieces = [piece for para in clean_article(text) for piece in split_long(wrap_long_words(para), max_words)]
        if not pieces and warn_empty:
            log.warning("article %r has no text left after cleaning", article.id)
        result += [Paragraph(article.id, i, piece) for i, piece in enumerate(pieces)]
    return result


def warn_about_size(articles: list[Article], paragraphs: list[Paragraph]) -> None:
    """Say so when a corpus is mostly repeats, or large enough that embedding it takes long."""
    if not paragraphs:
        return
    distinct = len({p.text for p in paragraphs})
    if len(paragraphs) >= 100 and distinct <= (1 - REPEATED_SHARE) * len(paragraphs):
        log.warning("%d of %d paragraphs repeat others (%.0f%%); each distinct paragraph is embedded once, but a "
                    "repeated text weighs more in clustering and training. Is the same text in the corpus many "
                    "times?", len(paragraphs) - distinct, len(paragraphs), 100 * (1 - distinct / len(paragraphs)))
    if distinct >= LARGE_CORPUS:
        log.warning("%d distinct paragraphs to embed: on a CPU the transformer embeds roughly 20-100 a second, so "
                    "this takes a long while (--embedding-model static is far faster; the cache keeps what is "
                    "done if the run is stopped)", distinct)
    per_article: dict[str, int] = {}
    for p in paragraphs:
        per_article[p.article_id] = per_article.get(p.article_id, 0) + 1
    biggest = max(per_article, key=per_article.get)
    if len(articles) < 10 and per_article[biggest] >= LONG_ARTICLE:
        log.warning("article %r alone gives %d paragraphs; a .txt file is read as one article (for many articles "
                    "give a folder of .txt files, or a .jsonl or .csv file)", biggest, per_article[biggest])
