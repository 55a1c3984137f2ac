"""The one error hierarchy of :mod:`iotstore.blobstore`.

Every failure a blob store reports is a :class:`BlobStoreError` whose message
is fit to show an operator: it names the blob key, never a file system path,
an endpoint or a credential. Exceptions from the layers underneath (``OSError``,
``botocore``) are wrapped where they enter as :class:`BlobStorageError`, with
the original kept as ``__cause__`` for the logs.
"""

from __future__ import annotations

__all__ = [
    "BlobNotFound",
    "BlobStorageError",
    "BlobStoreError",
    "BlobTooLarge",
    "InvalidBlobKey",
    "RangeNotSatisfiable",
]

# BlobNotFound and RangeNotSatisfiable lack the "Error" suffix (ruff N818): they
# read as conditions ("except BlobNotFound"), like the key store's errors.


class BlobStoreError(Exception):
    """Root of every error raised by :mod:`iotstore.blobstore`."""


class BlobNotFound(BlobStoreError):
    """No blob is stored under the key."""

    def __init__(self, key: str) -> None:
        super().__init__(f"no blob {key!r}")
        self.key = key


class InvalidBlobKey(BlobStoreError, ValueError):
    """A key is not one this package hands out (32 lower-case hex characters).

    Keys come from :attr:`BlobInfo.key`; anything else is a caller's bug or
    tampering, so it is refused before it reaches a path or an object name.
    """

    def __init__(self, key: object) -> None:
        super().__init__(f"invalid blob key {repr(key)[:80]}: expected 32 lower-case hex digits")


class BlobTooLarge(BlobStoreError):
    """An upload went past its size limit; nothing of it was kept.

    ``max_size`` is the limit in bytes (the web layer answers 413 with it).
    """

    def __init__(self, max_size: int) -> None:
        super().__init__(f"upload refused: larger than the limit of {max_size} bytes")
        self.max_size = max_size


class RangeNotSatisfiable(BlobStoreError):
    """A byte range starts at or past the end of the blob.

    ``size`` is the blob's size: HTTP answers 416 with ``Content-Range: bytes */size``.
    """

    def __init__(self, size: int) -> None:
        super().__init__(f"range not satisfiable: the blob has {size} bytes")
        self.size = size

    @property
    def content_range(self) -> str:
        """The ``Content-Range`` value a 416 response carries (RFC 9110 section 15.5.17)."""
        return f"bytes */{self.size}"


class BlobStorageError(BlobStoreError):
    """The storage underneath failed (disk, S3 server, network); the cause is chained."""
