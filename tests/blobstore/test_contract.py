"""One contract, every blob store: memory, file system and S3 (a real SeaweedFS)."""

from __future__ import annotations

import base64
import hashlib
import io
import tracemalloc
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
import pytest
from mypy_boto3_s3.client import S3Client

from iotstore.blobstore import (
    BlobInfo,
    BlobNotFound,
    BlobStore,
    BlobTooLarge,
    InvalidBlobKey,
    RangeNotSatisfiable,
    S3BlobStore,
)

from ._support import (
    Counted,
    KiB,
    MiB,
    chunked,
    fetch_download,
    keys,
    leftovers,
    pattern,
)

pytestmark = pytest.mark.anyio

MISSING = "0" * 32
LIMIT = 1 << 40


def s3_client_for(store: BlobStore, request: pytest.FixtureRequest) -> S3Client | None:
    if isinstance(store, S3BlobStore):
        client: S3Client = request.getfixturevalue("s3_client")
        return client
    return None


async def put(store: BlobStore, data: bytes, max_size: int = LIMIT) -> BlobInfo:
    return await store.put_stream(chunked(data), max_size=max_size)


# --- storing ----------------------------------------------------------------------------


async def test_put_stream_reports_size_digest_and_a_fresh_key(blobstore: BlobStore) -> None:
    data = pattern(300 * KiB + 7)
    before = datetime.now(UTC) - timedelta(seconds=1)
    info = await put(blobstore, data)
    after = datetime.now(UTC) + timedelta(seconds=1)

    assert info.size == len(data)
    assert info.sha3_384 == hashlib.sha3_384(data).digest()
    assert info.sha3_384_hex == hashlib.sha3_384(data).hexdigest()
    assert len(info.sha3_384_base64url) == 64
    assert "=" not in info.sha3_384_base64url
    assert base64.urlsafe_b64decode(info.sha3_384_base64url) == info.sha3_384
    assert len(info.key) == 32
    assert int(info.key, 16) >= 0
    assert info.created.utcoffset() == timedelta(0)
    assert before <= info.created <= after

    again = await put(blobstore, data)
    assert again.key != info.key
    assert again.sha3_384 == info.sha3_384


async def test_stored_blob_reads_back(blobstore: BlobStore) -> None:
    data = pattern(200 * KiB + 3, seed=1)
    info = await put(blobstore, data)

    assert blobstore.exists(info.key)
    assert blobstore.size(info.key) == len(data)
    with blobstore.open(info.key) as f:
        assert f.read() == data
    [entry] = list(blobstore.list())
    assert (entry.key, entry.size) == (info.key, len(data))
    assert entry.created.utcoffset() == timedelta(0)


@pytest.mark.parametrize("size", [0, 1, 8 * MiB - 1, 8 * MiB, 8 * MiB + 1], ids=lambda n: f"{n}B")
async def test_sizes_around_the_batch_and_part_size(blobstore: BlobStore, size: int) -> None:
    data = pattern(size, seed=size)
    info = await put(blobstore, data)
    assert info.size == size
    assert info.sha3_384 == hashlib.sha3_384(data).digest()
    assert blobstore.size(info.key) == size
    with blobstore.open(info.key) as f:
        assert f.read() == data


async def test_chunks_of_odd_sizes_and_empty_chunks(blobstore: BlobStore) -> None:
    data = pattern(3 * MiB + 11, seed=2)
    sizes = [0, 1, 7, 65536, 0, 1 << 20, 3, 2 * MiB]

    async def odd() -> AsyncIterator[bytes]:
        offset, i = 0, 0
        while offset < len(data):
            n = sizes[i % len(sizes)]
            yield data[offset : offset + n]
            offset += n
            i += 1

    info = await blobstore.put_stream(odd(), max_size=LIMIT)
    assert info.sha3_384 == hashlib.sha3_384(data).digest()
    assert blobstore.read_range(info.key, 0, len(data)) == data


async def test_concurrent_uploads_stay_apart(blobstore: BlobStore) -> None:
    blobs = [pattern(2 * MiB + i, seed=10 + i) for i in range(3)]
    infos: dict[int, BlobInfo] = {}

    async def one(i: int) -> None:
        infos[i] = await put(blobstore, blobs[i])

    async with anyio.create_task_group() as tg:
        for i in range(len(blobs)):
            tg.start_soon(one, i)
    for i, data in enumerate(blobs):
        assert infos[i].sha3_384 == hashlib.sha3_384(data).digest()
        assert blobstore.read_range(infos[i].key, 0, len(data)) == data
    assert keys(blobstore) == {info.key for info in infos.values()}


