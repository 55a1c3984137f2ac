"""Upload ingest of the blob stores against raw SHA3-384 hashing of the same bytes, same run.

Run: ``.venv/bin/python -m benchmarks.blobstore_bench [--gib 1] [--backends filesystem,s3]``

The physical limit of :meth:`BlobStore.put_stream` is hashing every byte with
SHA3-384 (one core); the ratio says how close the whole path gets to it
(goal from the publishing issue: >= 0.7). The stream is generated chunk by
chunk (64 KiB, as an ASGI server delivers a request body), never held whole.
Memory is the growth of the process's peak RSS (VmHWM, reset before each
store) over its RSS before the upload (goal: under 64 MB). For S3 (a
SeaweedFS on this machine, sharing its cores) the raw multipart upload of
the same bytes with boto3 is measured too: the server's own ceiling.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

from iotstore.blobstore import BlobStore, FileBlobStore
from iotstore.blobstore.testing import S3Server, join_seaweedfs

from ._timing import run_async

if TYPE_CHECKING:
    from mypy_boto3_s3.type_defs import CompletedPartTypeDef

CHUNK = 64 << 10
MiB = 1 << 20


def _status(field: str) -> int:
    """A VmRSS/VmHWM figure of this process in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def _reset_peak() -> None:
    # "5" resets VmHWM to the current RSS (Linux >= 4.0)
    Path("/proc/self/clear_refs").write_text("5")


class Stream:
    """``count`` chunks of 64 KiB, each a fresh bytes object with its index in front."""

    def __init__(self, count: int) -> None:
        self.count = count
        self._block = secrets.token_bytes(CHUNK - 8)

    def chunks(self) -> Iterator[bytes]:
        block = self._block
        for i in range(self.count):
            yield i.to_bytes(8, "big") + block

    async def achunks(self) -> AsyncIterator[bytes]:
        for chunk in self.chunks():
            yield chunk


def raw_hash(stream: Stream) -> tuple[float, bytes]:
    start = time.perf_counter()
    h = hashlib.sha3_384()
    for chunk in stream.chunks():
        h.update(chunk)
    return time.perf_counter() - start, h.digest()


def ingest(store: BlobStore, stream: Stream) -> tuple[float, int, str]:
    """Seconds, RSS growth and key of one put_stream of ``stream``."""
    before = _status("VmRSS")
    _reset_peak()
    start = time.perf_counter()
    info = run_async(store.put_stream(stream.achunks(), max_size=1 << 40))
    elapsed = time.perf_counter() - start
    growth = _status("VmHWM") - before
    assert info.size == stream.count * CHUNK
    return elapsed, growth, info.key


def plain_threads_file(stream: Stream, directory: Path) -> float:
    """Seconds for the least a file store can do: hash on this thread, writev on another, fsync.

    No event loop, no store: the platform's ceiling for hashing and writing in
    one Python process.
    """
    import queue  # noqa: PLC0415
    import threading  # noqa: PLC0415

    path = directory / "plain.tmp"
    batches: queue.Queue[list[bytes] | None] = queue.Queue(2)

    def writer() -> None:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        while (parts := batches.get()) is not None:
            os.writev(fd, parts)
        os.fsync(fd)
        os.close(fd)

    thread = threading.Thread(target=writer)
    start = time.perf_counter()
    thread.start()
    h = hashlib.sha3_384()
    parts: list[bytes] = []
    for chunk in stream.chunks():
        h.update(chunk)
        parts.append(chunk)
        if len(parts) == 64:
            batches.put(parts)
            parts = []
    batches.put(parts)
    batches.put(None)
    thread.join()
    elapsed = time.perf_counter() - start
    path.unlink()
    return elapsed


