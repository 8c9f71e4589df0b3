"""Token attributions (gradient x input on the input embeddings): why the model said so.

One function shared by the error-analysis notebook and the demo.
"""
from __future__ import annotations

import numpy as np
import torch


def token_attributions(predictor, text: str, target: int | None = None) -> dict:
    """Per-token scores for `target` (default: the predicted class), signed and L1-normalised.

    Returns the word pieces, their scores, the target label and its probability.
    """
    model = predictor.model
    enc = predictor.tokenizer(text, truncation=True, max_length=predictor.max_length, return_tensors="pt")
    enc = {k: v.to(predictor.device) for k, v in enc.items() if k in ("input_ids", "attention_mask")}
    embeddings = model.get_input_embeddings()
    inputs = embeddings(enc["input_ids"]).detach().requires_grad_(True)
    def swap(_module, _args, _output):
        return inputs  # differentiate with respect to the embeddings the model actually uses

    handle = embeddings.register_forward_hook(swap)
    try:
        with torch.enable_grad():
            logits = model(**enc).logits[0].float()
            probs = torch.sigmoid(logits) if predictor.multi_label else logits.softmax(-1)
            cls = int(probs.argmax()) if target is None else int(target)
            logits[cls].backward()
    finally:
        handle.remove()
    scores = (inputs.grad[0] * inputs[0]).sum(-1).detach().cpu().numpy()
    scores = scores / (np.abs(scores).sum() or 1.0)
    tokens = predictor.tokenizer.convert_ids_to_tokens(enc["input_ids"][0].tolist())
    return {"tokens": tokens, "scores": scores.tolist(), "label": predictor.labels[cls],
            "probability": float(probs[cls].detach())}
