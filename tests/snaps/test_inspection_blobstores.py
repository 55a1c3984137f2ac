"""inspect_snap reads blobs through BlobStore.open: memory, files, and ranged GETs on real S3."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from botocore.config import Config

from iotstore.blobstore import BlobStore, FileBlobStore, MemoryBlobStore
from iotstore.blobstore.testing import SeaweedFSUnavailable, join_seaweedfs
from iotstore.snaps.inspection import InspectionError, inspect_snap
from iotstore.snaps.testing import build_snap


@pytest.fixture(scope="module")
def s3_store() -> Iterator[BlobStore]:
    """A store in a bucket of its own on the machine's test SeaweedFS, removed afterwards."""
    try:
        server = join_seaweedfs()
    except SeaweedFSUnavailable as e:
        pytest.fail(f"the S3 inspection test needs SeaweedFS and it is not available: {e}", False)
    bucket = f"iotstore-inspect-{secrets.token_hex(4)}"
    store = server.store(bucket)
    try:
        yield store
    finally:
        client = boto3.session.Session(
            aws_access_key_id=server.access_key,
            aws_secret_access_key=server.secret_key,
            region_name=server.region,
        ).client(
            "s3", endpoint_url=server.endpoint_url, config=Config(s3={"addressing_style": "path"})
        )
        with contextlib.suppress(Exception):
            for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
                for item in page.get("Contents", []):
                    client.delete_object(Bucket=bucket, Key=item["Key"])
            client.delete_bucket(Bucket=bucket)
        client.close()
        store.close()
        server.leave()


@pytest.fixture(params=["memory", "filesystem", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> BlobStore:
    if request.param == "memory":
        return MemoryBlobStore()
    if request.param == "filesystem":
        return FileBlobStore(tmp_path / "blobs")
    s3: BlobStore = request.getfixturevalue("s3_store")
    return s3


@pytest.fixture(scope="module")
def stored_snap(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # 1 MiB of padding puts the tables past the reader's first window: several ranged reads
    return build_snap(
        tmp_path_factory.mktemp("stored"),
        "stored-snap",
        "4.2",
        files={f"lib/{i}": secrets.token_bytes(300) for i in range(50)},
        padding=1 << 20,
        compression="gzip",
    )


def test_inspects_a_stored_blob(store: BlobStore, stored_snap: Path) -> None:
    key = store.put_file(stored_snap).key
    with store.open(key) as f:
        meta = inspect_snap(f)
    assert (meta.name, meta.version) == ("stored-snap", "4.2")


def test_refuses_a_truncated_blob(store: BlobStore, tmp_path: Path) -> None:
    path = build_snap(tmp_path, "cut-snap")
    data = path.read_bytes()
    used = int.from_bytes(data[40:48], "little")  # the superblock's bytes_used
    path.write_bytes(data[: used - 10])
    key = store.put_file(path).key
    with store.open(key) as f, pytest.raises(InspectionError) as info:
        inspect_snap(f)
    assert info.value.code == "truncated"
