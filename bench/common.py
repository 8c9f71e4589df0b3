"""What every benchmark shares: SST-2 loading, the machine's description, peak memory, one JSON line.

Benchmarks run as scripts (`python bench/train.py`), so they import this as `common`.
"""
from __future__ import annotations

import json
import os
import platform
import resource
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
SST2 = Path(os.environ.get("TEXTCLF_SST2", ROOT.parent / "shared" / "datasets" / "sst2"))
SST2_SPLITS = {"train": "train.tsv", "val": "dev.tsv", "test": "test.tsv"}


def offline() -> None:
    """The same offline, quiet environment the flows and tests use (and no Hub datasets either)."""
    from textclf.environment import apply_defaults

    apply_defaults()
    for key in ("TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
        os.environ.setdefault(key, "1")


def sst2_path(split: str) -> Path:
    return SST2 / SST2_SPLITS[split]


def require_sst2(bench: str) -> None:
    """Exit cleanly (status 0, one JSON line saying why) when the SST-2 copy is not on this machine."""
    missing = [str(sst2_path(s)) for s in SST2_SPLITS if not sst2_path(s).exists()]
    if missing:
        emit({"bench": bench, "skipped": f"SST-2 not found: {', '.join(missing)} (set TEXTCLF_SST2)"})
        sys.exit(0)


def sst2(split: str, rows: int | None = None) -> pd.DataFrame:
    """Columns `text`, `label` (0/1) of one SST-2 split; the first `rows` rows when given."""
    frame = pd.read_csv(sst2_path(split), sep="\t", quoting=3, dtype={"sentence": str, "label": int})
    frame = frame.rename(columns={"sentence": "text"})[["text", "label"]]
    return frame.head(rows) if rows else frame


def gold_labels(folder: Path, ids: list[int]) -> list[str]:
    """SST-2's 0/1 as the names the model in `folder` predicts: its ids as strings, or
    config/data/sst2.yaml's names. A model whose labels are neither would score 0 % on every side
    and compare as equal, so the benchmark stops instead."""
    labels = set(json.loads((folder / "config.json").read_text())["id2label"].values())
    for names in ({0: "0", 1: "1"}, {0: "negative", 1: "positive"}):
        if set(names.values()) == labels:
            return [names[int(i)] for i in ids]
    raise SystemExit(f"bench/{Path(sys.argv[0]).name}: the model's labels {sorted(labels)} are neither SST-2's ids (0, 1) "
                     f"nor its names (negative, positive): train it on SST-2 (bench/train.py or data=sst2), or "
                     f"accuracy would compare nothing")


def machine() -> dict[str, Any]:
    """Enough to tell two figures apart: cores, threads, CPU, versions, and how busy the box was."""
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(), "cpu": cpu,
            "torch": torch.__version__, "python": platform.python_version(),
            "load_avg_1m": round(os.getloadavg()[0], 2)}


def emit(record: dict[str, Any]) -> None:
    """The benchmark's result: one JSON line on stdout (everything else goes to stderr)."""
    print(json.dumps(record, default=float), flush=True)


@contextmanager
def stdout_to_stderr() -> Iterator[None]:
    """Send whatever runs inside (library prints, torchrun ranks, Trainer logs) to stderr, at the
    file-descriptor level so child processes follow, keeping stdout for the one JSON line."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def log(*args: Any) -> None:
    print(*args, file=sys.stderr, flush=True)


def ratio(a: float, b: float) -> float | None:
    return round(a / b, 3) if b else None


class PeakRSS:
    """Peak resident memory of this process and all its descendants, summed, sampled in a thread.

    Dask workers and torchrun ranks are child processes: `ru_maxrss` of the parent alone misses
    them, and RUSAGE_CHILDREN reports only the largest single child. Sampling the process tree
    sums them at each instant.
    """

    def __init__(self, interval: float = 0.05):
        self.interval = interval
        self.peak_bytes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        import psutil

        me = psutil.Process()
        while not self._stop.is_set():
            total = 0
            for proc in [me, *me.children(recursive=True)]:
                try:
                    total += proc.memory_info().rss
                except psutil.Error:
                    pass
            self.peak_bytes = max(self.peak_bytes, total)
            self._stop.wait(self.interval)

    def __enter__(self) -> "PeakRSS":
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def peak_mb(self) -> float:
        return round(self.peak_bytes / 2**20, 1)


def max_child_rss_mb() -> float:
    """The largest single child's peak RSS (kernel accounting; a cross-check for PeakRSS)."""
    return round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1)


class Timer:
    def __enter__(self) -> "Timer":
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.seconds = time.perf_counter() - self.start
