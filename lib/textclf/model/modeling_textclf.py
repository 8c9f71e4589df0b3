"""The textclf network: a pretrained backbone, a pooling, and a small head.

Self-contained on purpose: it imports only torch and transformers, because `save_pretrained`
copies this file into every model folder (transformers' custom-code convention, `auto_map` in
config.json). That is what lets `AutoModelForSequenceClassification.from_pretrained(folder,
trust_remote_code=True)` and `pipeline(..., trust_remote_code=True)` load a folder where textclf
is not installed. Keep it that way: an import of textclf here would break every copied folder.
"""
from __future__ import annotations

import torch
from torch import nn
from transformers import AutoConfig, AutoModel, PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import SequenceClassifierOutput


class TextClassifierConfig(PretrainedConfig):
    model_type = "textclf"
    sub_configs = {"backbone_config": AutoConfig}

    def __init__(
        self,
        backbone_config: PretrainedConfig | dict | None = None,
        pooling: str = "mean",
        head_hidden: list[int] | None = None,
        head_dropout: float = 0.1,
        head_layernorm: bool = False,
        multi_label: bool = False,
        threshold: float = 0.5,
        calibration_temperature: float = 1.0,
        **kwargs,
    ):
        if isinstance(backbone_config, dict):
            backbone_config = AutoConfig.for_model(**backbone_config)
        self.backbone_config = backbone_config
        self.pooling = pooling
        self.head_hidden = list(head_hidden or [])
        self.head_dropout = head_dropout
        self.head_layernorm = head_layernorm
        self.multi_label = multi_label
        self.threshold = threshold
        self.calibration_temperature = calibration_temperature  # the logits are divided by it (see `forward`)
        super().__init__(**kwargs)


class AttentionPooling(nn.Module):
    """A learned query scores each token; padding is masked out."""

    def __init__(self, hidden: int):
        super().__init__()
        self.score = nn.Linear(hidden, 1)

    def forward(self, states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        scores = self.score(states).squeeze(-1).masked_fill(mask == 0, torch.finfo(states.dtype).min)
        weights = scores.softmax(-1).unsqueeze(-1)
        return (weights * states).sum(1)


def pool(states: torch.Tensor, mask: torch.Tensor, how: str, attention: nn.Module | None) -> torch.Tensor:
    if how == "cls":
        return states[:, 0]
    if how == "mean":
        m = mask.unsqueeze(-1).to(states.dtype)
        return (states * m).sum(1) / m.sum(1).clamp(min=1.0)
    if how == "attention":
        return attention(states, mask)
    raise ValueError(f"model.pooling must be cls, mean or attention, not {how!r}")


class TextClassifier(PreTrainedModel):
    config_class = TextClassifierConfig
    base_model_prefix = "backbone"
    supports_gradient_checkpointing = True
    _supports_sdpa = True

    def __init__(self, config: TextClassifierConfig):
        super().__init__(config)
        self.backbone = AutoModel.from_config(config.backbone_config)
        if getattr(self.backbone, "pooler", None) is not None:
            self.backbone.pooler = None  # unused: our pooling sits in the head; DDP needs no stray params
        hidden = config.backbone_config.hidden_size
        self.attention_pool = AttentionPooling(hidden) if config.pooling == "attention" else None
        layers: list[nn.Module] = []
        if config.head_layernorm:
            layers.append(nn.LayerNorm(hidden))
        width = hidden
        for h in config.head_hidden:
            layers += [nn.Dropout(config.head_dropout), nn.Linear(width, h), nn.GELU()]
            width = h
        layers += [nn.Dropout(config.head_dropout), nn.Linear(width, config.num_labels)]
        self.head = nn.Sequential(*layers)
        self.post_init()

    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            module.weight.data.normal_(0.0, 0.02)
            if module.bias is not None:
                module.bias.data.zero_()
        elif isinstance(module, nn.LayerNorm):
            module.weight.data.fill_(1.0)
            module.bias.data.zero_()

    def embed(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """The pooled sentence vector the head sees (drift monitoring compares these)."""
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        states = self.backbone(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return pool(states, attention_mask, self.config.pooling, self.attention_pool)

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, labels=None, **_):
        """Logits divided by `config.calibration_temperature`: 1 while training, then fitted on validation
        (temperature scaling) and saved in config.json. Applied here, every scorer of the folder
        (textclf's Predictor, its ONNX graphs, a transformers pipeline, the MLflow pyfunc) turns the
        same calibrated logits into probabilities; dividing by T > 0 leaves the argmax as it was."""
        logits = self.head(self.embed(input_ids, attention_mask))
        return SequenceClassifierOutput(logits=logits / self.config.calibration_temperature)
