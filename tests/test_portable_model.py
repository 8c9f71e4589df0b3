"""Models that travel: a model folder loads with transformers alone (`trust_remote_code`), and a
registered version is an MLflow Model that `mlflow.pyfunc` and `mlflow models serve` load,
without textclf, scoring exactly as `Predictor` does. Old folders and old versions keep working."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
import yaml
from mlflow import MlflowClient

from conftest import ROOT
from support.mlflow_server import mlflow_server
from support.processes import serving
from textclf.model.predictor import Predictor
from textclf.ports import free_port
from textclf.registry.resolution import resolve_model

pytestmark = pytest.mark.integration
LONG = "the phone was " + "really " * 700 + "terrible"  # past 512 tokens: both sides must cut it
TEXTS = ["the film was truly wonderful show 12", "the meal was so awful app 3", "great", LONG]
NO_TEXTCLF = "import sys\nsys.modules['textclf'] = None  # any import of textclf fails from here on\n"


def without_textclf(code: str, cwd: Path) -> str:
    """Run `code` where textclf cannot be imported (no lib on the path, the name blocked); its stdout."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([sys.executable, "-c", NO_TEXTCLF + code], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    return done.stdout


def pipeline_scores(folder: Path, texts: list[str]) -> tuple[list[dict[str, float]], dict]:
    """transformers' pipeline on the folder, without textclf: per text {label: probability}; and the config."""
    code = textwrap.dedent(f"""
        import json
        from transformers import pipeline
        classify = pipeline("text-classification", model={str(folder)!r}, trust_remote_code=True, top_k=None)
        rows = classify({texts!r}, truncation=True)
        config = classify.model.config
        print(json.dumps({{"scores": [{{r["label"]: r["score"] for r in row}} for row in rows],
                           "config": {{"threshold": config.threshold, "problem_type": config.problem_type,
                                       "id2label": config.id2label, "module": type(classify.model).__module__}}}}))
    """)
    out = json.loads(without_textclf(code, folder.parent).strip().splitlines()[-1])
    return out["scores"], out["config"]


def assert_same_predictions(expected: list[dict], labels: list, probabilities: list[dict[str, float]]) -> None:
    assert labels == [e["label"] for e in expected]
    for want, got in zip(expected, probabilities):
        assert set(got) == set(want["probabilities"])
        np.testing.assert_allclose([got[k] for k in want["probabilities"]], list(want["probabilities"].values()),
                                   atol=1e-5)


def model_folder(run) -> Path:
    return Path(run["end"].task["model_uri"].data)


def registered_uri(run) -> str:
    registration = run["register"].task["registration"].data
    return f"models:/{registration['model_name']}/{registration['version']}"


@pytest.fixture(scope="module")
def multi_label_folder(tmp_path_factory) -> Path:
    """An untrained multi-label model over the sample tags, its head scaled so probabilities spread
    around the threshold: a format test needs the same weights read two ways, not a good model."""
    import torch
    from transformers import AutoTokenizer

    from textclf.model.backbones import resolve_backbone
    from textclf.model.folder import save_folder
    from textclf.model.network import build_model

    tags = sorted({t for cell in pd.read_csv(ROOT / "data" / "sample" / "tags.csv")["labels"] for t in cell.split("|")})
    torch.manual_seed(0)
    model = build_model("tiny-bert", dict(enumerate(tags)), multi_label=True, pooling="attention", head_hidden=[32])
    model.head[-1].weight.data.normal_(0.0, 3.0)
    model.config.threshold = 0.4
    folder = tmp_path_factory.mktemp("multi") / "model"
    save_folder(model, AutoTokenizer.from_pretrained(resolve_backbone("tiny-bert")), folder)
    return folder


@pytest.fixture(scope="module")
def exported_folder(trained_run, tmp_path_factory) -> Path:
    """A copy of the trained folder with `textclf export`'s ONNX graphs in it."""
    from textclf.model.export import export_model

    folder = tmp_path_factory.mktemp("exported") / "model"
    shutil.copytree(model_folder(trained_run), folder)
    export_model(folder)
    return folder


def old_form(folder: Path, dest: Path) -> Path:
    """A folder as textclf saved them before: no auto_map, no modeling file."""
    shutil.copytree(folder, dest, ignore=shutil.ignore_patterns("modeling_textclf.py", "onnx"))
    config = json.loads((dest / "config.json").read_text())
    del config["auto_map"]
    (dest / "config.json").write_text(json.dumps(config))
    return dest


# --------------------------------------------------------------------------- A: the folder


