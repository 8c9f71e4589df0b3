"""A saved model folder: how it is written, and the one token limit everything reads from it.

A folder is a Hugging Face folder anyone can load: weights, config (labels, problem type,
threshold, `auto_map`), the copied `modeling_textclf.py`, and a tokenizer whose
`model_max_length` is the limit `Predictor` truncates at, so `pipeline(..., truncation=True)`
cuts long texts where textclf does.
"""
from __future__ import annotations

from pathlib import Path

from transformers import PretrainedConfig, PreTrainedModel, PreTrainedTokenizerBase

import textclf.model.network  # noqa: F401  (registers the classes: save_pretrained writes auto_map, copies the module)


def max_length(config: PretrainedConfig, tokenizer: PreTrainedTokenizerBase) -> int:
    """The tokens a model reads: the tokenizer's limit, never beyond the backbone's positions."""
    positions = getattr(getattr(config, "backbone_config", config), "max_position_embeddings", 512)
    return min(int(tokenizer.model_max_length or positions), positions)


def save_folder(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, dest: str | Path) -> None:
    """`save_pretrained` of both, with the tokenizer's limit written down as the model's."""
    tokenizer.model_max_length = max_length(model.config, tokenizer)
    model.save_pretrained(dest)
    tokenizer.save_pretrained(dest)
