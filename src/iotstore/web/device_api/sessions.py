"""Device sessions as snapd's ``store/auth.go`` obtains them: a nonce, then a session."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from iotstore.devices.sessions import DeviceSessionService

from ..context import RequestContext
from ._common import DeviceWrite, json_response, session_verifier

__all__ = ["router", "session_service"]

router = APIRouter(prefix="/api/v1/snaps/auth", tags=["device store"])


def session_service(ctx: RequestContext) -> DeviceSessionService:
    """Device sessions over the request's transaction."""
    return DeviceSessionService(
        ctx.session, ctx.trust, session_verifier(ctx), ctx.deployment.settings.base_url
    )


@router.post("/nonces")
def nonces(ctx: DeviceWrite) -> Response:
    """A fresh nonce for the device's device-session-request."""
    return json_response({"nonce": session_service(ctx).new_nonce()})


@router.post("/sessions")
async def sessions(ctx: DeviceWrite, request: Request) -> Response:
    """Verify serial + model + device-session-request; answer the device's session macaroon."""
    body = await request.body()
    # signature checks and the database block: keep them off the event loop
    token, _ = await run_in_threadpool(session_service(ctx).open, body)
    return json_response({"macaroon": token})
