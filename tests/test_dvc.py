"""DVC for real: a data version added with `textclf data add` and pushed to a gs:// remote (the GCS
emulator), a TrainFlow run on it by its dvc:// URI and revision, lineage naming that version, and a
clean `git clone` + `dvc pull` giving back the very rows (same fingerprint); MonitorFlow's versions
tracked, pushed and committed the same way.

Every repo is a throwaway git + DVC repo with the project's own DVC set-up (`support.dvc_project`).
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conftest import ROOT, SANDBOX, TINY, latest_run, run_flow, toy_rows, write_csv
from support.dvc_project import dvc_project, sh
from support.gcs_emulator import gcs  # noqa: F401  (the fixture)

MODEL_NAME = f"dvc-versions-{SANDBOX.name}"


def textclf(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "textclf.cli", *args], cwd=cwd, env=dict(os.environ),
                          capture_output=True, text=True)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def committed_files(repo: Path, rev: str = "HEAD") -> set[str]:
    return set(sh(repo, "git", "show", "--name-only", "--format=", rev).splitlines())


def on_gs_remote(gcs, md5: str) -> bool:
    from textclf import storage

    return storage.exists(gcs.url("dvc", "files", "md5", md5[:2], md5[2:]))


def pulled_clone(repo: Path, clone: Path) -> Path:
    """A clean checkout: `git clone` of the repo, then `dvc pull` from its default remote."""
    sh(clone.parent, "git", "clone", "-q", str(repo), clone.name)
    sh(clone, sys.executable, "-m", "dvc", "pull", "-q", env=dict(os.environ))
    return clone


@pytest.fixture
def gs_project(gcs, tmp_path):
    """A project whose default DVC remote is a gs:// bucket, as the README sets it up."""
    repo = dvc_project(tmp_path / "repo")
    sh(repo, sys.executable, "-m", "dvc", "remote", "add", "-d", "gcs", gcs.url("dvc"))
    sh(repo, "git", "commit", "-qam", "share data versions through gs://")
    return repo


@pytest.mark.integration
def test_a_version_added_to_gs_trains_by_its_dvc_uri_and_a_clone_pulls_the_same_rows(gcs, gs_project, tmp_path):
    repo = gs_project
    data = write_csv(repo / "data" / "versions" / "reviews.csv", toy_rows(300, seed=31))
    rows_sha = sha256(data)
    (repo / "notes.txt").write_text("staged by the user, not for the data commit\n")
    sh(repo, "git", "add", "notes.txt")

    added = textclf(repo, "data", "add", "data/versions/reviews.csv", "-m", "data: 300 toy reviews")
    assert added.returncode == 0, added.stderr
    rev = sh(repo, "git", "rev-parse", "HEAD")
    md5 = yaml.safe_load((repo / "data/versions/reviews.csv.dvc").read_text())["outs"][0]["md5"]
    assert f"DVC md5 {md5}, pushed to remote 'gcs'" in added.stdout
    assert f"'data.source=dvc://data/versions/reviews.csv data.revision={rev}'" in added.stdout
    assert committed_files(repo) == {"data/versions/reviews.csv.dvc", "data/versions/.gitignore"}
    assert sh(repo, "git", "log", "-1", "--format=%s") == "data: 300 toy reviews"
    assert sh(repo, "git", "diff", "--cached", "--name-only") == "notes.txt"  # the user's staging untouched
    assert on_gs_remote(gcs, md5)

    # the run can only get the rows from the gs:// remote: no workspace copy, no local cache
    data.unlink()
    shutil.rmtree(repo / ".dvc" / "cache")
    run_flow("train_flow.py", f"data.source=dvc://data/versions/reviews.csv data.revision={rev} {TINY} "
             f"train.nproc_per_node=1 registry.model_name={MODEL_NAME}", cwd=repo)
    run = latest_run("TrainFlow")
    manifest = run["preprocess"].task["manifest"].data
    entry = manifest["fingerprint"]["sources"]["dvc://data/versions/reviews.csv"]
    assert (entry["dvc_path"], entry["dvc_rev"], entry["dvc_md5"], entry["sha256"]) == (
        "data/versions/reviews.csv", rev, md5, rows_sha)
    assert manifest["rows_read"] == 300

    version = run["register"].task["registration"].data["version"]
    traced = textclf(repo, "lineage", f"models:/{MODEL_NAME}/{version}", "--json")
    assert traced.returncode == 0, traced.stderr
    record = json.loads(traced.stdout)
    assert record["dvc_rev"] == rev and record["data_fingerprint"] == manifest["fingerprint"]["sha256"]
    assert record["data_sources"]["dvc://data/versions/reviews.csv"] == entry

    clone = pulled_clone(repo, tmp_path / "clone")
    from textclf.config import compose
    from textclf.data.sources import sources
    from textclf.data.versions import fingerprint

    pulled = clone / "data" / "versions" / "reviews.csv"
    assert sha256(pulled) == rows_sha
    again = fingerprint(sources(compose(overrides=[f"data.source={pulled}"]).data))
    assert again["sha256"] == manifest["fingerprint"]["sha256"]


