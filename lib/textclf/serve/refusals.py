"""What a refused request gets back: a 413 or 422 that says which limit or field, and never
echoes the input (FastAPI's default 422 repeats it, megabytes of it, and a lone surrogate in it
would turn the 422 into a 500)."""
from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from textclf.config import ServeConfig
from textclf.serve.schemas import BadInput

ECHO_CHARS = 40  # a longer input is not echoed
MAX_ERRORS = 20
ERROR_BODY = {"content": {"application/json": {"schema": {
    "type": "object", "properties": {"detail": {"type": "string"}}, "required": ["detail"]}}}}


def _short(value: Any) -> Any:
    """`value` if it is small and encodable as UTF-8 JSON, else None."""
    try:
        text = json.dumps(value, ensure_ascii=False, default=str)
        text.encode("utf-8")
    except (TypeError, ValueError, UnicodeEncodeError):
        return None
    return value if len(text) <= ECHO_CHARS else None


def _clip(text: str, limit: int = ECHO_CHARS) -> str:
    text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text if len(text) <= limit else text[:limit - 1] + "…"


def quiet_errors(errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """FastAPI's 422 detail without what would echo the request: short inputs stay, long ones go;
    a key the client made up is clipped in `loc`; `ctx` keeps the limit that was broken."""
    quiet = []
    for error in errors[:MAX_ERRORS]:
        item = {"loc": [p if isinstance(p, int) else _clip(str(p)) for p in error.get("loc", ())],
                "msg": _clip(str(error.get("msg", "")), 200), "type": str(error.get("type", "value_error"))}
        if (echo := _short(error.get("input"))) is not None:
            item["input"] = echo
        if error.get("ctx"):
            item["ctx"] = {str(k): v if isinstance(v, (int, float)) else _clip(str(v)) for k, v in error["ctx"].items()}
        quiet.append(item)
    return quiet


BODY_REFUSED = {400: {"description": "the body is not UTF-8", **ERROR_BODY},
                413: {"description": "the body is over the limit (serve.max_body_bytes)", **ERROR_BODY}}


def _too_large(limit: int) -> JSONResponse:
    return JSONResponse(status_code=413, content={"detail": f"the request body is over {limit} bytes"})


class BodyLimit:
    """A 413 for a JSON API body over `limit` bytes: at once when Content-Length says so, else as
    soon as the chunks read pass it (chunked bodies have no Content-Length). Paths under `skip`
    (the demo, whose uploads Gradio limits) pass. Starlette's own limit answers in plain text
    when Content-Length is set; this one says what the limit is, the same way both times."""

    def __init__(self, app: ASGIApp, limit: int, skip: str):
        self.app, self.limit, self.skip = app, limit, skip

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(self.skip):
            return await self.app(scope, receive, send)
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > self.limit:
            return await _too_large(self.limit)(scope, receive, send)
        read = 0

        async def counted() -> Message:
            nonlocal read
            message = await receive()
            read += len(message.get("body", b""))
            if read > self.limit:  # FastAPI passes an HTTPException from here on to the handler below
                raise HTTPException(413)
            return message

        await self.app(scope, counted, send)


def install(app: FastAPI, cfg: ServeConfig, skip: str) -> None:
    """The error handlers, and the body limit on every path but those under `skip`."""
    @app.exception_handler(BadInput)
    async def bad_input(_request: Request, exc: BadInput) -> JSONResponse:
        return JSONResponse(status_code=422, content={"detail": exc.detail()})

    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse(status_code=422, content={"detail": quiet_errors(list(exc.errors()))})

    @app.exception_handler(413)
    async def too_large(_request: Request, _exc: HTTPException) -> JSONResponse:
        return _too_large(cfg.max_body_bytes)

    app.add_middleware(BodyLimit, limit=cfg.max_body_bytes, skip=skip)
