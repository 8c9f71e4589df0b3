"""The serving variants of a model folder, where it keeps its ONNX graphs, and a CPU onnxruntime
session that scores a batch. Light to import: the CLI reads the variant names from here."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    import torch

ONNX_DIR = "onnx"
ONNX_FILES = {"onnx": "model.onnx", "onnx-int8": "model_quantized.onnx"}
VARIANTS = ("torch", *ONNX_FILES)  # what computes the logits: the PyTorch weights, or an ONNX graph


def onnx_path(model_dir: str | Path, variant: str) -> Path:
    return Path(model_dir, ONNX_DIR, ONNX_FILES[variant])


def onnx_logits(model_dir: str | Path, variant: str, threads: int) -> Callable[[dict[str, torch.Tensor]], torch.Tensor]:
    """A CPU onnxruntime session as a function from a padded batch to logits."""
    import onnxruntime as ort
    import torch

    path = onnx_path(model_dir, variant)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: run `textclf export {model_dir}` first")
    options = ort.SessionOptions()  # graph optimisation is already ORT_ENABLE_ALL, execution sequential
    options.intra_op_num_threads = max(1, threads)
    options.inter_op_num_threads = 1
    # Pool threads spin between ops (onnxruntime's default), measured on 2 cores, one 13-token text
    # over HTTP, 600 requests: p50 7.2-7.8 ms spinning vs 10.8-14.7 ms with `session.intra_op.allow_spinning=0`
    # on a quiet machine; 15.0-15.6 vs 14.8-15.0 ms beside two busy processes (no gain from sleeping).
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def logits(batch: dict[str, torch.Tensor]) -> torch.Tensor:
        feed = {"input_ids": batch["input_ids"].cpu().numpy(), "attention_mask": batch["attention_mask"].cpu().numpy()}
        return torch.from_numpy(session.run(["logits"], feed)[0])

    return logits
