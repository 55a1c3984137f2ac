"""The package surface: the factory, lazy boto3, BlobInfo encodings, the SeaweedFS harness."""

from __future__ import annotations

import base64
import hashlib
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

import iotstore.blobstore as blobstore
from iotstore.blobstore import (
    BlobInfo,
    BlobStoreError,
    FileBlobStore,
    InvalidBlobKey,
    MemoryBlobStore,
    blobstore_for,
)
from iotstore.blobstore.testing import ENV_S3_URL, S3Server, SeaweedFSUnavailable, join_seaweedfs


def test_factory(tmp_path: Path) -> None:
    assert isinstance(blobstore_for("memory"), MemoryBlobStore)
    store = blobstore_for("filesystem", root=tmp_path / "b")
    assert isinstance(store, FileBlobStore)
    assert store.root == tmp_path / "b"
    with pytest.raises(ValueError, match="root"):
        blobstore_for("filesystem")
    with pytest.raises(ValueError, match="endpoint_url, bucket, access_key, secret_key"):
        blobstore_for("s3")
    with pytest.raises(ValueError, match="unknown blob store 'ftp'"):
        blobstore_for("ftp")  # type: ignore[arg-type]


def test_importing_the_package_does_not_load_boto3() -> None:
    code = "import sys, iotstore.blobstore; print('boto3' in sys.modules)"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "False"
    assert blobstore.S3BlobStore.__name__ == "S3BlobStore"
    with pytest.raises(AttributeError):
        _ = blobstore.NoSuchThing


def test_blob_info_spellings() -> None:
    digest = hashlib.sha3_384(b"snap").digest()
    info = BlobInfo(key="a" * 32, size=4, sha3_384=digest, created=datetime.now(UTC))
    assert info.sha3_384_hex == hashlib.sha3_384(b"snap").hexdigest()
    assert len(info.sha3_384_hex) == 96
    assert info.sha3_384_base64url == base64.urlsafe_b64encode(digest).decode().rstrip("=")
    assert digest.hex() not in repr(info)  # keep logs short


def test_errors_share_one_root() -> None:
    assert issubclass(InvalidBlobKey, BlobStoreError)
    assert issubclass(InvalidBlobKey, ValueError)
    for name in blobstore.__all__:
        value = getattr(blobstore, name)
        if isinstance(value, type) and issubclass(value, Exception):
            assert issubclass(value, BlobStoreError), name


def test_harness_joins_the_running_server(s3_server: S3Server, s3_bucket: str) -> None:
    second = join_seaweedfs()
    try:
        assert second.endpoint_url == s3_server.endpoint_url
        assert second.access_key == s3_server.access_key
    finally:
        second.leave()
    # the run's own membership keeps the server up
    store = s3_server.store(s3_bucket, prefix="harness/")
    assert list(store.list()) == []
    store.close()


def test_harness_external_server_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_S3_URL, "http://AK:SK@127.0.0.1:9000")
    server = join_seaweedfs()
    assert (server.endpoint_url, server.access_key, server.secret_key) == (
        "http://127.0.0.1:9000",
        "AK",
        "SK",
    )
    server.leave()
    monkeypatch.setenv(ENV_S3_URL, "127.0.0.1:9000")
    with pytest.raises(SeaweedFSUnavailable, match=ENV_S3_URL):
        join_seaweedfs()