async def test_uploads_need_no_thread_from_the_default_pool(blobstore: BlobStore) -> None:
    # each upload keeps two worker threads busy (hashing, writing): from a pool of their
    # own, so slow uploads never leave the web app's other work without a thread
    default = anyio.to_thread.current_default_thread_limiter()
    tokens = default.total_tokens
    default.total_tokens = 1
    try:
        async with default:  # every default thread is taken meanwhile
            with anyio.fail_after(60):
                infos = [await put(blobstore, pattern(9 * MiB + i, seed=i)) for i in range(2)]
    finally:
        default.total_tokens = tokens
    assert [info.size for info in infos] == [9 * MiB, 9 * MiB + 1]


def test_put_file(blobstore: BlobStore, tmp_path: Path) -> None:
    data = pattern(9 * MiB + 5, seed=3)
    source = tmp_path / "demo_1.snap"
    source.write_bytes(data)
    info = blobstore.put_file(source)
    assert (info.size, info.sha3_384) == (len(data), hashlib.sha3_384(data).digest())
    assert blobstore.read_range(info.key, len(data) - 10, 100) == data[-10:]
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    assert blobstore.put_file(empty).sha3_384 == hashlib.sha3_384(b"").digest()


def test_put_file_over_the_limit_leaves_nothing(
    blobstore: BlobStore, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    source = tmp_path / "big.snap"
    source.write_bytes(pattern(9 * MiB))
    with pytest.raises(BlobTooLarge):
        blobstore.put_file(source, max_size=9 * MiB - 1)
    assert leftovers(blobstore, s3_client_for(blobstore, request)) == []


# --- streaming with bounded memory -------------------------------------------------------


async def test_50_mib_in_64_kib_chunks_with_bounded_memory(streaming_store: BlobStore) -> None:
    stream = Counted(count=800)  # 800 x 64 KiB = 50 MiB, generated chunk by chunk
    size, digest = stream.expected()

    tracemalloc.start()
    try:
        info = await streaming_store.put_stream(stream, max_size=LIMIT)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert (info.size, info.sha3_384) == (size, digest)
    assert streaming_store.size(info.key) == size
    # the file store holds about 4 batches of 4 MiB, the S3 store about 2 parts of 8 MiB
    bound = 18 * MiB if not isinstance(streaming_store, S3BlobStore) else 20 * MiB
    assert peak < bound, f"peak traced memory {peak / MiB:.1f} MiB for a 50 MiB upload"


async def test_tiny_chunks_are_coalesced(streaming_store: BlobStore) -> None:
    data = pattern(3 * MiB, seed=30)

    tracemalloc.start()
    try:
        info = await streaming_store.put_stream(chunked(data, 100), max_size=LIMIT)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert info.sha3_384 == hashlib.sha3_384(data).digest()
    assert streaming_store.read_range(info.key, 0, len(data)) == data
    # kept one by one, 31,458 chunks of 100 bytes would cost about 4 MiB more than their bytes
    assert peak < 18 * MiB, f"peak traced memory {peak / MiB:.1f} MiB"


async def test_reused_buffers_are_copied(blobstore: BlobStore) -> None:
    buffer = bytearray(64 * KiB)

    async def reusing() -> AsyncIterator[bytes]:
        for i in range(100):  # one buffer refilled for every chunk, as some servers do
            buffer[:] = bytes([i]) * len(buffer)
            yield buffer  # type: ignore[misc]  # a bytearray where bytes are promised

    info = await blobstore.put_stream(reusing(), max_size=LIMIT)
    expected = b"".join(bytes([i]) * 64 * KiB for i in range(100))
    assert info.sha3_384 == hashlib.sha3_384(expected).digest()
    assert blobstore.read_range(info.key, 0, len(expected)) == expected


# --- refusals and failures leave nothing -------------------------------------------------


async def test_exactly_max_size_is_accepted(blobstore: BlobStore) -> None:
    data = pattern(MiB + 1)
    info = await put(blobstore, data, max_size=len(data))
    assert info.size == len(data)


async def test_over_max_size_is_refused_at_once_leaving_nothing(
    blobstore: BlobStore, request: pytest.FixtureRequest
) -> None:
    s3 = s3_client_for(blobstore, request)
    kept = await put(blobstore, b"already here")
    before = leftovers(blobstore, s3)
    stream = Counted(count=400)  # 25 MiB offered, limit 20 MiB + 1 byte
    limit = 20 * MiB + 1

    with pytest.raises(BlobTooLarge) as raised:
        await blobstore.put_stream(stream, max_size=limit)

    assert raised.value.max_size == limit
    assert stream.pulled == 321  # the chunk that crossed the limit, not one more
    assert leftovers(blobstore, s3) == before
    assert keys(blobstore) == {kept.key}


async def test_failing_chunk_iterator_leaves_nothing(
    blobstore: BlobStore, request: pytest.FixtureRequest
) -> None:
    s3 = s3_client_for(blobstore, request)
    before = leftovers(blobstore, s3)
    stream = Counted(count=400, fail_at=300)  # past two S3 parts: a multipart upload is open

    with pytest.raises(ConnectionResetError, match="client went away"):
        await blobstore.put_stream(stream, max_size=LIMIT)

    assert leftovers(blobstore, s3) == before
    assert list(blobstore.list()) == []


async def test_cancelled_upload_leaves_nothing(
    blobstore: BlobStore, request: pytest.FixtureRequest
) -> None:
    s3 = s3_client_for(blobstore, request)
    started = anyio.Event()

    async def stalls() -> AsyncIterator[bytes]:
        for i in range(200):  # 12.5 MiB: an S3 part is out, then the client hangs
            yield Counted(1).chunk(i)
        started.set()
        await anyio.sleep_forever()
        yield b""  # pragma: no cover

    async with anyio.create_task_group() as tg:
        tg.start_soon(lambda: blobstore.put_stream(stalls(), max_size=LIMIT))
        await started.wait()
        await anyio.sleep(0.2)
        tg.cancel_scope.cancel()

    assert leftovers(blobstore, s3) == []


@pytest.mark.parametrize("max_size", [-1])
async def test_negative_limit_is_a_caller_bug(blobstore: BlobStore, max_size: int) -> None:
    with pytest.raises(ValueError, match="max_size"):
        await put(blobstore, b"x", max_size=max_size)


# --- reading -----------------------------------------------------------------------------


async def test_read_range(blobstore: BlobStore) -> None:
    data = pattern(10_000, seed=4)
    key = (await put(blobstore, data)).key

    assert blobstore.read_range(key, 0, 100) == data[:100]
    assert blobstore.read_range(key, 9_990, 100) == data[9_990:]
    assert blobstore.read_range(key, 5_000, 1) == data[5_000:5_001]
    assert blobstore.read_range(key, 123, 0) == b""
    with pytest.raises(RangeNotSatisfiable) as raised:
        blobstore.read_range(key, 10_000, 1)
    assert raised.value.size == 10_000
    assert raised.value.content_range == "bytes */10000"
    with pytest.raises(ValueError, match="negative"):
        blobstore.read_range(key, -1, 10)
    with pytest.raises(BlobNotFound):
        blobstore.read_range(MISSING, 0, 10)


async def test_open_seeks_like_a_file(blobstore: BlobStore) -> None:
    data = pattern(700 * KiB, seed=5)
    key = (await put(blobstore, data)).key
    with blobstore.open(key) as f:
        assert f.seekable()
        assert f.read(96) == data[:96]  # a squashfs superblock
        assert f.seek(-10, io.SEEK_END) == len(data) - 10
        assert f.read() == data[-10:]
        assert f.read(5) == b""
        f.seek(300 * KiB)
        assert f.read(4) == data[300 * KiB : 300 * KiB + 4]
        assert f.tell() == 300 * KiB + 4
        f.seek(10, io.SEEK_CUR)
        assert f.read(3) == data[300 * KiB + 14 : 300 * KiB + 17]


def test_missing_blob(blobstore: BlobStore) -> None:
    assert not blobstore.exists(MISSING)
    with pytest.raises(BlobNotFound) as raised:
        blobstore.size(MISSING)
    assert raised.value.key == MISSING
    with pytest.raises(BlobNotFound):
        blobstore.open(MISSING)
    blobstore.delete(MISSING)  # not an error


@pytest.mark.parametrize(
    "key", ["../../etc/passwd", "A" * 32, "0" * 31, "0" * 33, "", "0" * 31 + "/", "g" * 32]
)
def test_malformed_keys_are_refused_everywhere(blobstore: BlobStore, key: str) -> None:
    calls: list[Callable[[], object]] = [
        lambda: blobstore.exists(key),
        lambda: blobstore.size(key),
        lambda: blobstore.open(key),
        lambda: blobstore.read_range(key, 0, 1),
        lambda: blobstore.delete(key),
        lambda: blobstore.download(key, range_header=None, filename="x.snap"),
    ]
    for call in calls:
        with pytest.raises(InvalidBlobKey):
            call()
    with pytest.raises(InvalidBlobKey):
        list(blobstore.list(prefix="../"))


# --- downloads ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("range_header", "status", "start", "stop"),
    [
        (None, 200, 0, 1000),
        ("bytes=0-99", 206, 0, 100),
        ("bytes=100-", 206, 100, 1000),
        ("bytes=-100", 206, 900, 1000),
        ("bytes=990-5000", 206, 990, 1000),
        ("bytes=-5000", 206, 0, 1000),
        ("bytes=999-999", 206, 999, 1000),
    ],
)
async def test_download_ranges(
    blobstore: BlobStore, range_header: str | None, status: int, start: int, stop: int
) -> None:
    data = pattern(1000, seed=6)
    key = (await put(blobstore, data)).key

    got = fetch_download(blobstore, key, range_header)

    assert got.status == status
    assert got.body == data[start:stop]
    assert got.headers["content-length"] == str(stop - start)
    assert got.headers["content-disposition"] == 'attachment; filename="demo_1.snap"'
    if status == 206:
        assert got.headers["content-range"] == f"bytes {start}-{stop - 1}/1000"
    else:
        assert "content-range" not in got.headers


