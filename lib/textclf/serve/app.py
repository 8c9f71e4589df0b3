"""`textclf serve`: one FastAPI app, the JSON API at the root and the Gradio demo under /ui.

Safe defaults: binds 127.0.0.1; HTTP basic auth on everything but /health when
TEXTCLF_SERVE_USER and TEXTCLF_SERVE_PASSWORD are set; no Gradio analytics, no share links.
"""
from __future__ import annotations

import base64
import binascii
import os
import secrets
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, RedirectResponse, Response

from textclf.config import ServeConfig
from textclf.environment import apply_defaults
from textclf.serve.model_holder import ModelHolder
from textclf.serve.schemas import (
    BadInput,
    FeedbackRequest,
    FeedbackResponse,
    Health,
    ModelInfo,
    PredictRequest,
    PredictResponse,
    ReloadResponse,
)
from textclf.serve.service import Service

UI_PATH = "/ui"
OPEN_PATHS = ("/health",)


def _credentials() -> tuple[str, str] | None:
    user, password = os.environ.get("TEXTCLF_SERVE_USER"), os.environ.get("TEXTCLF_SERVE_PASSWORD")
    return (user, password) if user and password else None


def _authorized(header: str | None, expected: tuple[str, str]) -> bool:
    scheme, _, encoded = (header or "").partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        user, _, password = base64.b64decode(encoded, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return False
    return secrets.compare_digest(user, expected[0]) & secrets.compare_digest(password, expected[1])


def create_app(cfg: ServeConfig, holder: ModelHolder | None = None) -> FastAPI:
    """The app for `cfg`; `holder` lets a caller pass a model it already loaded."""
    apply_defaults()  # before gradio is imported: no analytics, no Hub calls
    import gradio as gr

    from textclf.serve.ui import build_ui

    service = Service(holder or ModelHolder(cfg.model, cfg.poll_seconds, variant=cfg.variant), cfg)

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        service.start()
        try:
            yield
        finally:
            service.stop()

    app = FastAPI(title="textclf", summary="Text classification: predictions, feedback, model info",
                  version="1", lifespan=lifespan)
    app.state.service = service

    @app.exception_handler(BadInput)
    async def bad_input(_request: Request, exc: BadInput) -> JSONResponse:
        return JSONResponse(status_code=422, content={"detail": exc.detail()})

    expected = _credentials()
    if expected:
        @app.middleware("http")
        async def basic_auth(request: Request, call_next):
            if request.url.path in OPEN_PATHS or _authorized(request.headers.get("authorization"), expected):
                return await call_next(request)
            return Response(status_code=401, headers={"WWW-Authenticate": 'Basic realm="textclf"'})

    @app.post("/predict", response_model=PredictResponse)
    async def predict(body: PredictRequest) -> PredictResponse:
        """Label and per-class probabilities for one text or a list (at most `max_texts`)."""
        return await service.predict(body.texts)

    @app.post("/feedback", response_model=FeedbackResponse)
    def feedback(body: FeedbackRequest) -> FeedbackResponse:
        """Store the correct label(s) for a text in the append-only feedback store."""
        return service.feedback(body.text, body.labels, body.prediction_id)

    @app.get("/health", response_model=Health)
    def health() -> Health:
        return Health(model_version=service.holder.current.info.version)

    @app.get("/model", response_model=ModelInfo)
    def model() -> ModelInfo:
        """The model answering now: name, version, alias, test metrics, lineage."""
        return service.holder.current.info

    @app.post("/reload", response_model=ReloadResponse)
    async def reload() -> ReloadResponse:
        """Load what the model URI names now and swap to it if it changed (without downtime)."""
        swapped = await run_in_threadpool(service.holder.reload)
        return ReloadResponse(swapped=swapped, model=service.holder.current.info)

    @app.get("/", include_in_schema=False)
    def root() -> RedirectResponse:
        return RedirectResponse(UI_PATH + "/")

    return gr.mount_gradio_app(app, build_ui(service), path=UI_PATH, run_history=False,
                               footer_links=["api"], show_error=True)