def test_monitor_versions_are_tracked_pushed_committed_and_pullable(gcs, gs_project, tmp_path):
    """What MonitorFlow's retrain step writes when its working folder is such a project (the library
    call; the whole flow runs in tests/test_monitor_flow.py against the shipped local remote)."""
    from textclf.data.versions import new_data_version
    from textclf.monitoring.retraining import accepted_feedback, retrain_data

    repo = gs_project
    (repo / "notes.txt").write_text("staged by the user when the cron job ran\n")
    sh(repo, "git", "add", "notes.txt")
    previous = pd.DataFrame(toy_rows(40, seed=3), columns=["text", "label"], dtype="string")
    feedback = pd.DataFrame({"text": ["a zorpy stay", "a blechy trip"], "labels": [["positive"], ["negative"]]})
    rows, _ = accepted_feedback(feedback, ["negative", "positive"], multi_label=False)
    version = new_data_version(previous, rows, "text", "label", False, "|", str(tmp_path / "artifacts"),
                               dvc_repo=repo)
    path = f"data/versions/{version['sha256'][:16]}.csv"
    assert (version["uri"], version["revision"]) == (f"dvc://{path}", sh(repo, "git", "rev-parse", "HEAD"))
    assert committed_files(repo) == {f"{path}.dvc", "data/versions/.gitignore"}
    assert sh(repo, "git", "diff", "--cached", "--name-only") == "notes.txt"  # still staged, not committed
    assert on_gs_remote(gcs, version["dvc"]["md5"]) and not (tmp_path / "artifacts").exists()
    assert retrain_data(version, {})["revision"] == version["revision"]

    clone = pulled_clone(repo, tmp_path / "clone")
    assert sha256(clone / path) == version["sha256"]
    assert len(pd.read_csv(clone / path)) == version["rows"] == 42


def test_where_versions_cannot_be_tracked_they_stay_plain_files_and_say_why(tmp_path):
    from textclf.data.dvc_versions import versioning_repo

    plain = tmp_path / "plain"
    plain.mkdir()
    assert versioning_repo(plain)[0] is None and "not in a DVC repo" in versioning_repo(plain)[1]
    repo = dvc_project(tmp_path / "repo")
    sh(repo, sys.executable, "-m", "dvc", "remote", "default", "--unset")
    root, why = versioning_repo(repo)
    assert root is None and "no default remote" in why


def test_data_add_works_on_a_fresh_clone_and_refuses_what_it_cannot_version(tmp_path):
    """The shipped default remote is a folder in the clone: nothing to set up before the first add.
    A file git already tracks (as the embedded sample is) or one outside the repo is refused in one line."""
    repo = dvc_project(tmp_path / "repo")
    write_csv(repo / "data" / "mine.csv", toy_rows(30, seed=4))
    added = textclf(repo, "data", "add", "data/mine.csv", "--no-commit")
    assert added.returncode == 0, added.stderr
    assert "pushed to remote 'local'" in added.stdout and "not committed" in added.stdout
    assert len(list((repo / ".textclf" / "dvc-remote" / "files" / "md5").rglob("*"))) == 2  # one folder, one object
    assert set(sh(repo, "git", "diff", "--cached", "--name-only").splitlines()) == {"data/mine.csv.dvc", "data/.gitignore"}

    shutil.copy(ROOT / "data" / "sample" / "reviews.csv", repo / "data" / "sample.csv")
    sh(repo, "git", "add", "data/sample.csv")
    elsewhere = write_csv(tmp_path / "elsewhere.csv", toy_rows(30, seed=5))
    for file, message in [("data/sample.csv", "already tracked by SCM"), (str(elsewhere), "not in a DVC repo")]:
        refused = textclf(repo, "data", "add", file)
        assert refused.returncode == 2 and message in refused.stderr and "Traceback" not in refused.stderr, refused.stderr


def test_the_embedded_sample_in_git_is_a_dvc_version_too():
    """The sample stays in git (the quickstart needs no pull); dvc:// at a commit reads it through the
    same reader and it fingerprints as the plain file with the same bytes does."""
    from textclf.config import compose
    from textclf.data.sources import sources
    from textclf.data.versions import fingerprint

    committed = subprocess.run(["git", "show", "HEAD:data/sample/reviews.csv"], cwd=ROOT, capture_output=True,
                               check=True).stdout
    uri = f"dvc://data/sample/reviews.csv@{ROOT}"
    by_dvc = fingerprint(sources(compose(overrides=[f"data.source={uri}", "data.revision=HEAD"]).data))
    entry = by_dvc["sources"][uri]
    assert entry["dvc_md5"] is None and len(entry["dvc_rev"]) == 40  # git's own file: no DVC object
    assert entry["sha256"] == hashlib.sha256(committed).hexdigest()


def test_a_dvc_repo_without_git_fingerprints_without_a_commit(tmp_path):
    """`dvc init --no-scm`: no commit to name, so no dvc_rev; still the md5 and the content hash."""
    from textclf.data.sources import Source
    from textclf.data.versions import fingerprint

    data = write_csv(tmp_path / "reviews.csv", toy_rows(20, seed=6))
    sh(tmp_path, sys.executable, "-m", "dvc", "init", "--no-scm", "-q")
    sh(tmp_path, sys.executable, "-m", "dvc", "add", "-q", "reviews.csv")
    uri = f"dvc://reviews.csv@{tmp_path}"
    entry = fingerprint([Source(uri, None, "csv")])["sources"][uri]
    md5 = yaml.safe_load((tmp_path / "reviews.csv.dvc").read_text())["outs"][0]["md5"]
    assert "dvc_rev" not in entry and entry["dvc_md5"] == md5 and entry["sha256"] == sha256(data)
