"""ONNX export: a trained tiny model, exported through the CLI, scores like PyTorch in every variant."""
from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from conftest import SANDBOX, TINY, toy_rows, write_csv
from textclf.cli import main
from textclf.config import compose, to_dict
from textclf.model.onnx_runtime import onnx_path
from textclf.model.predictor import Predictor
from textclf.data.preprocess import preprocess
from textclf.training.loop import fit


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A tiny model trained on the toy set (confident predictions), then `textclf export`."""
    tmp = tmp_path_factory.mktemp("export")
    src = write_csv(SANDBOX / "export-unit" / "toy.csv", toy_rows(240, seed=5))
    cfg = compose(f"data.source={src} {TINY} data.dask.scheduler_address=sync train.threads_per_proc=1")
    manifest = preprocess(cfg, str(tmp / "shards"))
    fit({"config": to_dict(cfg), "manifest": manifest, "output": str(tmp / "model"),
         "checkpoint_dir": str(tmp / "ckpt"), "log_dir": str(tmp / "logs")})
    test_shard = manifest["shards"]["test"]
    assert main(["export", str(tmp / "model"), "--test-shard", test_shard, "--batch-size", "8"]) == 0
    return tmp / "model", test_shard


def test_export_writes_both_graphs_and_parity_beside_the_model(exported):
    model_dir, test_shard = exported
    record = json.loads((model_dir / "onnx" / "parity.json").read_text())
    assert onnx_path(model_dir, "onnx").is_file() and onnx_path(model_dir, "onnx-int8").is_file()
    assert record["files"]["onnx-int8"]["megabytes"] < record["files"]["onnx"]["megabytes"]
    parity = record["parity"]
    assert parity["test_shard"] == test_shard and parity["n"] == pq.read_table(test_shard, columns=["label"]).num_rows
    assert parity["torch"]["accuracy"] > 0.8  # the toy set is learnable: parity is measured on a real model
    assert parity["onnx"]["agreement"] == 1.0 and parity["onnx"]["max_abs_prob_diff"] < 1e-4
    assert parity["onnx-int8"]["agreement"] >= 0.95
    assert abs(parity["onnx-int8"]["accuracy"] - parity["torch"]["accuracy"]) <= 0.05


def test_onnx_variants_predict_like_torch_on_padded_batches(exported):
    model_dir, test_shard = exported
    texts = pq.read_table(test_shard, columns=["text"])["text"].to_pylist()
    texts += ["great", "the film was " + "really " * 30 + "awful"]  # very short and long: heavy padding
    torch_probs = Predictor(model_dir, batch_size=8).predict_proba(texts)
    fp32 = Predictor(model_dir, batch_size=8, variant="onnx")
    int8 = Predictor(model_dir, batch_size=8, variant="onnx-int8")
    np.testing.assert_allclose(fp32.predict_proba(texts), torch_probs, atol=1e-4)
    assert np.abs(int8.predict_proba(texts) - torch_probs).max() < 0.15
    assert [p["label"] for p in int8.predict(texts[:5])] == [p["label"] for p in fp32.predict(texts[:5])]
    assert fp32.predict([]) == []


def test_training_records_its_temperature_in_the_folder_the_graphs_are_exported_from(exported):
    """T is fitted on val unless val has no mistake (then the NLL has no minimum and T stays 1);
    the ONNX graphs are exported from the folder, so they divide by the same T as PyTorch."""
    model_dir, _ = exported
    record = json.loads((model_dir / "training.json").read_text())
    config = json.loads((model_dir / "config.json").read_text())
    print(f"\ntoy model: val accuracy {record['best_val']:.3f}, T={record['temperature']:.3f}, "
          f"val ECE {record['val_ece_uncalibrated']:.4f} -> {record['val_ece']:.4f}")
    assert config["calibration_temperature"] == record["temperature"] > 0
    assert (record["temperature"] == 1.0) == (record["best_val"] == 1.0)
    assert 0 <= record["val_ece"] <= 1 and 0 <= record["val_ece_uncalibrated"] <= 1
    assert Predictor(model_dir, variant="onnx").temperature == record["temperature"]


def test_missing_or_unknown_variant_fails_clearly(exported, tmp_path):
    model_dir, _ = exported
    with pytest.raises(ValueError, match="variant must be one of"):
        Predictor(model_dir, variant="tensorrt")
    bare = tmp_path / "bare"
    bare.mkdir()
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json"):
        (bare / name).write_bytes((model_dir / name).read_bytes())
    with pytest.raises(FileNotFoundError, match="textclf export"):
        Predictor(bare, variant="onnx-int8")


def test_export_of_a_folder_without_a_model_is_a_clear_error(tmp_path, capsys):
    assert main(["export", str(tmp_path)]) == 2
    assert "is not a model folder" in capsys.readouterr().err


def test_serving_an_onnx_variant_exports_a_version_that_lacks_it(exported, tmp_path):
    """A champion fresh from TrainFlow has no ONNX graphs; `serve.variant=onnx-int8` still serves it."""
    import shutil

    from textclf.serve.model_holder import ModelHolder

    model_dir, test_shard = exported
    fresh = tmp_path / "fresh"
    shutil.copytree(model_dir, fresh, ignore=shutil.ignore_patterns("onnx"))
    holder = ModelHolder(str(fresh), poll_seconds=0, variant="onnx-int8")
    assert onnx_path(fresh, "onnx-int8").is_file() and holder.current.predictor.variant == "onnx-int8"
    texts = pq.read_table(test_shard, columns=["text"])["text"].to_pylist()[:16]
    served = [p["label"] for p in holder.current.predictor.predict(texts)]
    assert served == [p["label"] for p in Predictor(model_dir, variant="onnx-int8").predict(texts)]
