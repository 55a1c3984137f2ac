"""The file store beyond the contract: layout, atomic visibility, disk failures, crash leftovers."""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import stat
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from types import ModuleType

import anyio
import pytest

from iotstore.blobstore import BlobStorageError, FileBlobStore, FileDownload, filesystem

from ._support import Counted, MiB, chunked, keys, leftovers, pattern

pytestmark = pytest.mark.anyio


class RefusingDirectOs(ModuleType):
    """The ``os`` module of a file system that refuses O_DIRECT, at open or at write."""

    def __init__(self, *, at_open: bool) -> None:
        super().__init__("os")
        self.at_open = at_open
        self.refused = 0

    def open(self, path: Path, flags: int, mode: int = 0o777) -> int:
        if self.at_open and flags & os.O_DIRECT:
            self.refused += 1
            # as Linux does (tmpfs before 6.6): the file is created, then O_DIRECT refused
            os.close(os.open(path, flags & ~os.O_DIRECT, mode))
            raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))
        return os.open(path, flags, mode)

    def writev(self, fd: int, buffers: list[object]) -> int:
        if fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_DIRECT:
            self.refused += 1
            raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))
        return os.writev(fd, buffers)  # type: ignore[arg-type]

    def __getattr__(self, name: str) -> object:
        return getattr(os, name)


class FailingOs(ModuleType):
    """The ``os`` module with one function replaced by a disk failure."""

    def __init__(self, failing: str, err: int = errno.ENOSPC) -> None:
        super().__init__("os")
        self._failing = failing
        self._err = err

    def __getattr__(self, name: str) -> object:
        if name == self._failing:

            def fail(*_: object) -> None:
                raise OSError(self._err, os.strerror(self._err))

            return fail
        return getattr(os, name)


async def test_layout_and_modes(file_store: FileBlobStore) -> None:
    info = await file_store.put_stream(chunked(b"snap bytes"), max_size=100)
    path = file_store.path(info.key)
    assert path == file_store.root / info.key[:2] / info.key[2:4] / info.key
    assert path.read_bytes() == b"snap bytes"
    assert stat.S_IMODE(path.stat().st_mode) & 0o007 == 0  # never world-readable
    assert leftovers(file_store) == [str(path.relative_to(file_store.root))]


async def test_download_plan_points_at_the_file(file_store: FileBlobStore) -> None:
    data = pattern(5000)
    key = (await file_store.put_stream(chunked(data), max_size=10_000)).key

    plan = file_store.download(key, range_header="bytes=100-199", filename="demo_2.snap")

    assert isinstance(plan, FileDownload)
    assert (plan.path, plan.offset, plan.length, plan.status) == (
        file_store.path(key),
        100,
        100,
        206,
    )
    assert dict(plan.headers) == {
        "Content-Type": "application/octet-stream",
        "Content-Disposition": 'attachment; filename="demo_2.snap"',
        "Accept-Ranges": "bytes",
        "ETag": f'"{key}"',
        "Content-Length": "100",
        "Content-Range": "bytes 100-199/5000",
    }
    whole = file_store.download(key, range_header=None, filename="demo_2.snap")
    assert isinstance(whole, FileDownload)
    assert (whole.offset, whole.length, whole.status) == (0, 5000, 200)


async def test_a_blob_is_invisible_until_complete(file_store: FileBlobStore) -> None:
    seen_during: list[set[str]] = []
    half = anyio.Event()

    async def slow() -> AsyncIterator[bytes]:
        for i in range(100):  # 6.25 MiB: a batch is on disk in the temporary file
            yield Counted(1).chunk(i)
        half.set()
        await anyio.sleep(0.2)
        yield b"the end"

    async def watch() -> None:
        await half.wait()
        await anyio.sleep(0.05)
        seen_during.append(keys(file_store))
        assert any(p.name.startswith(".upload-") for p in file_store.root.rglob("*"))

    async with anyio.create_task_group() as tg:
        tg.start_soon(watch)
        info = await file_store.put_stream(slow(), max_size=10 * MiB)
    assert seen_during == [set()]
    assert keys(file_store) == {info.key}
    assert not any(p.name.startswith(".upload-") for p in file_store.root.rglob("*"))


@pytest.mark.parametrize("failing", ["writev", "fsync"])
async def test_disk_failure_is_a_storage_error_and_leaves_nothing(
    file_store: FileBlobStore, monkeypatch: pytest.MonkeyPatch, failing: str
) -> None:
    monkeypatch.setattr(filesystem, "os", FailingOs(failing))
    with pytest.raises(BlobStorageError, match="No space left on device") as raised:
        await file_store.put_stream(Counted(count=100), max_size=1 << 30)
    assert isinstance(raised.value.__cause__, OSError)
    assert str(file_store.root) not in str(raised.value)  # no server paths in messages
    monkeypatch.undo()
    assert leftovers(file_store) == []


