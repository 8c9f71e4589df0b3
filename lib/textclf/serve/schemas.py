"""The JSON API's request and response bodies (they are also the OpenAPI spec)."""
from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictStr


class BadInput(ValueError):
    """Input the server refuses: `loc` names the field (FastAPI's style), `msg` says why."""

    def __init__(self, loc: list[str | int], msg: str):
        super().__init__(f"{'.'.join(map(str, loc))}: {msg}")
        self.loc, self.msg = loc, msg

    def detail(self) -> list[dict[str, Any]]:
        return [{"loc": ["body", *self.loc], "msg": self.msg, "type": "value_error"}]


class PredictRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    texts: StrictStr | list[StrictStr] = Field(description="one text, or a list of texts (bounded)",
                                               examples=["the film was wonderful"])


class Prediction(BaseModel):
    prediction_id: str = Field(description="quote it when sending feedback")
    label: str | list[str] = Field(description="the label; for multi-label, every label over the threshold")
    probabilities: dict[str, float]


class ModelRef(BaseModel):
    uri: str
    name: str | None
    version: str | None
    alias: str | None


class PredictResponse(BaseModel):
    model: ModelRef = Field(description="the model version that answered")
    predictions: list[Prediction]


class FeedbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: StrictStr
    labels: StrictStr | list[StrictStr] = Field(description="the correct label (or labels, for multi-label)")
    prediction_id: StrictStr | None = Field(None, description="the prediction being corrected, if any")


class FeedbackResponse(BaseModel):
    timestamp: datetime
    model_version: str | None
    prediction_id: str | None


class ModelInfo(BaseModel):
    uri: str = Field(description="what the server was asked to serve, e.g. models:/textclf@champion")
    name: str | None
    version: str | None
    alias: str | None
    run_id: str | None = Field(description="the Metaflow run that trained it")
    labels: list[str]
    multi_label: bool
    threshold: float | None
    max_length: int
    metrics: dict[str, Any]
    lineage: dict[str, Any]
    loaded_at: datetime

    def ref(self) -> ModelRef:
        return ModelRef(uri=self.uri, name=self.name, version=self.version, alias=self.alias)


class Health(BaseModel):
    status: Literal["ok"] = "ok"
    model_version: str | None


class ReloadResponse(BaseModel):
    swapped: bool
    model: ModelInfo
