"""Blobs as objects in an S3-compatible store: the scale-out backend (boto3).

Objects are named ``PREFIX + key`` in one bucket, addressed path-style (what
self-hosted servers such as SeaweedFS and MinIO expect). Uploads of up to one
part (8 MiB by default) are one PUT; larger ones are multipart uploads whose
parts go out while the next part is being hashed, and which are aborted on any
failure, so an object appears only when complete. Downloads are redirects to
presigned GET URLs valid for a few minutes; the object store answers the
client's Range header itself.
"""

from __future__ import annotations

import contextlib
import io
import re
import threading
from collections.abc import AsyncIterable, Iterator
from datetime import UTC, timedelta
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, BinaryIO, cast

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from . import _common
from ._common import DEFAULT_PART_SIZE
from ._http import content_disposition
from ._ingest import Parts, ingest, ingest_file, joined
from .errors import BlobNotFound, BlobStorageError, RangeNotSatisfiable
from .interfaces import BlobEntry, BlobInfo, DownloadPlan, RedirectDownload, Referenced

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer
    from mypy_boto3_s3.client import S3Client
    from mypy_boto3_s3.type_defs import CompletedPartTypeDef

__all__ = ["DEFAULT_PART_SIZE", "S3BlobStore"]

_MAX_PARTS = 10_000  # S3's maximum: 8 MiB parts allow blobs up to 78 GiB
_MAX_EXPIRY = timedelta(days=7)  # SigV4's maximum for presigned URLs
_READ_BUFFER = 256 << 10  # open(): one ranged GET per 256 KiB read sequentially
_NOT_FOUND = frozenset({"404", "NoSuchKey", "NotFound"})
_CONTENT_RANGE_SIZE = re.compile(r"bytes \*/([0-9]+)")


_SESSION_LOCK = threading.Lock()
_SESSION: list[boto3.session.Session] = []


def _client(
    endpoint_url: str, access_key: str, secret_key: str, region: str, config: Config
) -> S3Client:
    """A client with its own credentials; the one shared session caches the service model.

    A fresh session per client would parse botocore's S3 model again (about 0.4 s).
    Sessions are not thread safe, clients are, hence the lock.
    """
    with _SESSION_LOCK:
        if not _SESSION:
            _SESSION.append(boto3.session.Session())
        return _SESSION[0].client(
            "s3",
            endpoint_url=endpoint_url,
            aws_access_key_id=access_key,
            aws_secret_access_key=secret_key,
            region_name=region,
            config=config,
        )


def _body(data: bytes | bytearray) -> bytes:
    # botocore takes bytearray bodies (validate.py accepts bytes, bytearray, str or a
    # file); the stubs say bytes. Casting avoids copying every 8 MiB part.
    return cast("bytes", data)


@contextlib.contextmanager
def _translate(action: str, key: str | None = None) -> Iterator[None]:
    """Turn boto3's exceptions into this package's, naming the key, never the endpoint."""
    try:
        yield
    except ClientError as e:
        code = str(e.response.get("Error", {}).get("Code", ""))
        if key is not None and code in _NOT_FOUND:
            raise BlobNotFound(key) from None
        what = f"{action} of blob {key!r}" if key else action
        raise BlobStorageError(f"S3 {what} failed ({code or 'error'})") from e
    except BotoCoreError as e:
        what = f"{action} of blob {key!r}" if key else action
        raise BlobStorageError(f"S3 {what} failed: {type(e).__name__}") from e


class _S3Sink:
    """One upload: a PUT for a blob of one batch or less, else a multipart upload."""

    def __init__(self, client: S3Client, bucket: str, name: str, key: str) -> None:
        self.key = key
        self._client = client
        self._bucket = bucket
        self._name = name
        self._upload_id: str | None = None
        self._parts: list[CompletedPartTypeDef] = []
        self._committed = False

    def _upload_part(self, data: bytes | bytearray) -> None:
        if self._upload_id is None:
            created = self._client.create_multipart_upload(
                Bucket=self._bucket, Key=self._name, ContentType="application/octet-stream"
            )
            self._upload_id = created["UploadId"]
        number = len(self._parts) + 1
        if number > _MAX_PARTS:
            raise BlobStorageError(f"blob {self.key!r} needs more than {_MAX_PARTS} parts")
        done = self._client.upload_part(
            Bucket=self._bucket,
            Key=self._name,
            UploadId=self._upload_id,
            PartNumber=number,
            Body=_body(data),
        )
        self._parts.append({"ETag": done["ETag"], "PartNumber": number})

    def write(self, parts: Parts) -> None:
        body = joined(parts)
        del parts[:]  # the chunks go as soon as the part is one buffer
        with _translate("upload", self.key):
            self._upload_part(body)

    def commit(self, parts: Parts) -> None:
        tail = joined(parts)
        del parts[:]
        with _translate("upload", self.key):
            if self._upload_id is None:
                self._client.put_object(
                    Bucket=self._bucket,
                    Key=self._name,
                    Body=_body(tail),
                    ContentType="application/octet-stream",
                )
            else:
                if tail:
                    self._upload_part(tail)
                self._client.complete_multipart_upload(
                    Bucket=self._bucket,
                    Key=self._name,
                    UploadId=self._upload_id,
                    MultipartUpload={"Parts": self._parts},
                )
            self._committed = True

    def abort(self) -> None:
        # Best effort: an abort that fails leaves an unfinished multipart upload
        # (never a visible object), which sweep_orphans aborts later.
        with contextlib.suppress(ClientError, BotoCoreError):
            if self._committed:
                self._client.delete_object(Bucket=self._bucket, Key=self._name)
            elif self._upload_id is not None:
                self._client.abort_multipart_upload(
                    Bucket=self._bucket, Key=self._name, UploadId=self._upload_id
                )


