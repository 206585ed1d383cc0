"""Tag a corpus into a table: one row per article, as JSONL, CSV or Parquet, streamed and written atomically.

A row is `TagResult.to_row(id)`: `id`, `themes` (a list; `;`-joined in CSV), then `score:<theme>` and
`evidence:<theme>` (the best paragraph carrying the theme, or "") for every theme. The writers are usable on
their own (distributed tagging writes through them too): `with open_writer(path, themes) as w: w.write(row)`.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterable, Iterator
from itertools import tee
from pathlib import Path

from .corpus import iter_corpus
from .errors import UserInputError

FORMATS = (".jsonl", ".csv", ".parquet")
THEME_SEPARATOR = ";"


def columns(themes: list[str]) -> list[str]:
    """The columns of a row, in TagResult.to_row's order."""
    return ["id", "themes", *[c for t in themes for c in (f"score:{t}", f"evidence:{t}")]]


def output_format(path: str | Path) -> str:
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise UserInputError(f"output {path}: unknown format {suffix or '(none)'!r}; end the name in "
                             f"{', '.join(FORMATS)}")
    if suffix == ".parquet":
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise UserInputError("writing Parquet needs pyarrow: pip install 'theme-tagger[tables]'") from None
    return suffix


class RowWriter:
    """Writes rows to a temporary file beside `path` and moves it to `path` only once all are written.

    An interrupted run (an exception, Ctrl-C) removes the temporary file: no half table under the final name."""

    def __init__(self, path: str | Path, themes: list[str], batch_rows: int = 1024):
        self.path = Path(path)
        self.format = output_format(self.path)
        self.columns = columns(themes)
        self.themes = themes
        self.batch_rows = batch_rows
        self.rows = 0
        if self.path.is_dir():
            raise UserInputError(f"output {self.path} is a folder; give a file name ending in {', '.join(FORMATS)}")
        if not self.path.parent.is_dir():
            raise UserInputError(f"output folder {self.path.parent} does not exist")
        self.tmp = self.path.with_name(f".{self.path.name}.tmp-{os.getpid()}")
        self._pending: list[dict] = []
        self._fh = self._csv = self._parquet = None

    def __enter__(self) -> RowWriter:
        try:
            if self.format == ".parquet":
                import pyarrow.parquet as pq

                self._parquet = pq.ParquetWriter(self.tmp, _arrow_schema(self.themes))
            else:
                self._fh = open(self.tmp, "w", encoding="utf-8", newline="")
        except OSError as exc:   # a read-only folder, a name too long once the temporary prefix is added, ...
            raise UserInputError(f"output {self.path}: cannot write {self.tmp.name} in {self.path.parent} "
                                 f"({exc.strerror or exc})") from None
        if self._fh is not None:
            if self.format == ".csv":
                self._csv = csv.writer(self._fh, lineterminator="\n")
                self._csv.writerow(self.columns)
        return self

    def write(self, row: dict) -> None:
        if list(row) != self.columns:
            raise ValueError(f"row columns {list(row)} differ from the table's {self.columns}")
        self.rows += 1
        if self._parquet is not None:
            self._pending.append(row)
            if len(self._pending) >= self.batch_rows:
                self._flush()
        elif self._csv is not None:
            self._csv.writerow([THEME_SEPARATOR.join(v) if k == "themes" else v for k, v in row.items()])
        else:
            self._fh.write(json.dumps(row, ensure_ascii=False) + "\n")

    def write_all(self, rows: Iterable[dict]) -> int:
        for row in rows:
            self.write(row)
        return self.rows

    def _flush(self) -> None:
        import pyarrow as pa

        if self._pending:
            self._parquet.write_table(pa.Table.from_pylist(self._pending, schema=self._parquet.schema))
            self._pending = []

    def __exit__(self, kind, exc, tb) -> None:
        try:
            if kind is None and self._parquet is not None:
                self._flush()
        finally:
            if self._parquet is not None:
                self._parquet.close()
            if self._fh is not None:
                self._fh.close()
        if kind is None:
            os.replace(self.tmp, self.path)
        else:
            self.tmp.unlink(missing_ok=True)


def open_writer(path: str | Path, themes: list[str]) -> RowWriter:
    """A writer for one table, its format chosen by the name's ending (.jsonl, .csv, .parquet)."""
    return RowWriter(path, themes)


def _arrow_schema(themes: list[str]):
    import pyarrow as pa

    fields = [pa.field("id", pa.string()), pa.field("themes", pa.list_(pa.string()))]
    for t in themes:
        fields += [pa.field(f"score:{t}", pa.float64()), pa.field(f"evidence:{t}", pa.string())]
    return pa.schema(fields)


def read_rows(path: str | Path) -> Iterator[dict]:
    """The rows of a table written by the tag command, as to_row gave them (themes a list, scores floats)."""
    path = Path(path)
    fmt = output_format(path)
    if fmt == ".parquet":
        import pyarrow.parquet as pq

        for batch in pq.ParquetFile(path).iter_batches():
            yield from batch.to_pylist()
    elif fmt == ".csv":
        with open(path, encoding="utf-8", newline="") as fh:
            for row in csv.DictReader(fh):
                yield {k: ([t for t in v.split(THEME_SEPARATOR) if t] if k == "themes" else
                           float(v) if k.startswith("score:") else v) for k, v in row.items()}
    else:
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                if line.strip():
                    yield json.loads(line)


def to_dataframe(results, ids: Iterable | None = None):
    """One pandas DataFrame for a list of TagResults: a row per result, the columns of TagResult.to_row.

    ids: one per result (default 0, 1, 2, ...)."""
    try:
        import pandas as pd
    except ImportError:
        raise ImportError("to_dataframe needs pandas: pip install 'theme-tagger[tables]'") from None
    results = list(results)
    ids = [str(i) for i in (range(len(results)) if ids is None else ids)]
    if len(ids) != len(results):
        raise ValueError(f"{len(ids)} ids for {len(results)} results")
    rows = [r.to_row(i) for i, r in zip(ids, results)]
    return pd.DataFrame(rows, columns=list(rows[0]) if rows else ["id", "themes"])


def tag_rows(tagger, corpus: str | Path, batch_size: int = 256) -> Iterator[dict]:
    """Read the corpus lazily (the training reader) and tag it in batches: one row per article, in order."""
    articles, again = tee(iter_corpus(corpus))   # tee holds only the batch that tag_many is working on
    results = tagger.tag_many((a.text for a in articles), batch_size=batch_size)
    for article, result in zip(again, results):
        yield result.to_row(article.id)


def tag_file(tagger, corpus: str | Path, out: str | Path, batch_size: int = 256, progress: bool = True) -> int:
    """Tag every article of `corpus` into the table `out`; returns the number of rows written."""
    writer = open_writer(out, tagger.themes)   # a bad output name fails before any tagging
    bar = None
    if progress:
        from tqdm.auto import tqdm

        folder = Path(corpus)
        total = sum(not p.name.startswith(".") for p in folder.glob("*.txt")) if folder.is_dir() else None
        bar = tqdm(desc="tag", unit="article", total=total, smoothing=0.1)
    with writer:
        for row in tag_rows(tagger, corpus, batch_size):
            writer.write(row)
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()
    return writer.rows
