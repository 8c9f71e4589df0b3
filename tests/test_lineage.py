"""`textclf lineage` and the end step's card on the shared TrainFlow run (default sqlite store):
from a registered version or a run id back to the run, the data version, the code and the config."""
from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys

import pytest
import yaml

from conftest import ROOT

pytestmark = pytest.mark.integration


def lineage_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "textclf.cli", "lineage", *args], env=dict(os.environ),
                          capture_output=True, text=True)


@pytest.fixture(scope="module")
def made(trained_run):
    """What the run really used, read from Metaflow: the yardstick for every lineage answer."""
    end = trained_run["end"].task
    return {"pathspec": trained_run.pathspec, "cfg": trained_run["start"].task["cfg"].data,
            "fingerprint": end["manifest"].data["fingerprint"], "mlflow_run": trained_run["start"].task["mlflow_run_id"].data,
            "registration": trained_run["register"].task["registration"].data}


def test_a_registered_version_leads_back_to_run_data_code_and_config(made):
    reg = made["registration"]
    done = lineage_cli(f"models:/{reg['model_name']}/{reg['version']}", "--json")
    assert done.returncode == 0, done.stderr
    record = json.loads(done.stdout)
    assert (record["name"], record["version"]) == (reg["model_name"], reg["version"])
    assert record["metaflow_run"] == made["pathspec"] and record["mlflow_run"] == made["mlflow_run"]
    assert record["data_fingerprint"] == made["fingerprint"]["sha256"]
    assert record["data_sources"] == made["fingerprint"]["sources"]
    assert record["config"] == made["cfg"]
    assert len(record["git_commit"]) == 40 and record["backbone"] == "tiny-bert"


def test_yaml_output_and_a_run_id_give_the_same_lineage(made):
    done = lineage_cli(made["pathspec"])  # YAML by default
    assert done.returncode == 0, done.stderr
    record = yaml.safe_load(done.stdout)
    assert record["metaflow_run"] == made["pathspec"] and record["mlflow_run"] == made["mlflow_run"]
    assert record["version"] == made["registration"]["version"]
    assert record["data_fingerprint"] == made["fingerprint"]["sha256"]
    assert record["config"] == made["cfg"]


@pytest.mark.parametrize("uri, message", [("models:/no-such-model@champion", "not in the registry"),
                                          ("models:/textclf", "expected models:/<name>@<alias>"),
                                          ("/no/such/folder", "not a model folder")])
def test_unknown_models_fail_with_one_clear_line(uri, message):
    done = lineage_cli(uri)
    assert done.returncode == 2
    assert message in done.stderr and "Traceback" not in done.stderr


def test_end_card_shows_the_verdict_metrics_and_lineage(trained_run, made, tmp_path):
    saved = tmp_path / "summary.html"  # `card get` as a user would: it finds cards where the writer put them
    done = subprocess.run([sys.executable, str(ROOT / "flows" / "train_flow.py"), "--no-pylint", "card", "get",
                           trained_run["end"].task.pathspec.split("/", 1)[1], "--id", "summary", str(saved)],
                          cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    html = saved.read_text()
    payload = base64.b64decode(re.search(r'__MF_DATA__\["[^"]+"\] = "([^"]+)"', html).group(1)).decode()
    reg = made["registration"]
    for text in (f"{reg['model_name']} v{reg['version']}: **{reg['alias']}**", made["fingerprint"]["sha256"],
                 made["mlflow_run"], made["pathspec"], "Resolved config",
                 f'["accuracy", "{trained_run["end"].task["test_metrics"].data["accuracy"]:.4f}"]'):
        assert text in payload, text
    assert trained_run["end"].task["lineage"].data["config"] == made["cfg"]
