"""Blobs in process memory, for tests.

Uploads go through the same streaming pipeline as the other stores (limit,
hashing, abort on failure), but a finished blob is of course held whole.
"""

from __future__ import annotations

import io
import threading
from collections.abc import AsyncIterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import BinaryIO

from . import _common
from ._http import download_headers, parse_range
from ._ingest import Parts, ingest, ingest_file
from .errors import BlobNotFound, RangeNotSatisfiable
from .interfaces import BlobEntry, BlobInfo, BytesDownload, DownloadPlan, Referenced

__all__ = ["MemoryBlobStore"]

_BATCH = 1 << 20


@dataclass(frozen=True, slots=True)
class _Blob:
    data: bytes
    created: datetime


class _MemorySink:
    def __init__(self, store: MemoryBlobStore, key: str) -> None:
        self.key = key
        self._store = store
        self._parts: Parts = []

    def write(self, parts: Parts) -> None:
        self._parts.extend(parts)

    def commit(self, parts: Parts) -> None:
        self._parts.extend(parts)
        self._store._add(self.key, b"".join(self._parts))
        self._parts.clear()

    def abort(self) -> None:
        self._parts.clear()
        self._store.delete(self.key)


class MemoryBlobStore:
    """A :class:`~iotstore.blobstore.BlobStore` holding blobs in a dict. Thread safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._blobs: dict[str, _Blob] = {}

    def _add(self, key: str, data: bytes) -> None:
        with self._lock:
            self._blobs[key] = _Blob(data, _common.utcnow())

    def _get(self, key: str) -> _Blob:
        _common.check_key(key)
        with self._lock:
            blob = self._blobs.get(key)
        if blob is None:
            raise BlobNotFound(key)
        return blob

    def set_created(self, key: str, created: datetime) -> None:
        """Backdate blob ``key`` (tests of the orphan sweep)."""
        blob = self._get(key)
        with self._lock:
            self._blobs[key] = _Blob(blob.data, created)

    async def put_stream(self, chunks: AsyncIterable[bytes], *, max_size: int) -> BlobInfo:
        """Keep the streamed bytes; see :meth:`BlobStore.put_stream`."""
        sink = _MemorySink(self, _common.new_key())
        size, digest = await ingest(chunks, sink, max_size=max_size, batch_size=_BATCH, depth=0)
        return BlobInfo(
            key=sink.key, size=size, sha3_384=digest, created=self._get(sink.key).created
        )

    def put_file(self, path: Path, *, max_size: int | None = None) -> BlobInfo:
        """Keep a copy of a local file; see :meth:`BlobStore.put_file`."""
        sink = _MemorySink(self, _common.new_key())
        size, digest = ingest_file(path, sink, max_size=max_size, batch_size=_BATCH)
        return BlobInfo(
            key=sink.key, size=size, sha3_384=digest, created=self._get(sink.key).created
        )

    def open(self, key: str) -> BinaryIO:
        """A BytesIO over blob ``key``; see :meth:`BlobStore.open`."""
        return io.BytesIO(self._get(key).data)

    def read_range(self, key: str, start: int, length: int) -> bytes:
        """Bytes from ``start``; see :meth:`BlobStore.read_range`."""
        _common.check_read(start, length)
        data = self._get(key).data
        if length == 0:
            return b""
        if start >= len(data):
            raise RangeNotSatisfiable(len(data))
        return data[start : start + length]

    def size(self, key: str) -> int:
        """The blob's size; see :meth:`BlobStore.size`."""
        return len(self._get(key).data)

    def exists(self, key: str) -> bool:
        """Whether blob ``key`` is stored; see :meth:`BlobStore.exists`."""
        _common.check_key(key)
        with self._lock:
            return key in self._blobs

    def delete(self, key: str) -> None:
        """Forget blob ``key``; see :meth:`BlobStore.delete`."""
        _common.check_key(key)
        with self._lock:
            self._blobs.pop(key, None)

    def list(self, prefix: str = "") -> Iterator[BlobEntry]:
        """Yield the stored blobs; see :meth:`BlobStore.list`."""
        _common.check_prefix(prefix)
        with self._lock:
            entries = [
                BlobEntry(key=key, size=len(blob.data), created=blob.created)
                for key, blob in self._blobs.items()
                if key.startswith(prefix)
            ]
        return iter(entries)

    def download(self, key: str, *, range_header: str | None, filename: str) -> DownloadPlan:
        """The bytes to answer with; see :meth:`BlobStore.download`."""
        data = self._get(key).data
        byte_range = parse_range(range_header, len(data))
        body = data if byte_range is None else data[byte_range.start : byte_range.end + 1]
        return BytesDownload(
            body=body,
            status=200 if byte_range is None else 206,
            headers=download_headers(key, len(data), byte_range, filename),
        )

    def sweep_orphans(self, referenced: Referenced, *, older_than: timedelta) -> int:
        """Delete old unreferenced blobs; see :meth:`BlobStore.sweep_orphans`."""
        return _common.sweep(self.list(), self.delete, referenced, older_than)

    def close(self) -> None:
        """Drop every blob."""
        with self._lock:
            self._blobs.clear()
