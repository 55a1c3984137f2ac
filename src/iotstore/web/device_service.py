"""The serial vault as snapd's device service calls it (at ``/serial-vault/v1/``).

snapd sends the gadget's ``device-service.headers`` (our ``api-key``) on both
calls; it reads error text only from ``application/json`` bodies, and
retries 5xx, so every refusal here is a 4xx with a message.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from iotstore import asserts
from iotstore.devices.errors import SigningPending
from iotstore.devices.services import VaultService
from iotstore.stores.permissions import Permission

from .auth import require
from .context import RequestContext

__all__ = ["PREFIX", "router", "vault_service"]

PREFIX = "/serial-vault/v1"
router = APIRouter(prefix=PREFIX, tags=["device service"])

# The device service authenticates devices by API key inside the protocol.
Device = Annotated[RequestContext, Depends(require(Permission.PUBLIC))]
# No max_length here: FastAPI's validation error would answer in the admin API's
# shape, which snapd cannot read; the vault refuses over-long keys itself.
ApiKeyHeader = Annotated[str | None, Header(alias="api-key")]


def vault_service(ctx: RequestContext) -> VaultService:
    """The vault over the request's transaction."""
    return VaultService(ctx.session, ctx.deployment.keystore, ctx.brands, ctx.trust, ctx.audit)


@router.post("/request-id", response_class=JSONResponse)
def request_id(ctx: Device, api_key: ApiKeyHeader = None) -> JSONResponse:
    """A fresh single-use request-id for the device's serial-request."""
    # A Response, not a dict: FastAPI validates a sync endpoint's dict in the
    # thread pool while the transaction (SQLite's write lock, a pooled
    # connection) is still open; with the pool's threads all waiting for that
    # lock, request bursts stalled until the database timeouts (503s).
    return JSONResponse(
        {"success": True, "message": "", "request-id": vault_service(ctx).new_request_id(api_key)}
    )


@router.post("/serial")
async def serial(ctx: Device, request: Request, api_key: ApiKeyHeader = None) -> Response:
    """Sign a serial for a serial-request (+ model) stream; answer serial, account-key, account."""
    body = await request.body()
    client = request.client
    # Signing and the database block: run them in the thread pool. On the event
    # loop they stall every request, including the commits other registrations
    # wait for (SQLite's write lock, the connection pool): 503s under load.
    try:
        registration = await run_in_threadpool(
            vault_service(ctx).register, api_key, body, client.host if client else None
        )
    except SigningPending as e:
        # 202: snapd keeps this serial-request and posts it again after 60 s, for as
        # long as it gets 202 (a 5xx would cost it a fresh request-id and one of its
        # counted retries). The vault committed only the request-id's new expiry.
        return JSONResponse(
            {"success": False, "error_code": e.code, "message": e.message}, status_code=202
        )
    return Response(registration.stream(), media_type=asserts.MEDIA_TYPE)


@router.get("/version")
def version(ctx: Device) -> dict[str, object]:
    """What this vault is."""
    del ctx
    return {"version": "1", "service": "iotstore serial vault"}
