"""A real GCS for tests: `gcp-storage-emulator` on a free 127.0.0.1 port, one bucket, and the
environment that points every client at it.

Clients and how they find the emulator (no production code knows about it):
- gcsfs / fsspec (artifact root, shards, models, feedback, DVC `dvc-gs`): `STORAGE_EMULATOR_HOST`;
  with no Application Default Credentials it falls back to anonymous access.
- google-cloud-storage without explicit credentials (MLflow's gs:// artifact repository):
  `STORAGE_EMULATOR_HOST` makes it anonymous.
- Metaflow's gs datastore passes `google.auth.default()` credentials explicitly, which do not
  exist here, so the tests select the `gcs-emulator` client provider (an anonymous client)
  through `METAFLOW_DEFAULT_GCP_CLIENT_PROVIDER`; it lives in the `metaflow_extensions` package
  beside this file, which is importable only when this folder is on PYTHONPATH.
"""
from __future__ import annotations

import os
import shutil
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

from support.processes import serving
from textclf.ports import free_port

SUPPORT_DIR = Path(__file__).resolve().parent
PROJECT = "textclf-test"


@dataclass
class GcsEmulator:
    endpoint: str  # http://127.0.0.1:<port>
    bucket: str

    def url(self, *parts: str) -> str:
        """gs://<bucket>/<parts...>"""
        return "/".join([f"gs://{self.bucket}", *(p.strip("/") for p in parts)])

    def env(self) -> dict[str, str]:
        """What a process (and its children) needs to talk to the emulator instead of Google."""
        pythonpath = os.pathsep.join(p for p in (str(SUPPORT_DIR), os.environ.get("PYTHONPATH", "")) if p)
        return {
            "STORAGE_EMULATOR_HOST": self.endpoint,
            "NO_GCE_CHECK": "true",
            "GOOGLE_CLOUD_PROJECT": PROJECT,
            "METAFLOW_DEFAULT_GCP_CLIENT_PROVIDER": "gcs-emulator",
            # gcsfs would ask the Storage Control API (absent here) for each bucket's layout.
            "GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT": "false",
            "PYTHONPATH": pythonpath,
        }


@contextmanager
def gcs_emulator(data_dir: Path, bucket: str = "textclf-test", host: str = "127.0.0.1") -> Iterator[GcsEmulator]:
    """Start the emulator (objects kept under `data_dir`), create `bucket`, stop it on exit.
    `host` is the address it listens on (and clients use): loopback, or a Docker network's gateway."""
    port = free_port(host)
    endpoint = f"http://{host}:{port}"
    data_dir.mkdir(parents=True, exist_ok=True)
    exe = shutil.which("gcp-storage-emulator", path=str(Path(sys.executable).parent)) or "gcp-storage-emulator"
    cmd = [exe, "--data-dir", str(data_dir), "start", "--host", host, "--port", str(port), "--default-bucket", bucket,
           "--quiet"]
    with serving(cmd, endpoint + "/", data_dir.parent / f"gcs-emulator-{port}.log", timeout=30):
        yield GcsEmulator(endpoint=endpoint, bucket=bucket)


@pytest.fixture(scope="module")
def gcs(tmp_path_factory) -> Iterator[GcsEmulator]:
    """One emulator per test module, with this process's environment pointed at it."""
    import gcsfs

    with gcs_emulator(tmp_path_factory.mktemp("gcs") / "data") as emulator, pytest.MonkeyPatch.context() as mp:
        for key, value in emulator.env().items():
            mp.setenv(key, value)
        gcsfs.GCSFileSystem.clear_instance_cache()  # an instance made before would point elsewhere
        yield emulator
        gcsfs.GCSFileSystem.clear_instance_cache()
