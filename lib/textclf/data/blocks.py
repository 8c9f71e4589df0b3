"""Delimited and JSON-lines files cut into Dask partitions at record boundaries, never inside one.

Dask's own CSV reader cuts a file at any newline, including one inside a quoted field, so a valid
file with multi-line texts was refused or, with smaller blocks, read as wrong rows. Here the client
reads the file once with Python's csv module (the quoting rules pandas follows), notes where each
record ends, and cuts blocks only there; each block knows the data row it starts at, so every
message names the row as the file has it: data rows from 1, the header not counted (for JSON lines,
the line).

`sniff` reads the head only: the delimiter (told, or the one that splits the header into the
configured columns), the header (a UTF-8 byte-order mark dropped) and UTF-8 validity.
"""
from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, replace
from typing import Iterator

import pandas as pd

from textclf.errors import DataError
from textclf.storage import filesystem

DELIMITERS = {"csv": ",", "tsv": "\t"}
SNIFFED = (",", "\t", ";", "|")
NAMES = {",": "comma", "\t": "tab", ";": "semicolon", "|": "pipe"}
BOM = b"\xef\xbb\xbf"
HEAD_BYTES = 1 << 16
csv.field_size_limit(1 << 30)  # one huge text is still a valid row


@dataclass(frozen=True)
class Layout:
    """How a file is written, and which two of its columns are the text and the label."""
    uri: str
    fmt: str  # csv | tsv | jsonl
    text_column: str
    label_column: str
    sep: str = ","
    quoting: int = csv.QUOTE_MINIMAL
    columns: tuple[str, ...] = ()  # the header (csv / tsv)
    data_start: int = 0  # byte offset of the first data record

    def describe(self) -> str:
        if self.fmt == "jsonl":
            return "JSON lines"
        return f"{NAMES[self.sep]}-separated" + (", no quoting" if self.quoting == csv.QUOTE_NONE else "")


@dataclass(frozen=True)
class Block:
    start: int  # byte offsets of whole records
    end: int
    first_row: int  # the data row (from 1) of its first record
    rows: int = 0  # how many records it holds


def decode(raw: bytes, uri: str, where: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"{uri} {where}: not valid UTF-8 (bytes {raw[exc.start:exc.start + 4]!r}); "
                        f"save the file as UTF-8") from None


def sniff(uri: str, fmt: str, text_column: str, label_column: str, sep_told: bool = False) -> Layout:
    """The layout of a CSV, TSV or JSONL file from its head; a DataError naming the file for what the
    head already shows to be wrong (empty, binary, not UTF-8, no such columns)."""
    fs, path = filesystem(uri)
    with fs.open(path, "rb") as f:
        head = f.read(HEAD_BYTES)
    if not head.strip():
        raise DataError(f"{uri}: file is empty" if not head else f"{uri}: file holds only whitespace")
    if b"\x00" in head:
        raise DataError(f"{uri}: not a text file (it holds NUL bytes); expected {fmt.upper()}")
    bom = len(BOM) if head.startswith(BOM) else 0
    first = head[bom:].split(b"\n", 1)[0]
    if fmt == "jsonl":
        return _jsonl_layout(uri, first, text_column, label_column, bom)
    header = decode(first, uri, "header").rstrip("\r")
    wanted = {text_column, label_column}
    default = DELIMITERS[fmt]
    for sep in [default] if sep_told else [default, *(s for s in SNIFFED if s != default)]:
        quoting = csv.QUOTE_NONE if sep == "\t" else csv.QUOTE_MINIMAL
        columns = next(csv.reader([header], delimiter=sep, quoting=quoting))
        if wanted <= set(columns):
            return Layout(uri, fmt, text_column, label_column, sep, quoting, tuple(columns), bom + len(first) + 1)
    found = next(csv.reader([header], delimiter=default))
    raise DataError(f"{uri}: missing column(s) {sorted(wanted - set(found))}; the header has {found} "
                    f"(set data.text_column / data.label_column, or data.format when it is not {fmt.upper()})")


