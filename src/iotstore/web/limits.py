"""Request-size limit as plain ASGI middleware: refuses before the app reads the body."""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import error_response

__all__ = ["BodyLimit"]


class _TooLarge(HTTPException):
    # an HTTPException because FastAPI turns any other error raised while it reads a
    # body into "400 error parsing the body"; it re-raises these, and web/errors.py
    # renders them as 413 in the shape of the request's audience
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body over {limit} bytes")


class BodyLimit:
    """Answer 413 when a body exceeds ``limit`` bytes, in the error shape of the
    path's audience (admin, publisher, device, vault: :func:`~iotstore.web.errors.error_response`).

    Paths under ``exempt`` (streamed uploads with their own limits) pass.
    """

    def __init__(self, app: ASGIApp, limit: int, exempt: tuple[str, ...] = ()) -> None:
        self.app = app
        self.limit = limit
        self.exempt = exempt

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(self.exempt):
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    too_large = int(value) > self.limit
                except ValueError:
                    too_large = True
                if too_large:
                    await self._refuse(scope, receive, send)
                    return
        seen = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise _TooLarge(self.limit)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except _TooLarge:
            if not started:
                await self._refuse(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        # the one rule for choosing a shape by path, shared with every other error
        response = error_response(
            413, "too-large", f"request body over {self.limit} bytes", path=scope["path"]
        )
        await response(scope, receive, send)
