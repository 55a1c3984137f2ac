"""Blobs as files under one directory: the embedded default.

Layout: ``ROOT/ab/cd/abcd…`` for key ``abcd…`` (two levels of 256 shards keep
directories small). An upload is written to ``ROOT/ab/cd/.upload-abcd….tmp``
(ignored by :meth:`FileBlobStore.list`), fsynced, renamed to its final name
(atomic within one directory) and the directory fsynced, so a blob is either
complete and durable under its key or not there at all; a crash leaves only
a temporary file, which :meth:`FileBlobStore.sweep_orphans` removes.
Writes run in worker threads, never on the event loop.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import mmap
import os
import re
from collections.abc import AsyncIterable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import BinaryIO

from . import _common
from ._http import download_headers, parse_range
from ._ingest import Parts, ingest, ingest_file
from .errors import BlobNotFound, BlobStorageError, RangeNotSatisfiable
from .interfaces import BlobEntry, BlobInfo, DownloadPlan, FileDownload, Referenced

__all__ = ["FileBlobStore"]

_BATCH = 4 << 20  # per thread hop; 1 MiB batches measured about 10 % slower
_DEPTH = 2  # a queued batch rides out the writer's slow moments (depth 1: ~30 % slower)
_IOV_MAX = 1024  # writev(2)'s limit on Linux
_O_DIRECT = getattr(os, "O_DIRECT", 0)  # Linux; elsewhere writes go through the page cache
_STAGE = 4 << 20  # direct writes: page-aligned staging buffer, a multiple of every block size
_WRITEBACK_EVERY = 8 << 20
_FADVISE = hasattr(os, "posix_fadvise")  # not on macOS
_TMP_PREFIX = ".upload-"
_TMP_SUFFIX = ".tmp"
_FILE_MODE = 0o640  # snaps may be private: not world-readable
_DIR_MODE = 0o750
_SHARD = re.compile(r"[0-9a-f]{2}")


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _FileSink:
    """One upload into a temporary file next to its final name.

    Where the file system takes it, the file is written with O_DIRECT: the
    batches are copied into a page-aligned staging buffer and written from
    there in whole 4 MiB blocks (one more buffer per upload), bypassing the
    page cache; the last, unaligned piece goes through the page cache. Measured with
    ``benchmarks/upload_bench.py`` (1 GiB): buffered writes cost about 2.5 CPU
    seconds per GiB in the kernel (copying into the page cache, then
    writeback), direct ones about 0.4 plus the copy, and those cores are the
    ones the hash needs. The writer thread waits for the disk instead, while
    the batches queued behind it keep the hash busy. A file system that
    refuses O_DIRECT (tmpfs, some network ones), at open or at the first write,
    gets buffered writes, with writeback started every few MiB.
    """

    def __init__(self, root: Path, key: str) -> None:
        self.key = key
        self._root = root
        self._dir = root / key[:2] / key[2:4]
        self._final = self._dir / key
        self._tmp = self._dir / f"{_TMP_PREFIX}{key}{_TMP_SUFFIX}"
        self._fd: int | None = None
        self._committed = False
        self._written = 0
        self._flushed = 0
        self._stage: mmap.mmap | None = None  # set while writes are direct
        self._staged = 0

    def _open(self) -> int:
        if self._fd is None:
            created = not self._dir.exists()
            self._dir.mkdir(mode=_DIR_MODE, parents=True, exist_ok=True)
            if created:  # make the new shard directories themselves durable
                _fsync_dir(self._dir.parent)
                _fsync_dir(self._root)
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
            try:
                self._fd = os.open(self._tmp, flags | _O_DIRECT, _FILE_MODE)
            except OSError as e:
                if not _O_DIRECT or e.errno != errno.EINVAL:
                    raise
                # Linux refuses O_DIRECT only after creating the file (tmpfs before 6.6):
                # it is ours and empty, so open it again without O_EXCL
                self._fd = os.open(self._tmp, (flags & ~os.O_EXCL) | os.O_TRUNC, _FILE_MODE)
            else:
                if _O_DIRECT:
                    self._stage = mmap.mmap(-1, _STAGE)  # anonymous: page-aligned
        return self._fd

    def _buffered(self, fd: int) -> None:
        """From now on, writes go through the page cache (also the staged bytes' turn)."""
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~_O_DIRECT)
        stage, self._stage = self._stage, None
        if stage is not None:
            pending, self._staged = stage[: self._staged], 0
            stage.close()
            self._write_all([pending])

    def _write_direct(self, fd: int, parts: Parts) -> None:
        stage = self._stage
        assert stage is not None
        for i, part in enumerate(parts):
            view = memoryview(part)
            while view:
                take = min(len(view), _STAGE - self._staged)
                stage[self._staged : self._staged + take] = view[:take]
                self._staged += take
                view = view[take:]
                if self._staged == _STAGE and not self._flush_stage(fd, stage):
                    self._write_all([bytes(view), *parts[i + 1 :]])  # through the page cache
                    return

    def _flush_stage(self, fd: int, stage: mmap.mmap) -> bool:
        """Write the full staging buffer; False if refused (writes are buffered from now on)."""
        try:
            written = os.writev(fd, [stage])
        except OSError as e:
            if e.errno != errno.EINVAL:
                raise
            written = 0  # opened with O_DIRECT, but this file system refuses the I/O
        self._written += written
        if written == _STAGE:
            self._staged = 0
            return True
        stage.move(0, written, _STAGE - written)  # a short write (never seen): the rest
        self._staged = _STAGE - written
        self._buffered(fd)
        return False

    def _write_all(self, parts: Parts) -> None:
        fd = self._open()
        if self._stage is not None:
            self._write_direct(fd, parts)
            return
        views = [memoryview(p) for p in parts if p]
        first = 0
        while first < len(views):
            # one vectored write for many chunks; a short write is resumed exactly
            written = os.writev(fd, views[first : first + _IOV_MAX])
            self._written += written
            while written:
                if written >= len(views[first]):
                    written -= len(views[first])
                    first += 1
                else:
                    views[first] = views[first][written:]
                    written = 0

    def _start_writeback(self, fd: int) -> None:
        # Start writing the new range to disk now (on Linux, DONTNEED on dirty pages
        # starts writeback without waiting for it), so the disk works while the rest
        # is hashed and the final fsync has little left to do: about 0.2 s instead of
        # 1.5 s per GiB here.
        if self._stage is not None or not _FADVISE:
            return  # direct writes leave nothing dirty
        if self._written - self._flushed < _WRITEBACK_EVERY:
            return
        os.posix_fadvise(fd, self._flushed, self._written - self._flushed, os.POSIX_FADV_DONTNEED)
        self._flushed = self._written

    def write(self, parts: Parts) -> None:
        try:
            self._write_all(parts)
            self._start_writeback(self._open())
        except OSError as e:
            raise BlobStorageError(f"writing blob {self.key!r} failed: {e.strerror}") from e

    def commit(self, parts: Parts) -> None:
        try:
            self._write_all(parts)
            fd = self._open()
            if self._stage is not None:
                self._buffered(fd)  # the unaligned last piece
            os.fsync(fd)
            self._fd = None
            os.close(fd)
            # the key is fresh (128 random bits), so nothing is replaced
            self._tmp.rename(self._final)
            self._committed = True
            _fsync_dir(self._dir)
        except OSError as e:
            raise BlobStorageError(f"storing blob {self.key!r} failed: {e.strerror}") from e

    def abort(self) -> None:
        if self._stage is not None:
            self._stage.close()
            self._stage = None
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None
        for path in (self._tmp, self._final) if self._committed else (self._tmp,):
            with contextlib.suppress(OSError):
                path.unlink(missing_ok=True)


