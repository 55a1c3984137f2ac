"""inspect_snap on real snaps built with mksquashfs, good and bad, each refusal by its code."""

from __future__ import annotations

import io
import lzma
import os
import struct
import subprocess
import tracemalloc
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from PySquashfsImage import SquashFsImage  # type: ignore[import-untyped]

from iotstore.errors import InvalidInput, IotstoreError
from iotstore.snaps._squashfs import SquashfsImage, SquashfsLimits
from iotstore.snaps.inspection import (
    DEFAULT_LIMITS,
    Epoch,
    InspectionError,
    InspectionLimits,
    SnapMetadata,
    inspect_snap,
)
from iotstore.snaps.testing import COMPRESSIONS, build_snap, mksquashfs

FIXTURES = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures" / "image-snaps"

SUPERBLOCK = struct.Struct("<IIIIIHHHHHHQQQQQQQQ")
FIELDS = [
    "magic",
    "inode_count",
    "mtime",
    "block_size",
    "fragment_count",
    "compression",
    "block_log",
    "flags",
    "id_count",
    "major",
    "minor",
    "root_inode",
    "bytes_used",
    "id_table",
    "xattr_table",
    "inode_table",
    "directory_table",
    "fragment_table",
    "export_table",
]


def inspect_bytes(data: bytes, limits: InspectionLimits = DEFAULT_LIMITS) -> SnapMetadata:
    return inspect_snap(io.BytesIO(data), limits=limits)


def refused(data: bytes, limits: InspectionLimits = DEFAULT_LIMITS) -> InspectionError:
    with pytest.raises(InspectionError) as info:
        inspect_bytes(data, limits)
    error = info.value
    assert error.message
    assert str(error) == error.message
    return error


