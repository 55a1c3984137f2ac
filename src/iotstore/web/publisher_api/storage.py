"""``POST /unscanned-upload/``: a snap file streamed into the blob store.

craft-store sends ``multipart/form-data`` with one file field ``binary`` and
no credentials; ``application/octet-stream`` (the raw file) is accepted too.
The body is parsed as it arrives (python-multipart's streaming parser) and
the file part goes straight to :meth:`BlobStore.put_stream`, which hashes it
(SHA3-384) and counts it on the way: the file is never held in memory and
never written twice, and a chunk that is all file bytes (nearly every one)
is passed on as it came, not copied. ``web/limits.py`` exempts this path from the 1 MiB body
limit; ``settings.max_snap_bytes`` applies instead (413, nothing stored).
A body that ends before the closing boundary is refused and its bytes are
removed; so is one cut off by a client disconnect.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Annotated, Any

import anyio.to_thread
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect

from iotstore.blobstore import BlobStorageError, BlobTooLarge
from iotstore.stores.permissions import Permission

from ..auth import require
from ..context import RequestContext
from ..errors import error_response
from ._uploads import upload_id

__all__ = ["UPLOAD_PATH", "router"]

log = logging.getLogger("iotstore.web.upload")

UPLOAD_PATH = "/unscanned-upload/"
_FIELD = b"binary"
_MAX_HEADERS = 16 << 10  # headers of all parts together
_FORM_OVERHEAD = 64 << 10  # boundaries, part headers, small fields around the file

router = APIRouter(tags=["publisher: storage"])

Public = Annotated[RequestContext, Depends(require(Permission.PUBLIC))]


class _BadUpload(Exception):
    """The body is not an acceptable upload (the message says why)."""


class _Form:
    """python-multipart callbacks collecting the ``binary`` part's bytes, batch by batch."""

    def __init__(self, boundary: bytes) -> None:
        self.pending: list[bytes] = []
        self.header_bytes = 0
        self.files = 0
        self.ended = False
        self._field = b""
        self._value = b""
        self._headers: dict[bytes, bytes] = {}
        self._in_file = False
        self.filename = ""
        self.parser = MultipartParser(
            boundary,
            {
                "on_part_begin": self._part_begin,
                "on_header_field": self._header_field,
                "on_header_value": self._header_value,
                "on_header_end": self._header_end,
                "on_headers_finished": self._headers_finished,
                "on_part_data": self._part_data,
                "on_part_end": self._part_end,
                "on_end": self._end,
            },
        )

    def _part_begin(self) -> None:
        self._headers = {}
        self._in_file = False

    def _count(self, n: int) -> None:
        self.header_bytes += n
        if self.header_bytes > _MAX_HEADERS:
            raise _BadUpload("multipart part headers are too large")

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._count(end - start)
        self._field += data[start:end]

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        self._count(end - start)
        self._value += data[start:end]

    def _header_end(self) -> None:
        self._headers[self._field.strip().lower()] = self._value.strip()
        self._field = self._value = b""

    def _headers_finished(self) -> None:
        _, options = parse_options_header(self._headers.get(b"content-disposition", b""))
        if options.get(b"name") == _FIELD:
            self.files += 1
            if self.files > 1:
                raise _BadUpload("send exactly one 'binary' file part")
            self._in_file = True
            self.filename = options.get(b"filename", b"").decode("utf-8", "replace")

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._in_file:
            # a chunk in the middle of the file is all file bytes: kept as it is, not copied
            whole = start == 0 and end == len(data) and type(data) is bytes
            self.pending.append(data if whole else data[start:end])

    def _part_end(self) -> None:
        self._in_file = False

    def _end(self) -> None:
        self.ended = True

    def take(self) -> list[bytes]:
        """The file bytes parsed since the last call."""
        pieces, self.pending = self.pending, []
        return pieces


async def _multipart_chunks(
    request: Request, boundary: bytes, limit: int, form: list[_Form]
) -> AsyncIterator[bytes]:
    parsed = _Form(boundary)
    form.append(parsed)
    seen = 0
    try:
        async for chunk in request.stream():
            seen += len(chunk)
            if seen > limit + _FORM_OVERHEAD:
                # the file part alone is counted by put_stream; this bounds everything else
                raise BlobTooLarge(limit)
            parsed.parser.write(chunk)
            for piece in parsed.take():
                yield piece
        parsed.parser.finalize()
    except MultipartParseError as e:
        raise _BadUpload(f"malformed multipart body: {e}") from e
    for piece in parsed.take():
        yield piece
    # raising here, before the last chunk is consumed, makes put_stream discard the blob
    if not parsed.ended:
        raise _BadUpload("the upload was cut short (no closing multipart boundary)")
    if parsed.files != 1:
        raise _BadUpload("no 'binary' file part in the upload")


async def _raw_chunks(request: Request) -> AsyncIterator[bytes]:
    async for chunk in request.stream():
        if chunk:
            yield chunk


def _expected_length(request: Request) -> int | None:
    value = request.headers.get("content-length")
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


@router.post(UPLOAD_PATH)
async def unscanned_upload(request: Request, ctx: Public) -> Any:
    """Store the snap file of the body; answer the upload id ``snap-push`` redeems."""
    # the upload needs no database: end the request's transaction now so an upload that
    # takes minutes never holds a connection (or SQLite's write lock) meanwhile
    ctx.session.rollback()
    settings = ctx.deployment.settings
    limit = settings.max_snap_bytes

    def fail(status: int, code: str, message: str) -> JSONResponse:
        return error_response(status, code, message, path=UPLOAD_PATH)

    length = _expected_length(request)
    if length is not None and length > limit + _FORM_OVERHEAD:
        return fail(413, "too-large", f"snaps are limited to {limit} bytes")
    content_type, options = parse_options_header(request.headers.get("content-type", ""))
    forms: list[_Form] = []
    if content_type == b"multipart/form-data":
        boundary = options.get(b"boundary", b"")
        if not 1 <= len(boundary) <= 200:
            return fail(400, "invalid-input", "multipart upload without a valid boundary")
        chunks = _multipart_chunks(request, boundary, limit, forms)
    elif content_type == b"application/octet-stream":
        chunks = _raw_chunks(request)
    else:
        return fail(
            415,
            "unsupported-media-type",
            "send the snap as multipart/form-data (field 'binary') or application/octet-stream",
        )
    try:
        info = await ctx.deployment.blobs.put_stream(chunks, max_size=limit)
    except BlobTooLarge:
        return fail(413, "too-large", f"snaps are limited to {limit} bytes")
    except _BadUpload as e:
        return fail(400, "invalid-input", str(e))
    except ClientDisconnect:
        log.info("upload abandoned by the client; nothing stored")
        return fail(400, "invalid-input", "the client disconnected during the upload")
    except BlobStorageError:
        log.exception("blob store failed during an upload")
        return fail(503, "unavailable", "the snap storage is unavailable; retry later")
    if info.size == 0:
        await _discard(ctx, info.key)
        return fail(400, "invalid-input", "the uploaded file is empty")
    filename = forms[0].filename if forms else request.headers.get("x-filename", "")
    return {
        "successful": True,
        "upload_id": upload_id(ctx.deployment.secret, info, filename),
        "size": info.size,
        "sha3-384": info.sha3_384_hex,
    }


async def _discard(ctx: RequestContext, key: str) -> None:
    await anyio.to_thread.run_sync(ctx.deployment.blobs.delete, key)