def _jsonl_layout(uri: str, first: bytes, text_column: str, label_column: str, bom: int) -> Layout:
    try:
        record = json.loads(decode(first, uri, "line 1"))
    except json.JSONDecodeError as exc:
        raise DataError(f"{uri} line 1: not valid JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(record, dict):
        raise DataError(f"{uri} line 1: expected one JSON object per line, found {type(record).__name__}")
    missing = sorted({text_column, label_column} - set(record))
    if missing:
        raise DataError(f"{uri}: missing field(s) {missing}; line 1 has {sorted(record)} "
                        f"(set data.text_column / data.label_column)")
    return Layout(uri, "jsonl", text_column, label_column, data_start=bom)


def _records(layout: Layout, f) -> Iterator[tuple[int, int]]:
    """(data row, byte offset after it) of every record from the data start on; a row with more
    fields than the header is an error naming it (pandas would refuse the whole block)."""
    offset, row, end = layout.data_start, 1, layout.data_start

    def lines() -> Iterator[str]:
        nonlocal offset, end
        for raw in f:
            offset += len(raw)
            end = offset
            yield decode(raw, layout.uri, f"row {row}")

    width = len(layout.columns)
    reader = csv.reader(lines(), delimiter=layout.sep, quoting=layout.quoting, strict=False)
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise DataError(f"{layout.uri} row {row}: malformed ({exc}); quote texts that hold line breaks") from None
        if len(fields) > width:
            raise DataError(f"{layout.uri} row {row}: {len(fields)} fields where the header has {width} "
                            f"({layout.describe()}); quote texts that hold the delimiter")
        yield row, end
        row += 1


def plan_blocks(layout: Layout, blocksize: int, max_rows: int = 0) -> list[Block]:
    """Record-aligned blocks of about `blocksize` bytes (and at most `max_rows` records, when given:
    batch predictions cut shards by rows) that cover every data record."""
    fs, path = filesystem(layout.uri)
    size = fs.size(path)
    blocks, start, first_row, row = [], layout.data_start, 1, 0
    with fs.open(path, "rb", block_size=1 << 22) as f:
        f.seek(layout.data_start)
        for row, end in _line_ends(layout.data_start, f) if layout.fmt == "jsonl" else _records(layout, f):
            if end - start >= blocksize or row - first_row + 1 == max_rows:
                blocks.append(Block(start, end, first_row, row - first_row + 1))
                start, first_row = end, row + 1
    if start < size:
        blocks.append(Block(start, size, first_row, row - first_row + 1))
    return blocks or [Block(start, start, first_row)]


def _line_ends(offset: int, f) -> Iterator[tuple[int, int]]:
    """(line, byte offset after it) of every line: a JSON-lines record ends at every newline."""
    for row, raw in enumerate(f, start=1):
        offset += len(raw)
        yield row, offset


def read_block(block: Block, layout: Layout) -> pd.DataFrame:
    """One block as `text` and `label` columns, one row per record (csv / tsv: strings)."""
    fs, path = filesystem(layout.uri)
    return _parse(layout, fs.cat_file(path, start=block.start, end=block.end) if block.end > block.start else b"",
                  block.first_row)


def _parse(layout: Layout, data: bytes, first_row: int) -> pd.DataFrame:
    if layout.fmt == "jsonl":
        frame = _jsonl(layout, data, first_row)
    elif data:
        frame = pd.read_csv(io.BytesIO(data), sep=layout.sep, quoting=layout.quoting, header=None,
                            names=list(layout.columns), dtype=str, keep_default_na=False, na_values=[""],
                            skip_blank_lines=False, encoding="utf-8")
    else:
        frame = pd.DataFrame(columns=list(layout.columns))
    picked = frame.reindex(columns=list(dict.fromkeys([layout.text_column, layout.label_column])))  # one, unlabelled
    return pd.DataFrame({"text": picked[layout.text_column].astype(object),
                         "label": picked[layout.label_column].astype(object)})


def _jsonl(layout: Layout, data: bytes, first_row: int) -> pd.DataFrame:
    lines = data.split(b"\n")
    if lines and not lines[-1]:
        lines.pop()
    records = []
    for i, raw in enumerate(lines):
        line = decode(raw, layout.uri, f"line {first_row + i}").strip()
        if not line:
            records.append({})  # a blank line: a row without text, counted as bad
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{layout.uri} line {first_row + i}: not valid JSON ({exc.msg} at column {exc.colno})") \
                from None
        if not isinstance(value, dict):
            raise DataError(f"{layout.uri} line {first_row + i}: expected one JSON object per line, "
                            f"found {type(value).__name__}")
        records.append(value)
    return pd.DataFrame.from_records(records) if records else pd.DataFrame()


def head_frame(layout: Layout, nbytes: int = 1 << 22) -> tuple[pd.DataFrame, bool]:
    """The whole records in the first `nbytes` of the file (`text`, `label`), and whether that is
    all of it: what a check can read in a second, whatever the file's size."""
    fs, path = filesystem(layout.uri)
    size = fs.size(path)
    end = min(size, layout.data_start + nbytes)
    head = fs.cat_file(path, start=layout.data_start, end=end) if end > layout.data_start else b""
    if end < size:  # whole lines only: the last one may be cut
        head = head[:head.rfind(b"\n") + 1]
    if layout.fmt != "jsonl":  # what planning would say of these rows (UTF-8, field counts), and where they end
        ends: list[int] = []
        try:
            for _row, record_end in _records(replace(layout, data_start=0), io.BytesIO(head)):
                ends.append(record_end)
        except DataError:  # a record cut by the head's end, or a bad one that planning will name
            if end >= size:
                raise
        if end < size:  # the last record may go on past the head
            head = head[:ends[-2] if len(ends) > 1 else 0]
    return _parse(layout, head, 1), end >= size
