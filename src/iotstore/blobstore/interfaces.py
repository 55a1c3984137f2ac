"""What a blob store promises, whichever backend holds the bytes.

:class:`BlobStore` is implemented by :class:`~iotstore.blobstore.MemoryBlobStore`,
:class:`~iotstore.blobstore.FileBlobStore` and :class:`~iotstore.blobstore.S3BlobStore`;
one contract test suite runs against all three.

A blob is an immutable byte string (a snap file) stored under a fresh random
key. The key is what a database row records; the row is committed *after*
the blob is fully written, so a committed row never points at a half-written
blob, and a blob whose row never got committed is an orphan that
:meth:`BlobStore.sweep_orphans` removes later.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterable, Callable, Container, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import BinaryIO, Protocol, TypeAlias

__all__ = [
    "BlobEntry",
    "BlobInfo",
    "BlobStore",
    "ByteRange",
    "BytesDownload",
    "DownloadPlan",
    "FileDownload",
    "RedirectDownload",
    "Referenced",
]


@dataclass(frozen=True, slots=True)
class BlobInfo:
    """A blob just stored: its key, size in bytes, raw SHA3-384 digest and UTC creation time.

    snapd wants the digest in two spellings: lower-case hex in the store's
    JSON (``download.sha3-384``) and unpadded base64url in assertions
    (``snap-sha3-384`` of a snap-revision); use :attr:`sha3_384_hex` and
    :attr:`sha3_384_base64url`.
    """

    key: str
    size: int
    sha3_384: bytes = field(repr=False)
    created: datetime

    @property
    def sha3_384_hex(self) -> str:
        """The digest as 96 lower-case hex digits (store JSON)."""
        return self.sha3_384.hex()

    @property
    def sha3_384_base64url(self) -> str:
        """The digest as unpadded base64url, 64 characters (assertion headers)."""
        return base64.urlsafe_b64encode(self.sha3_384).rstrip(b"=").decode("ascii")


@dataclass(frozen=True, slots=True)
class BlobEntry:
    """One stored blob as :meth:`BlobStore.list` reports it (``created`` is UTC)."""

    key: str
    size: int
    created: datetime


@dataclass(frozen=True, slots=True)
class ByteRange:
    """A satisfiable byte range of a blob of ``size`` bytes: ``length`` bytes from ``start``.

    Valid by construction when it comes from
    :func:`~iotstore.blobstore.parse_range`: ``0 <= start``, ``1 <= length``,
    ``start + length <= size``.
    """

    start: int
    length: int
    size: int

    @property
    def end(self) -> int:
        """The last byte's offset (inclusive, as HTTP writes it)."""
        return self.start + self.length - 1

    @property
    def content_range(self) -> str:
        """The ``Content-Range`` value of a 206 response for this range."""
        return f"bytes {self.start}-{self.end}/{self.size}"


@dataclass(frozen=True, slots=True)
class FileDownload:
    """Serve ``length`` bytes of the file at ``path`` from ``offset``, with ``status`` and headers.

    ``status`` is 200 (whole file) or 206 (one range); ``headers`` carry
    Content-Length, Content-Type, Content-Disposition, Accept-Ranges, ETag and,
    for 206, Content-Range. The web layer hands the path to a zero-copy file
    response (or to the front server) instead of reading it in Python.
    """

    path: Path
    offset: int
    length: int
    status: int
    headers: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class RedirectDownload:
    """Redirect the client (``status`` 302, ``Location`` in ``headers``) to a presigned ``url``.

    The URL is valid until ``expires`` (UTC) and carries the download's
    Content-Disposition; the object store answers the client's Range header
    itself (206, or 416 when unsatisfiable).
    """

    url: str = field(repr=False)
    expires: datetime
    status: int
    headers: Mapping[str, str] = field(repr=False)


@dataclass(frozen=True, slots=True)
class BytesDownload:
    """Answer with ``body`` (already cut to the range), ``status`` and ``headers``."""

    body: bytes = field(repr=False)
    status: int
    headers: Mapping[str, str]


DownloadPlan: TypeAlias = FileDownload | RedirectDownload | BytesDownload
"""How the web layer should serve a download; match on the three types."""

Referenced: TypeAlias = Callable[[str], bool] | Container[str]
"""Which keys are still in use: a predicate, or a container (``set``) of keys."""


