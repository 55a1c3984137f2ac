"""Streaming an upload into a store: size limit, SHA3-384, and writes off the event loop.

The event loop only counts and batches: each chunk is kept by reference (not
copied) in a batch, and a full batch (a list of chunks, or one buffer for S3
parts) goes to two worker threads at once: one feeds it to SHA3-384, the
other hands it to the backend's :class:`Sink` (a vectored file write, an S3
part upload). hashlib and the writes release the GIL, so hashing (the one
step that must see every byte in order, and the slowest) runs on one core
without pause while the loop, the socket reads and the writes share the
other; disk and network waits never block the loop.

What was measured (benchmarks/upload_bench.py, per-thread CPU of the server
and perf, 2 cores): hashing on the loop, in slices with checkpoints between,
held the loop for 4.3 s per GiB on top of its own 1.5 s (receiving, multipart
parsing, batching), all of it on one core: at best 0.7 of raw hashing. In its
own thread the hash runs beside that work. Earlier measurements, before the
loop did so little: copying chunks into one buffer on the loop costs about
10 %, a thread hop per 1 MiB another 10 % (hence 4 MiB batches), a writer
queue of one batch instead of two about 30 %.

Chunks under 16 KiB are coalesced, so a client sending tiny chunks cannot
make a batch a list of millions of objects. The hasher and the writer each
get their own list of a batch (S3's writer empties its list) but share the
chunks, and each lags at most ``depth + 1`` batches behind the loop, so
memory in flight is bounded by about ``(depth + 2) * batch_size`` plus
``_READ_AHEAD + 2`` chunks: the batch being filled, ``depth`` queued and one
in a thread, and the chunks read ahead. The hasher's queue is half as deep
but it takes every queued batch in one thread hop, so when it is behind (its
usual state) it goes on to the next batch without waiting for the loop to
hand it over: the loop may be busy, or off the CPU on a loaded machine.

A reader task pulls ``chunks`` ahead of the loop's batching (two chunks):
behind granian a chunk is read from the socket (in granian's threads) only
once it is asked for, so asking only after handling the last one serialised
the two. The reader checks the size limit too, so it never pulls a chunk
past the one crossing it.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import AsyncIterable, Callable
from pathlib import Path
from typing import Protocol

import anyio
import anyio.to_thread
from anyio import CancelScope, CapacityLimiter
from anyio.lowlevel import RunVar
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from ._common import check_max_size
from .errors import BlobTooLarge

__all__ = ["Parts", "Sink", "ingest", "ingest_file", "joined"]

Parts = list[bytes | bytearray]
_SMALL = 16 << 10  # chunks below this are copied together rather than kept one by one
_COALESCED = 64 << 10
_READ_AHEAD = 2  # chunks asked for ahead of the batching (granian's are about 400 KiB)
# Worker threads for all uploads together, apart from anyio's default pool (40 threads,
# which FastAPI's sync routes and dependencies use): an upload keeps two threads busy
# (hashing, writing), so 20 slow uploads would otherwise leave every other request
# waiting for a thread. Past 8 uploads at once they share these; 2 cores go no faster.
_THREADS = 16
_LIMITER: RunVar[CapacityLimiter] = RunVar("iotstore_blob_ingest_threads")


class Sink(Protocol):
    """Where one upload's bytes go; every method blocks and runs in a worker thread.

    Calls come in order from one thread at a time: ``write`` for each full
    batch, then ``commit`` with the last, possibly short or empty, batch, or
    ``abort`` at any point, also after ``commit``. A batch is a list of
    immutable pieces to store one after the other; only the last batch may be
    smaller than the batch size.
    """

    def write(self, parts: Parts) -> None:
        """Store ``parts`` after what came before."""
        ...

    def commit(self, parts: Parts) -> None:
        """Store ``parts``, then make the whole blob durable and visible under its key."""
        ...

    def abort(self) -> None:
        """Remove everything written, even a committed blob; never raises."""
        ...


def joined(parts: Parts) -> bytes | bytearray:
    """The pieces as one buffer, without a copy when there is only one."""
    return parts[0] if len(parts) == 1 else b"".join(parts)


def _run_taking(work: Callable[[Parts], object], box: list[Parts]) -> None:
    # anyio's idle worker threads keep their last call's arguments alive; handing the
    # batch over in a box that is emptied here keeps the memory bound honest.
    work(box.pop())


def _limiter() -> CapacityLimiter:
    """This event loop's limiter of ingest threads."""
    try:
        return _LIMITER.get()
    except LookupError:
        limiter = CapacityLimiter(_THREADS)
        _LIMITER.set(limiter)
        return limiter


