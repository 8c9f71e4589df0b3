"""URIs for everything big: local folders or gs:// (any fsspec URL), one code path."""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import fsspec
from fsspec.core import url_to_fs


def is_remote(uri: str) -> bool:
    return "://" in uri and not uri.startswith("file://")


def join(root: str, *parts: str) -> str:
    root = root.rstrip("/")
    return "/".join([root, *(p.strip("/") for p in parts)]) if is_remote(root) else str(Path(root, *parts))


def filesystem(uri: str) -> tuple[fsspec.AbstractFileSystem, str]:
    return url_to_fs(uri)


def exists(uri: str) -> bool:
    fs, path = filesystem(uri)
    return fs.exists(path)


def write_bytes(uri: str, data: bytes) -> None:
    """Readers never see half a file: an object store publishes an upload only when it completes
    (a move there is a copy + delete), a local file is written under a temporary name then moved."""
    fs, path = filesystem(uri)
    if is_remote(uri):
        fs.pipe_file(path, data)
        return
    parent = path.rsplit("/", 1)[0]
    fs.makedirs(parent, exist_ok=True)
    tmp = f"{path}.tmp-{os.getpid()}"
    with fs.open(tmp, "wb") as f:
        f.write(data)
    fs.mv(tmp, path)


def read_text(uri: str) -> str:
    with fsspec.open(uri, "r", encoding="utf-8") as f:
        return f.read()


def put_file(local: str | Path, uri: str) -> None:
    """Copy one local file to `uri` (published whole, as `write_bytes`), streaming it."""
    if not is_remote(uri):
        Path(uri).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(local, f"{uri}.tmp-{os.getpid()}")
        os.replace(f"{uri}.tmp-{os.getpid()}", uri)
        return
    fs, path = filesystem(uri)
    fs.put_file(str(local), path)


@contextmanager
def atomic_file(uri: str) -> Iterator[Path]:
    """A local path to write `uri`'s content to, published at `uri` whole when the block ends and
    removed when it raises: readers, reruns and a failed run never find half a file there."""
    if is_remote(uri):
        with tempfile.TemporaryDirectory(prefix="textclf-") as tmp:
            local = Path(tmp, uri.rstrip("/").rsplit("/", 1)[-1])
            yield local
            put_file(local, uri)
        return
    target = Path(uri)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")  # beside it: the rename is atomic
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def get_file(uri: str, local: str | Path) -> Path:
    """Copy `uri` to a local file; the file appears whole or not at all."""
    local = Path(local)
    local.parent.mkdir(parents=True, exist_ok=True)
    tmp = local.with_name(f"{local.name}.tmp-{os.getpid()}")
    fs, path = filesystem(uri)
    fs.get_file(path, str(tmp))
    os.replace(tmp, local)
    return local


def remove(uri: str) -> None:
    """Delete a file or a folder with everything in it (nothing if it is not there)."""
    fs, path = filesystem(uri)
    if fs.exists(path):
        fs.rm(path, recursive=True)


def write_json(uri: str, obj: Any) -> None:
    write_bytes(uri, json.dumps(obj, indent=2, sort_keys=True, default=str).encode())


def read_json(uri: str) -> Any:
    with fsspec.open(uri, "rb") as f:
        return json.load(f)


def upload_dir(local: str | Path, uri: str) -> str:
    """Copy a local folder to `uri` (no-op when it is the same place)."""
    if not is_remote(uri):
        if Path(local).resolve() != Path(uri).resolve():
            shutil.copytree(local, uri, dirs_exist_ok=True)
        return uri
    fs, path = filesystem(uri)
    fs.put(str(local).rstrip("/") + "/", path.rstrip("/") + "/", recursive=True)
    return uri


@contextmanager
def local_dir(uri: str) -> Iterator[Path]:
    """A local folder holding what `uri` holds: the folder itself, or a temporary download."""
    if not is_remote(uri):
        yield Path(uri)
        return
    fs, path = filesystem(uri)
    with tempfile.TemporaryDirectory(prefix="textclf-") as tmp:
        fs.get(path.rstrip("/") + "/", tmp + "/", recursive=True)
        yield Path(tmp)


def download_dir(uri: str, cache_root: str | Path) -> Path:
    """A persistent local copy of a remote folder (reused when already complete)."""
    if not is_remote(uri):
        return Path(uri)
    fs, path = filesystem(uri)
    dest = Path(cache_root) / path.strip("/").replace("/", "__")
    marker = dest / ".complete"
    if not marker.exists():
        fs.get(path.rstrip("/") + "/", str(dest) + "/", recursive=True)
        marker.touch()
    return dest
