"""The model card: `README.md` in the registered folder, in the Hub's form, so whoever finds the
folder (on the Hub, in an MLflow download, on a disk) learns what it is, what data made it, how
good it was on the test split (and, for the registry gate, on the pinned golden set when one is
configured) and how to load it without textclf."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

CI = ("_ci_low", "_ci_high")


def _metric_rows(metrics: dict[str, float]) -> list[str]:
    """`| metric | value | 95 % interval |`, the interval where the evaluation bootstrapped one."""
    rows = []
    for name, value in metrics.items():
        if name.endswith(CI):
            continue
        low, high = (metrics.get(f"{name}{end}") for end in CI)
        interval = f"[{low:.4f}, {high:.4f}]" if low is not None and high is not None else ""
        shown = f"{int(value)}" if name == "n" else f"{value:.4f}"
        rows.append(f"| {name} | {shown} | {interval} |")
    return rows


def _gate_rows(gate: dict[str, Any], test_rows: int) -> list[str]:
    """The registry gate's scores, one row per set it scored: this model's and the champion's."""
    sets = [("", f"test split ({test_rows} rows; moves with the data version)")]
    if gate.get("golden"):
        sets.append(("golden_", f"golden set `{gate['golden']}` ({gate['golden_rows']} pinned rows)"))
    shown = [f"| {where} | {gate[f'{key}candidate']:.4f} | "
             + ("" if gate[f"{key}champion"] is None else f"{gate[f'{key}champion']:.4f}") + " |"
             for key, where in sets]
    champion = f"champion v{gate['champion_version']}" if gate.get("champion_version") else "champion (none yet)"
    return [f"| rows | {gate['metric']}: this model | {champion} |", "| --- | --- | --- |", *shown, "",
            f"Registered as `{gate['decision']}`: {gate['reason']}."]


def model_card(folder: Path, name: str, manifest: dict[str, Any], metrics: dict[str, float],
               origin: dict[str, str], gate: dict[str, Any]) -> str:
    """The card's text. `metrics` are the test metrics (`accuracy`, `accuracy_ci_low`, ...);
    `origin` the run's tags (`backbone`, `data.dvc_rev`, `git_commit`, MLflow and Metaflow runs);
    `gate` what the registry gate scored and decided (`registry.gate._decision`)."""
    config = json.loads((folder / "config.json").read_text())
    limit = json.loads((folder / "tokenizer_config.json").read_text()).get("model_max_length")
    labels = [config["id2label"][str(i)] for i in range(len(config["id2label"]))]
    multi = config.get("problem_type") == "multi_label_classification"
    kind = "multi-label" if multi else "single-label"
    test_rows = manifest.get("splits", {}).get("test", {}).get("classes", {})
    fingerprint = manifest["fingerprint"]
    front = {"library_name": "transformers", "pipeline_tag": "text-classification",
             "tags": ["textclf", "text-classification", f"{kind}-classification", "custom_code"]}
    scaled = config.get("calibration_temperature", 1.0) != 1.0  # temperature scaling fitted on val (single-label)
    softmax = (f"softmax of the logits over the temperature {config['calibration_temperature']:.3g} fitted on "
               "the validation split (`calibration_temperature` in config.json; the network's output is already "
               "divided by it)" if scaled else "softmax")
    apply = ("sigmoid per class; a label applies at or over the threshold "
             f"{config.get('threshold', 0.5)} (`threshold` in config.json)" if multi
             else f"{softmax}; the label is the argmax")
    sources = [f"- `{uri}`: sha256 `{e.get('sha256')}`" + (f", DVC rev `{e['dvc_rev']}`" if "dvc_rev" in e else "")
               for uri, e in fingerprint["sources"].items()]
    splits = ", ".join(f"{k} {v['rows']}" for k, v in manifest.get("splits", {}).items())
    return "\n".join([
        "---", yaml.safe_dump(front, sort_keys=False).strip(), "---", "",
        f"# {name}", "",
        f"A {kind} text classifier over {len(labels)} labels, fine-tuned by textclf on the "
        f"`{origin.get('backbone', '?')}` backbone ({config.get('pooling', 'mean')} pooling).", "",
        "## Labels", "", "| id | label | test rows |", "| --- | --- | --- |",
        *[f"| {i} | {label} | {test_rows.get(label, '')} |" for i, label in enumerate(labels)], "",
        f"Probabilities: {apply}.", "",
        "## Data", "",
        f"- fingerprint (sha256 of every source): `{fingerprint['sha256']}`",
        *([f"- DVC revision: `{origin['data.dvc_rev']}`"] if origin.get("data.dvc_rev") else []),
        *sources, f"- rows after cleaning and deduplication: {splits}", "",
        "## Test metrics", "", "| metric | value | 95 % interval |", "| --- | --- | --- |",
        *_metric_rows(metrics), "",
        "## Registry gate", "", *_gate_rows(gate, manifest.get("splits", {}).get("test", {}).get("rows", 0)), "",
        "## Intended use", "",
        f"Sorting texts like the training data into these {len(labels)} labels, with a person able to "
        "check the cases that matter. The test metrics hold for text from the same source and period.", "",
        "## Limitations", "",
        f"- Texts are cut at {limit} tokens: the end of a longer text is not read.",
        "- It knows only the labels above; any text gets one of them" + (" or none." if multi else "."),
        "- Nothing was measured on other domains, languages or writing styles, nor for fairness across groups.",
        "- Probabilities are the model's scores" + (", temperature-scaled on the validation split" if scaled else "")
        + (", not calibrated frequencies." if multi else "; the test report's ECE says how far they are from frequencies."),
        "",
        "## Use it without textclf", "",
        "```python", "from transformers import pipeline", "",
        'classify = pipeline("text-classification", model="path/to/this/folder", trust_remote_code=True, top_k=None)',
        'print(classify(["a text to classify"], truncation=True))  # truncation=True: cut where textclf cuts',
        "```", "",
        "`trust_remote_code=True` runs `modeling_textclf.py` from this folder (the network: torch and "
        "transformers only). The registered MLflow model wraps this folder:", "",
        "```python", "import mlflow", "import pandas as pd", "",
        f'model = mlflow.pyfunc.load_model("models:/{name}@champion")',
        'print(model.predict(pd.DataFrame({"text": ["a text to classify"]})))  # label + one column per class',
        "```", "",
        "## Provenance", "",
        *[f"- {key}: `{origin[key]}`" for key in ("mlflow_run", "metaflow.pathspec", "git_commit") if origin.get(key)],
        ""])


def write_model_card(folder: Path, name: str, manifest: dict[str, Any], metrics: dict[str, float],
                     origin: dict[str, str], gate: dict[str, Any]) -> Path:
    """`README.md` in `folder`."""
    path = folder / "README.md"
    path.write_text(model_card(folder, name, manifest, metrics, origin, gate))
    return path
