"""The classification model, built for training, and its place among the Auto classes.

The network itself lives in `modeling_textclf` (torch and transformers only), which
`save_pretrained` copies into every folder with an `auto_map`: the folder then loads anywhere
with `trust_remote_code=True`. Importing this module also registers the `textclf` model type
locally, so textclf loads any folder, old ones without `auto_map` included, without remote code.
"""
from __future__ import annotations

from transformers import AutoConfig, AutoModel, AutoModelForSequenceClassification

from textclf.model.backbones import resolve_backbone
from textclf.model.modeling_textclf import TextClassifier, TextClassifierConfig

AutoConfig.register("textclf", TextClassifierConfig)
AutoModelForSequenceClassification.register(TextClassifierConfig, TextClassifier)
TextClassifierConfig.register_for_auto_class()  # save_pretrained writes auto_map and copies the module
TextClassifier.register_for_auto_class("AutoModelForSequenceClassification")


def build_model(
    backbone: str,
    id2label: dict[int, str],
    *,
    pooling: str = "mean",
    head_hidden: list[int] | None = None,
    head_dropout: float = 0.1,
    head_layernorm: bool = False,
    multi_label: bool = False,
) -> TextClassifier:
    """A classifier on top of pretrained backbone weights (random head)."""
    source = resolve_backbone(backbone)
    pretrained = AutoModel.from_pretrained(source)
    config = TextClassifierConfig(
        backbone_config=pretrained.config,
        pooling=pooling,
        head_hidden=head_hidden,
        head_dropout=head_dropout,
        head_layernorm=head_layernorm,
        multi_label=multi_label,
        id2label={int(i): l for i, l in id2label.items()},
        label2id={l: int(i) for i, l in id2label.items()},
        problem_type="multi_label_classification" if multi_label else "single_label_classification",
    )
    model = TextClassifier(config)
    missing, unexpected = model.backbone.load_state_dict(pretrained.state_dict(), strict=False)
    unexpected = [k for k in unexpected if not k.startswith("pooler.")]
    if missing or unexpected:
        raise RuntimeError(f"backbone weights did not fit: missing={missing} unexpected={unexpected}")
    return model
