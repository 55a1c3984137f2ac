"""A listener for signed download URLs only, answering with sendfile(2).

The main server hands a file to granian (ASGI ``pathsend``), which reads it
into its own buffers and writes those to the socket: two copies through user
space per byte. nginx, the yardstick of ``benchmarks/download_bench.py``,
lets the kernel move page-cache pages to the socket. With
``IOTSTORE_DOWNLOAD_LISTEN=HOST:PORT`` (``iotstore serve --download-port``)
every server process also listens there (``SO_REUSEPORT``: the kernel spreads
connections over the processes) and the snap action's download URLs point
there (``IOTSTORE_DOWNLOAD_URL``, by default the base URL's host on that
port). Measured with wrk on 2 cores, a 64 MiB snap: this listener 0.9-1.0 of
nginx, ``pathsend`` 0.65-0.77.

It speaks HTTP/1.1 through h11 (keep-alive, pipelining, strict parsing)
and serves exactly what the main route ``GET|HEAD /download/{token}/{file}``
serves, through the same checks (:func:`.device_api.downloads.plan_download`):
the whole file, one range (``206``), ``416``, a redirect to a presigned URL
when the blobs live in S3. Anything else gets a 4xx in the device API's
error shape; a malformed request gets a 400 and the connection is closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from urllib.parse import unquote

import h11
from fastapi import FastAPI

from iotstore.blobstore import BytesDownload, FileDownload, RangeNotSatisfiable, RedirectDownload
from iotstore.deployment import Deployment
from iotstore.errors import NotFound

from .device_api.downloads import PREFIX, plan_download
from .errors import error_response

__all__ = ["DownloadListener", "download_listener"]

log = logging.getLogger("iotstore.web")

_READ = 64 << 10
_MAX_HEADERS = 16 << 10  # a download request is a request line and a few headers
_IDLE_SECONDS = 60.0  # an idle keep-alive connection is closed after this


@dataclass(frozen=True)
class _Sized:
    """A body of ``length`` bytes that h11 counts but never holds (sendfile sends it)."""

    length: int

    def __len__(self) -> int:
        return self.length


class DownloadListener:
    """Serve signed download URLs of ``deployment`` on one address."""

    def __init__(self, deployment: Deployment) -> None:
        self.deployment = deployment

    async def start(self, host: str, port: int) -> asyncio.Server:
        """Listen on ``host:port`` (shared with the other server processes)."""
        return await asyncio.start_server(
            self._serve, host, port, reuse_port=True, limit=_MAX_HEADERS
        )

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _Connection(self.deployment, reader, writer).serve()


class _Connection:
    """One client connection: its requests one after the other, as h11 frames them."""

    def __init__(
        self, deployment: Deployment, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.deployment = deployment
        self.reader = reader
        self.writer = writer
        self.h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=_MAX_HEADERS)

    async def serve(self) -> None:
        """Answer requests until the client or HTTP/1.1 ends the connection; then close it."""
        try:
            while await self._one_exchange():
                self.h11.start_next_cycle()
        except (ConnectionError, TimeoutError, asyncio.IncompleteReadError):
            pass  # the client went away or idled: nothing to answer
        except Exception:  # never leave a connection hanging on a bug; log it once
            log.exception("download listener failed")
        finally:
            self.writer.close()
            with contextlib.suppress(Exception):
                await self.writer.wait_closed()

    async def _next_event(self) -> h11.Event | type[h11.NEED_DATA] | type[h11.PAUSED]:
        while True:
            event = self.h11.next_event()
            if event is not h11.NEED_DATA:
                return event
            data = await asyncio.wait_for(self.reader.read(_READ), _IDLE_SECONDS)
            self.h11.receive_data(data)  # b"" is the end of the stream

    async def _one_exchange(self) -> bool:
        """Answer one request; return whether the connection can carry another."""
        try:
            event = await self._next_event()
            if isinstance(event, h11.ConnectionClosed) or event is h11.PAUSED:
                return False
            assert isinstance(event, h11.Request)
            # a download request has no body; drain whatever came (h11 frames it)
            while not isinstance(ended := await self._next_event(), h11.EndOfMessage):
                if isinstance(ended, h11.ConnectionClosed):
                    return False
        except h11.RemoteProtocolError as e:
            await self._send_error(e.error_status_hint, "bad-request", str(e))
            return False
        method = event.method.decode("ascii", "replace")
        target = event.target.decode("ascii", "replace")
        # h11 lower-cases header names
        headers = {name.decode("latin-1"): value.decode("latin-1") for name, value in event.headers}
        await self._answer(method, target, headers)
        return self.h11.our_state is h11.DONE and self.h11.their_state is h11.DONE

    async def _answer(self, method: str, target: str, headers: dict[str, str]) -> None:
        if method not in ("GET", "HEAD"):
            await self._send_error(405, "method-not-allowed", "GET or HEAD only")
            return
        path = target.split("?", 1)[0]
        token, slash, filename = path.removeprefix(PREFIX).partition("/")
        if not path.startswith(PREFIX) or not slash or "/" in filename:
            await self._send_error(404, "not-found", "no such download")
            return
        try:
            # stat() of one file, or an S3 presign: short enough for the event loop
            plan = plan_download(
                self.deployment, unquote(token), unquote(filename), headers.get("range")
            )
        except RangeNotSatisfiable as e:
            await self._send(416, [("Content-Range", f"bytes */{e.size}")], b"")
            return
        except NotFound as e:
            await self._send_error(404, e.code, e.message)
            return
        head = method == "HEAD"
        if isinstance(plan, FileDownload):
            await self._send_file(plan, head)
        elif isinstance(plan, RedirectDownload):
            await self._send(plan.status, list(plan.headers.items()), b"")
        else:
            assert isinstance(plan, BytesDownload)
            await self._send(plan.status, list(plan.headers.items()), b"" if head else plan.body)

    async def _send_file(self, plan: FileDownload, head: bool) -> None:
        try:
            # opened before the headers go: a file deleted since the plan is a clean 404
            f = await asyncio.to_thread(open, plan.path, "rb")
        except OSError:
            await self._send_error(404, "not-found", "no such download")
            return
        with f:
            headers = list(plan.headers.items())
            self.writer.write(self.h11.send(h11.Response(status_code=plan.status, headers=headers)))
            if not head and plan.length:
                # h11 counts the body against Content-Length without holding it
                body = h11.Data(data=_Sized(plan.length))  # type: ignore[arg-type]
                for part in self.h11.send_with_data_passthrough(body) or ():
                    if not isinstance(part, _Sized):
                        self.writer.write(part)
                await self.writer.drain()
                loop = asyncio.get_running_loop()
                sent = await loop.sendfile(self.writer.transport, f, plan.offset, plan.length)
                if sent != plan.length:  # the file shrank under us: end the connection short
                    raise ConnectionError("file shorter than planned")
            self.writer.write(self.h11.send(h11.EndOfMessage()))
            await self.writer.drain()

    async def _send(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        if not any(name.lower() == "content-length" for name, _ in headers):
            headers = [*headers, ("Content-Length", str(len(body)))]
        self.writer.write(self.h11.send(h11.Response(status_code=status, headers=headers)))
        if body:
            self.writer.write(self.h11.send(h11.Data(data=body)))
        self.writer.write(self.h11.send(h11.EndOfMessage()))
        await self.writer.drain()

    async def _send_error(self, status: int, code: str, message: str) -> None:
        # the main route's error for the same path: snapd's error-list shape
        response = error_response(status, code, message, path=PREFIX)
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in response.raw_headers]
        # too early or too late in the exchange to answer: the connection just closes
        with contextlib.suppress(h11.LocalProtocolError):
            await self._send(status, headers, bytes(response.body))


@contextlib.asynccontextmanager
async def download_listener(app: FastAPI) -> AsyncIterator[None]:
    """Lifespan: run the listener while the app serves, if the settings ask for it."""
    listen = app.state.settings.download_listen
    server = None
    if listen is not None:
        server = await DownloadListener(app.state.deployment).start(*listen)
        log.info("download listener on %s:%d (pid %d)", *listen, os.getpid())
    try:
        yield
    finally:
        if server is not None:
            server.close()
            await server.wait_closed()
