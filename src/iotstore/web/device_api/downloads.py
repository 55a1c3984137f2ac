"""Snap downloads: signed, short-lived URLs handed out by snap action (device-api.md 7).

snapd downloads ``download.url`` exactly as returned, with whatever
credentials it has, so the authorisation happens when the URL is made: snap
action only hands out URLs for revisions the caller may install. The URL
carries the blob key, an expiry and an HMAC under the deployment secret, so
serving it needs no database and any app process can check it.

On the embedded default the file goes out through the server's file path
(ASGI ``pathsend``: granian reads and sends it in Rust) without Python
touching the bytes; ranges (``Range: bytes=N-`` when snapd resumes) are read
in large chunks. The download listener (``web/download_listener.py``) serves
the same URLs with sendfile(2) when configured. With S3 the answer is a
redirect to a presigned URL and the object store serves the bytes (and the
range) itself.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable
from typing import Annotated

import anyio
from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from starlette.types import Receive, Scope, Send

from iotstore.blobstore import (
    BlobNotFound,
    BytesDownload,
    DownloadPlan,
    FileDownload,
    InvalidBlobKey,
    RangeNotSatisfiable,
    RedirectDownload,
)
from iotstore.deployment import Deployment
from iotstore.errors import NotFound
from iotstore.stores.permissions import Permission

__all__ = ["PREFIX", "URL_LIFETIME", "download_url", "plan_download", "router"]

PREFIX = "/download/"
router = APIRouter(prefix=PREFIX.rstrip("/"), tags=["device store"])

URL_LIFETIME = 6 * 3600  # seconds; snapd downloads right after snap action
_CHUNK = 1024 * 1024


def _mac(secret: bytes, blob_key: str, expires: int, filename: str) -> str:
    message = f"download:{blob_key}:{expires}:{filename}".encode()
    # hmac.digest: the one-shot C path, a third of hmac.new's cost (once per offered snap)
    return hmac.digest(secret, message, "sha256").hex()[:32]


def download_url(
    base_url: str, secret: bytes, blob_key: str, filename: str, now: float | None = None
) -> str:
    """The absolute URL a caller downloads ``blob_key`` from, as ``filename``."""
    # expiry rounded to the hour: the same revision gets the same URL for a while,
    # which caches (and the load test's consistency checks) like
    expires = (int((now or time.time()) + URL_LIFETIME) // 3600 + 1) * 3600
    token = f"{blob_key}.{expires}.{_mac(secret, blob_key, expires, filename)}"
    return f"{base_url.rstrip('/')}{PREFIX}{token}/{filename}"


def _check(secret: bytes, token: str, filename: str) -> str:
    blob_key, _, rest = token.partition(".")
    expires_text, _, mac = rest.partition(".")
    if not expires_text.isdigit() or len(expires_text) > 12:
        raise NotFound("no such download")
    expected = _mac(secret, blob_key, int(expires_text), filename)
    if not hmac.compare_digest(expected, mac) or int(expires_text) < time.time():
        raise NotFound("no such download (the link may have expired: ask the store again)")
    return blob_key


def plan_download(
    deployment: Deployment, token: str, filename: str, range_header: str | None
) -> DownloadPlan:
    """What answers a signed download URL; raise NotFound, or RangeNotSatisfiable (416)."""
    blob_key = _check(deployment.secret, token, filename)
    try:
        return deployment.blobs.download(blob_key, range_header=range_header, filename=filename)
    except (BlobNotFound, InvalidBlobKey) as e:
        raise NotFound("no such download") from e


def _deployment(request: Request) -> Deployment:
    deployment: Deployment = request.app.state.deployment
    return deployment


def _public() -> Callable[[Request], Deployment]:
    def dependency(request: Request) -> Deployment:
        return _deployment(request)

    # the signed URL is the authorisation (made by snap action for an allowed caller)
    dependency.permission = Permission.PUBLIC  # type: ignore[attr-defined]
    return dependency


DeploymentDep = Annotated[Deployment, Depends(_public())]


class _FileResponse(Response):
    """A planned file answer: ``pathsend`` (zero-copy) for a whole file, else big chunks."""

    def __init__(self, plan: FileDownload, head: bool) -> None:
        super().__init__(status_code=plan.status, headers=dict(plan.headers))
        self._plan = plan
        self._head = head

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        plan = self._plan
        await send(
            {"type": "http.response.start", "status": plan.status, "headers": self.raw_headers}
        )
        if self._head or plan.length == 0:
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return
        if plan.status == 200 and "http.response.pathsend" in scope.get("extensions", {}):
            await send({"type": "http.response.pathsend", "path": str(plan.path)})
            return
        async with await anyio.open_file(plan.path, "rb") as f:
            await f.seek(plan.offset)
            remaining = plan.length
            while remaining > 0:
                chunk = await f.read(min(_CHUNK, remaining))
                if not chunk:
                    break
                remaining -= len(chunk)
                await send(
                    {"type": "http.response.body", "body": chunk, "more_body": remaining > 0}
                )
            if remaining > 0:  # the file shrank under us: close the body short
                await send({"type": "http.response.body", "body": b"", "more_body": False})

    def _content_length(self) -> None:  # pragma: no cover - headers come from the plan
        return None


# one route per method: a shared route gives both the same OpenAPI operation id
@router.head("/{token}/{filename}")
@router.get("/{token}/{filename}")
async def download(
    deployment: DeploymentDep, request: Request, token: str, filename: str
) -> Response:
    """Serve a snap file for a signed download URL (whole, or one range)."""
    try:
        plan = plan_download(deployment, token, filename, request.headers.get("range"))
    except RangeNotSatisfiable as e:
        return Response(status_code=416, headers={"Content-Range": f"bytes */{e.size}"})
    head = request.method == "HEAD"
    if isinstance(plan, FileDownload):
        return _FileResponse(plan, head)
    if isinstance(plan, RedirectDownload):
        return Response(status_code=plan.status, headers=dict(plan.headers))
    assert isinstance(plan, BytesDownload)
    return Response(b"" if head else plan.body, status_code=plan.status, headers=dict(plan.headers))
