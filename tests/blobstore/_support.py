"""Helpers for the blob store tests: upload streams, leftovers, fetching a download plan."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator

import httpx
from mypy_boto3_s3.client import S3Client

from iotstore.blobstore import (
    BlobStore,
    BytesDownload,
    DownloadPlan,
    FileBlobStore,
    FileDownload,
    RangeNotSatisfiable,
    RedirectDownload,
    S3BlobStore,
)

KiB = 1 << 10
MiB = 1 << 20


class Fetched:
    """What a client would receive when served a plan: status, body, headers (lower-case)."""

    def __init__(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.status = status
        self.body = body
        self.headers = headers


def pattern(size: int, seed: int = 0) -> bytes:
    """``size`` deterministic bytes that differ at every offset scale (order bugs show)."""
    block = hashlib.shake_256(seed.to_bytes(8, "big")).digest(64 * KiB)
    whole, rest = divmod(size, len(block))
    parts = [i.to_bytes(4, "big") + block[4:] for i in range(whole)]
    return b"".join(parts) + block[:rest]


async def chunked(data: bytes, size: int = 64 * KiB) -> AsyncIterator[bytes]:
    """Yield ``data`` in chunks of ``size`` bytes."""
    for offset in range(0, len(data), size):
        yield data[offset : offset + size]


class Counted:
    """Generated chunks (never held together) and how many the consumer pulled."""

    def __init__(self, count: int, size: int = 64 * KiB, fail_at: int | None = None) -> None:
        self.count = count
        self.size = size
        self.fail_at = fail_at
        self.pulled = 0
        self._block = hashlib.shake_256(b"counted").digest(size)

    def chunk(self, i: int) -> bytes:
        return i.to_bytes(8, "big") + self._block[8:]

    def expected(self) -> tuple[int, bytes]:
        """(size, sha3-384) of the whole stream, computed chunk by chunk."""
        h = hashlib.sha3_384()
        for i in range(self.count):
            h.update(self.chunk(i))
        return self.count * self.size, h.digest()

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for i in range(self.count):
            if i == self.fail_at:
                raise ConnectionResetError("client went away")
            self.pulled += 1
            yield self.chunk(i)


def leftovers(store: BlobStore, s3_client: S3Client | None = None) -> list[str]:
    """What an interrupted upload could have left where ``list`` does not look."""
    if isinstance(store, FileBlobStore):
        return sorted(str(p.relative_to(store.root)) for p in store.root.rglob("*") if p.is_file())
    if isinstance(store, S3BlobStore):
        assert s3_client is not None
        uploads = s3_client.list_multipart_uploads(Bucket=store.bucket, Prefix=store.prefix)
        objects = s3_client.list_objects_v2(Bucket=store.bucket, Prefix=store.prefix)
        return sorted(
            [f"upload:{u['Key']}" for u in uploads.get("Uploads", [])]
            + [f"object:{o['Key']}" for o in objects.get("Contents", [])]
        )
    return sorted(entry.key for entry in store.list())


def keys(store: BlobStore) -> set[str]:
    return {entry.key for entry in store.list()}


def fetch(plan: DownloadPlan, range_header: str | None = None) -> Fetched:
    """Serve ``plan`` the way the web layer and the client together would."""
    if isinstance(plan, BytesDownload):
        return Fetched(plan.status, plan.body, {k.lower(): v for k, v in plan.headers.items()})
    if isinstance(plan, FileDownload):
        with plan.path.open("rb") as f:
            f.seek(plan.offset)
            body = f.read(plan.length)
        return Fetched(plan.status, body, {k.lower(): v for k, v in plan.headers.items()})
    assert isinstance(plan, RedirectDownload)
    headers = {"Range": range_header} if range_header else {}
    response = httpx.get(plan.url, headers=headers, timeout=30)
    return Fetched(response.status_code, response.content, dict(response.headers))


def fetch_download(store: BlobStore, key: str, range_header: str | None) -> Fetched:
    """Plan and fetch a download; a 416 planned by the store becomes a 416 response."""
    try:
        plan = store.download(key, range_header=range_header, filename="demo_1.snap")
    except RangeNotSatisfiable as e:
        return Fetched(416, b"", {"content-range": e.content_range})
    return fetch(plan, range_header)
