"""A real Docker engine for the cluster rehearsal, and the images it runs.

No registry is reachable here, so nothing is pulled: the project's Dockerfile is built on a
local base image made from Debian's own packages (`debootstrap` + `docker import`), which
carries what this machine needs to reach PyPI (its CA bundle, and pip's local find-links with
the CPU torch wheel). The Dockerfile itself stays what a GKE user builds: only its `CUDA_IMAGE`
build argument points at the local base. Both images are tagged by a hash of what went into
them, so a second run on the same machine reuses them.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
WORK = Path(os.environ.get("TEXTCLF_REHEARSAL_CACHE", "/var/tmp/textclf-rehearsal"))
SUITE = "bookworm"  # its python3.11 is the Dockerfile's PYTHON
BASE_REPO, IMAGE_REPO = "textclf-rehearsal-base", "textclf-rehearsal"
CA_BUNDLE = "/etc/ssl/certs/rehearsal-ca-bundle.crt"  # apt's ca-certificates package leaves it alone


class EngineUnavailable(RuntimeError):
    """No Docker engine can run here; the message says why."""


def docker(*args: str, check: bool = True, capture: bool = True, timeout: float | None = None,
           **kwargs) -> subprocess.CompletedProcess:
    done = subprocess.run(["docker", *args], capture_output=capture, text=True, timeout=timeout, **kwargs)
    if check and done.returncode != 0:
        raise RuntimeError(f"docker {' '.join(args[:3])} failed ({done.returncode}): "
                           f"{(done.stderr or done.stdout or '')[-3000:]}")
    return done


def engine_running() -> bool:
    return shutil.which("docker") is not None and \
        subprocess.run(["docker", "info"], capture_output=True, timeout=60).returncode == 0


def _every_core() -> None:
    """The engine stands for the cluster, so it gets the machine, not the pinned test worker's share
    (tests/conftest.py): dockerd refuses a pod's `--cpus` above the cores it may use itself."""
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, range(os.cpu_count() or 1))


def ensure_engine(timeout: float = 60) -> None:
    """A running engine: the one already up, or `dockerd` started here (as root)."""
    if engine_running():
        return
    if shutil.which("dockerd") is None:
        raise EngineUnavailable("dockerd is not installed (Debian: apt-get install docker.io)")
    if os.geteuid() != 0:
        raise EngineUnavailable("no Docker engine runs, and starting dockerd needs root")
    WORK.mkdir(parents=True, exist_ok=True)
    log = (WORK / "dockerd.log").open("ab")
    subprocess.Popen(["dockerd"], stdout=log, stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=_every_core)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if engine_running():
            return
        time.sleep(1)
    tail = (WORK / "dockerd.log").read_text(errors="replace")[-1500:]
    raise EngineUnavailable(f"dockerd did not start within {timeout:.0f}s: {tail}")


def image_exists(tag: str) -> bool:
    return image_id(tag) is not None


def image_id(tag: str) -> str | None:
    done = docker("image", "inspect", "--format", "{{.Id}}", tag, check=False)
    return done.stdout.strip() if done.returncode == 0 else None


def _pip_settings() -> dict[str, str]:
    """This machine's pip settings (`pip config list`): the CA bundle and the find-links folder."""
    out = subprocess.run(["python3", "-m", "pip", "config", "list"], capture_output=True, text=True).stdout
    found = {}
    for line in out.splitlines():
        key, _, value = line.partition("=")
        found[key.split(".")[-1]] = value.strip().strip("'\"")
    return found


def _fingerprint(*parts: bytes) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part)
        h.update(b"\0")
    return h.hexdigest()[:12]


def base_image() -> str:
    """Debian bookworm (minbase) with this machine's CA bundle and pip find-links baked in."""
    pip = _pip_settings()
    cert = Path(pip.get("cert") or "/etc/ssl/certs/ca-certificates.crt")
    wheels = sorted(Path(pip["find-links"]).glob("*.whl")) if pip.get("find-links") else []
    extra_cas = sorted(Path("/usr/local/share/ca-certificates").glob("*.crt"))
    tag = f"{BASE_REPO}:{_fingerprint(SUITE.encode(), cert.read_bytes(), *(w.name.encode() for w in wheels), *(c.read_bytes() for c in extra_cas))}"
    if image_exists(tag):
        return tag
    if shutil.which("debootstrap") is None:
        raise EngineUnavailable("debootstrap is not installed (Debian: apt-get install debootstrap)")
    WORK.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=WORK, prefix="rootfs-") as tmp:
        rootfs = Path(tmp) / "rootfs"
        subprocess.run(["debootstrap", "--variant=minbase", SUITE, str(rootfs), "http://deb.debian.org/debian"],
                       check=True, capture_output=True)
        for source, folder in [(cert, Path(CA_BUNDLE).parent), *[(w, Path("/opt/wheels")) for w in wheels],
                               # kept when the image installs Debian's ca-certificates
                               *[(ca, Path("/usr/local/share/ca-certificates")) for ca in extra_cas]]:
            (rootfs / folder.relative_to("/")).mkdir(parents=True, exist_ok=True)
            shutil.copy(source, rootfs / folder.relative_to("/") / (Path(CA_BUNDLE).name if source == cert else source.name))
        changes = [f"ENV PIP_CERT={CA_BUNDLE}", f"ENV REQUESTS_CA_BUNDLE={CA_BUNDLE}", f"ENV SSL_CERT_FILE={CA_BUNDLE}",
                   "ENV PIP_FIND_LINKS=/opt/wheels", "ENV PIP_DEFAULT_TIMEOUT=180"]
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        args = [a for c in changes for a in ("--change", c)]
        subprocess.run(["docker", "import", *args, "-", tag], stdin=tar.stdout, check=True, capture_output=True)
        tar.wait()
    return tag


def project_image(log: Path | None = None) -> str:
    """The project's own Dockerfile on the local base, classic builder (BuildKit would pull its
    frontend). Docker's layer cache makes an unchanged rebuild take seconds. The image a changed
    tree's build replaces is removed: untagged, each left 3 GB behind, and repeated runs filled the disk."""
    base = base_image()
    tag = f"{IMAGE_REPO}:latest"
    before = image_id(tag)
    with (log or WORK / "build.log").open("w") as out:
        done = subprocess.run(["docker", "build", "--build-arg", f"CUDA_IMAGE={base}", "-t", tag, str(ROOT)],
                              env={**os.environ, "DOCKER_BUILDKIT": "0"}, stdout=out, stderr=subprocess.STDOUT)
    if done.returncode != 0:
        raise RuntimeError(f"docker build failed; see {log or WORK / 'build.log'}")
    if before not in (None, image_id(tag)):
        docker("rmi", before, check=False)  # kept while a container still uses it
    return tag