def refused_with_peak(data: bytes) -> tuple[InspectionError, int]:
    """:func:`refused`, with the peak bytes Python allocated while refusing."""
    tracemalloc.start()
    try:
        error = refused(data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return error, peak


def with_superblock(data: bytes, **changes: int) -> bytes:
    values = dict(zip(FIELDS, SUPERBLOCK.unpack_from(data), strict=True))
    values.update(changes)
    return SUPERBLOCK.pack(*(values[name] for name in FIELDS)) + data[SUPERBLOCK.size :]


def superblock(data: bytes) -> dict[str, int]:
    return dict(zip(FIELDS, SUPERBLOCK.unpack_from(data), strict=True))


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("inspection")


@pytest.fixture(scope="module")
def good(workdir: Path) -> bytes:
    return build_snap(
        workdir, "good-snap", files={"bin/hello": b"#!/bin/sh\necho hi\n"}
    ).read_bytes()


def tree(root: Path, files: dict[str, bytes]) -> Path:
    for name, content in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(content)
    return root


def pack(
    workdir: Path,
    name: str,
    build: Callable[[Path], object],
    *,
    compression: str = "xz",
    fragments: bool = False,
    extra_args: Sequence[str] = (),
) -> bytes:
    source = workdir / f"{name}-tree"
    source.mkdir()
    build(source)
    out = mksquashfs(
        source,
        workdir / f"{name}.snap",
        compression=compression,
        fragments=fragments,
        extra_args=extra_args,
    )
    return out.read_bytes()


SNAP_YAML = b"name: made-by-hand\nversion: '1'\n"


# -- good snaps -------------------------------------------------------------------


@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_reads_each_compression(workdir: Path, compression: str) -> None:
    path = build_snap(
        workdir,
        f"comp-{compression}",
        "1.2.3",
        files={f"lib/f{i}": os.urandom(64) * 40 for i in range(30)},
        padding=200_000,
        compression=compression,
    )
    meta = inspect_bytes(path.read_bytes())
    assert meta.compression == compression
    assert meta.name == f"comp-{compression}"
    assert meta.version == "1.2.3"


def test_metadata_fields(workdir: Path) -> None:
    path = build_snap(
        workdir,
        "full",
        "1.10",
        snap_type="app",
        base="core22",
        architectures=("amd64", "arm64"),
        confinement="classic",
        grade="devel",
        extra_yaml={
            "title": "Full Snap",
            "license": "Apache-2.0",
            "provenance": "my-store",
            "epoch": {"read": [1, 2], "write": [2]},
            "apps": {"full": {"command": "bin/full", "daemon": "simple", "plugs": ["network"]}},
            "plugs": {"data": {"interface": "content", "target": "$SNAP/data"}},
            "slots": {"api": {"interface": "dbus", "bus": "system", "name": "com.example"}},
        },
    )
    meta = inspect_bytes(path.read_bytes())
    assert meta == SnapMetadata(
        name="full",
        version="1.10",
        snap_type="app",
        base="core22",
        architectures=("amd64", "arm64"),
        confinement="classic",
        grade="devel",
        epoch=Epoch(read=(1, 2), write=(2,)),
        provenance="my-store",
        summary="full test snap",
        description="The full snap, built for tests.",
        title="Full Snap",
        license="Apache-2.0",
        apps={"full": {"command": "bin/full", "daemon": "simple", "plugs": ["network"]}},
        plugs={"data": {"interface": "content", "target": "$SNAP/data"}},
        slots={"api": {"interface": "dbus", "bus": "system", "name": "com.example"}},
        snap_yaml=meta.snap_yaml,
        compression="xz",
    )
    assert "name: full" in meta.snap_yaml
    assert str(meta.epoch) == "2*"
    assert meta.epoch.as_json() == {"read": [1, 2], "write": [2]}


def test_snapd_defaults_and_plain_scalars_as_text(workdir: Path) -> None:
    text = b"name: bare\nversion: 1.10\n"  # go-yaml gives snapd the text "1.10", not 1.1
    path = build_snap(workdir, "bare", files={"meta/snap.yaml": text})
    meta = inspect_bytes(path.read_bytes())
    assert meta.version == "1.10"
    assert (meta.snap_type, meta.base, meta.confinement, meta.grade) == (
        "app",
        None,
        "strict",
        "stable",
    )
    assert meta.architectures == ("all",)
    assert meta.epoch == Epoch()
    assert str(meta.epoch) == "0"
    assert (meta.summary, meta.title, meta.license, meta.provenance) == (None, None, None, None)


def test_fixture_snaps_parse(workdir: Path) -> None:
    out = workdir / "fixtures"
    subprocess.run(["sh", str(FIXTURES / "build.sh"), str(out)], check=True, capture_output=True)
    found = {}
    for path in sorted(out.glob("*.snap")):
        meta = inspect_bytes(path.read_bytes())
        found[meta.name] = (meta.snap_type, meta.base)
    assert found == {
        "pc-kernel": ("kernel", None),
        "pc": ("gadget", "core22"),
        "core22": ("base", None),
        "snapd": ("snapd", None),
        "hello-iot": ("app", "core22"),
        "pc18": ("gadget", "core18"),
        "core18": ("base", None),
    }


def test_reads_a_snap_yaml_kept_in_a_fragment(workdir: Path) -> None:
    # mksquashfs's default packing puts small files' tails in shared fragment blocks.
    data = pack(
        workdir,
        "fragments",
        lambda root: tree(root, {"meta/snap.yaml": SNAP_YAML, "a": b"x" * 5000, "b": b"y" * 70}),
        fragments=True,
    )
    assert superblock(data)["fragment_count"] > 0
    assert inspect_bytes(data).name == "made-by-hand"


@pytest.mark.parametrize(
    ("compression", "extra"),
    [
        ("xz", ["-b", "4K"]),
        ("xz", ["-b", "1M", "-Xdict-size", "100%"]),
        ("xz", ["-Xbcj", "x86"]),
        ("lzo", ["-Xalgorithm", "lzo1x_999", "-Xcompression-level", "9"]),
        ("gzip", ["-Xwindow-size", "10", "-Xcompression-level", "1"]),
        ("zstd", ["-Xcompression-level", "22"]),
        ("xz", ["-no-exports", "-no-duplicates", "-nopad"]),
        ("xz", ["-always-use-fragments"]),
    ],
    ids=lambda value: value if isinstance(value, str) else "".join(value),
)
def test_other_mksquashfs_options(workdir: Path, compression: str, extra: list[str]) -> None:
    # Builders other than snapcraft pick other block sizes and compressor options
    # (kept in a metadata block after the superblock).
    text = SNAP_YAML + b"# " + b"x" * 9000 + b"\n"
    files = {"meta/snap.yaml": text, "bin/a": os.urandom(5000), "bin/b": b"b" * 20000}
    data = pack(
        workdir,
        f"options-{compression}-{'-'.join(extra).replace('%', '')}",
        lambda root: tree(root, files),
        compression=compression,
        extra_args=extra,
    )
    assert inspect_bytes(data).snap_yaml.encode() == text


def test_multi_block_snap_yaml_and_extended_inodes(workdir: Path) -> None:
    # Over one 128 KiB block; hard links make extended file inodes.
    text = SNAP_YAML + b"# " + b"padding " * 40_000 + b"\n"

    def build(root: Path) -> None:
        tree(root, {"meta/snap.yaml": text})
        os.link(root / "meta" / "snap.yaml", root / "linked.yaml")

    data = pack(workdir, "multiblock", build)
    assert inspect_bytes(data).snap_yaml.encode() == text


@pytest.mark.parametrize(("compression", "width"), [("zstd", 5), ("xz", 100)])
def test_walk_agrees_with_pysquashfsimage(workdir: Path, compression: str, width: int) -> None:
    # A second, independent reader lists the same tree and the same snap.yaml bytes.
    # 1200 files: inodes and listings cross metadata blocks.
    files = {
        f"d{i}/e{j}/f{k}": os.urandom(20) for i in range(3) for j in range(4) for k in range(width)
    }
    path = build_snap(workdir, f"agree-{width}", files=files, compression=compression)
    limits = SquashfsLimits(1 << 30, 1 << 24, 10_000, 4096, 64, 60.0)
    with path.open("rb") as f:
        ours = {entry.path.decode() for entry in SquashfsImage(f, limits).walk()}
    with SquashFsImage.from_file(str(path)) as image:
        theirs = {item.path.lstrip("/") for item in image if item.path != "/"}
        yaml_bytes = image.select("/meta/snap.yaml").read_bytes()
    assert ours == theirs
    assert inspect_bytes(path.read_bytes()).snap_yaml.encode() == yaml_bytes


def test_metadata_reads_continue_across_a_block_end(workdir: Path) -> None:
    # A read ending exactly at a metadata block's end must continue at the next block
    # (a directory inode whose header fills a block did not, found by the benchmark).
    path = build_snap(workdir, "blocks", files={f"file-{i}": b"" for i in range(1000)})
    data = path.read_bytes()
    # 1000 entries: a listing over 8 KiB with several headers, so the root is an
    # extended directory inode (type 8) with an index.
    assert inspect_bytes(data).name == "blocks"
    limits = SquashfsLimits(1 << 30, 1 << 24, 10_000, 4096, 64, 60.0)
    with path.open("rb") as f:
        image = SquashfsImage(f, limits)
        sb = superblock(data)
        start, end = sb["inode_table"], sb["directory_table"]
        root, _, _ = image._read_metadata(
            start + (sb["root_inode"] >> 16), sb["root_inode"] & 0xFFFF, 2, end
        )
        assert struct.unpack("<H", root)[0] == 8
        assert sum(1 for _ in image.walk()) == 1002
        for split in (1, 8, 16):
            whole, _, _ = image._read_metadata(start, 8192 - split, 2 * split, end)
            first, pos, offset = image._read_metadata(start, 8192 - split, split, end)
            second, _, _ = image._read_metadata(pos, offset, split, end)
            assert first + second == whole


def test_error_kind_is_invalid_input(good: bytes) -> None:
    error = refused(b"")
    assert isinstance(error, InvalidInput)
    assert isinstance(error, IotstoreError)
    assert error.code == "not-squashfs"
    assert "InspectionError('not-squashfs'" in repr(error)


# -- not a squashfs, truncated, bad superblock ---------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"hsq",
        b"\x7fELF" + bytes(200),
        b"PK\x03\x04" + bytes(200),
        b"sqsh" + bytes(200),  # big-endian squashfs
        os.urandom(4096).replace(b"hsqs", b"xxxx"),
    ],
    ids=["empty", "short", "elf", "zip", "big-endian", "random"],
)
def test_not_squashfs(data: bytes) -> None:
    assert refused(data).code == "not-squashfs"


