"""Snap inspection against SHA3-384 hashing of the same file, same run.

Run: ``.venv/bin/python -m benchmarks.inspection_bench [--mib 128] [--files 20000]``

The store hashes every uploaded byte with SHA3-384 anyway; the figure is how
much inspection adds on top of that (inspect time / hash time), and how little
of the file it reads (bytes read / file size, and the number of reads, which
for S3 are ranged GETs). Two snaps: a big one (random padding, few files)
and a wide one (many small files in nested directories: the tree walk's worst
case for a given size). PySquashfsImage, which loads the whole tree on open,
is timed on the same files as a reference.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import tempfile
import time
from pathlib import Path
from typing import BinaryIO

from PySquashfsImage import SquashFsImage  # type: ignore[import-untyped]

from iotstore.snaps.inspection import inspect_snap
from iotstore.snaps.testing import build_snap

MiB = 1 << 20


class CountingReader(io.RawIOBase):
    """A file wrapper counting read calls and bytes, as a ranged reader would issue them."""

    def __init__(self, f: BinaryIO) -> None:
        super().__init__()
        self._f = f
        self.reads = 0
        self.bytes = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET, /) -> int:
        return self._f.seek(offset, whence)

    def tell(self) -> int:
        return self._f.tell()

    def readinto(self, buffer: bytearray | memoryview, /) -> int:  # type: ignore[override]
        data = self._f.read(len(buffer))
        memoryview(buffer)[: len(data)] = data
        self.reads += 1
        self.bytes += len(data)
        return len(data)


def best_seconds(fn: object, rounds: int) -> float:
    assert callable(fn)
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def hash_file(path: Path) -> None:
    h = hashlib.sha3_384()
    with path.open("rb", buffering=0) as f:
        while chunk := f.read(MiB):
            h.update(chunk)


def inspect_file(path: Path) -> None:
    with path.open("rb") as f:
        inspect_snap(f)


def pysquashfs_file(path: Path) -> None:
    with SquashFsImage.from_file(str(path)) as image:
        image.select("/meta/snap.yaml").read_bytes()


def measure(label: str, path: Path, rounds: int) -> None:
    size = path.stat().st_size
    with path.open("rb", buffering=0) as raw:
        counter = CountingReader(raw)
        inspect_snap(counter)  # type: ignore[arg-type]
    hash_s = best_seconds(lambda: hash_file(path), rounds)
    inspect_s = best_seconds(lambda: inspect_file(path), rounds)
    reference_s = best_seconds(lambda: pysquashfs_file(path), rounds)
    print(
        f"{label}: {size / MiB:.1f} MiB; inspect {inspect_s * 1000:.2f} ms, "
        f"sha3-384 {hash_s * 1000:.1f} ms ({size / hash_s / MiB:.0f} MiB/s); "
        f"inspect/hash = {inspect_s / hash_s:.4f}; "
        f"read {counter.bytes} bytes in {counter.reads} reads "
        f"({counter.bytes / size:.5f} of the file); "
        f"PySquashfsImage {reference_s * 1000:.2f} ms"
    )


def main() -> None:
    """Build the two snaps, measure, print one line each."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mib", type=int, default=128, help="padding of the big snap")
    parser.add_argument("--files", type=int, default=20_000, help="files in the wide snap")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        big = build_snap(
            work,
            "big-snap",
            extra_yaml={"apps": {"big-snap": {"command": "bin/run", "daemon": "simple"}}},
            padding=args.mib * MiB,
        )
        # distinct random contents: mksquashfs would fold identical files into one
        files = {
            f"d{i // 1000}/e{i // 50 % 20}/file-{i}": os.urandom(1000) for i in range(args.files)
        }
        wide = build_snap(work, "wide-snap", files=files)
        measure(f"big snap ({args.mib} MiB padding)", big, args.rounds)
        measure(f"wide snap ({args.files} files)", wide, args.rounds)


if __name__ == "__main__":
    main()
