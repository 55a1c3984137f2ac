"""A small, defensive squashfs 4.0 reader: walk the tree, read one small file.

Why not PySquashfsImage: it reads the whole tree when opened, recurses on
directories (a crafted loop never ends), and decompresses with no output bound,
so one 8 KiB block can claim gigabytes. Uploads are untrusted, so this reader
checks every offset against the superblock, decompresses with a hard output
limit per block, charges every decompressed byte to a budget, and bounds
inodes, path length, depth and wall time. It reads only the superblock, the
directory listings, the directory inodes and the blocks of the one file asked
for, through a small read-ahead window (a ranged S3 reader makes few requests).

Layout reference: the kernel's ``fs/squashfs/squashfs_fs.h`` (all little-endian).
"""

from __future__ import annotations

import lzma
import struct
import time
import zlib
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

__all__ = [
    "COMPRESSION_NAMES",
    "SUPPORTED_COMPRESSIONS",
    "FileEntry",
    "SquashfsError",
    "SquashfsImage",
    "SquashfsLimits",
]

MAGIC = 0x73717368
_SUPERBLOCK = struct.Struct("<IIIIIHHHHHHQQQQQQQQ")
_METADATA_SIZE = 8192
_NO_TABLE = 0xFFFFFFFFFFFFFFFF
_NO_FRAGMENT = 0xFFFFFFFF
_UNCOMPRESSED_METADATA = 0x8000
_UNCOMPRESSED_DATA = 1 << 24
_INODE_HEADER = struct.Struct("<HHHHII")
_DIR_HEADER = struct.Struct("<III")
_DIR_ENTRY = struct.Struct("<HhHH")
_FRAGMENT_ENTRY = struct.Struct("<QII")

# Inode types (basic; extended = basic + 7). Directory entries carry basic types only.
DIR, FILE, SYMLINK = 1, 2, 3
_EXT_DIR, _EXT_FILE = 8, 9
_MAX_TYPE = 14

COMPRESSION_NAMES = {1: "gzip", 2: "lzma", 3: "lzo", 4: "xz", 5: "lz4", 6: "zstd"}
# What snapd's kernels and tools read and snapcraft writes; lzma (legacy) and lz4 are refused.
SUPPORTED_COMPRESSIONS = frozenset({"gzip", "lzo", "xz", "zstd"})

# Decoder memory caps: squashfs blocks are at most 1 MiB, so real dictionaries
# and windows are no larger; a header asking for more is hostile.
_XZ_MEMLIMIT = 32 << 20
_ZSTD_MAX_WINDOW = 8 << 20
_READ_WINDOW = 64 << 10
_WINDOWS = 8
_BLOCK_CACHE = 256