@pytest.mark.parametrize("range_header", ["bytes=1000-", "bytes=5000-6000", "bytes=-0"])
async def test_unsatisfiable_range_is_416(blobstore: BlobStore, range_header: str) -> None:
    key = (await put(blobstore, pattern(1000))).key
    got = fetch_download(blobstore, key, range_header)
    assert got.status == 416
    assert got.headers["content-range"] == "bytes */1000"


async def test_download_of_a_missing_blob(blobstore: BlobStore) -> None:
    if isinstance(blobstore, S3BlobStore):
        # no network I/O when planning: the object store answers 404 after the redirect
        assert fetch_download(blobstore, MISSING, None).status == 404
    else:
        with pytest.raises(BlobNotFound):
            blobstore.download(MISSING, range_header=None, filename="x.snap")


# --- delete, list, sweep -----------------------------------------------------------------


async def test_delete(blobstore: BlobStore) -> None:
    gone = (await put(blobstore, b"first")).key
    kept = (await put(blobstore, b"second")).key

    blobstore.delete(gone)
    blobstore.delete(gone)

    assert not blobstore.exists(gone)
    with pytest.raises(BlobNotFound):
        blobstore.read_range(gone, 0, 1)
    assert keys(blobstore) == {kept}
    assert blobstore.read_range(kept, 0, 100) == b"second"


