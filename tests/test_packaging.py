"""pyproject.toml, environment.yml and the Dockerfile describe one environment; the image is
non-root, carries no secrets and copies only what .dockerignore lets through.

No Docker engine runs here, so the Dockerfile is kept honest by reading it.
"""
from __future__ import annotations

import fnmatch
import re
import tomllib

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

from conftest import ROOT

PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
EXTRAS = PROJECT["optional-dependencies"]


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def instructions(name: str) -> list[str]:
    return [args for word, args in dockerfile() if word == name]


def conda_pip() -> list[str]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    return next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))


def conda_python() -> str:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    return next(d.split("=", 1)[1] for d in env["dependencies"] if isinstance(d, str) and d.startswith("python="))


def test_every_dependency_is_pinned_to_a_range():
    for line in PROJECT["dependencies"] + [d for extra in EXTRAS.values() for d in extra]:
        assert Requirement(line).specifier, f"{line!r} has no version range"
    torch = next(Requirement(d) for d in PROJECT["dependencies"] if Requirement(d).name == "torch")
    assert str(torch.specifier) == "==2.13.0"  # any other spec pulls a multi-GB build here


def test_environment_yml_has_exactly_the_pyproject_pins():
    expected = PROJECT["dependencies"] + EXTRAS["gke"] + EXTRAS["dev"]
    assert sorted(conda_pip()) == sorted(expected)


def test_one_python_version_everywhere():
    python = conda_python()
    assert python in SpecifierSet(PROJECT["requires-python"])
    assert f"PYTHON={python}" in instructions("ARG")


def test_dockerfile_installs_the_pyproject_dependencies_and_the_project():
    runs = " ".join(instructions("RUN"))
    torch_pin = next(d for d in PROJECT["dependencies"] if d.startswith("torch"))
    assert f'pip install "{torch_pin}"' in runs
    # The rest is read from pyproject.toml itself, so it cannot drift.
    assert "['project']" in runs and "p['dependencies'] + p['optional-dependencies']['gke']" in runs
    assert "pip install -r /tmp/requirements.txt" in runs
    assert "pip install --no-deps -e /opt/textclf" in runs
    assert any(args.startswith("pyproject.toml ") for args in instructions("COPY"))


def test_image_is_a_cuda_runtime_run_as_a_user():
    assert instructions("ARG")[0].startswith("CUDA_IMAGE=nvidia/cuda:") and "-runtime-" in instructions("ARG")[0]
    assert all(args.startswith("${CUDA_IMAGE}") for args in instructions("FROM"))
    users = instructions("USER")
    assert users and users[-1] not in ("root", "0")
    assert [w for w, _ in dockerfile()][-3:] == ["USER", "WORKDIR", "CMD"]


def test_no_secrets_in_the_image():
    secret_words = {"KEY", "TOKEN", "SECRET", "PASSWORD", "CREDENTIALS", "APIKEY"}
    for word in ("ENV", "ARG"):
        for args in instructions(word):
            for name in re.findall(r"(\w+)=", args):
                assert not set(name.upper().split("_")) & secret_words, name
    assert "GOOGLE_APPLICATION_CREDENTIALS" not in (ROOT / "Dockerfile").read_text()


def _docker_included(path: str, rules: list[str]) -> bool:
    """.dockerignore semantics for the patterns used here: last match wins, `!` re-includes."""
    included = True
    for rule in rules:
        negate = rule.startswith("!")
        pattern = rule.lstrip("!").rstrip("/")
        if fnmatch.fnmatch(path, pattern) or fnmatch.fnmatch(path, pattern + "/*") or path == pattern:
            included = negate
    return included


def test_dockerignore_lets_through_exactly_what_is_copied():
    rules = [r.strip() for r in (ROOT / ".dockerignore").read_text().splitlines()
             if r.strip() and not r.startswith("#")]
    assert rules[0] == "*", "deny by default: local state (.venv, .textclf, credentials) never enters the context"
    copied = [args.split()[0] for args in instructions("COPY") if not args.startswith("--from")]
    for source in copied:
        assert (ROOT / source).exists(), source
        assert _docker_included(source, rules), f"{source} is copied but .dockerignore excludes it"
    for secret in (".venv", ".textclf", ".git", "key.json", ".env"):
        assert not _docker_included(secret, rules), secret


@pytest.mark.parametrize("name", [
    "METAFLOW_DEFAULT_DATASTORE", "METAFLOW_DATASTORE_SYSROOT_GS", "METAFLOW_KUBERNETES_CONTAINER_IMAGE",
    "METAFLOW_KUBERNETES_NAMESPACE", "METAFLOW_KUBERNETES_SERVICE_ACCOUNT", "METAFLOW_KUBERNETES_TOLERATIONS",
    "METAFLOW_KUBERNETES_GPU_VENDOR", "METAFLOW_SERVICE_URL", "TEXTCLF_ARTIFACT_ROOT", "TEXTCLF_MLFLOW_ARTIFACTS",
    "MLFLOW_TRACKING_URI", "docker build", "docker push", "argo-workflows create", "--with kubernetes",
])
def test_gke_guide_covers_the_tested_settings(name):
    """docs/gke.md names every setting tests/test_kubernetes.py deploys with, and the commands."""
    assert name in (ROOT / "docs" / "gke.md").read_text()
