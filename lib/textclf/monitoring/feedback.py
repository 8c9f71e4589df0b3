"""The feedback store: labels from users (confirmations and corrections), kept for monitoring and
retraining.

A row is `linked` when it quotes a logged prediction of the same text (see `predictions`): only
then are `predicted` and `model_version` known, and only linked rows on predictions `sampled` at
random for review are an unbiased sample of the model's quality. Every row can become training data.

Append-only: every append writes one new Parquet file (a timestamped, uniquely named file under
`root`, a local folder or gs://), so concurrent servers never contend for a file and nothing
already stored is ever rewritten. Reading concatenates them all.
"""
from __future__ import annotations

import io
import uuid
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from textclf.errors import DataError
from textclf.storage import filesystem, join, write_bytes

SCHEMA = pa.schema([
    ("text", pa.string()),
    ("labels", pa.list_(pa.string())),  # the correct label(s)
    ("predicted", pa.list_(pa.string())),  # what the model said, when known (one label for single-label)
    ("model_version", pa.string()),
    ("prediction_id", pa.string()),
    ("timestamp", pa.timestamp("us", tz="UTC")),
    ("kind", pa.string()),  # confirmation | correction (linked) | label (not tied to a prediction)
    ("linked", pa.bool_()),
    ("sampled", pa.bool_()),  # the prediction was drawn at random for review
])
KINDS = ("confirmation", "correction", "label")
COLUMNS = SCHEMA.names


def _labels(value: Any, field: str, row: int, required: bool) -> list[str] | None:
    if value is None and not required:
        return None
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)) or not all(isinstance(x, str) and x.strip() for x in items) \
            or (required and not items):
        raise DataError(f"feedback row {row}: {field} must be a label or a list of non-empty labels, not {value!r}")
    return [x.strip() for x in items]


def _row(raw: Mapping[str, Any], row: int, now: datetime) -> dict[str, Any]:
    unknown = set(raw) - set(COLUMNS)
    if unknown:
        raise DataError(f"feedback row {row}: unknown field(s) {sorted(unknown)}; expected {COLUMNS}")
    text = raw.get("text")
    if not isinstance(text, str) or not text.strip():
        raise DataError(f"feedback row {row}: text must be a non-empty string, not {text!r}")
    stamp = pd.Timestamp(raw.get("timestamp") or now)
    kind = raw.get("kind") or "label"
    if kind not in KINDS:
        raise DataError(f"feedback row {row}: kind must be one of {list(KINDS)}, not {kind!r}")
    return {
        "text": text,
        "labels": _labels(raw.get("labels"), "labels", row, required=True),
        "predicted": _labels(raw.get("predicted"), "predicted", row, required=False),
        "model_version": None if raw.get("model_version") is None else str(raw["model_version"]),
        "prediction_id": None if raw.get("prediction_id") is None else str(raw["prediction_id"]),
        "timestamp": stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC"),
        "kind": kind,
        "linked": bool(raw.get("linked", False)),
        "sampled": bool(raw.get("sampled", False)),
    }


def append_feedback(root: str, rows: Iterable[Mapping[str, Any]]) -> str | None:
    """Validate `rows` and store them as one new Parquet file under `root`; returns its URI.

    Each row needs `text` and `labels` (a label or a list); `predicted`, `model_version`,
    `prediction_id`, `timestamp` (default: now, UTC), `kind` (default "label"), `linked` and
    `sampled` (default False) are optional.
    """
    now = datetime.now(timezone.utc)
    records = [_row(raw, i, now) for i, raw in enumerate(rows)]
    if not records:
        return None
    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(records, schema=SCHEMA), buffer)
    uri = join(root, f"{now:%Y%m%dT%H%M%S%fZ}-{uuid.uuid4().hex[:12]}.parquet")
    write_bytes(uri, buffer.getvalue())
    return uri


def read_feedback(root: str) -> pd.DataFrame:
    """Every stored feedback row, oldest first (an empty frame with the columns if none)."""
    fs, path = filesystem(root)
    files = sorted(fs.glob(path.rstrip("/") + "/*.parquet")) if fs.exists(path) else []
    tables = []
    for name in files:
        with fs.open(name, "rb") as f:
            tables.append(pq.read_table(f, schema=SCHEMA))
    table = pa.concat_tables(tables) if tables else SCHEMA.empty_table()
    frame = table.to_pandas()
    for column in ("text", "model_version", "prediction_id"):  # plain str / None, not NaN
        frame[column] = pd.Series(table.column(column).to_pylist(), dtype=object, index=frame.index)
    for column in ("labels", "predicted"):
        frame[column] = [None if v is None else list(v) for v in frame[column]]
    frame["kind"] = frame["kind"].fillna("label").astype(object)  # rows stored before kinds existed
    for column in ("linked", "sampled"):
        frame[column] = frame[column].fillna(False).astype(bool)
    return frame.sort_values("timestamp", kind="stable").reset_index(drop=True)
