"""Snap files and other large immutable blobs, behind one protocol.

Pick an implementation in the composition root (:func:`blobstore_for`) and
hand it around as a :class:`BlobStore`: :class:`MemoryBlobStore` (tests),
:class:`FileBlobStore` (files under a directory, the embedded default) or
:class:`S3BlobStore` (S3-compatible object storage, presigned downloads).
Uploads are streamed in (:meth:`BlobStore.put_stream`), hashed with SHA3-384
on the way and never held whole in memory; a blob is visible only once
complete, and blobs no database row references are swept
(:meth:`BlobStore.sweep_orphans`). Downloads are planned
(:meth:`BlobStore.download`) and served by the web layer.

``S3BlobStore`` is imported on first use, so boto3 loads only where S3 is used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._factory import BACKENDS, blobstore_for
from ._http import content_disposition, parse_range
from .errors import (
    BlobNotFound,
    BlobStorageError,
    BlobStoreError,
    BlobTooLarge,
    InvalidBlobKey,
    RangeNotSatisfiable,
)
from .filesystem import FileBlobStore
from .interfaces import (
    BlobEntry,
    BlobInfo,
    BlobStore,
    ByteRange,
    BytesDownload,
    DownloadPlan,
    FileDownload,
    RedirectDownload,
    Referenced,
)
from .memory import MemoryBlobStore

if TYPE_CHECKING:
    from .s3 import S3BlobStore

__all__ = [
    "BACKENDS",
    "BlobEntry",
    "BlobInfo",
    "BlobNotFound",
    "BlobStorageError",
    "BlobStore",
    "BlobStoreError",
    "BlobTooLarge",
    "ByteRange",
    "BytesDownload",
    "DownloadPlan",
    "FileBlobStore",
    "FileDownload",
    "InvalidBlobKey",
    "MemoryBlobStore",
    "RangeNotSatisfiable",
    "RedirectDownload",
    "Referenced",
    "S3BlobStore",
    "blobstore_for",
    "content_disposition",
    "parse_range",
]


def __getattr__(name: str) -> object:
    if name == "S3BlobStore":
        from .s3 import S3BlobStore  # noqa: PLC0415 - boto3 loads only where S3 is used

        return S3BlobStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