def test_put_file_disk_failure_leaves_nothing(
    file_store: FileBlobStore, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    source = tmp_path / "x.snap"
    source.write_bytes(pattern(3 * MiB))
    monkeypatch.setattr(filesystem, "os", FailingOs("fsync", errno.EIO))
    with pytest.raises(BlobStorageError, match="Input/output error"):
        file_store.put_file(source)
    monkeypatch.undo()
    assert leftovers(file_store) == []


async def test_sweep_removes_stale_upload_files_only(file_store: FileBlobStore) -> None:
    key = (await file_store.put_stream(chunked(b"kept"), max_size=10)).key
    shard = file_store.path(key).parent
    stale = shard / f".upload-{'c' * 32}.tmp"
    fresh = shard / f".upload-{'d' * 32}.tmp"
    stray = shard / "notes.txt"
    for path in (stale, fresh, stray):
        path.write_bytes(b"partial")
    old = time.time() - 2 * 86400
    os.utime(stale, (old, old))
    os.utime(stray, (old, old))

    assert keys(file_store) == {key}
    assert file_store.sweep_orphans({key}, older_than=timedelta(days=1)) == 1

    assert not stale.exists()
    assert fresh.exists()
    assert stray.exists()  # not ours: left alone
    assert keys(file_store) == {key}


async def test_stores_sharing_a_root_see_each_other(tmp_path: Path) -> None:
    one, two = FileBlobStore(tmp_path / "shared"), FileBlobStore(tmp_path / "shared")
    key = (await one.put_stream(chunked(b"written by one"), max_size=100)).key
    assert two.read_range(key, 0, 100) == b"written by one"
    two.delete(key)
    assert not one.exists(key)


def test_root_that_cannot_be_created(tmp_path: Path) -> None:
    (tmp_path / "file").write_bytes(b"")
    with pytest.raises(BlobStorageError, match="cannot create the blob directory"):
        FileBlobStore(tmp_path / "file" / "blobs")


async def test_read_errors_are_wrapped(
    file_store: FileBlobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = (await file_store.put_stream(chunked(b"data"), max_size=10)).key
    monkeypatch.setattr(filesystem, "os", FailingOs("pread", errno.EIO))
    with pytest.raises(BlobStorageError, match="Input/output error"):
        file_store.read_range(key, 0, 4)


@pytest.mark.parametrize(
    "size", [0, 1, 4095, 4096, 4097, MiB + 1, 4 * MiB - 1, 4 * MiB, 8 * MiB + 1, 9 * MiB + 12345]
)
async def test_every_size_with_odd_chunks(file_store: FileBlobStore, size: int) -> None:
    data = pattern(size, seed=size)
    info = await file_store.put_stream(chunked(data, 50_000), max_size=size)
    assert file_store.path(info.key).read_bytes() == data
    assert info.sha3_384 == hashlib.sha3_384(data).digest()


needs_o_direct = pytest.mark.skipif(not hasattr(os, "O_DIRECT"), reason="Linux only")


@needs_o_direct
async def test_uploads_bypass_the_page_cache(
    file_store: FileBlobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    flags: list[int] = []
    real_open = os.open

    class Recording(ModuleType):
        def open(self, path: Path, mode_flags: int, mode: int = 0o777) -> int:
            flags.append(mode_flags)
            return real_open(path, mode_flags, mode)

        def __getattr__(self, name: str) -> object:
            return getattr(os, name)

    monkeypatch.setattr(filesystem, "os", Recording("os"))
    data = pattern(6 * MiB + 7)
    info = await file_store.put_stream(chunked(data, 100_000), max_size=len(data))
    assert any(f & os.O_DIRECT for f in flags)
    assert file_store.path(info.key).read_bytes() == data


@needs_o_direct
@pytest.mark.parametrize("at_open", [True, False], ids=["refused-at-open", "refused-at-write"])
@pytest.mark.parametrize("size", [3, 4 * MiB, 9 * MiB + 5])
async def test_a_file_system_refusing_direct_io_gets_buffered_writes(
    file_store: FileBlobStore, monkeypatch: pytest.MonkeyPatch, at_open: bool, size: int
) -> None:
    refusing = RefusingDirectOs(at_open=at_open)
    monkeypatch.setattr(filesystem, "os", refusing)
    data = pattern(size, seed=size)
    info = await file_store.put_stream(chunked(data, 70_000), max_size=size)
    monkeypatch.undo()
    assert file_store.path(info.key).read_bytes() == data
    assert info.sha3_384 == hashlib.sha3_384(data).digest()
    # refused once (at open, or at the first full block), never again for this upload
    assert refusing.refused == (1 if at_open or size >= 4 * MiB else 0)
    assert not any(p.name.startswith(".upload-") for p in file_store.root.rglob("*"))


@needs_o_direct
def test_put_file_with_direct_writes(file_store: FileBlobStore, tmp_path: Path) -> None:
    source = tmp_path / "x.snap"
    data = pattern(4 * MiB + 4097)
    source.write_bytes(data)
    info = file_store.put_file(source)
    assert file_store.path(info.key).read_bytes() == data
    assert info.size == len(data)