def test_wrong_magic(good: bytes) -> None:
    assert refused(b"\x00" + good[1:]).code == "not-squashfs"


def test_wrong_version(good: bytes) -> None:
    error = refused(with_superblock(good, major=3, minor=1))
    assert error.code == "not-squashfs"
    assert "3.1" in error.message


@pytest.mark.parametrize("cut", [10, 95, 200, 0.5, -1])
def test_truncated(good: bytes, cut: float) -> None:
    used = superblock(good)["bytes_used"]
    end = int(used * cut) if isinstance(cut, float) else (used + cut if cut < 0 else cut)
    assert refused(good[:end]).code == "truncated"


@pytest.mark.parametrize(("compression", "name"), [(2, "lzma"), (5, "lz4"), (9, "unknown")])
def test_unsupported_compression(good: bytes, compression: int, name: str) -> None:
    error = refused(with_superblock(good, compression=compression))
    assert error.code == "unsupported-compression"
    assert name in error.message


@pytest.mark.parametrize(
    "changes",
    [
        {"block_size": 3000},
        {"block_size": 1 << 21, "block_log": 21},
        {"block_log": 12},
        {"inode_count": 0},
        {"id_count": 0},
        {"directory_table": 1 << 40},
        {"inode_table": 10},
        {"id_table": 1 << 50},
        {"export_table": 5},
        {"root_inode": 1 << 40},
    ],
    ids=",".join,
)
def test_inconsistent_superblock(good: bytes, changes: dict[str, int]) -> None:
    assert refused(with_superblock(good, **changes)).code == "bad-squashfs"


