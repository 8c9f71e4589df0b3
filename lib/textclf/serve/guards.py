"""Who may ask what: basic auth, the Host header, and same-origin for state-changing admin calls.

Basic auth covers everything but /health when TEXTCLF_SERVE_USER and TEXTCLF_SERVE_PASSWORD are
set. The Host check stops a DNS-rebinding page from reaching a loopback server under a name it
controls. The same-origin check stops a page on another site from making a visitor's browser
post to /reload (a form post needs no CORS preflight), with or without auth.
"""
from __future__ import annotations

import base64
import binascii
import os
import secrets
from urllib.parse import urlsplit

from fastapi import FastAPI, Request
from fastapi.responses import Response
from starlette.middleware.trustedhost import TrustedHostMiddleware

from textclf.config import ServeConfig

OPEN_PATHS = ("/health",)
LOOPBACK = ("127.0.0.1", "localhost", "::1")
LOOPBACK_HOSTS = ["127.0.0.1", "localhost", "[::1]"]  # as Host headers name them


def credentials() -> tuple[str, str] | None:
    user, password = os.environ.get("TEXTCLF_SERVE_USER"), os.environ.get("TEXTCLF_SERVE_PASSWORD")
    return (user, password) if user and password else None


def authorized(header: str | None, expected: tuple[str, str]) -> bool:
    scheme, _, encoded = (header or "").partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        user, _, password = base64.b64decode(encoded, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return False
    return secrets.compare_digest(user, expected[0]) & secrets.compare_digest(password, expected[1])


def trusted_hosts(cfg: ServeConfig) -> list[str]:
    """`serve.trusted_hosts`, or by default the loopback names for a loopback bind and any host
    otherwise (a server bound to 0.0.0.0 is reached by names only its deployment knows)."""
    if cfg.trusted_hosts:
        return list(cfg.trusted_hosts)
    return LOOPBACK_HOSTS if cfg.host in LOOPBACK else ["*"]


def cross_site(request: Request) -> str | None:
    """Why `request` comes from another site, or None. Browsers send Sec-Fetch-Site and Origin
    with every POST; clients such as curl send neither and are let through."""
    site = request.headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        return f"Sec-Fetch-Site is {site[:20]!r}"
    origin = request.headers.get("origin")
    if origin is not None and urlsplit(origin).netloc.lower() != request.headers.get("host", "").lower():
        return "the Origin is not this server"
    return None


def guard(app: FastAPI, cfg: ServeConfig) -> None:
    """Basic auth (when configured) inside the Host check: a bad Host is refused before anything."""
    expected = credentials()
    if expected:
        @app.middleware("http")
        async def basic_auth(request: Request, call_next):
            if request.url.path in OPEN_PATHS or authorized(request.headers.get("authorization"), expected):
                return await call_next(request)
            return Response(status_code=401, headers={"WWW-Authenticate": 'Basic realm="textclf"'})

    app.add_middleware(TrustedHostMiddleware, allowed_hosts=trusted_hosts(cfg))
