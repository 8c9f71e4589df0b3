"""Progress bars that stay readable in logs.

A terminal gets a normal redrawing tqdm bar. Metaflow, torchrun and CI capture output line by
line, and a bar redrawn with carriage returns shows nothing until the loop ends; there the same
bar is written as one plain line every `log_interval` seconds instead.
"""
from __future__ import annotations

import sys
from typing import Any

from tqdm.auto import tqdm


class _Lines:
    """A file for tqdm that turns each redraw into one log line."""

    def __init__(self, stream):
        self.stream = stream

    def write(self, text: str) -> None:
        text = text.replace("\r", "").strip()
        if text:
            self.stream.write(text + "\n")

    def flush(self) -> None:
        self.stream.flush()


def progress(total: int, desc: str, disable: bool = False, log_interval: float = 30.0, **kwargs: Any) -> tqdm:
    stream = sys.stderr
    if stream.isatty():
        return tqdm(total=total, desc=desc, disable=disable, dynamic_ncols=True, mininterval=1.0, **kwargs)
    return tqdm(total=total, desc=desc, disable=disable, file=_Lines(stream), ncols=100, mininterval=log_interval,
                maxinterval=log_interval, **kwargs)