def test_too_many_inodes_declared(good: bytes) -> None:
    assert refused(with_superblock(good, inode_count=1 << 31)).code == "too-many-inodes"


def test_too_many_entries_walked(workdir: Path) -> None:
    path = build_snap(workdir, "many", files={f"f{i}": b"" for i in range(40)})
    data = path.read_bytes()
    limits = InspectionLimits(max_inodes=20)
    # Trust neither the superblock count alone: lie about it and the walk still stops.
    error = refused(with_superblock(data, inode_count=5), limits)
    assert error.code == "too-many-inodes"
    assert refused(data, limits).code == "too-many-inodes"


def test_file_too_large(good: bytes) -> None:
    assert refused(good, InspectionLimits(max_file_size=1000)).code == "too-large"


def test_metadata_budget(good: bytes) -> None:
    assert refused(good, InspectionLimits(max_metadata_bytes=100)).code == "too-large"


def test_time_bound(good: bytes) -> None:
    assert refused(good, InspectionLimits(max_seconds=-1)).code == "too-slow"


# -- snap.yaml missing, not a file, too large ----------------------------------------


def test_no_meta_directory(workdir: Path) -> None:
    data = pack(workdir, "nometa", lambda root: tree(root, {"snap.yaml": SNAP_YAML}))
    assert refused(data).code == "no-snap-yaml"


def test_no_snap_yaml(workdir: Path) -> None:
    data = pack(workdir, "noyaml", lambda root: tree(root, {"meta/gadget.yaml": b"x: 1\n"}))
    assert refused(data).code == "no-snap-yaml"


def test_empty_image(workdir: Path) -> None:
    assert refused(pack(workdir, "empty", lambda root: None)).code == "no-snap-yaml"


