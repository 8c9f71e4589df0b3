"""A server process for the length of a `with` block: started, waited for, stopped."""
from __future__ import annotations

import os
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import httpx


@contextmanager
def serving(cmd: list[str], ready_url: str, log: Path, env: dict[str, str] | None = None,
            timeout: float = 180) -> Iterator[subprocess.Popen]:
    """Run `cmd` (output to `log`) until the block ends, once `ready_url` answers 200."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
        deadline = time.monotonic() + timeout
        try:
            while True:
                try:
                    if httpx.get(ready_url, timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{Path(cmd[0]).name} did not answer on {ready_url}: "
                                       f"{log.read_text(errors='replace')[-3000:]}")
                time.sleep(0.3)
            yield proc
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