class BlobStore(Protocol):
    """Immutable blobs under random keys: streamed in, hashed on the way, read back by range.

    Keys are 32 lower-case hex digits handed out by the store; any other key
    raises :class:`~iotstore.blobstore.InvalidBlobKey`. Only
    :meth:`put_stream` is a coroutine; the other methods block (on disk or
    network I/O for the file and S3 stores), so async code calls them in a
    worker thread (``anyio.to_thread.run_sync``), except :meth:`download`,
    which never does network I/O. Storage failures raise
    :class:`~iotstore.blobstore.BlobStorageError` with the cause chained.
    """

    async def put_stream(self, chunks: AsyncIterable[bytes], *, max_size: int) -> BlobInfo:
        """Store the bytes of ``chunks`` under a fresh key; return its :class:`BlobInfo`.

        Size and SHA3-384 are computed as the bytes arrive; the upload is never
        held in memory whole (in flight: about 16 MiB for the file store, two
        8 MiB parts for the S3 store).
        The blob becomes visible under its key only once complete and durable.
        Raises :class:`~iotstore.blobstore.BlobTooLarge` as soon as more than
        ``max_size`` bytes arrived. On that, on any exception from ``chunks``
        (re-raised unchanged, e.g. a client disconnect), on cancellation and on
        a storage failure, whatever was written is removed and nothing is
        visible under any key.
        """
        ...

    def put_file(self, path: Path, *, max_size: int | None = None) -> BlobInfo:
        """Store a copy of the local file ``path`` like :meth:`put_stream` (blocking).

        Raises :class:`~iotstore.blobstore.BlobTooLarge` past ``max_size``,
        ``OSError`` if ``path`` cannot be read.
        """
        ...

    def open(self, key: str) -> BinaryIO:
        """Return a seekable binary reader of blob ``key``; the caller closes it.

        Raises :class:`~iotstore.blobstore.BlobNotFound`. For S3 each
        unbuffered read is a ranged GET.
        """
        ...

    def read_range(self, key: str, start: int, length: int) -> bytes:
        """Return up to ``length`` bytes of blob ``key`` from offset ``start``.

        Fewer bytes come back only when the blob ends first; ``length == 0``
        gives ``b""``. Raises :class:`~iotstore.blobstore.RangeNotSatisfiable`
        when ``start`` is at or past the end (and ``length > 0``),
        :class:`~iotstore.blobstore.BlobNotFound`, ``ValueError`` for a
        negative ``start`` or ``length``.
        """
        ...

    def size(self, key: str) -> int:
        """Return the size of blob ``key`` in bytes; raise :class:`.BlobNotFound`."""
        ...

    def exists(self, key: str) -> bool:
        """Return whether blob ``key`` is stored."""
        ...

    def delete(self, key: str) -> None:
        """Remove blob ``key``; removing a missing blob is not an error."""
        ...

    def list(self, prefix: str = "") -> Iterator[BlobEntry]:
        """Yield every stored blob whose key starts with ``prefix``, in no particular order.

        Uploads in progress are not listed.
        """
        ...

    def download(self, key: str, *, range_header: str | None, filename: str) -> DownloadPlan:
        """Plan how the web layer serves blob ``key`` as a file called ``filename``.

        ``range_header`` is the request's Range header, if any: one
        satisfiable range gives a 206 plan, a header this package does not
        serve (another unit, several ranges, bad syntax) is ignored as RFC 9110
        allows (200, whole blob). The file store returns a
        :class:`FileDownload`, the memory store a :class:`BytesDownload`, the
        S3 store a :class:`RedirectDownload` to a short-lived presigned URL.
        The file and memory stores raise
        :class:`~iotstore.blobstore.BlobNotFound` and
        :class:`~iotstore.blobstore.RangeNotSatisfiable`; the S3 store does no
        network I/O here, so a missing blob or a bad range is answered by the
        object store (404, 416) when the client follows the redirect.
        """
        ...

    def sweep_orphans(self, referenced: Referenced, *, older_than: timedelta) -> int:
        """Delete blobs older than ``older_than`` that ``referenced`` does not name.

        Also removes what interrupted uploads left behind (temporary files,
        unfinished S3 multipart uploads) older than ``older_than``. Returns
        how many blobs and leftovers were removed. ``older_than`` must exceed
        the longest time between an upload and the commit of the row that
        references it, and callers must never start referencing a blob that
        old: the check and the delete are not atomic.
        """
        ...

    def close(self) -> None:
        """Release connections; the store is unusable afterwards."""
        ...
