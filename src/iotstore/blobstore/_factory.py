"""Choosing a blob store from plain values (the composition root reads the settings)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Literal

from .filesystem import FileBlobStore
from .interfaces import BlobStore
from .memory import MemoryBlobStore

__all__ = ["BACKENDS", "blobstore_for"]

BACKENDS = ("memory", "filesystem", "s3")


def blobstore_for(
    backend: Literal["memory", "filesystem", "s3"],
    *,
    root: Path | None = None,
    endpoint_url: str | None = None,
    bucket: str | None = None,
    access_key: str | None = None,
    secret_key: str | None = None,
    region: str = "us-east-1",
    prefix: str = "blobs/",
    public_endpoint_url: str | None = None,
    presign_expiry: timedelta = timedelta(minutes=5),
) -> BlobStore:
    """Build the blob store called ``backend`` from the values it needs.

    ``filesystem`` needs ``root``; ``s3`` needs ``endpoint_url``, ``bucket``,
    ``access_key`` and ``secret_key``. Raises ValueError naming what is
    missing or an unknown backend. The S3 store is imported only when chosen
    (boto3 takes most of a second to import).
    """
    if backend == "memory":
        return MemoryBlobStore()
    if backend == "filesystem":
        if root is None:
            raise ValueError("the filesystem blob store needs a root directory")
        return FileBlobStore(root)
    if backend == "s3":
        needed = {
            "endpoint_url": endpoint_url,
            "bucket": bucket,
            "access_key": access_key,
            "secret_key": secret_key,
        }
        missing = [name for name, value in needed.items() if not value]
        if missing:
            raise ValueError(f"the s3 blob store needs {', '.join(missing)}")
        assert endpoint_url and bucket and access_key and secret_key  # checked just above
        from .s3 import S3BlobStore  # noqa: PLC0415 - keep boto3 out of every other start-up

        return S3BlobStore(
            endpoint_url,
            bucket,
            access_key,
            secret_key,
            region,
            prefix=prefix,
            public_endpoint_url=public_endpoint_url,
            presign_expiry=presign_expiry,
        )
    raise ValueError(f"unknown blob store {backend!r}: use one of {', '.join(BACKENDS)}")
