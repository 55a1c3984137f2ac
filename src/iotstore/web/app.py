"""``create_app(settings)``: the one place that wires the HTTP application."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import AsyncIterator
from pathlib import Path

from fastapi import FastAPI

from iotstore.deployment import Deployment
from iotstore.settings import Settings

from . import device_api, device_service, signin
from ._sweeper import blob_sweeper
from .admin_api import brands, invitations, members, stores, system, tokens, vault
from .admin_api import snaps as admin_snaps
from .context import end_transactions_before_serialisation
from .dashboard import install as install_dashboard
from .download_listener import download_listener
from .errors import install_error_handlers
from .limits import BodyLimit
from .publisher_api import account as publisher_account
from .publisher_api import snaps as publisher_snaps
from .publisher_api import sso as publisher_sso
from .publisher_api import storage as publisher_storage

__all__ = ["app_from_env", "create_app"]


@contextlib.asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    # orphaned snap files swept hourly (web/_sweeper.py); the sendfile download
    # listener when configured (web/download_listener.py)
    async with blob_sweeper(app), download_listener(app):
        yield


def create_app(settings: Settings, deployment: Deployment | None = None) -> FastAPI:
    """Build the application for an initialised deployment.

    ``deployment`` lets a caller that has opened it already (tests, ``serve``)
    share it; otherwise it is opened from ``settings.data_dir``.
    """
    deployment = deployment or Deployment.open(settings.data_dir, settings)
    app = FastAPI(
        title="iotstore",
        version="1",
        description="Admin API of a self-hosted IoT app store and serial vault.",
        docs_url="/api/docs",
        openapi_url="/api/openapi.json",
        redoc_url=None,
        lifespan=_lifespan,
    )
    app.state.deployment = deployment
    app.state.settings = settings
    install_error_handlers(app)
    # first: routes are tried in order, and the snap action is the device store's hot path
    app.include_router(device_api.snap_action_router)
    for module in (
        system,
        tokens,
        stores,
        members,
        brands,
        invitations,
        vault,
        admin_snaps,
        signin,
        device_service,
        device_api,
        publisher_sso,
        publisher_storage,
        publisher_snaps,
        publisher_account,
    ):
        app.include_router(module.router)
    install_dashboard(app)  # after the error handlers, which it wraps for browsers
    # the vault's hot path skips routing (inside the body limit, added below)
    app.add_middleware(device_service.LeanPaths, exception_handlers=app.exception_handlers)
    # the snap upload streams into the blob store under its own limit (max_snap_bytes)
    app.add_middleware(
        BodyLimit, limit=settings.max_body_bytes, exempt=(publisher_storage.UPLOAD_PATH,)
    )
    end_transactions_before_serialisation(app)  # last: after every route is added
    return app


def app_from_env() -> FastAPI:
    """Factory for ASGI servers started by ``iotstore serve`` (settings from the environment)."""
    logging.basicConfig(level=logging.INFO)
    data_dir = Path(os.environ.get("IOTSTORE_DATA_DIR", "iotstore-data"))
    return create_app(Settings.from_env(data_dir))
