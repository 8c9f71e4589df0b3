"""Data versions DVC can give back: a file added to the DVC repo, pushed to its remote, and its
`.dvc` file committed, so `dvc://<path>` at that commit names exactly these rows anywhere.

Used by `textclf data add` and by MonitorFlow for the versions it writes. The order is push,
then commit: a commit never names data its remote does not hold. Only the version's `.dvc` file
and its `.gitignore` are committed (`git commit -- <paths>`); whatever else is staged stays staged.
"""
from __future__ import annotations

import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path

from textclf.errors import DataError

VERSIONS_DIR = "data/versions"  # where MonitorFlow's versions go, from the repo's root


@dataclass
class DvcVersion:
    path: str  # from the repo's root, as dvc:// names it
    md5: str  # DVC's content hash (the object on the remote)
    rev: str | None  # the commit that records the .dvc file; None: staged, not committed
    remote: str | None  # the remote it was pushed to; None: not pushed
    repo: str  # the repo's root folder

    @property
    def uri(self) -> str:
        return f"dvc://{self.path}"

    def overrides(self) -> str:
        """The TrainFlow config overrides that train on exactly this version."""
        return f"data.source={self.uri}" + (f" data.revision={self.rev}" if self.rev else "")

    def to_dict(self) -> dict[str, str | None]:
        return {**asdict(self), "uri": self.uri}


def dvc_root(folder: str | Path = ".") -> Path:
    """The root of the DVC repo `folder` is in."""
    from dvc.exceptions import NotDvcRepoError
    from dvc.repo import Repo

    try:
        return Path(Repo.find_root(str(folder)))
    except NotDvcRepoError:
        raise DataError(f"{Path(folder).resolve()} is not in a DVC repo (run `dvc init` in a git repo)") from None


def default_remote(root: Path) -> str | None:
    """The name of the repo's default remote (`dvc remote add -d`), if it has one."""
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        return repo.config["core"].get("remote")


def versioning_repo(folder: str | Path = ".") -> tuple[Path | None, str]:
    """Where new versions can be DVC-tracked: the root of `folder`'s DVC repo when it has a default
    remote, else None; and a line saying which."""
    try:
        root = dvc_root(folder)
    except DataError as exc:
        return None, f"not DVC-tracked: {exc}"
    remote = default_remote(root)
    if remote is None:
        return None, f"not DVC-tracked: the DVC repo {root} has no default remote (dvc remote add -d NAME URL)"
    return root, f"DVC-tracked in {root}, pushed to remote {remote!r}"


def add_version(file: str | Path, remote: str | None = None, message: str | None = None, commit: bool = True,
                push: bool = True) -> DvcVersion:
    """`dvc add` a file inside a DVC repo, `dvc push` it, `git add` its .dvc file and .gitignore and,
    with `commit`, commit those two files alone."""
    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    file = Path(file).resolve()
    root = dvc_root(file.parent)
    if not file.is_file():
        raise DataError(f"{file}: file not found")
    rel = file.relative_to(root).as_posix()
    with Repo(str(root)) as repo:
        repo.scm_context.quiet = True  # the git part is ours, not a hint to the user
        remote = remote or repo.config["core"].get("remote")
        try:
            (stage,) = repo.add([str(file)])
        except DvcException as exc:
            raise DataError(f"{rel}: dvc add failed: {str(exc).strip().splitlines()[0]}") from None
        md5 = stage.outs[0].hash_info.value
        if push:
            if remote is None:
                raise DataError(f"{rel}: added, not pushed: the DVC repo has no default remote (pass --remote "
                                f"or run dvc remote add -d NAME URL)")
            try:
                repo.push(targets=[str(file)], remote=remote)
            except Exception as exc:  # DVC config errors and the remote's own (network, auth)
                raise DataError(f"{rel}: added, not pushed to remote {remote!r} (nothing committed): "
                                f"{str(exc).strip().splitlines()[0]}") from None
    tracked = [p for p in (Path(stage.path), file.parent / ".gitignore") if p.exists()]
    _git(root, "add", "--", *map(str, tracked))
    rev = None
    if commit:
        if _git(root, "status", "--porcelain", "--", *map(str, tracked)):
            _git(root, "commit", "-q", "-m", message or f"data: {rel} (md5 {md5[:8]})", "--", *map(str, tracked))
        rev = _git(root, "rev-parse", "HEAD")
    return DvcVersion(path=rel, md5=md5, rev=rev, remote=remote if push else None, repo=str(root))


def _git(root: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True)
    if done.returncode != 0:
        raise DataError(f"git {args[0]} failed in {root}: {(done.stderr or done.stdout).strip().splitlines()[-1]}")
    return done.stdout.strip()