class FileBlobStore:
    """A :class:`~iotstore.blobstore.BlobStore` keeping each blob as a file under ``root``.

    Thread safe; several processes may share one root (keys never collide,
    renames are atomic). ``root`` is created if missing.
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        try:
            self.root.mkdir(mode=_DIR_MODE, parents=True, exist_ok=True)
        except OSError as e:
            raise BlobStorageError(f"cannot create the blob directory: {e.strerror}") from e

    def __repr__(self) -> str:
        return f"FileBlobStore({str(self.root)!r})"

    def path(self, key: str) -> Path:
        """The file that holds (or would hold) blob ``key``; raise InvalidBlobKey."""
        _common.check_key(key)
        return self.root / key[:2] / key[2:4] / key

    def _stat(self, key: str) -> os.stat_result:
        path = self.path(key)
        try:
            return path.stat()
        except FileNotFoundError:
            raise BlobNotFound(key) from None
        except OSError as e:
            raise BlobStorageError(f"reading blob {key!r} failed: {e.strerror}") from e

    def _info(self, key: str, size: int, digest: bytes) -> BlobInfo:
        return BlobInfo(key=key, size=size, sha3_384=digest, created=_common.utcnow())

    async def put_stream(self, chunks: AsyncIterable[bytes], *, max_size: int) -> BlobInfo:
        """Stream into a temporary file, then rename; see :meth:`BlobStore.put_stream`."""
        sink = _FileSink(self.root, _common.new_key())
        size, digest = await ingest(
            chunks, sink, max_size=max_size, batch_size=_BATCH, depth=_DEPTH
        )
        return self._info(sink.key, size, digest)

    def put_file(self, path: Path, *, max_size: int | None = None) -> BlobInfo:
        """Copy a local file in; see :meth:`BlobStore.put_file`."""
        sink = _FileSink(self.root, _common.new_key())
        size, digest = ingest_file(path, sink, max_size=max_size, batch_size=_BATCH)
        return self._info(sink.key, size, digest)

    def open(self, key: str) -> BinaryIO:
        """Open blob ``key`` for reading; see :meth:`BlobStore.open`."""
        path = self.path(key)
        try:
            return path.open("rb")
        except FileNotFoundError:
            raise BlobNotFound(key) from None
        except OSError as e:
            raise BlobStorageError(f"reading blob {key!r} failed: {e.strerror}") from e

    def read_range(self, key: str, start: int, length: int) -> bytes:
        """Read bytes from ``start``; see :meth:`BlobStore.read_range`."""
        _common.check_read(start, length)
        with self.open(key) as f:
            size = os.fstat(f.fileno()).st_size
            if length == 0:
                return b""
            if start >= size:
                raise RangeNotSatisfiable(size)
            try:
                return os.pread(f.fileno(), min(length, size - start), start)
            except OSError as e:
                raise BlobStorageError(f"reading blob {key!r} failed: {e.strerror}") from e

    def size(self, key: str) -> int:
        """Return the blob's size; see :meth:`BlobStore.size`."""
        return self._stat(key).st_size

    def exists(self, key: str) -> bool:
        """Whether blob ``key`` is stored; see :meth:`BlobStore.exists`."""
        try:
            self._stat(key)
        except BlobNotFound:
            return False
        return True

    def delete(self, key: str) -> None:
        """Remove blob ``key`` if present; see :meth:`BlobStore.delete`."""
        path = self.path(key)
        try:
            path.unlink(missing_ok=True)
        except OSError as e:
            raise BlobStorageError(f"deleting blob {key!r} failed: {e.strerror}") from e

    def _scan(self, prefix: str) -> Iterator[tuple[os.DirEntry[str], bool]]:
        """Yield (entry, is_temporary) for every blob and upload file under matching shards."""
        try:
            for top in os.scandir(self.root):
                if not (top.is_dir() and _shard_matches(top.name, prefix, 0)):
                    continue
                for mid in os.scandir(top.path):
                    if not (mid.is_dir() and _shard_matches(mid.name, prefix, 2)):
                        continue
                    for entry in os.scandir(mid.path):
                        name = entry.name
                        if _common.is_key(name):
                            if name.startswith(prefix):
                                yield entry, False
                        elif name.startswith(_TMP_PREFIX) and name.endswith(_TMP_SUFFIX):
                            yield entry, True
        except OSError as e:
            raise BlobStorageError(f"listing blobs failed: {e.strerror}") from e

    def list(self, prefix: str = "") -> Iterator[BlobEntry]:
        """Yield the stored blobs; see :meth:`BlobStore.list`."""
        _common.check_prefix(prefix)
        for entry, temporary in self._scan(prefix):
            if temporary:
                continue
            try:
                st = entry.stat()
            except FileNotFoundError:
                continue  # deleted while listing
            yield BlobEntry(
                key=entry.name,
                size=st.st_size,
                created=datetime.fromtimestamp(st.st_mtime, UTC),
            )

    def download(self, key: str, *, range_header: str | None, filename: str) -> DownloadPlan:
        """Plan a (ranged) file response; see :meth:`BlobStore.download`."""
        size = self._stat(key).st_size
        byte_range = parse_range(range_header, size)
        return FileDownload(
            path=self.path(key),
            offset=0 if byte_range is None else byte_range.start,
            length=size if byte_range is None else byte_range.length,
            status=200 if byte_range is None else 206,
            headers=download_headers(key, size, byte_range, filename),
        )

    def sweep_orphans(self, referenced: Referenced, *, older_than: timedelta) -> int:
        """Delete old orphans and stale upload files; see :meth:`BlobStore.sweep_orphans`."""
        removed = _common.sweep(self.list(), self.delete, referenced, older_than)
        cutoff = (_common.utcnow() - older_than).timestamp()
        for entry, temporary in self._scan(""):
            if not temporary:
                continue
            with contextlib.suppress(FileNotFoundError):
                if entry.stat().st_mtime < cutoff:
                    Path(entry.path).unlink()
                    removed += 1
        return removed

    def close(self) -> None:
        """Nothing to release."""


def _shard_matches(name: str, prefix: str, offset: int) -> bool:
    """Whether shard directory ``name`` (key characters offset..offset+2) can hold ``prefix``."""
    return _SHARD.fullmatch(name) is not None and name.startswith(prefix[offset : offset + 2])
