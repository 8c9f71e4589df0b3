"""`textclf serve`: one FastAPI app, the JSON API at the root and the Gradio demo under /ui.

Safe defaults: binds 127.0.0.1 and answers only loopback Host names there; HTTP basic auth on
everything but /health when TEXTCLF_SERVE_USER and TEXTCLF_SERVE_PASSWORD are set (`guards`);
bounded requests whose limits the OpenAPI schema states; errors that never echo the input;
/docs and /redoc served from the package (no CDN); no Gradio analytics, no share links.
"""
# No `from __future__ import annotations`: the request models are built per app (their limits come
# from the config), and FastAPI must see the classes themselves, not names it cannot look up.
from contextlib import asynccontextmanager

from fastapi import FastAPI, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse
from fastapi_offline import FastAPIOffline

from textclf.config import ServeConfig
from textclf.environment import apply_defaults
from textclf.serve.guards import cross_site, guard
from textclf.serve.model_holder import ModelHolder
from textclf.serve.refusals import BODY_REFUSED, ERROR_BODY, install
from textclf.serve.schemas import (
    FeedbackResponse,
    Health,
    ModelInfo,
    PredictResponse,
    ReloadResponse,
    request_models,
)
from textclf.serve.service import Service

UI_PATH = "/ui"


def create_app(cfg: ServeConfig, holder: ModelHolder | None = None) -> FastAPI:
    """The app for `cfg`; `holder` lets a caller pass a model it already loaded."""
    apply_defaults()  # before gradio is imported: no analytics, no Hub calls
    import gradio as gr

    from textclf.serve.ui import build_ui

    service = Service(holder or ModelHolder(cfg.model, cfg.poll_seconds, variant=cfg.variant), cfg)
    PredictRequest, FeedbackRequest = request_models(cfg)

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        service.start()
        try:
            yield
        finally:
            service.stop()

    app = FastAPIOffline(title="textclf", summary="Text classification: predictions, feedback, model info",
                         version="1", lifespan=lifespan)
    app.state.service = service
    install(app, cfg, skip=UI_PATH)
    guard(app, cfg)  # added last: outermost, so a bad Host or missing auth is refused before anything

    @app.post("/predict", response_model=PredictResponse, responses=BODY_REFUSED)
    async def predict(body: PredictRequest) -> PredictResponse:
        """Label and per-class probabilities for one text or a list (the limits are in the schema)."""
        return await service.predict(body.texts)

    @app.post("/feedback", response_model=FeedbackResponse, responses=BODY_REFUSED)
    def feedback(body: FeedbackRequest) -> FeedbackResponse:
        """Store the correct label(s) for a text in the append-only feedback store."""
        return service.feedback(body.text, body.labels, body.prediction_id)

    @app.get("/health", response_model=Health)
    def health() -> Health:
        """"degraded" with the reason while following the model URI fails (the old model answers)."""
        problem = service.holder.problem
        return Health(status="degraded" if problem else "ok", reason=problem,
                      model_version=service.holder.current.info.version)

    @app.get("/model", response_model=ModelInfo)
    def model() -> ModelInfo:
        """The model answering now: name, version, alias, test metrics, lineage."""
        return service.holder.current.info

    @app.post("/reload", response_model=ReloadResponse, responses={
        403: {"description": "posted from another site", **ERROR_BODY},
        503: {"description": "what the model URI names cannot be loaded; the old model still answers", **ERROR_BODY}})
    async def reload(request: Request) -> ReloadResponse:
        """Load what the model URI names now and swap to it if it changed (without downtime)."""
        if refused := cross_site(request):
            raise HTTPException(403, f"/reload refuses cross-site requests: {refused}")
        try:
            swapped = await run_in_threadpool(service.holder.reload)
        except Exception:
            raise HTTPException(503, service.holder.problem) from None
        return ReloadResponse(swapped=swapped, model=service.holder.current.info)

    @app.get("/", include_in_schema=False)
    def root() -> RedirectResponse:
        return RedirectResponse(UI_PATH + "/")

    return gr.mount_gradio_app(app, build_ui(service), path=UI_PATH, run_history=False, footer_links=["api"],
                               show_error=True, max_file_size=cfg.max_upload_bytes)
