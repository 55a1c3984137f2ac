"""The S3 store beyond the contract: presigned URLs SeaweedFS really checks, failures, sweep."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx
import pytest
from botocore.exceptions import EndpointConnectionError
from mypy_boto3_s3.client import S3Client

from iotstore.blobstore import (
    BlobStorageError,
    BlobTooLarge,
    RedirectDownload,
    S3BlobStore,
    blobstore_for,
)
from iotstore.blobstore.testing import S3Server

from ._support import Counted, MiB, chunked, keys, leftovers, pattern

pytestmark = pytest.mark.anyio


def presign(store: S3BlobStore, key: str, filename: str = "demo_1.snap") -> RedirectDownload:
    plan = store.download(key, range_header=None, filename=filename)
    assert isinstance(plan, RedirectDownload)
    return plan


def with_query(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    query.update(changes)
    return urlunsplit(parts._replace(query=urlencode(query)))


async def test_download_is_a_redirect_to_a_working_presigned_url(s3_store: S3BlobStore) -> None:
    data = pattern(300_000, seed=20)
    key = (await s3_store.put_stream(chunked(data), max_size=MiB)).key
    before = datetime.now(UTC)

    plan = presign(s3_store, key, filename="demo_7.snap")

    assert plan.status == 302
    assert plan.headers["Location"] == plan.url
    assert plan.headers["Cache-Control"] == "no-store"
    assert timedelta(minutes=4) < plan.expires - before <= timedelta(minutes=5, seconds=1)
    assert plan.url.startswith(f"{s3_store._endpoint_url}/{s3_store.bucket}/{s3_store.prefix}")
    got = httpx.get(plan.url)
    assert got.status_code == 200
    assert got.content == data
    assert got.headers["content-disposition"] == 'attachment; filename="demo_7.snap"'
    assert got.headers["content-type"] == "application/octet-stream"
    ranged = httpx.get(plan.url, headers={"Range": "bytes=-100"})
    assert ranged.status_code == 206
    assert ranged.content == data[-100:]
    assert ranged.headers["content-range"] == f"bytes {len(data) - 100}-{len(data) - 1}/{len(data)}"


async def test_presigned_url_expires(s3_server: S3Server, s3_bucket: str) -> None:
    store = s3_server.store(s3_bucket, prefix="expiry/", presign_expiry=timedelta(seconds=3))
    key = (await store.put_stream(chunked(b"short-lived"), max_size=100)).key
    plan = presign(store, key)
    assert httpx.get(plan.url).status_code == 200

    # SigV4 counts from X-Amz-Date (whole seconds), so wait until surely past the end
    time.sleep(max(0.0, (plan.expires - datetime.now(UTC)).total_seconds()) + 1.5)

    expired = httpx.get(plan.url)
    assert expired.status_code == 403
    assert b"expired" in expired.content.lower()
    store.close()


async def test_tampered_presigned_urls_are_refused(s3_store: S3BlobStore) -> None:
    secret = (await s3_store.put_stream(chunked(b"private snap"), max_size=100)).key
    other = (await s3_store.put_stream(chunked(b"public snap"), max_size=100)).key
    url = presign(s3_store, other).url
    assert httpx.get(url).status_code == 200

    signature = dict(parse_qsl(urlsplit(url).query))["X-Amz-Signature"]
    flipped = ("0" if signature[0] != "0" else "1") + signature[1:]
    tampered = [
        url.replace(other, secret),  # another object with this URL's signature
        with_query(url, **{"X-Amz-Signature": flipped}),
        with_query(url, **{"X-Amz-Expires": "604800"}),  # a longer life
        with_query(url, **{"response-content-disposition": "inline"}),
    ]
    for bad in tampered:
        assert httpx.get(bad).status_code == 403, bad


async def test_wrong_secret_is_refused(s3_server: S3Server, s3_store: S3BlobStore) -> None:
    key = (await s3_store.put_stream(chunked(b"x"), max_size=10)).key
    impostor = S3BlobStore(
        s3_server.endpoint_url,
        s3_store.bucket,
        s3_server.access_key,
        "not-the-secret",
        prefix=s3_store.prefix,
    )
    assert httpx.get(presign(impostor, key).url).status_code == 403
    with pytest.raises(BlobStorageError, match="403") as raised:  # HEAD: no error body
        impostor.size(key)
    assert raised.value.__cause__ is not None
    with pytest.raises(BlobStorageError):
        await impostor.put_stream(chunked(b"y"), max_size=10)
    impostor.close()


async def test_public_endpoint_for_presigned_urls(
    s3_server: S3Server, s3_store: S3BlobStore
) -> None:
    key = (await s3_store.put_stream(chunked(b"via the front door"), max_size=100)).key
    public = S3BlobStore(
        s3_server.endpoint_url,
        s3_store.bucket,
        s3_server.access_key,
        s3_server.secret_key,
        prefix=s3_store.prefix,
        public_endpoint_url="http://localhost:8333",
    )
    url = presign(public, key).url
    assert url.startswith("http://localhost:8333/")
    assert httpx.get(url).content == b"via the front door"
    public.close()


@pytest.mark.parametrize("failing_part", [1, 2, 3])
async def test_storage_failure_mid_upload_leaves_nothing(
    s3_store: S3BlobStore, s3_client: S3Client, failing_part: int
) -> None:
    calls = {"parts": 0}

    def network_drops(**_: object) -> None:
        calls["parts"] += 1
        if calls["parts"] == failing_part:
            raise EndpointConnectionError(endpoint_url=s3_store._endpoint_url)

    # the third part is the tail, uploaded by commit
    s3_store._client.meta.events.register("before-call.s3.UploadPart", network_drops)
    with pytest.raises(BlobStorageError, match="EndpointConnectionError") as raised:
        await s3_store.put_stream(Counted(count=300), max_size=1 << 30)
    assert isinstance(raised.value.__cause__, EndpointConnectionError)
    assert leftovers(s3_store, s3_client) == []


async def test_unreachable_server_is_a_storage_error() -> None:
    store = S3BlobStore("http://127.0.0.1:9", "bucket", "key", "secret", timeout=2)
    with pytest.raises(BlobStorageError, match="EndpointConnectionError") as raised:
        await store.put_stream(chunked(b"x"), max_size=10)
    assert "127.0.0.1" not in str(raised.value)  # the endpoint stays out of user-facing text
    with pytest.raises(BlobStorageError):
        store.size("0" * 32)
    store.close()


async def test_large_upload_is_multipart_and_refusal_aborts_it(
    s3_store: S3BlobStore, s3_client: S3Client
) -> None:
    stream = Counted(count=300)  # 18.75 MiB: two full parts, then refused
    with pytest.raises(BlobTooLarge):
        await s3_store.put_stream(stream, max_size=18 * MiB)
    assert leftovers(s3_store, s3_client) == []


async def test_sweep_aborts_stale_multipart_uploads(
    s3_store: S3BlobStore, s3_client: S3Client
) -> None:
    name = f"{s3_store.prefix}{'ab' * 16}"
    started = s3_client.create_multipart_upload(Bucket=s3_store.bucket, Key=name)
    s3_client.upload_part(
        Bucket=s3_store.bucket,
        Key=name,
        UploadId=started["UploadId"],
        PartNumber=1,
        Body=b"a crashed upload",
    )
    assert s3_store.sweep_orphans(set(), older_than=timedelta(hours=1)) == 0
    assert leftovers(s3_store, s3_client) == [f"upload:{name}"]

    time.sleep(1.1)  # S3 times have whole seconds
    assert s3_store.sweep_orphans(set(), older_than=timedelta(0)) == 1
    assert leftovers(s3_store, s3_client) == []


async def test_list_ignores_foreign_objects(s3_store: S3BlobStore, s3_client: S3Client) -> None:
    s3_client.put_object(Bucket=s3_store.bucket, Key=f"{s3_store.prefix}README", Body=b"hi")
    s3_client.put_object(Bucket=s3_store.bucket, Key=f"{s3_store.prefix}{'a' * 31}", Body=b"")
    key = (await s3_store.put_stream(chunked(b"blob"), max_size=10)).key
    assert keys(s3_store) == {key}
    time.sleep(1.1)
    assert s3_store.sweep_orphans(set(), older_than=timedelta(0)) == 1
    assert len(leftovers(s3_store, s3_client)) == 2  # foreign objects are not ours to sweep


def test_settings_are_checked(s3_server: S3Server) -> None:
    def make(**options: object) -> None:
        S3BlobStore(s3_server.endpoint_url, "b", "k", "s", **options)  # type: ignore[arg-type]

    with pytest.raises(ValueError, match="part_size"):
        make(part_size=5 * MiB)
    with pytest.raises(ValueError, match="presign_expiry"):
        make(presign_expiry=timedelta(days=8))
    with pytest.raises(ValueError, match="presign_expiry"):
        make(presign_expiry=timedelta(0))


def test_factory_builds_an_s3_store(s3_server: S3Server, s3_bucket: str) -> None:
    store = blobstore_for(
        "s3",
        endpoint_url=s3_server.endpoint_url,
        bucket=s3_bucket,
        access_key=s3_server.access_key,
        secret_key=s3_server.secret_key,
        prefix="factory/",
    )
    assert isinstance(store, S3BlobStore)
    assert list(store.list()) == []
    store.close()