async def test_list_by_prefix(blobstore: BlobStore) -> None:
    stored = {(await put(blobstore, bytes([i]))).key for i in range(12)}
    assert keys(blobstore) == stored
    for key in list(stored)[:3]:
        assert key in {e.key for e in blobstore.list(prefix=key[:1])}
        assert {e.key for e in blobstore.list(prefix=key)} == {key}
        assert {e.key for e in blobstore.list(prefix=key[:3])} == {
            k for k in stored if k.startswith(key[:3])
        }


async def test_sweep_removes_only_old_unreferenced_blobs(blobstore: BlobStore) -> None:
    referenced = {(await put(blobstore, b"in a revision")).key}
    orphans = {(await put(blobstore, b"upload never pushed")).key for _ in range(2)}

    assert blobstore.sweep_orphans(referenced, older_than=timedelta(hours=1)) == 0
    assert keys(blobstore) == referenced | orphans

    await anyio.sleep(0.01)
    assert blobstore.sweep_orphans(referenced, older_than=timedelta(0)) == 2
    assert keys(blobstore) == referenced


async def test_sweep_takes_a_predicate(blobstore: BlobStore) -> None:
    kept = (await put(blobstore, b"kept")).key
    await put(blobstore, b"orphan")
    asked: list[str] = []

    def in_use(key: str) -> bool:
        asked.append(key)
        return key == kept

    await anyio.sleep(0.01)
    assert blobstore.sweep_orphans(in_use, older_than=timedelta(0)) == 1
    assert keys(blobstore) == {kept}
    assert kept in asked


def test_negative_sweep_age_is_a_caller_bug(blobstore: BlobStore) -> None:
    with pytest.raises(ValueError, match="older_than"):
        blobstore.sweep_orphans(set(), older_than=timedelta(seconds=-1))
