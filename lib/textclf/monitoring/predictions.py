"""The prediction log: what the server answered, kept durably so that feedback can be tied to the
prediction it is about (after a restart, on another replica) and drift can be measured on the
traffic itself rather than on the few rows someone labelled.

Same storage as the feedback store (a local folder or gs://, append-only Parquet), partitioned by
day (`date=YYYY-MM-DD/`): an id carries its time, so finding it reads one day, and MonitorFlow
reads only the days in its window. Rows are buffered and written by a background thread every
`flush_seconds` (and on close), so a request never waits for storage.
"""
from __future__ import annotations

import hashlib
import io
import logging
import secrets
import threading
import time
import uuid
from collections import OrderedDict
from datetime import datetime, timedelta, timezone
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from textclf.storage import filesystem, join, write_bytes

log = logging.getLogger(__name__)
SCHEMA = pa.schema([
    ("prediction_id", pa.string()),
    ("timestamp", pa.timestamp("us", tz="UTC")),
    ("model_name", pa.string()),
    ("model_version", pa.string()),
    ("text_hash", pa.string()),  # sha256 of the text: feedback must quote the same text
    ("text", pa.string()),  # null unless serve.log_texts (needed for embedding drift)
    ("length", pa.int32()),  # characters
    ("predicted", pa.list_(pa.string())),
    ("confidence", pa.float32()),  # the top class's probability
    ("classes", pa.list_(pa.string())),
    ("probabilities", pa.list_(pa.float32())),
    ("latency_ms", pa.float32()),
    ("sampled", pa.bool_()),  # drawn at random for review: its feedback is an unbiased label
])
REMEMBERED = 10_000


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def new_prediction_id(now: datetime | None = None) -> str:
    """32 hex characters, the first 12 the time in milliseconds (as a UUIDv7): ids sort by time
    and name the day they are stored under."""
    millis = int((now or datetime.now(timezone.utc)).timestamp() * 1000)
    return f"{millis:012x}{secrets.token_hex(10)}"


def id_time(prediction_id: str) -> datetime | None:
    try:
        return datetime.fromtimestamp(int(prediction_id[:12], 16) / 1000, timezone.utc)
    except (ValueError, OverflowError, OSError):
        return None


def log_root(serve_cfg) -> str:
    """Where the log is: `serve.predictions_root`, by default a folder inside the feedback store."""
    return serve_cfg.predictions_root or join(serve_cfg.feedback_root, "predictions")


def _day(root: str, when: datetime) -> str:
    return join(root, f"date={when:%Y-%m-%d}")


def _read(fs, files: list[str], filters=None) -> pa.Table:
    tables = []
    for name in files:
        with fs.open(name, "rb") as f:
            tables.append(pq.read_table(f, schema=SCHEMA, filters=filters))
    return pa.concat_tables(tables) if tables else SCHEMA.empty_table()


def read_predictions(root: str, since: datetime | None = None) -> pd.DataFrame:
    """Logged predictions (all, or from `since` on), oldest first; an empty frame if none."""
    fs, path = filesystem(root)
    days = sorted(fs.glob(path.rstrip("/") + "/date=*")) if fs.exists(path) else []
    if since is not None:
        days = [d for d in days if d.rsplit("date=", 1)[-1] >= f"{since:%Y-%m-%d}"]
    files = [f for d in days for f in sorted(fs.glob(d + "/*.parquet"))]
    frame = _read(fs, files).to_pandas()
    if since is not None:
        frame = frame[frame["timestamp"] >= pd.Timestamp(since)]
    return frame.sort_values("timestamp", kind="stable").reset_index(drop=True)


class PredictionLog:
    """Buffered, append-only writer of the log, and lookup of a prediction by id."""

    def __init__(self, root: str, log_texts: bool = True, flush_seconds: float = 1.0):
        self.root, self.log_texts, self.flush_seconds = root, log_texts, flush_seconds
        self._pending: list[dict[str, Any]] = []
        self._recent: OrderedDict[str, dict[str, Any]] = OrderedDict()  # this process's, while unflushed or fresh
        self._lock, self._flush_lock = threading.Lock(), threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def record(self, rows: list[dict[str, Any]]) -> None:
        """Queue rows (SCHEMA's fields; `text` is dropped unless log_texts) for the next flush."""
        with self._lock:
            for row in rows:
                row = {**row, "text": row["text"] if self.log_texts else None}
                self._pending.append(row)
                self._recent[row["prediction_id"]] = row
            while len(self._recent) > REMEMBERED:
                self._recent.popitem(last=False)

    def lookup(self, prediction_id: str) -> dict[str, Any] | None:
        """The logged prediction with this id, from this process or the store; None if unknown."""
        with self._lock:
            if prediction_id in self._recent:
                return dict(self._recent[prediction_id])
        when = id_time(prediction_id)
        if when is None:
            return None
        fs, day = filesystem(_day(self.root, when))
        files = sorted(fs.glob(day + "/*.parquet")) if fs.exists(day) else []
        rows = _read(fs, files, filters=[("prediction_id", "=", prediction_id)]).to_pylist()
        return rows[0] if rows else None

    def flush(self) -> None:
        with self._flush_lock:
            with self._lock:
                rows, self._pending = self._pending, []
            by_day: dict[str, list[dict[str, Any]]] = {}
            for row in rows:
                by_day.setdefault(_day(self.root, row["timestamp"]), []).append(row)
            for day, group in list(by_day.items()):
                buffer = io.BytesIO()
                pq.write_table(pa.Table.from_pylist(group, schema=SCHEMA), buffer)
                try:
                    write_bytes(join(day, f"{time.time_ns()}-{uuid.uuid4().hex[:12]}.parquet"), buffer.getvalue())
                except Exception:  # keep what was not written for the next flush
                    with self._lock:
                        self._pending[:0] = [row for rest in by_day.values() for row in rest]
                    raise
                del by_day[day]

    def _run(self) -> None:
        while not self._stop.wait(self.flush_seconds):
            try:
                self.flush()
            except Exception:  # storage hiccup: keep the rows and try again next round
                log.exception("could not write the prediction log to %s", self.root)

    def start(self) -> None:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)
            self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
        self.flush()


def recent_traffic(serve_cfg, model_name: str | None, mcfg) -> pd.DataFrame:
    """The latest `mcfg.max_predictions` predictions of the last `mcfg.window_days`, answered under
    the registered name `model_name` (any version: the monitor re-scores the texts itself)."""
    frame = read_predictions(log_root(serve_cfg), since=datetime.now(timezone.utc) - timedelta(days=mcfg.window_days))
    if model_name:
        frame = frame[frame["model_name"] == model_name]
    return frame.tail(mcfg.max_predictions).reset_index(drop=True)
