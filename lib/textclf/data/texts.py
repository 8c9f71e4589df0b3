"""Unlabelled texts from one file, in shards: what batch predictions read.

A file is checked the way the data intake checks a source (`sources.check_source`: found, not
empty, UTF-8, the column there) and cut into shards of whole records: CSV / TSV / JSON lines at
record boundaries (`blocks.plan_blocks`, so texts with line breaks and quotes are read right),
Parquet by row ranges. A shard knows the data row it starts at (from 1, the header not counted;
for JSON lines, the line), so every error names the file, the row and the column, as intake does.
"""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from textclf.config import DataConfig
from textclf.data.blocks import Block, Layout, plan_blocks, read_block
from textclf.data.cleaning import STATUS_EMPTY_TEXT, STATUS_NOT_TEXT
from textclf.data.sources import Source, check_source, format_of
from textclf.errors import DataError
from textclf.storage import filesystem

WHOLE_FILE = 1 << 62  # shards are cut by rows only


@dataclass(frozen=True)
class TextFile:
    uri: str
    format: str  # csv | tsv | jsonl | parquet
    column: str
    layout: Layout | None  # how a CSV / TSV / JSONL file is written; None for Parquet
    size: int  # bytes (CSV / TSV / JSONL) or rows (Parquet) when planned: shards hold only for that file

    @property
    def row_word(self) -> str:
        return "line" if self.format == "jsonl" else "row"


@dataclass(frozen=True)
class Shard:
    index: int
    first_row: int  # the data row (from 1) of its first text
    rows: int
    start: int = 0  # byte offsets of its records (CSV / TSV / JSONL)
    end: int = 0

    @property
    def span(self) -> dict[str, int]:
        """What makes a shard this shard: a part written for another span is not its part."""
        return {"first_row": self.first_row, "rows": self.rows, "start": self.start, "end": self.end}


def open_texts(uri: str, column: str, fmt: str | None = None) -> TextFile:
    """The file checked as the data intake checks a source, with `column` as its text (there is no
    label column: the text column fills both of the intake's slots)."""
    fmt = fmt or format_of(uri)
    layout = check_source(Source(uri, None, fmt), DataConfig(source=uri, format=fmt, text_column=column,
                                                              label_column=column))
    if layout is not None:
        fs, path = filesystem(uri)
        return TextFile(uri, fmt, column, layout, fs.size(path))
    import pyarrow as pa

    kind = _parquet(uri).schema.field(column).type
    if not (pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_string_view(kind)):
        raise DataError(f"{uri}: column {column!r} holds {kind}, not text")
    return TextFile(uri, fmt, column, None, sum(n for _, _, n in _row_groups(uri)))


def plan_shards(texts: TextFile, shard_rows: int) -> list[Shard]:
    """Shards of at most `shard_rows` texts that cover the file in order (one empty shard for a
    file without data rows). Reads a CSV / TSV / JSONL file once, as planning its blocks does."""
    if shard_rows < 1:
        raise DataError(f"predict.shard_rows must be at least 1, not {shard_rows}")
    if texts.layout is not None:
        blocks = plan_blocks(texts.layout, WHOLE_FILE, max_rows=shard_rows)
        return [Shard(i, b.first_row, b.rows, b.start, b.end) for i, b in enumerate(blocks)]
    starts = range(0, texts.size, shard_rows) or [0]
    return [Shard(i, start + 1, min(shard_rows, texts.size - start)) for i, start in enumerate(starts)]


def read_shard(texts: TextFile, shard: Shard) -> pd.DataFrame:
    """Columns `row` (the data row) and `text`; a DataError naming the file, row and column for a
    row without text, and for a file that changed since its shards were planned."""
    _check_unchanged(texts)
    if texts.layout is not None:
        block = Block(shard.start, shard.end, shard.first_row, shard.rows)
        column = read_block(block, texts.layout)["text"]
    else:
        column = _read_rows(texts, shard.first_row - 1, shard.rows)
    frame = pd.DataFrame({"row": range(shard.first_row, shard.first_row + len(column)),
                          "text": column.to_numpy(dtype=object)})
    for row, text in zip(frame["row"], frame["text"]):
        if not isinstance(text, str) or not text.strip():
            missing = text is None or isinstance(text, str) or (isinstance(text, float) and text != text)
            why = STATUS_EMPTY_TEXT if missing else STATUS_NOT_TEXT
            raise DataError(f"{texts.uri} {texts.row_word} {row}: {why} in column {texts.column!r}")
    return frame


def _check_unchanged(texts: TextFile) -> None:
    if texts.layout is not None:
        fs, path = filesystem(texts.uri)
        now, unit = fs.size(path), "bytes"
    else:
        now, unit = sum(n for _, _, n in _row_groups(texts.uri)), "rows"
    if now != texts.size:
        raise DataError(f"{texts.uri}: changed since its shards were planned ({texts.size:,} {unit}, now {now:,}); "
                        f"predict it again into a new output")


def _parquet(uri: str):
    import pyarrow.parquet as pq

    fs, path = filesystem(uri)
    return pq.ParquetDataset(path, filesystem=fs)


def _row_groups(uri: str) -> list[tuple[str, int, int]]:
    """(file, row group, rows) of a Parquet file or folder, in the order its rows are read."""
    import pyarrow.parquet as pq

    dataset = _parquet(uri)
    groups = []
    for file in dataset.files:
        meta = pq.read_metadata(file, filesystem=dataset.filesystem)
        groups += [(file, g, meta.row_group(g).num_rows) for g in range(meta.num_row_groups)]
    return groups


def _read_rows(texts: TextFile, skip: int, rows: int) -> pd.Series:
    """Rows `skip` to `skip + rows` of the Parquet text column, reading only the row groups they lie in."""
    import pyarrow.parquet as pq

    fs = _parquet(texts.uri).filesystem
    pieces, offset = [], 0
    for file, group, n in _row_groups(texts.uri):
        lo, hi = max(skip, offset), min(skip + rows, offset + n)
        if lo < hi:
            table = pq.ParquetFile(file, filesystem=fs).read_row_group(group, columns=[texts.column])
            pieces.append(table.column(0).slice(lo - offset, hi - lo).to_pandas())
        offset += n
    return pd.concat(pieces, ignore_index=True) if pieces else pd.Series([], dtype=object)