def test_symlinked_snap_yaml(workdir: Path) -> None:
    def build(root: Path) -> None:
        tree(root, {"real.yaml": SNAP_YAML})
        (root / "meta").mkdir()
        (root / "meta" / "snap.yaml").symlink_to("../real.yaml")

    error = refused(pack(workdir, "symlink", build))
    assert error.code == "snap-yaml-not-file"
    assert "symlink" in error.message


def test_symlinked_meta_directory(workdir: Path) -> None:
    def build(root: Path) -> None:
        tree(root, {"elsewhere/snap.yaml": SNAP_YAML})
        (root / "meta").symlink_to("elsewhere")

    assert refused(pack(workdir, "symlink-meta", build)).code == "snap-yaml-not-file"


def test_snap_yaml_is_a_directory(workdir: Path) -> None:
    data = pack(workdir, "yamldir", lambda root: tree(root, {"meta/snap.yaml/x": b""}))
    assert refused(data).code == "snap-yaml-not-file"


def test_snap_yaml_is_a_device(workdir: Path) -> None:
    data = pack(
        workdir,
        "yamldev",
        lambda root: tree(root, {"meta/other": b""}),
        extra_args=["-p", "meta/snap.yaml c 644 0 0 1 3"],
    )
    assert refused(data).code == "snap-yaml-not-file"


def test_snap_yaml_too_large(workdir: Path) -> None:
    text = SNAP_YAML + b"#" * (1 << 20)
    data = pack(workdir, "hugeyaml", lambda root: tree(root, {"meta/snap.yaml": text}))
    error = refused(data)
    assert error.code == "snap-yaml-too-large"


# -- patched images: declared sizes, paths, loops ------------------------------------
# -noI keeps inode and directory tables uncompressed, so a test can patch them in place.


def _uncompressed(workdir: Path, name: str, files: dict[str, bytes]) -> bytearray:
    return bytearray(
        pack(workdir, name, lambda root: tree(root, files), extra_args=["-noI", "-noD"])
    )


def _snap_yaml_inode_at(data: bytes) -> int:
    """Absolute offset of the file-size field of meta/snap.yaml's (basic file) inode."""
    limits = SquashfsLimits(1 << 30, 1 << 24, 10_000, 4096, 64, 60.0)
    image = SquashfsImage(io.BytesIO(data), limits)
    entry = next(e for e in image.walk() if e.path == b"meta/snap.yaml")
    inode = image._inode(entry.inode_ref)
    # the block-size list follows the 16-byte header + 16 bytes; file_size is its last u32
    return inode.tail_block + 2 + inode.tail_offset - 4


def test_huge_declared_snap_yaml_size(workdir: Path) -> None:
    data = _uncompressed(workdir, "declared", {"meta/snap.yaml": SNAP_YAML})
    at = _snap_yaml_inode_at(bytes(data))
    assert struct.unpack_from("<I", data, at)[0] == len(SNAP_YAML)
    struct.pack_into("<I", data, at, 0xFFFFFFFF)  # 4 GiB: must not be allocated
    error, peak = refused_with_peak(bytes(data))
    assert error.code == "snap-yaml-too-large"
    assert peak < 8 << 20


def test_data_block_decompression_bomb(workdir: Path) -> None:
    # snap.yaml's only block is replaced by an xz stream of 32 MiB of zeros (~5 KB):
    # the reader stops at one block size (128 KiB) and refuses, never inflating it all.
    compressor = lzma.LZMACompressor(format=lzma.FORMAT_XZ, preset=0)
    zeros = bytes(1 << 20)
    bomb = b"".join(compressor.compress(zeros) for _ in range(32)) + compressor.flush()
    text = SNAP_YAML + b"#" * (len(bomb) + 100) + b"\n"
    data = _uncompressed(workdir, "bomb", {"meta/snap.yaml": text})
    at = _snap_yaml_inode_at(bytes(data))
    blocks_start = struct.unpack_from("<I", data, at - 12)[0]
    struct.pack_into("<I", data, at + 4, len(bomb))  # the block is now "compressed", this long
    data[blocks_start : blocks_start + len(bomb)] = bomb
    error, peak = refused_with_peak(bytes(data))
    assert error.code == "bad-squashfs"
    assert peak < 8 << 20