class SquashfsError(Exception):
    """The image is unacceptable; ``code`` is stable, ``message`` is for people."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class SquashfsLimits:
    """Bounds for reading one untrusted image."""

    max_file_size: int
    max_metadata_bytes: int
    max_inodes: int
    max_path_length: int
    max_path_depth: int
    max_seconds: float


@dataclass(frozen=True, slots=True)
class FileEntry:
    """One name found in the tree: its path (bytes, no leading slash) and entry type."""

    path: bytes
    entry_type: int
    inode_ref: int


@dataclass(frozen=True, slots=True)
class _Superblock:
    inode_count: int
    block_size: int
    fragment_count: int
    compression: int
    block_log: int
    flags: int
    id_count: int
    root_inode: int
    bytes_used: int
    id_table: int
    xattr_table: int
    inode_table: int
    directory_table: int
    fragment_table: int
    export_table: int


@dataclass(frozen=True, slots=True)
class _Inode:
    inode_type: int
    # directories
    listing_block: int = 0
    listing_offset: int = 0
    listing_size: int = 0
    # regular files
    blocks_start: int = 0
    file_size: int = 0
    fragment: int = _NO_FRAGMENT
    fragment_offset: int = 0
    # where the block-size list of a file starts in the inode table
    tail_block: int = 0
    tail_offset: int = 0


def _bad(message: str) -> SquashfsError:
    return SquashfsError("bad-squashfs", message)


def _show(path: bytes) -> str:
    """A path for messages: printable, never raising on odd bytes."""
    text = path.decode("utf-8", "backslashreplace")
    return repr(text[:200] + ("..." if len(text) > 200 else ""))


class _Source:
    """Exact reads at absolute offsets, through a few read-ahead windows.

    The tree walk alternates between the directory table and the inode table,
    so several windows stay open: over a ranged S3 reader each miss is a GET.
    """

    def __init__(self, f: BinaryIO) -> None:
        self._f = f
        self.size = f.seek(0, 2)
        self._windows: OrderedDict[int, bytes] = OrderedDict()
        self.reads = 0

    def read_at(self, pos: int, length: int) -> bytes:
        end = pos + length
        if pos < 0 or end > self.size:
            raise SquashfsError(
                "truncated",
                f"the file ends at byte {self.size}, but the image needs bytes up to {end}",
            )
        for start, window in self._windows.items():
            if start <= pos and end <= start + len(window):
                self._windows.move_to_end(start)
                return window[pos - start : end - start]
        if length >= _READ_WINDOW:
            return self._read(pos, length)
        window = self._read(pos, min(_READ_WINDOW, self.size - pos))
        self._windows[pos] = window
        if len(self._windows) > _WINDOWS:
            self._windows.popitem(last=False)
        return window[:length]

    def _read(self, pos: int, length: int) -> bytes:
        self.reads += 1
        self._f.seek(pos)
        chunks = []
        remaining = length
        while remaining:
            chunk = self._f.read(remaining)
            if not chunk:
                raise SquashfsError(
                    "truncated", f"the file ended early, at byte {pos + length - remaining}"
                )
            chunks.append(chunk)
            remaining -= len(chunk)
        return b"".join(chunks)


class SquashfsImage:
    """One squashfs image opened for checking; see the module docstring."""

    def __init__(self, f: BinaryIO, limits: SquashfsLimits) -> None:
        self._limits = limits
        self._deadline = time.monotonic() + limits.max_seconds
        self._budget = limits.max_metadata_bytes
        self._source = _Source(f)
        self._blocks: OrderedDict[int, tuple[bytes, int]] = OrderedDict()
        self._sb = self._read_superblock()
        self.compression = COMPRESSION_NAMES[self._sb.compression]

    # -- superblock ---------------------------------------------------------

    def _read_superblock(self) -> _Superblock:
        size = self._source.size
        if size < 4:
            raise SquashfsError("not-squashfs", "the file is too short to be a squashfs image")
        (magic,) = struct.unpack("<I", self._source.read_at(0, 4))
        if magic != MAGIC:
            raise SquashfsError(
                "not-squashfs", "the file is not a squashfs image (no squashfs 4.0 magic)"
            )
        if size > self._limits.max_file_size:
            raise SquashfsError(
                "too-large",
                f"the file is {size} bytes, more than the limit of {self._limits.max_file_size}",
            )
        if size < _SUPERBLOCK.size:
            raise SquashfsError("truncated", "the file ends inside the squashfs superblock")
        (
            _magic,
            inode_count,
            _mtime,
            block_size,
            fragment_count,
            compression,
            block_log,
            flags,
            id_count,
            major,
            minor,
            root_inode,
            bytes_used,
            id_table,
            xattr_table,
            inode_table,
            directory_table,
            fragment_table,
            export_table,
        ) = _SUPERBLOCK.unpack(self._source.read_at(0, _SUPERBLOCK.size))
        if (major, minor) != (4, 0):
            raise SquashfsError(
                "not-squashfs", f"squashfs version {major}.{minor} is not supported (only 4.0)"
            )
        name = COMPRESSION_NAMES.get(compression)
        if name not in SUPPORTED_COMPRESSIONS:
            shown = name or f"unknown ({compression})"
            raise SquashfsError(
                "unsupported-compression",
                f"{shown} compression is not supported; use xz, lzo, zstd or gzip",
            )
        if not 4096 <= block_size <= 1 << 20 or block_size != 1 << block_log:
            raise _bad(f"block size {block_size} (log {block_log}) is not a power of two in 4K..1M")
        if bytes_used > size:
            raise SquashfsError(
                "truncated",
                f"the image says it is {bytes_used} bytes long but the file has only {size}",
            )
        if inode_count == 0 or id_count == 0:
            raise _bad("the superblock counts no inodes or no ids")
        if inode_count > self._limits.max_inodes:
            raise SquashfsError(
                "too-many-inodes",
                f"the image has {inode_count} inodes, more than the limit of "
                f"{self._limits.max_inodes}",
            )
        if not _SUPERBLOCK.size <= inode_table < directory_table < bytes_used:
            raise _bad("the inode and directory tables are out of order or out of the image")
        for label, start in (
            ("id", id_table),
            ("fragment", fragment_table),
            ("export", export_table),
            ("xattr", xattr_table),
        ):
            optional = label in {"export", "xattr"} or fragment_count == 0
            if optional and start == _NO_TABLE:
                continue
            # an empty directory table leaves the next table starting where it does
            if not directory_table <= start < bytes_used:
                raise _bad(f"the {label} table starts outside the image")
        if (root_inode >> 16) >= directory_table - inode_table or (
            root_inode & 0xFFFF
        ) >= _METADATA_SIZE:
            raise _bad("the root inode reference points outside the inode table")
        return _Superblock(
            inode_count=inode_count,
            block_size=block_size,
            fragment_count=fragment_count,
            compression=compression,
            block_log=block_log,
            flags=flags,
            id_count=id_count,
            root_inode=root_inode,
            bytes_used=bytes_used,
            id_table=id_table,
            xattr_table=xattr_table,
            inode_table=inode_table,
            directory_table=directory_table,
            fragment_table=fragment_table,
            export_table=export_table,
        )

    # -- budgets ------------------------------------------------------------

    def _tick(self) -> None:
        if time.monotonic() > self._deadline:
            raise SquashfsError(
                "too-slow",
                f"reading the image took longer than {self._limits.max_seconds} s",
            )

    def _spend(self, n: int) -> None:
        self._budget -= n
        if self._budget < 0:
            raise SquashfsError(
                "too-large",
                "the image's metadata is larger than the limit of "
                f"{self._limits.max_metadata_bytes} bytes",
            )

    # -- decompression ------------------------------------------------------

    def _decompress(self, data: bytes, max_out: int) -> bytes:
        """Decompress one block, never producing (or allocating for) more than ``max_out``."""
        name = self.compression
        try:
            if name == "xz":
                xz = lzma.LZMADecompressor(format=lzma.FORMAT_XZ, memlimit=_XZ_MEMLIMIT)
                out = xz.decompress(data, max_out)
                if not xz.eof and (xz.decompress(b"", 1) or not xz.eof):
                    raise _bad("a compressed block is larger than its limit or incomplete")
                return out
            if name == "gzip":
                gz = zlib.decompressobj()
                out = gz.decompress(data, max_out)
                if not gz.eof and (gz.decompress(gz.unconsumed_tail, 1) or not gz.eof):
                    raise _bad("a compressed block is larger than its limit or incomplete")
                return out
            if name == "zstd":
                import zstandard  # noqa: PLC0415 - loaded only for zstd images

                dctx = zstandard.ZstdDecompressor(max_window_size=_ZSTD_MAX_WINDOW)
                reader = dctx.stream_reader(data, read_across_frames=False)
                parts = []
                total = 0
                while total <= max_out:
                    part = reader.read(max_out + 1 - total)
                    if not part:
                        break
                    parts.append(part)
                    total += len(part)
                if total > max_out:
                    raise _bad("a compressed block is larger than its limit")
                return b"".join(parts)
            import lzo  # type: ignore[import-not-found]  # noqa: PLC0415 - only for lzo images

            out = lzo.decompress(data, False, max_out)
        except SquashfsError:
            raise
        except Exception as e:  # each codec has its own error types; all mean corrupt
            raise _bad(f"a {name} block does not decompress: {e}") from e
        assert isinstance(out, bytes)
        return out

    # -- metadata -----------------------------------------------------------

    def _metadata_block(self, pos: int, table_end: int) -> tuple[bytes, int]:
        """The decompressed metadata block at absolute ``pos`` and the next block's position."""
        cached = self._blocks.get(pos)
        if cached is not None:
            self._blocks.move_to_end(pos)
            return cached
        self._tick()
        if pos + 2 > table_end:
            raise _bad("a metadata reference points past the end of its table")
        (header,) = struct.unpack("<H", self._source.read_at(pos, 2))
        stored = header & ~_UNCOMPRESSED_METADATA
        if stored == 0 or stored > _METADATA_SIZE or pos + 2 + stored > table_end:
            raise _bad(f"a metadata block at byte {pos} has an impossible size {stored}")
        raw = self._source.read_at(pos + 2, stored)
        data = raw if header & _UNCOMPRESSED_METADATA else self._decompress(raw, _METADATA_SIZE)
        if not data:
            raise _bad(f"the metadata block at byte {pos} is empty")
        self._spend(len(data))
        entry = (data, pos + 2 + stored)
        self._blocks[pos] = entry
        if len(self._blocks) > _BLOCK_CACHE:
            self._blocks.popitem(last=False)
        return entry

    def _read_metadata(
        self, pos: int, offset: int, length: int, table_end: int
    ) -> tuple[bytes, int, int]:
        """``length`` bytes from metadata position (block ``pos``, ``offset``); returns the next."""
        if offset >= _METADATA_SIZE:
            raise _bad("a metadata reference has an offset past its block")
        out = bytearray()
        while True:
            data, next_pos = self._metadata_block(pos, table_end)
            if offset > len(data):
                raise _bad("a metadata reference has an offset past its block")
            take = min(length, len(data) - offset)
            out += data[offset : offset + take]
            length -= take
            offset += take
            if not length:
                # a read that ends a block continues at the start of the next one
                if offset == len(data):
                    return bytes(out), next_pos, 0
                return bytes(out), pos, offset
            pos, offset = next_pos, 0

    def _inode(self, ref: int) -> _Inode:
        sb = self._sb
        block, offset = ref >> 16, ref & 0xFFFF
        end = sb.directory_table
        if block >= end - sb.inode_table:
            raise _bad("an inode reference points outside the inode table")
        raw, pos, offset = self._read_metadata(sb.inode_table + block, offset, 16, end)
        inode_type, _mode, uid, gid, _mtime, _number = _INODE_HEADER.unpack(raw)
        if not 1 <= inode_type <= _MAX_TYPE:
            raise _bad(f"unknown inode type {inode_type}")
        if uid >= sb.id_count or gid >= sb.id_count:
            raise _bad("an inode names an owner id the id table does not have")
        if inode_type == DIR:
            raw, pos, offset = self._read_metadata(pos, offset, 16, end)
            start, _nlink, size, dir_offset, _parent = struct.unpack("<IIHHI", raw)
            return self._directory(start, dir_offset, size)
        if inode_type == _EXT_DIR:
            raw, pos, offset = self._read_metadata(pos, offset, 24, end)
            _nlink, size, start, _parent, _count, dir_offset, _xattr = struct.unpack(
                "<IIIIHHI", raw
            )
            return self._directory(start, dir_offset, size)
        if inode_type == FILE:
            raw, pos, offset = self._read_metadata(pos, offset, 16, end)
            blocks_start, fragment, fragment_offset, size = struct.unpack("<IIII", raw)
        elif inode_type == _EXT_FILE:
            raw, pos, offset = self._read_metadata(pos, offset, 40, end)
            blocks_start, size, _sparse, _nlink, fragment, fragment_offset, _xattr = struct.unpack(
                "<QQQIIII", raw
            )
        else:
            return _Inode(inode_type=inode_type)
        return _Inode(
            inode_type=FILE,
            blocks_start=blocks_start,
            file_size=size,
            fragment=fragment,
            fragment_offset=fragment_offset,
            tail_block=pos,
            tail_offset=offset,
        )

    def _directory(self, start: int, offset: int, size: int) -> _Inode:
        # A directory's size counts 3 bytes more than its listing (for "." and "..").
        if size < 3:
            raise _bad(f"a directory has an impossible size {size}")
        if size > 3 and start >= self._directory_table_end() - self._sb.directory_table:
            raise _bad("a directory listing starts outside the directory table")
        return _Inode(
            inode_type=DIR, listing_block=start, listing_offset=offset, listing_size=size - 3
        )

    def _directory_table_end(self) -> int:
        # The directory table runs up to the next table; lookup tables (fragment,
        # export, id) keep their blocks before their index, so bound by the
        # nearest of them, or the end of the image.
        sb = self._sb
        later = [
            t
            for t in (sb.fragment_table, sb.export_table, sb.id_table, sb.xattr_table)
            if sb.directory_table <= t < sb.bytes_used
        ]
        return min([*later, sb.bytes_used])

    def _listing(self, inode: _Inode) -> Iterator[tuple[bytes, int, int]]:
        """(name, entry type, inode reference) of each entry in a directory."""
        size = inode.listing_size
        if size == 0:
            return
        if size > self._budget:
            raise SquashfsError(
                "too-large",
                f"a directory listing declares {size} bytes, more than the metadata left "
                f"({self._budget} of {self._limits.max_metadata_bytes} bytes)",
            )
        data, _, _ = self._read_metadata(
            self._sb.directory_table + inode.listing_block,
            inode.listing_offset,
            size,
            self._directory_table_end(),
        )
        pos = 0
        while pos < size:
            if pos + _DIR_HEADER.size > size:
                raise _bad("a directory listing ends inside a header")
            count, start, _number = _DIR_HEADER.unpack_from(data, pos)
            pos += _DIR_HEADER.size
            if count >= 256:
                raise _bad(f"a directory header counts {count + 1} entries (at most 256)")
            for _ in range(count + 1):
                if pos + _DIR_ENTRY.size > size:
                    raise _bad("a directory listing ends inside an entry")
                offset, _delta, entry_type, name_size = _DIR_ENTRY.unpack_from(data, pos)
                pos += _DIR_ENTRY.size
                name = data[pos : pos + name_size + 1]
                pos += name_size + 1
                if len(name) != name_size + 1:
                    raise _bad("a directory listing ends inside a name")
                if not 1 <= entry_type <= 7:
                    raise _bad(f"a directory entry has unknown type {entry_type}")
                if offset >= _METADATA_SIZE:
                    raise _bad("a directory entry points past its inode block")
                yield name, entry_type, (start << 16) | offset

    # -- the tree -----------------------------------------------------------

    def walk(self) -> Iterator[FileEntry]:
        """Every entry of the tree, depth first, after checking names, depth and counts.

        Raises ``bad-path`` for ``.``, ``..``, names with ``/`` or NUL, duplicate
        names, paths too long or too deep; ``too-many-inodes``; ``bad-squashfs``
        for a directory reached twice (a loop) and any structural damage.
        """
        limits = self._limits
        root = self._inode(self._sb.root_inode)
        if root.inode_type != DIR:
            raise _bad("the root inode is not a directory")
        seen_dirs = {self._sb.root_inode}
        stack: list[tuple[_Inode, bytes, int]] = [(root, b"", 0)]
        entries = 0
        while stack:
            inode, parent, depth = stack.pop()
            names: set[bytes] = set()
            for name, entry_type, ref in self._listing(inode):
                if not entries & 0xFF:  # the clock every 256 entries: each costs microseconds
                    self._tick()
                path = parent + b"/" + name if parent else name
                if name in {b".", b".."} or b"/" in name or b"\0" in name:
                    raise SquashfsError(
                        "bad-path", f"the image holds a forbidden name {_show(path)}"
                    )
                if name in names:
                    raise SquashfsError("bad-path", f"the name {_show(path)} appears twice")
                names.add(name)
                if len(path) + 1 > limits.max_path_length:
                    raise SquashfsError(
                        "bad-path",
                        f"the path {_show(path)} is longer than {limits.max_path_length} bytes",
                    )
                if depth + 1 > limits.max_path_depth:
                    raise SquashfsError(
                        "bad-path",
                        f"the path {_show(path)} is deeper than {limits.max_path_depth} levels",
                    )
                entries += 1
                if entries >= limits.max_inodes:
                    raise SquashfsError(
                        "too-many-inodes",
                        f"the image has more than {limits.max_inodes} entries",
                    )
                if entry_type == DIR:
                    if ref in seen_dirs:
                        raise _bad(f"the directory {_show(path)} is reached twice (a loop)")
                    seen_dirs.add(ref)
                    child = self._inode(ref)
                    if child.inode_type != DIR:
                        raise _bad(f"{_show(path)} is listed as a directory but is not one")
                    stack.append((child, path, depth + 1))
                yield FileEntry(path=path, entry_type=entry_type, inode_ref=ref)

    def read_file(self, entry: FileEntry, max_size: int) -> bytes | None:
        """The content of regular file ``entry``, or None when it is larger than ``max_size``."""
        inode = self._inode(entry.inode_ref)
        if inode.inode_type != FILE:
            raise _bad(f"{_show(entry.path)} is listed as a file but is not one")
        size = inode.file_size
        if size > max_size:
            return None
        sb = self._sb
        block_size = sb.block_size
        has_fragment = inode.fragment != _NO_FRAGMENT
        count = size // block_size if has_fragment else -(-size // block_size)
        sizes_raw, _, _ = self._read_metadata(
            inode.tail_block, inode.tail_offset, 4 * count, sb.directory_table
        )
        out = bytearray()
        pos = inode.blocks_start
        for index, word in enumerate(struct.unpack(f"<{count}I", sizes_raw)):
            self._tick()
            expected = min(block_size, size - index * block_size)
            stored = word & ~_UNCOMPRESSED_DATA
            if stored == 0:  # a sparse block: zeros, nothing stored
                out += bytes(expected)
                continue
            out += self._data_block(pos, word, expected)
            pos += stored
        if has_fragment:
            tail = size - count * block_size
            block = self._fragment_block(inode.fragment)
            if inode.fragment_offset + tail > len(block):
                raise _bad("a file's tail lies outside its fragment block")
            out += block[inode.fragment_offset : inode.fragment_offset + tail]
        if len(out) != size:
            raise _bad(f"{_show(entry.path)} does not have the size its inode declares")
        return bytes(out)

    def _data_block(self, pos: int, word: int, expected: int | None) -> bytes:
        stored = word & ~_UNCOMPRESSED_DATA
        block_size = self._sb.block_size
        if stored > block_size or pos + stored > self._sb.inode_table:
            raise _bad(f"a data block at byte {pos} has an impossible size {stored}")
        raw = self._source.read_at(pos, stored)
        data = raw if word & _UNCOMPRESSED_DATA else self._decompress(raw, block_size)
        if expected is not None and len(data) != expected:
            raise _bad(f"a data block at byte {pos} holds {len(data)} bytes, not {expected}")
        return data

    def _fragment_block(self, index: int) -> bytes:
        sb = self._sb
        if index >= sb.fragment_count:
            raise _bad(f"fragment {index} is not in the fragment table")
        position = index * _FRAGMENT_ENTRY.size
        pointer_at = sb.fragment_table + 8 * (position // _METADATA_SIZE)
        (block,) = struct.unpack("<Q", self._source.read_at(pointer_at, 8))
        if not sb.directory_table <= block < sb.fragment_table:
            raise _bad("a fragment table pointer points outside its table")
        raw, _, _ = self._read_metadata(
            block, position % _METADATA_SIZE, _FRAGMENT_ENTRY.size, sb.fragment_table
        )
        start, word, _unused = _FRAGMENT_ENTRY.unpack(raw)
        return self._data_block(start, word, None)