def test_a_single_label_folder_loads_in_a_pipeline_without_textclf(trained_run):
    folder = model_folder(trained_run)
    config = json.loads((folder / "config.json").read_text())
    assert config["auto_map"]["AutoModelForSequenceClassification"] == "modeling_textclf.TextClassifier"
    assert "import textclf" not in (folder / "modeling_textclf.py").read_text()
    predictor = Predictor(folder)
    expected = predictor.predict(TEXTS)
    assert len(predictor.encode([LONG])[0]) == predictor.max_length == 512  # the long text is cut
    scores, travelled = pipeline_scores(folder, TEXTS)
    assert travelled["problem_type"] == "single_label_classification"
    assert travelled["module"].endswith("modeling_textclf")  # the folder's copy, not textclf's
    assert_same_predictions(expected, [max(s, key=s.get) for s in scores], scores)
    assert [e["label"] for e in expected[:2]] == ["positive", "negative"]  # a trained model, not noise


def test_a_multi_label_folder_carries_its_problem_type_and_threshold(multi_label_folder):
    predictor = Predictor(multi_label_folder)
    expected = predictor.predict(TEXTS)
    assert predictor.multi_label and predictor.threshold == pytest.approx(0.4)
    assert len({tuple(e["label"]) for e in expected}) > 1  # the threshold splits the labels differently
    scores, travelled = pipeline_scores(multi_label_folder, TEXTS)
    assert travelled["problem_type"] == "multi_label_classification"
    assert travelled["threshold"] == pytest.approx(0.4)
    labels = [[predictor.labels[i] for i, name in enumerate(predictor.labels) if s[name] >= travelled["threshold"]]
              for s in scores]
    assert_same_predictions(expected, labels, scores)


def test_an_old_folder_without_auto_map_still_loads_and_registers_portable(trained_run, tmp_path):
    from textclf.registry.mlflow_model import stage_folder

    folder = model_folder(trained_run)
    old = old_form(folder, tmp_path / "old")
    expected = Predictor(folder).predict(TEXTS)
    assert_same_predictions(expected, [p["label"] for p in Predictor(old).predict(TEXTS)],
                            [p["probabilities"] for p in Predictor(old).predict(TEXTS)])
    staged = stage_folder(old, tmp_path / "staged")  # what register logs: saved again in the new form
    assert "auto_map" in json.loads((staged / "config.json").read_text())
    scores, _ = pipeline_scores(staged, TEXTS)
    assert_same_predictions(expected, [max(s, key=s.get) for s in scores], scores)


# --------------------------------------------------------------------------- B: the registered version


def test_b_registered_version_is_a_pyfunc_that_predicts_like_predictor(trained_run):
    import mlflow

    uri = registered_uri(trained_run)
    local = resolve_model(uri)
    expected = Predictor(local.path).predict(TEXTS)
    model = mlflow.pyfunc.load_model(uri)
    assert model.metadata.get_input_schema().input_names() == ["text"]
    assert model.metadata.get_output_schema().input_names() == ["label", "negative", "positive"]
    for given in (pd.DataFrame({"text": TEXTS}), {"text": TEXTS}):
        frame = model.predict(given)
        assert_same_predictions(expected, frame["label"].tolist(), frame[["negative", "positive"]].to_dict("records"))
    bare = model.unwrap_python_model().predict(None, TEXTS)  # the model itself also takes a plain list
    assert bare["label"].tolist() == [e["label"] for e in expected]


def test_b_the_version_holds_code_folder_and_card_and_no_pickle(trained_run, tmp_path):
    import mlflow

    uri = registered_uri(trained_run)
    root = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(tmp_path)))
    files = {p.relative_to(root).as_posix(): p.stat().st_size for p in root.rglob("*") if p.is_file()}
    assert {"MLmodel", "pyfunc_model.py", "requirements.txt", "input_example.json",
            "artifacts/hf_model/config.json", "artifacts/hf_model/modeling_textclf.py",
            "artifacts/hf_model/README.md", "artifacts/hf_model/profile.json"} <= set(files)
    assert not [f for f in files if f.endswith((".pkl", ".pickle", ".cloudpickle"))]
    code = (root / "pyfunc_model.py").read_text()
    assert not re.search(r"^\s*(from|import) textclf", code, re.M)
    assert sorted(r.split("==")[0] for r in (root / "requirements.txt").read_text().split()) == \
        ["mlflow", "torch", "transformers"]
    print(f"\nregistered MLflow Model: {sum(files.values()) / 2**20:.2f} MiB in {len(files)} files; "
          f"weights {files['artifacts/hf_model/model.safetensors'] / 2**20:.2f} MiB")

    card = (root / "artifacts" / "hf_model" / "README.md").read_text()
    front = yaml.safe_load(card.split("---")[1])
    assert front["library_name"] == "transformers" and front["pipeline_tag"] == "text-classification"
    manifest = trained_run["end"].task["manifest"].data
    metrics = trained_run["end"].task["test_metrics"].data
    assert manifest["fingerprint"]["sha256"] in card
    assert re.search(rf"\| accuracy \| {metrics['accuracy']:.4f} \| \[{metrics['accuracy_ci_low']:.4f}, "
                     rf"{metrics['accuracy_ci_high']:.4f}\] \|", card)
    assert "| 0 | negative |" in card and "| 1 | positive |" in card and "trust_remote_code=True" in card