def test_huge_declared_directory_size(workdir: Path) -> None:
    data = _uncompressed(workdir, "dirsize", {"meta/snap.yaml": SNAP_YAML})
    sb = superblock(bytes(data))
    root = sb["inode_table"] + 2 + (sb["root_inode"] & 0xFFFF)
    inode_type = struct.unpack_from("<H", data, root)[0]
    assert inode_type == 1  # a basic directory: file_size is a u16 at +24
    struct.pack_into("<H", data, root + 24, 0xFFFF)
    assert refused(bytes(data)).code == "bad-squashfs"
    # an extended directory may declare 4 GiB: refused before reading
    struct.pack_into("<H", data, root, 8)
    struct.pack_into("<I", data, root + 20, 0xFFFFFFFF)
    assert refused(bytes(data)).code in {"too-large", "bad-squashfs"}


def _rename(data: bytearray, old: bytes, new: bytes) -> bytes:
    assert len(old) == len(new)
    at = data.find(old)
    assert at > 0 and data.find(old, at + 1) == -1
    data[at : at + len(old)] = new
    return bytes(data)


@pytest.mark.parametrize(
    "new",
    [b"..", b"a/", b"/a", b"a\0", b"."],
    ids=["dotdot", "slash", "absolute", "nul", "dot"],
)
def test_malicious_names(workdir: Path, new: bytes) -> None:
    old = b"zq" if len(new) == 2 else b"z"
    data = _uncompressed(
        workdir, f"name-{new.hex()}", {"meta/snap.yaml": SNAP_YAML, old.decode(): b""}
    )
    error = refused(_rename(data, old, new))
    assert error.code == "bad-path"
    assert "forbidden name" in error.message


def test_malicious_name_deep_in_the_tree(workdir: Path) -> None:
    data = _uncompressed(workdir, "deepname", {"meta/snap.yaml": SNAP_YAML, "usr/lib/x/zzqq": b""})
    assert refused(_rename(data, b"zzqq", b"../.")).code == "bad-path"


def test_duplicate_names(workdir: Path) -> None:
    data = _uncompressed(workdir, "dup", {"meta/snap.yaml": SNAP_YAML, "aa1": b"", "aa2": b""})
    error = refused(_rename(data, b"aa2", b"aa1"))
    assert error.code == "bad-path"
    assert "twice" in error.message


def test_directory_loop(workdir: Path) -> None:
    # Point directory "sub" back at the root inode: a reader that recursed would never end.
    data = _uncompressed(workdir, "loop", {"meta/snap.yaml": SNAP_YAML, "sub/x": b""})
    sb = superblock(bytes(data))
    at = data.find(b"sub")
    _offset, _delta, entry_type, size = struct.unpack_from("<HhHH", data, at - 8)
    assert (entry_type, size) == (1, 2)
    assert sb["root_inode"] >> 16 == 0  # one inode block: the header's start is 0 for all
    struct.pack_into("<H", data, at - 8, sb["root_inode"] & 0xFFFF)
    error = refused(bytes(data))
    assert error.code == "bad-squashfs"
    assert "loop" in error.message


def test_path_too_long(workdir: Path) -> None:
    name = "d" * 200
    data = pack(
        workdir,
        "longpath",
        lambda root: tree(root, {"meta/snap.yaml": SNAP_YAML, f"{name}/{name}/{name}/f": b""}),
    )
    assert inspect_bytes(data).name == "made-by-hand"
    assert refused(data, InspectionLimits(max_path_length=500)).code == "bad-path"


def test_path_too_deep(workdir: Path) -> None:
    data = pack(
        workdir,
        "deep",
        lambda root: tree(root, {"meta/snap.yaml": SNAP_YAML, "/".join("abcdefghij") + "/f": b""}),
    )
    assert inspect_bytes(data).name == "made-by-hand"
    error = refused(data, InspectionLimits(max_path_depth=5))
    assert error.code == "bad-path"
    assert "deeper" in error.message