async def _in_thread(work: Callable[[Parts], object], parts: Parts) -> None:
    box = [parts]
    del parts
    await anyio.to_thread.run_sync(_run_taking, work, box, limiter=_limiter())


async def _consume(
    batches: MemoryObjectReceiveStream[Parts],
    work: Callable[[Parts], object],
    failures: list[Exception],
    scope: CancelScope,
    gather: int = 1,
) -> None:
    async with batches:
        try:
            while True:
                try:
                    # not "async for": its variable would pin the last batch while waiting
                    parts = await batches.receive()
                except anyio.EndOfStream:
                    return
                for _ in range(gather - 1):
                    # batches queued meanwhile go in the same thread hop: the worker then
                    # moves on without waiting for the loop to hand it the next one
                    try:
                        parts += batches.receive_nowait()
                    except (anyio.WouldBlock, anyio.EndOfStream):
                        break
                await _in_thread(work, parts)
                del parts
        except Exception as e:  # noqa: BLE001 - handed to the host, which re-raises it
            failures.append(e)
            scope.cancel()


async def _read_ahead(
    chunks: AsyncIterable[bytes],
    out: MemoryObjectSendStream[bytes],
    failures: list[Exception],
    max_size: int,
) -> None:
    # Asking for the next chunk before the current one is hashed lets the server read
    # the socket (granian does it in its own threads, only when asked) while hashlib
    # runs without the GIL: measured 1.3-1.7 times the throughput of asking afterwards.
    size = 0
    async with out:
        try:
            async for chunk in chunks:
                size += len(chunk)
                if size > max_size:
                    # counted here too, so not one chunk more is pulled past the limit
                    raise BlobTooLarge(max_size)
                if type(chunk) is not bytes:
                    # a bytearray or memoryview the caller may reuse: kept, so copied
                    chunk = bytes(chunk)  # noqa: PLW2901
                if chunk:
                    await out.send(chunk)
        except Exception as e:  # noqa: BLE001 - handed to the host, which re-raises it
            failures.append(e)


class _Batcher:
    """Chunks gathered into batches of at least ``batch_size`` bytes.

    By reference (a list of chunks) unless ``contiguous``: then copied into
    one buffer of exactly ``batch_size`` bytes, for sinks that need one buffer
    anyway (an S3 part), where joining a list later would hold both at once.
    """

    def __init__(self, batch_size: int, *, contiguous: bool) -> None:
        self.batch_size = batch_size
        self.contiguous = contiguous
        self._parts: Parts = []
        self._filled = 0
        self._small = bytearray()
        self._buffer = bytearray()

    def add(self, chunk: bytes) -> list[Parts]:
        """Take ``chunk``; return the batches it completed (usually none)."""
        if self.contiguous:
            return self._copy(chunk)
        if len(chunk) < _SMALL:
            self._small += chunk
            if len(self._small) >= _COALESCED:
                self._flush_small()
        else:
            self._flush_small()
            self._parts.append(chunk)
        self._filled += len(chunk)
        return [self.take()] if self._filled >= self.batch_size else []

    def _copy(self, chunk: bytes) -> list[Parts]:
        full: list[Parts] = []
        view = memoryview(chunk)
        while view:
            if not self._buffer:
                # allocated only when needed: not while a full batch waits to be sent
                self._buffer = bytearray(self.batch_size)
            take = min(len(view), self.batch_size - self._filled)
            self._buffer[self._filled : self._filled + take] = view[:take]
            self._filled += take
            view = view[take:]
            if self._filled == self.batch_size:
                full.append([self._buffer])
                self._buffer, self._filled = bytearray(), 0
        return full

    def _flush_small(self) -> None:
        if self._small:
            self._parts.append(bytes(self._small))
            self._small.clear()

    def take(self) -> Parts:
        """The batch gathered so far (the last one, possibly short or empty)."""
        if self.contiguous:
            del self._buffer[self._filled :]
            parts: Parts = [self._buffer]
            self._buffer, self._filled = bytearray(), 0
            return parts
        self._flush_small()
        parts, self._parts, self._filled = self._parts, [], 0
        return parts


