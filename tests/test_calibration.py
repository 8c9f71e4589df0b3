"""Temperature scaling: fitted on validation logits it softens an over-confident model (lower ECE)
without changing a single prediction, and every scorer of the folder applies the stored T."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from conftest import toy_rows
from textclf.evaluation.calibration import calibrate, fit_temperature, log_probs, reliability, uncalibrated
from textclf.model.padding import pad_batch
from textclf.model.predictor import Predictor


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    return np.exp(log_probs(logits, temperature))


def synthetic(n: int, scale: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Labels drawn from softmax(z): z is calibrated by construction, `scale * z` is not."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0.0, 1.5, size=(n, 3))
    gold = np.array([rng.choice(3, p=p) for p in softmax(z)])
    return scale * z, gold


def test_an_over_confident_model_gets_t_above_one_and_a_lower_ece():
    logits, gold = synthetic(4000, scale=5.0)
    val, test = slice(0, 2000), slice(2000, None)
    t = fit_temperature(logits[val], gold[val])
    assert 4.0 < t < 6.0  # it finds the factor the logits were inflated by
    before = reliability(softmax(logits[test]), gold[test])["ece"]
    after = reliability(softmax(logits[test], t), gold[test])["ece"]
    print(f"\nsynthetic x5: T={t:.3f}, test ECE {before:.4f} -> {after:.4f}")
    assert before > 0.15 and after < before / 4


def test_an_under_confident_model_gets_t_below_one():
    logits, gold = synthetic(2000, scale=0.3)
    assert fit_temperature(logits, gold) < 0.5


def test_a_validation_split_without_a_mistake_leaves_t_at_one():
    """The NLL of an all-right split falls toward T = 0 with no minimum: no certainty is fitted."""
    logits, _ = synthetic(300, scale=2.0)
    assert fit_temperature(logits, logits.argmax(1)) == 1.0


def test_scaling_keeps_every_prediction_and_can_be_undone():
    logits, gold = synthetic(500, scale=5.0)
    record = calibrate(logits, gold)
    t = record["temperature"]
    assert record["val_ece"] < record["val_ece_uncalibrated"]
    np.testing.assert_array_equal(softmax(logits, t).argmax(1), logits.argmax(1))
    scaled = softmax(logits, t).astype(np.float32)  # as Predictor returns them
    np.testing.assert_allclose(uncalibrated(scaled, t), softmax(logits), atol=1e-5)


# --------------------------------------------------------------------------- a tiny model


def raw_logits(folder, texts: list[str]) -> np.ndarray:
    """The network's logits at the folder's temperature, straight from the PyTorch model."""
    predictor = Predictor(folder, device="cpu")
    with torch.inference_mode():
        return predictor.model(**pad_batch(predictor.encode(texts), predictor.pad_id)).logits.numpy()


@pytest.fixture(scope="module")
def over_confident(tmp_path_factory):
    """A tiny BERT trained for 30 steps on the toy set (about 93 % right on the test rows), then its
    last layer scaled by 50: right as often as before, far surer. Saved at T = 1 (the key left out,
    as in folders saved before calibration), with the texts and labels of a validation and a test set."""
    from transformers import AutoTokenizer

    from textclf.model.backbones import resolve_backbone
    from textclf.model.folder import save_folder
    from textclf.model.network import build_model

    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(resolve_backbone("tiny-bert"))
    model = build_model("tiny-bert", {0: "negative", 1: "positive"}, head_dropout=0.0)
    rows = toy_rows(560, seed=11)
    texts, gold = [t for t, _ in rows], np.array([int(label == "positive") for _, label in rows])
    ids = tokenizer(texts[:160], truncation=True)["input_ids"]
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    for start in [s for _ in range(3) for s in range(0, 160, 16)]:  # three short epochs
        batch = pad_batch([np.asarray(x) for x in ids[start:start + 16]], tokenizer.pad_token_id)
        loss = torch.nn.functional.cross_entropy(model(**batch).logits, torch.as_tensor(gold[start:start + 16]))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        model.head[-1].weight.mul_(50.0)
        model.head[-1].bias.mul_(50.0)
    folder = tmp_path_factory.mktemp("calibration") / "uncalibrated"
    save_folder(model.eval(), tokenizer, folder)
    config = json.loads((folder / "config.json").read_text())
    del config["calibration_temperature"]
    (folder / "config.json").write_text(json.dumps(config))
    return model, folder, (texts[160:360], gold[160:360]), (texts[360:], gold[360:])


def test_temperature_scaling_lowers_ece_on_an_over_confident_tiny_model(over_confident, tmp_path):
    """The acceptance test: T fitted on validation logits lowers the test ECE, and Predictor (PyTorch
    and ONNX) and a transformers pipeline then all return softmax(logits / T), argmax unchanged."""
    from transformers import pipeline

    from textclf.model.export import export_model
    from textclf.model.folder import save_folder

    model, old, (val_texts, val_gold), (test_texts, test_gold) = over_confident
    assert Predictor(old).temperature == 1.0  # a folder without the key loads unscaled
    val_logits, test_logits = raw_logits(old, val_texts), raw_logits(old, test_texts)
    accuracy = float((test_logits.argmax(1) == test_gold).mean())
    record = calibrate(val_logits, val_gold)
    t = record["temperature"]
    before = reliability(softmax(test_logits), test_gold)["ece"]

    model.config.calibration_temperature = t
    folder = tmp_path / "calibrated"
    save_folder(model, Predictor(old).tokenizer, folder)
    export_model(folder)
    expected = softmax(test_logits, t)
    for variant in ("torch", "onnx"):
        predictor = Predictor(folder, variant=variant)
        assert predictor.temperature == pytest.approx(t)
        probs = predictor.predict_proba(test_texts)
        np.testing.assert_allclose(probs, expected, atol=1e-5 if variant == "torch" else 1e-4)
        np.testing.assert_array_equal(probs.argmax(1), test_logits.argmax(1))
    after = reliability(Predictor(folder).predict_proba(test_texts), test_gold)["ece"]
    print(f"\ntiny model (test accuracy {accuracy:.3f}): T={t:.3f}, val ECE {record['val_ece_uncalibrated']:.4f} -> "
          f"{record['val_ece']:.4f}, test ECE {before:.4f} -> {after:.4f}")
    assert t > 2.0 and record["val_ece"] < record["val_ece_uncalibrated"]
    assert before > 0.04 and after < before / 2

    classify = pipeline("text-classification", model=str(folder), trust_remote_code=True, top_k=None)
    scores = [{r["label"]: r["score"] for r in row} for row in classify(test_texts[:8])]
    np.testing.assert_allclose([[s["negative"], s["positive"]] for s in scores], expected[:8], atol=1e-5)