class _RangeReader(io.RawIOBase):
    """A seekable raw reader whose every read is one ranged GET."""

    def __init__(self, store: S3BlobStore, key: str, size: int) -> None:
        super().__init__()
        self._store = store
        self._key = key
        self._size = size
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET, /) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}.get(whence)
        if base is None:
            raise ValueError(f"invalid whence {whence!r}")
        if base + offset < 0:
            raise ValueError("negative seek position")
        self._pos = base + offset
        return self._pos

    def readall(self) -> bytes:
        # RawIOBase.readall would read in 8 KiB steps: one GET for the rest instead
        if self._pos >= self._size:
            return b""
        data = self._store.read_range(self._key, self._pos, self._size - self._pos)
        self._pos += len(data)
        return data

    def readinto(self, buffer: WriteableBuffer, /) -> int:
        view = memoryview(buffer).cast("B")
        if self._pos >= self._size or not view:
            return 0
        data = self._store.read_range(self._key, self._pos, len(view))
        view[: len(data)] = data
        self._pos += len(data)
        return len(data)


class S3BlobStore:
    """A :class:`~iotstore.blobstore.BlobStore` in an S3-compatible bucket.

    ``endpoint_url`` is where this process reaches the server;
    ``public_endpoint_url`` (default: the same) is the base of the presigned
    URLs devices are redirected to. Objects are named ``prefix + key``.
    ``part_size`` (at least 8 MiB) is also the most an upload holds in memory
    per stage. Thread safe (one boto3 client, which is).
    """

    def __init__(
        self,
        endpoint_url: str,
        bucket: str,
        access_key: str,
        secret_key: str,
        region: str = "us-east-1",
        *,
        prefix: str = "blobs/",
        public_endpoint_url: str | None = None,
        part_size: int = DEFAULT_PART_SIZE,
        presign_expiry: timedelta = timedelta(minutes=5),
        timeout: float = 60.0,
    ) -> None:
        if part_size < DEFAULT_PART_SIZE:
            raise ValueError(f"part_size must be at least {DEFAULT_PART_SIZE} bytes")
        if not timedelta(seconds=1) <= presign_expiry <= _MAX_EXPIRY:
            raise ValueError("presign_expiry must be between one second and seven days")
        self.bucket = bucket
        self.prefix = prefix
        self.part_size = part_size
        self.presign_expiry = presign_expiry
        self._endpoint_url = endpoint_url
        config = Config(
            signature_version="s3v4",
            s3={"addressing_style": "path"},
            retries={"mode": "standard", "max_attempts": 3},
            connect_timeout=min(timeout, 10.0),
            read_timeout=timeout,
            max_pool_connections=20,
        )
        self._client = _client(endpoint_url, access_key, secret_key, region, config)
        self._presigner = (
            self._client
            if public_endpoint_url in (None, endpoint_url)
            else _client(
                public_endpoint_url or endpoint_url, access_key, secret_key, region, config
            )
        )

    def __repr__(self) -> str:
        return f"S3BlobStore({self._endpoint_url!r}, bucket={self.bucket!r})"

    def _name(self, key: str) -> str:
        return self.prefix + _common.check_key(key)

    def ensure_bucket(self) -> None:
        """Create the bucket unless it exists (deployment set-up, tests)."""
        with _translate("bucket check"):
            try:
                self._client.head_bucket(Bucket=self.bucket)
            except ClientError as e:
                if str(e.response.get("Error", {}).get("Code")) not in {"404", "NoSuchBucket"}:
                    raise
                self._client.create_bucket(Bucket=self.bucket)

    async def put_stream(self, chunks: AsyncIterable[bytes], *, max_size: int) -> BlobInfo:
        """Stream into the bucket (PUT or multipart); see :meth:`BlobStore.put_stream`."""
        key = _common.new_key()
        sink = _S3Sink(self._client, self.bucket, self._name(key), key)
        size, digest = await ingest(
            chunks, sink, max_size=max_size, batch_size=self.part_size, depth=0, contiguous=True
        )
        return BlobInfo(key=key, size=size, sha3_384=digest, created=_common.utcnow())

    def put_file(self, path: Path, *, max_size: int | None = None) -> BlobInfo:
        """Upload a local file; see :meth:`BlobStore.put_file`."""
        key = _common.new_key()
        sink = _S3Sink(self._client, self.bucket, self._name(key), key)
        size, digest = ingest_file(path, sink, max_size=max_size, batch_size=self.part_size)
        return BlobInfo(key=key, size=size, sha3_384=digest, created=_common.utcnow())

    def open(self, key: str) -> BinaryIO:
        """A buffered seekable reader doing ranged GETs; see :meth:`BlobStore.open`."""
        raw = _RangeReader(self, key, self.size(key))
        return io.BufferedReader(raw, buffer_size=_READ_BUFFER)

    def read_range(self, key: str, start: int, length: int) -> bytes:
        """One ranged GET; see :meth:`BlobStore.read_range`."""
        _common.check_read(start, length)
        name = self._name(key)
        if length == 0:
            if not self.exists(key):
                raise BlobNotFound(key)
            return b""
        with _translate("read", key):
            try:
                got = self._client.get_object(
                    Bucket=self.bucket, Key=name, Range=f"bytes={start}-{start + length - 1}"
                )
            except ClientError as e:
                if e.response.get("Error", {}).get("Code") != "InvalidRange":
                    raise
                headers = e.response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
                found = _CONTENT_RANGE_SIZE.fullmatch(headers.get("content-range", ""))
                size = int(found.group(1)) if found else self.size(key)
                raise RangeNotSatisfiable(size) from None
            with contextlib.closing(got["Body"]) as body:
                return body.read()

    def size(self, key: str) -> int:
        """A HEAD request; see :meth:`BlobStore.size`."""
        name = self._name(key)
        with _translate("lookup", key):
            return self._client.head_object(Bucket=self.bucket, Key=name)["ContentLength"]

    def exists(self, key: str) -> bool:
        """A HEAD request; see :meth:`BlobStore.exists`."""
        try:
            self.size(key)
        except BlobNotFound:
            return False
        return True

    def delete(self, key: str) -> None:
        """Delete the object (idempotent in S3); see :meth:`BlobStore.delete`."""
        name = self._name(key)
        with _translate("delete", key):
            self._client.delete_object(Bucket=self.bucket, Key=name)

    def list(self, prefix: str = "") -> Iterator[BlobEntry]:
        """Page through the bucket listing; see :meth:`BlobStore.list`."""
        _common.check_prefix(prefix)
        pages = self._client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=self.prefix + prefix
        )
        with _translate("listing"):
            for page in pages:
                for item in page.get("Contents", []):
                    key = item.get("Key", "")[len(self.prefix) :]
                    if _common.is_key(key) and "LastModified" in item:
                        created = item["LastModified"].astimezone(UTC)
                        yield BlobEntry(key=key, size=item.get("Size", 0), created=created)

    def download(self, key: str, *, range_header: str | None, filename: str) -> DownloadPlan:
        """Presign a GET and plan a redirect to it; see :meth:`BlobStore.download`.

        ``range_header`` is not looked at: the client repeats its Range header
        to the object store after the redirect.
        """
        del range_header
        name = self._name(key)
        expires = _common.utcnow() + self.presign_expiry
        with _translate("presign", key):
            url = self._presigner.generate_presigned_url(
                "get_object",
                Params={
                    "Bucket": self.bucket,
                    "Key": name,
                    "ResponseContentDisposition": content_disposition(filename),
                    "ResponseContentType": "application/octet-stream",
                },
                ExpiresIn=int(self.presign_expiry.total_seconds()),
            )
        return RedirectDownload(
            url=url,
            expires=expires,
            status=302,
            headers=MappingProxyType({"Location": url, "Cache-Control": "no-store"}),
        )

    def sweep_orphans(self, referenced: Referenced, *, older_than: timedelta) -> int:
        """Delete old unreferenced objects, abort stale multipart uploads.

        See :meth:`BlobStore.sweep_orphans`.
        """
        removed = _common.sweep(self.list(), self.delete, referenced, older_than)
        cutoff = _common.utcnow() - older_than
        pages = self._client.get_paginator("list_multipart_uploads").paginate(
            Bucket=self.bucket, Prefix=self.prefix
        )
        with _translate("sweep"):
            for page in pages:
                for upload in page.get("Uploads", []):
                    started = upload.get("Initiated")
                    if started is not None and started.astimezone(UTC) < cutoff:
                        self._client.abort_multipart_upload(
                            Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                        )
                        removed += 1
        return removed

    def close(self) -> None:
        """Close the HTTP connection pools."""
        self._client.close()
        if self._presigner is not self._client:
            self._presigner.close()
