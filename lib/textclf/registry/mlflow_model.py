"""What a registered version is: an MLflow pyfunc (models-from-code, `pyfunc_model.py`) whose one
artifact is the model's Hugging Face folder, with a signature and an input example.

So `mlflow.pyfunc.load_model("models:/...")` and `mlflow models serve` work with torch and
transformers alone, and the version page shows its schema. No pickled object is stored, and the
pip requirements are declared (MLflow would otherwise import the model to infer them). Versions
registered before this form are the bare folder; `hf_folder` finds the folder in either.
"""
from __future__ import annotations

import json
import shutil
from importlib.metadata import version
from pathlib import Path

FOLDER = "hf_model"  # the artifact key pyfunc_model.py reads (it cannot import this module)
CODE = Path(__file__).with_name("pyfunc_model.py")
LEFT_OUT = ("model.onnx", "model.onnx.data")  # the fp32 graph repeats the weights; int8 travels


def stage_folder(folder: Path, dest: Path) -> Path:
    """A copy of the folder to register, in the portable form: an old folder (no `auto_map`) is
    saved again, which copies in the network's code and writes the tokenizer's limit."""
    shutil.copytree(folder, dest, ignore=lambda where, names: [n for n in names if n in LEFT_OUT
                                                              and Path(where).name == "onnx"])
    if "auto_map" not in json.loads((dest / "config.json").read_text()):
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        from textclf.model.folder import save_folder

        save_folder(AutoModelForSequenceClassification.from_pretrained(folder),
                    AutoTokenizer.from_pretrained(folder), dest)
    return dest


def signature(folder: Path):
    """Input: a string column `text`. Output: `label`, then one probability column per class."""
    from mlflow.models import ModelSignature
    from mlflow.types.schema import Array, ColSpec, Schema

    config = json.loads((folder / "config.json").read_text())
    labels = [config["id2label"][str(i)] for i in range(len(config["id2label"]))]
    multi = config.get("problem_type") == "multi_label_classification"
    label = ColSpec(Array("string") if multi else "string", "label")
    return ModelSignature(inputs=Schema([ColSpec("string", "text")]),
                          outputs=Schema([label, *[ColSpec("double", name) for name in labels]]))


def requirements() -> list[str]:
    """What serving needs, pinned to what made the model (torch without its local +cpu tag)."""
    return [f"{name}=={version(name).split('+')[0]}" for name in ("mlflow", "torch", "transformers")]


def save_pyfunc(folder: Path, dest: Path) -> Path:
    """The MLflow Model directory of a staged folder."""
    import mlflow
    import pandas as pd

    example = pd.DataFrame({"text": ["A text to classify.", "Another one."]})
    mlflow.pyfunc.save_model(path=str(dest), python_model=str(CODE), artifacts={FOLDER: str(folder)},
                             signature=signature(folder), input_example=example, pip_requirements=requirements())
    return dest


def hf_folder(model_dir: Path) -> Path:
    """The Hugging Face folder of a downloaded version: the pyfunc's artifact, or the directory
    itself for a version registered as the bare folder."""
    if not (model_dir / "MLmodel").exists():
        return model_dir
    from mlflow.models import Model

    artifacts = Model.load(str(model_dir / "MLmodel")).flavors["python_function"]["artifacts"]
    return model_dir / artifacts[FOLDER]["path"]