def test_b_mlflow_models_serve_answers_like_predictor(trained_run, tmp_path):
    uri = registered_uri(trained_run)
    expected = Predictor(resolve_model(uri).path).predict(TEXTS)
    port = free_port("127.0.0.1")
    cmd = [sys.executable, "-m", "mlflow", "models", "serve", "-m", uri, "--env-manager", "local",
           "--host", "127.0.0.1", "--port", str(port)]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    with serving(cmd, f"http://127.0.0.1:{port}/ping", tmp_path / "serve.log", env=env, timeout=300):
        for body in ({"dataframe_records": [{"text": t} for t in TEXTS]}, {"inputs": {"text": TEXTS}}):
            answer = httpx.post(f"http://127.0.0.1:{port}/invocations", json=body, timeout=120)
            assert answer.status_code == 200, answer.text
            rows = answer.json()["predictions"]
            assert_same_predictions(expected, [r["label"] for r in rows],
                                    [{k: r[k] for k in ("negative", "positive")} for r in rows])


def test_b_signature_and_int8_graph_through_a_real_mlflow_server(trained_run, exported_folder, tmp_path):
    from textclf.registry.gate import register
    from textclf.registry.tracking import start_run, tag_data

    cfg = trained_run["start"].task["cfg"].data
    manifest = trained_run["end"].task["manifest"].data
    with mlflow_server(tmp_path, str(tmp_path / "artifacts")) as url:
        cfg = {**cfg, "registry": {**cfg["registry"], "tracking_uri": url, "model_name": "travelling"}}
        run_id = start_run(cfg, trained_run.pathspec)
        tag_data(cfg, run_id, manifest)
        version = register(cfg, run_id, str(exported_folder), manifest, trained_run.pathspec)["version"]
        got = httpx.get(f"{url}/api/2.0/mlflow/model-versions/get", params={"name": "travelling", "version": version})
        assert got.json()["model_version"]["source"].endswith("/model")
        mlmodel = httpx.get(f"{url}/model-versions/get-artifact",  # what the version page shows
                            params={"name": "travelling", "version": version, "path": "MLmodel"})
        signature = yaml.safe_load(mlmodel.text)["signature"]
        assert [(c["name"], c["type"]) for c in json.loads(signature["inputs"])] == [("text", "string")]
        assert [c["name"] for c in json.loads(signature["outputs"])] == ["label", "negative", "positive"]
        listed = httpx.get(f"{url}/api/2.0/mlflow/artifacts/list",
                           params={"run_id": run_id, "path": "model/artifacts/hf_model/onnx"}).json()["files"]
        assert {Path(f["path"]).name for f in listed} >= {"model_quantized.onnx"}
        assert "model.onnx" not in {Path(f["path"]).name for f in listed}  # fp32 repeats the weights: left out
        resolved = resolve_model(f"models:/travelling/{version}", tracking_uri=url)
        int8 = Predictor(resolved.path, variant="onnx-int8").predict(TEXTS[:2])
        assert [p["label"] for p in int8] == ["positive", "negative"]


def test_b_a_version_registered_the_old_way_still_resolves_serves_and_has_lineage(trained_run, tmp_path):
    from textclf.registry.lineage import lineage
    from textclf.serve.model_holder import load

    from textclf.registry.tracking import start_run, tag_data

    old = old_form(model_folder(trained_run), tmp_path / "model")
    cfg = trained_run["start"].task["cfg"].data
    run_id = start_run(cfg, trained_run.pathspec)
    tag_data(cfg, run_id, trained_run["end"].task["manifest"].data)
    c = MlflowClient(cfg["registry"]["tracking_uri"])
    c.log_artifacts(run_id, str(old), "model")  # what register did before: the bare folder
    c.create_registered_model("old-form")
    version = c.create_model_version("old-form", f"{c.get_run(run_id).info.artifact_uri}/model", run_id=run_id).version
    uri = f"models:/old-form/{version}"
    resolved = resolve_model(uri)
    assert_same_predictions(Predictor(model_folder(trained_run)).predict(TEXTS),
                            [p["label"] for p in Predictor(resolved.path).predict(TEXTS)],
                            [p["probabilities"] for p in Predictor(resolved.path).predict(TEXTS)])
    served = load(uri, resolved)
    assert served.info.version == str(version) and served.info.labels == ["negative", "positive"]
    assert lineage(uri)["mlflow_run"] == run_id


def readme_blocks() -> list[str]:
    """The python blocks of the README's "Use the model anywhere" section."""
    text = (ROOT / "README.md").read_text()
    section = text.split("## Use the model anywhere", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, re.S)


def test_readme_use_the_model_anywhere_snippets_run_without_textclf(trained_run, exported_folder):
    blocks = readme_blocks()
    assert len(blocks) == 3
    for block in blocks:
        code = block.replace("path/to/model", str(exported_folder)).replace("models:/textclf@champion",
                                                                           registered_uri(trained_run))
        assert code != block, block  # every snippet names a model the test can substitute
        assert "positive" in without_textclf(code, exported_folder.parent), block
