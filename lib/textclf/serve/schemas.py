"""The JSON API's request and response bodies (they are also the OpenAPI spec)."""
from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, StrictStr

from textclf.config import ServeConfig

PREDICTION_ID = r"^[0-9a-f]{32}$"  # as /predict makes them (monitoring.predictions.new_prediction_id)


class BadInput(ValueError):
    """Input the server refuses: `loc` names the field (FastAPI's style), `msg` says why."""

    def __init__(self, loc: list[str | int], msg: str):
        super().__init__(f"{'.'.join(map(str, loc))}: {msg}")
        self.loc, self.msg = loc, msg

    def detail(self) -> list[dict[str, Any]]:
        return [{"loc": ["body", *self.loc], "msg": self.msg, "type": "value_error"}]


def _no_nul(text: str) -> str:
    if "\x00" in text:  # valid JSON ("\u0000"), but no text anyone meant; CSVs and logs choke on it
        raise ValueError("contains a NUL character")
    return text


def _listed(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


def _one_or_many(item: Any, max_items: int, what: str) -> Any:
    """One string or a bounded list of them, validated as a list so an error names the index
    (`texts.3`, not the union member pydantic would put in the path); the schema shows both."""
    many = Annotated[list[item], Field(min_length=1, max_length=max_items)]
    return Annotated[many, BeforeValidator(_listed, json_schema_input_type=item | many), Field(description=what)]


def request_models(cfg: ServeConfig) -> tuple[type[BaseModel], type[BaseModel]]:
    """The request bodies with this server's limits, built when the app is, so that /openapi.json
    states the limits the server enforces (maxItems, maxLength, the prediction id's pattern)."""
    text_type = Annotated[StrictStr, Field(min_length=1, max_length=cfg.max_chars), AfterValidator(_no_nul)]
    label_type = Annotated[StrictStr, Field(min_length=1, max_length=cfg.max_label_chars)]

    class PredictRequest(BaseModel):
        model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"texts": "a wonderful film"}]})
        texts: _one_or_many(text_type, cfg.max_texts, "one text, or a list of texts")  # type: ignore[valid-type]

    class FeedbackRequest(BaseModel):
        model_config = ConfigDict(extra="forbid")
        text: text_type  # type: ignore[valid-type]
        labels: _one_or_many(label_type, cfg.max_labels, "the correct label (or labels, for multi-label)")  # type: ignore[valid-type]
        prediction_id: Annotated[StrictStr, Field(pattern=PREDICTION_ID)] | None = Field(
            None, description="the prediction this confirms or corrects, if any (from /predict)")

    return PredictRequest, FeedbackRequest


class Prediction(BaseModel):
    prediction_id: str = Field(description="quote it when sending feedback", pattern=PREDICTION_ID)
    label: str | list[str] = Field(description="the label; for multi-label, every label over the threshold")
    probabilities: dict[str, float]
    review_requested: bool = Field(False, description="drawn at random for review: a confirmation or correction "
                                   "of this prediction is an unbiased sample of the model's quality")


class ModelRef(BaseModel):
    uri: str
    name: str | None
    version: str | None
    alias: str | None


class PredictResponse(BaseModel):
    model: ModelRef = Field(description="the model version that answered")
    predictions: list[Prediction]


class FeedbackResponse(BaseModel):
    timestamp: datetime
    kind: Literal["confirmation", "correction", "label"] = Field(
        description="confirmation or correction of a logged prediction of the same text; otherwise a plain label")
    linked: bool = Field(description="tied to a logged prediction of the same text")
    note: str | None = Field(None, description="why the label was not tied to the prediction")
    model_version: str | None = Field(description="the version that made the prediction, when linked")
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
    status: Literal["ok", "degraded"] = Field("ok", description="degraded: the last attempt to follow the "
                                                               "model URI failed; the old model still answers")
    model_version: str | None
    reason: str | None = Field(None, description="why it is degraded")


class ReloadResponse(BaseModel):
    swapped: bool
    model: ModelInfo
