"""The dashboard: server-rendered pages (Jinja2 + htmx) for every administration flow.

Each route declares its one permission with ``web.auth.require`` like the
admin API's, so the permission matrix walks the pages too, and pages show
only the actions the caller's roles allow (``stores/permissions.py``).
Pages call the domain services directly, never the HTTP API.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from starlette.staticfiles import StaticFiles

from . import _account, _snaps, _stores, _vault
from ._errors import install_browser_errors

__all__ = ["STATIC_DIR", "install"]

STATIC_DIR = Path(__file__).resolve().parent / "static"


def install(app: FastAPI) -> None:
    """Add the pages, their static files and browser-friendly errors to ``app``.

    Call after the app's error handlers are installed (they are wrapped).
    """
    for module in (_account, _stores, _snaps, _vault):
        app.include_router(module.router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    install_browser_errors(app)