async def ingest(
    chunks: AsyncIterable[bytes],
    sink: Sink,
    *,
    max_size: int,
    batch_size: int,
    depth: int,
    contiguous: bool = False,
) -> tuple[int, bytes]:
    """Feed ``chunks`` to ``sink`` and commit it; return (size, SHA3-384 digest).

    Raises :class:`BlobTooLarge` as soon as the total passes ``max_size``,
    re-raises whatever ``chunks`` or ``sink`` raised; in every failure case,
    cancellation included, ``sink.abort()`` has run (shielded) before the
    exception leaves.
    """
    check_max_size(max_size)
    hasher = hashlib.sha3_384()
    size = 0
    failures: list[Exception] = []
    read_failures: list[Exception] = []
    host_error: Exception | None = None
    batcher = _Batcher(batch_size, contiguous=contiguous)

    def hash_parts(parts: Parts) -> None:
        # batches come in order, one thread at a time (one consumer task awaits each)
        for part in parts:
            hasher.update(part)

    try:
        write_tx, write_rx = anyio.create_memory_object_stream[Parts](depth)
        # the hasher takes up to ``gather`` batches per thread hop from a shorter queue:
        # at most depth + 1 batches in its hands or queued, as the writer
        hash_queue = depth // 2
        hash_tx, hash_rx = anyio.create_memory_object_stream[Parts](hash_queue)
        read_tx, read_rx = anyio.create_memory_object_stream[bytes](_READ_AHEAD)
        async with anyio.create_task_group() as tg:
            tg.start_soon(
                _consume, hash_rx, hash_parts, failures, tg.cancel_scope, depth - hash_queue + 1
            )
            tg.start_soon(_consume, write_rx, sink.write, failures, tg.cancel_scope)
            tg.start_soon(_read_ahead, chunks, read_tx, read_failures, max_size)
            async with write_tx, hash_tx, read_rx:
                try:
                    while True:
                        try:
                            chunk = await read_rx.receive()
                        except anyio.EndOfStream:
                            break
                        if read_failures:
                            # the reader failed (over the limit, a broken upload): the
                            # chunks it took before are not worth storing any more
                            raise read_failures[0]
                        size += len(chunk)
                        if size > max_size:
                            raise BlobTooLarge(max_size)
                        for batch in batcher.add(chunk):
                            # the hash first: it is the slowest step, never left waiting
                            await hash_tx.send(list(batch))
                            await write_tx.send(batch)
                            del batch
                        del chunk
                    if read_failures:
                        # what ``chunks`` raised, after the chunks before it were taken
                        raise read_failures[0]
                except Exception as e:  # noqa: BLE001 - re-raised below, outside the task group
                    # raising here would come out wrapped in an ExceptionGroup
                    host_error = e
                    tg.cancel_scope.cancel()
        # a worker's failure cancels the host, so it is the cause when both are set
        if failures:
            raise failures[0]
        if host_error is not None:
            raise host_error
        last = batcher.take()
        await _in_thread(hash_parts, list(last))
        await _in_thread(sink.commit, last)
    except BaseException:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(sink.abort)
        raise
    return size, hasher.digest()


def ingest_file(
    path: Path, sink: Sink, *, max_size: int | None, batch_size: int
) -> tuple[int, bytes]:
    """Blocking :func:`ingest` of a local file; return (size, SHA3-384 digest)."""
    limit = max_size if max_size is not None else -1
    if max_size is not None:
        check_max_size(max_size)
    hasher = hashlib.sha3_384()
    size = 0
    try:
        with path.open("rb", buffering=0) as f:
            current = bytearray(batch_size)
            filled = _fill(f, current)
            while True:
                size += filled
                if 0 <= limit < size:
                    raise BlobTooLarge(limit)
                del current[filled:]
                hasher.update(current)
                upcoming = bytearray(batch_size) if filled == batch_size else bytearray()
                more = _fill(f, upcoming) if upcoming else 0
                if not more:
                    sink.commit([current])
                    break
                sink.write([current])
                current, filled = upcoming, more
    except BaseException:
        sink.abort()
        raise
    return size, hasher.digest()


def _fill(f: io.RawIOBase, buffer: bytearray) -> int:
    """Read into ``buffer`` until it is full or the file ends; return the bytes read."""
    view = memoryview(buffer)
    filled = 0
    while filled < len(buffer):
        got = f.readinto(view[filled:])
        if not got:
            break
        filled += got
    return filled
