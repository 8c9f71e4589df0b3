"""A real `mlflow server` for tests: sqlite backend, proxied artifacts, one worker."""
from __future__ import annotations

import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from support.processes import serving
from textclf.ports import free_port


@contextmanager
def mlflow_server(root: Path, artifacts: str, host: str = "127.0.0.1", env: dict[str, str] | None = None) -> Iterator[str]:
    """Serve on `host` until the block ends; yields the tracking URL. `artifacts` is where the
    server stores what clients log (a folder, or gs:// with the emulator's settings in `env`)."""
    port = free_port(host)
    url = f"http://{host}:{port}"
    cmd = [sys.executable, "-m", "mlflow", "server", "--host", host, "--port", str(port), "--workers", "1",
           "--backend-store-uri", f"sqlite:///{root / 'db.sqlite'}", "--artifacts-destination", artifacts,
           "--allowed-hosts", "*"]
    with serving(cmd, f"{url}/health", root / "server.log", env):
        yield url
