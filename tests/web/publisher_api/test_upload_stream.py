"""The upload's multipart stream into a blob store, in process: exact bytes however it is split.

The file part's chunks are handed to the store by reference when a chunk is
all file bytes, sliced otherwise; these tests split bodies at random places
(inside the boundary, the part headers, the closing delimiter) and check the
stored bytes and digest against the file, and that a body without its
closing boundary stores nothing.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import AsyncIterator

import pytest
from benchmarks._timing import run_async
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.requests import Request
from starlette.types import Message

from iotstore.blobstore import MemoryBlobStore
from iotstore.web.publisher_api.storage import _BadUpload, _Form, _multipart_chunks

BOUNDARY = b"xYz-boundary"
LIMIT = 1 << 30

# file bytes that look like the start of a delimiter, so the parser has to look behind
_TRICKY = st.sampled_from(
    [b"\r", b"\r\n", b"\r\n-", b"\r\n--", b"\r\n--xYz", b"\r\n--xYz-boundar", b"--xYz-boundary"]
)
_FILES = (
    st.lists(st.one_of(st.binary(max_size=3000), _TRICKY), max_size=12)
    .map(b"".join)
    # a client picks a boundary its file does not contain
    .filter(lambda content: b"\r\n--" + BOUNDARY not in content)
)


def _body(content: bytes, *, before: bytes = b"", closed: bool = True) -> bytes:
    part = (
        b"--" + BOUNDARY + b'\r\nContent-Disposition: form-data; name="binary"; '
        b'filename="a.snap"\r\nContent-Type: application/octet-stream\r\n\r\n' + content
    )
    head = b""
    if before:  # a small field ahead of the file, as some clients send
        head = (
            b"--" + BOUNDARY + b'\r\nContent-Disposition: form-data; name="note"\r\n\r\n'
            + before + b"\r\n"
        )  # fmt: skip
    return head + part + (b"\r\n--" + BOUNDARY + b"--\r\n" if closed else b"")


def _split(body: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({min(c, len(body)) for c in cuts} | {0, len(body)})
    return [body[a:b] for a, b in itertools.pairwise(points)]


def _request(pieces: list[bytes]) -> Request:
    queue = list(pieces)

    async def receive() -> Message:
        body = queue.pop(0) if queue else b""
        return {"type": "http.request", "body": body, "more_body": bool(queue)}

    scope = {"type": "http", "method": "POST", "path": "/unscanned-upload/", "headers": []}
    return Request(scope, receive)


async def _store(pieces: list[bytes], store: MemoryBlobStore) -> tuple[bytes, str]:
    forms: list[_Form] = []
    chunks: AsyncIterator[bytes] = _multipart_chunks(_request(pieces), BOUNDARY, LIMIT, forms)
    info = await store.put_stream(chunks, max_size=LIMIT)
    return store.read_range(info.key, 0, info.size) if info.size else b"", info.sha3_384_hex


_SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_SETTINGS
@given(
    content=_FILES,
    before=st.binary(max_size=40).filter(lambda b: b"\r\n--" not in b),
    cuts=st.lists(st.integers(min_value=0, max_value=40_000), max_size=8),
)
def test_the_file_part_is_stored_exactly_however_the_body_is_split(
    content: bytes, before: bytes, cuts: list[int]
) -> None:
    store = MemoryBlobStore()
    # a fresh thread: a worker that ran a browser test keeps Playwright's loop in this one
    stored, digest = run_async(_store(_split(_body(content, before=before), cuts), store))
    assert stored == content
    assert digest == hashlib.sha3_384(content).hexdigest()


@_SETTINGS
@given(content=_FILES, cuts=st.lists(st.integers(min_value=0, max_value=40_000), max_size=8))
def test_a_body_without_its_closing_boundary_stores_nothing(
    content: bytes, cuts: list[int]
) -> None:
    store = MemoryBlobStore()
    with pytest.raises(_BadUpload):
        run_async(_store(_split(_body(content, closed=False), cuts), store))
    assert list(store.list()) == []


def test_large_chunks_of_file_bytes_are_kept_whole() -> None:
    # the common case behind granian: chunks of MiBs that are all file bytes
    content = bytes(range(256)) * (3 << 12)  # 3 MiB
    body = _body(content)
    cut = len(body) - len(content) - len(b"\r\n--" + BOUNDARY + b"--\r\n")
    pieces = [body[:cut], *(content[i : i + (1 << 20)] for i in range(0, len(content), 1 << 20))]
    pieces.append(body[cut + len(content) :])
    form = _Form(BOUNDARY)
    kept: list[bytes] = []
    for piece in pieces:
        form.parser.write(piece)
        kept.extend(form.take())
    form.parser.finalize()
    assert b"".join(kept) == content
    middle = pieces[1:-1]
    assert sum(any(k is p for k in kept) for p in middle) == len(middle)  # not copied