def raw_s3_upload(server: S3Server, bucket: str, stream: Stream, part: int) -> float:
    """Seconds for boto3 alone to multipart-upload the same bytes (8 MiB parts, 1 in flight).

    The same shape as the store: parts go out one at a time while the next fills.
    """
    import boto3  # noqa: PLC0415 - only for the S3 run

    client = boto3.session.Session().client(
        "s3",
        endpoint_url=server.endpoint_url,
        aws_access_key_id=server.access_key,
        aws_secret_access_key=server.secret_key,
        region_name=server.region,
    )
    name = "raw-" + secrets.token_hex(8)
    start = time.perf_counter()
    upload = client.create_multipart_upload(Bucket=bucket, Key=name)["UploadId"]
    parts: list[CompletedPartTypeDef] = []
    pending: Future[CompletedPartTypeDef] | None = None
    buffer = bytearray()

    def send(number: int, body: bytes) -> CompletedPartTypeDef:
        done = client.upload_part(
            Bucket=bucket, Key=name, UploadId=upload, PartNumber=number, Body=body
        )
        return {"ETag": done["ETag"], "PartNumber": number}

    number = 0
    with ThreadPoolExecutor(1) as pool:
        for chunk in stream.chunks():
            buffer += chunk
            if len(buffer) >= part:
                if pending is not None:
                    parts.append(pending.result())
                number += 1
                pending = pool.submit(send, number, bytes(buffer))
                buffer.clear()
        if pending is not None:
            parts.append(pending.result())
        if buffer:
            parts.append(send(number + 1, bytes(buffer)))
    client.complete_multipart_upload(
        Bucket=bucket,
        Key=name,
        UploadId=upload,
        MultipartUpload={"Parts": parts},
    )
    elapsed = time.perf_counter() - start
    client.delete_object(Bucket=bucket, Key=name)
    client.close()
    return elapsed


def measure(
    name: str,
    store: BlobStore,
    stream: Stream,
    rounds: int,
    ceiling: Callable[[], float] | None = None,
) -> list[str]:
    """``rounds`` x (raw hashing, upload, raw hashing); the mean of the two raws is the reference.

    The machine is shared and noisy, so the median and best ratios are reported.
    """
    size_mib = stream.count * CHUNK / MiB
    ratios: list[float] = []
    rates: list[float] = []
    raws: list[float] = []
    growths: list[int] = []
    ceilings: list[float] = []
    for _ in range(rounds):
        raw_before, _ = raw_hash(stream)
        seconds, growth, key = ingest(store, stream)
        raw_after, _ = raw_hash(stream)
        store.delete(key)
        raw = (raw_before + raw_after) / 2
        ratios.append(raw / seconds)
        rates.append(size_mib / seconds)
        raws.append(size_mib / raw)
        growths.append(growth)
        if ceiling is not None:
            ceilings.append(size_mib / ceiling())
    return [
        name,
        f"{statistics.median(raws):.0f}",
        f"{statistics.median(rates):.0f}",
        f"{statistics.median(ratios):.2f} (best {max(ratios):.2f})",
        f"{max(growths) / MiB:.1f}",
        (
            f"{statistics.median(ceilings):.0f} MiB/s (ingest/ceiling "
            f"{statistics.median(rates) / statistics.median(ceilings):.2f})"
            if ceilings
            else "-"
        ),
    ]


def main(argv: list[str] | None = None) -> int:
    """Print the benchmark table; return 0."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--gib", type=float, default=1.0, help="stream size in GiB")
    parser.add_argument("--backends", default="filesystem,s3", help="comma-separated")
    parser.add_argument("--dir", type=Path, default=None, help="where the file store writes")
    parser.add_argument("--rounds", type=int, default=3, help="uploads per store")
    args = parser.parse_args(argv)

    stream = Stream(int(args.gib * (1 << 30)) // CHUNK)
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    header = ["store", "raw sha3 MiB/s", "ingest MiB/s", "ratio", "max RSS growth MiB", "ceiling"]
    rows: list[list[str]] = []

    if "filesystem" in backends:
        root = Path(tempfile.mkdtemp(prefix="iotstore-bench-", dir=args.dir))
        try:
            rows.append(
                measure(
                    "filesystem",
                    FileBlobStore(root),
                    stream,
                    args.rounds,
                    lambda: plain_threads_file(stream, root),
                )
            )
        finally:
            shutil.rmtree(root, ignore_errors=True)

    if "s3" in backends:
        server = join_seaweedfs()
        bucket = "iotstore-bench-" + secrets.token_hex(4)
        try:
            store = server.store(bucket)
            rows.append(
                measure(
                    "s3 (SeaweedFS)",
                    store,
                    stream,
                    args.rounds,
                    lambda: raw_s3_upload(server, bucket, stream, store.part_size),
                )
            )
            store.close()
        finally:
            server.leave()

    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)))
    total = stream.count * CHUNK / MiB
    print(f"\n{total:.0f} MiB in {CHUNK >> 10} KiB chunks, {args.rounds} rounds, medians;")
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs.")
    print("Goals: ratio >= 0.7, RSS growth < 64 MiB. Ceilings: filesystem = hashing on one")
    print("plain thread, writev+fsync on another, no event loop (the platform's limit);")
    print("s3 = boto3's multipart upload of the same bytes without hashing (SeaweedFS's limit).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
