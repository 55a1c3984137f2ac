"""Hypothesis properties: whatever the bytes, inspect_snap returns metadata or InspectionError."""

from __future__ import annotations

import functools
import io
import struct
import tempfile
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from iotstore.snaps._squashfs import SquashfsImage, SquashfsLimits
from iotstore.snaps.inspection import (
    ARCHITECTURES,
    Epoch,
    InspectionError,
    InspectionLimits,
    SnapMetadata,
    inspect_snap,
    parse_snap_yaml,
)
from iotstore.snaps.testing import COMPRESSIONS, build_snap, mksquashfs

SUPERBLOCK = struct.Struct("<IIIIIHHHHHHQQQQQQQQ")
# Small limits keep every example quick, whatever sizes the bytes declare.
LIMITS = InspectionLimits(max_metadata_bytes=1 << 20, max_inodes=5000, max_seconds=10.0)


def inspect_or_refuse(data: bytes) -> SnapMetadata | InspectionError:
    """The property itself: any other exception fails the test."""
    try:
        return inspect_snap(io.BytesIO(data), limits=LIMITS)
    except InspectionError as e:
        assert e.code
        assert e.message
        return e


@functools.cache
def real_snap(compression: str) -> bytes:
    with tempfile.TemporaryDirectory() as scratch:
        path = build_snap(
            Path(scratch),
            "flip-me",
            compression=compression,
            extra_yaml={"apps": {"flip-me": {"command": "bin/x"}}, "epoch": "1*"},
            files={"bin/x": b"#!/bin/sh\n", "lib/a/b/c": b"abc" * 100, "share/doc": b"d"},
        )
        return path.read_bytes()


@functools.cache
def fragmented_snap() -> bytes:
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch) / "tree"
        (root / "meta").mkdir(parents=True)
        (root / "meta" / "snap.yaml").write_bytes(b"name: frag-snap\nversion: '2'\n")
        for i in range(5):
            (root / f"f{i}").write_bytes(bytes([i]) * (100 + i))
        return mksquashfs(root, Path(scratch) / "f.snap", fragments=True).read_bytes()


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=4096))
def test_any_bytes(data: bytes) -> None:
    result = inspect_or_refuse(data)
    assert isinstance(result, InspectionError)


@settings(max_examples=300, deadline=None)
@given(
    fields=st.tuples(
        *(
            [st.just(0x73717368)]
            + [st.integers(0, 2**32 - 1) for _ in range(4)]
            + [st.sampled_from([1, 3, 4, 6])]
            + [st.integers(0, 2**16 - 1) for _ in range(3)]
            + [st.just(4), st.just(0)]
            + [st.integers(0, 2**64 - 1) | st.integers(0, 8192) for _ in range(8)]
        )
    ),
    tail=st.binary(max_size=8192),
)
def test_any_superblock(fields: tuple[int, ...], tail: bytes) -> None:
    inspect_or_refuse(SUPERBLOCK.pack(*fields) + tail)


@settings(max_examples=250, deadline=None)
@given(
    compression=st.sampled_from([*COMPRESSIONS, "fragments"]),
    flips=st.lists(
        st.tuples(st.floats(0, 1, exclude_max=True), st.integers(1, 255)), min_size=1, max_size=8
    ),
)
def test_byte_flips_of_a_real_snap(compression: str, flips: list[tuple[float, int]]) -> None:
    original = fragmented_snap() if compression == "fragments" else real_snap(compression)
    used = struct.unpack_from("<Q", original, 40)[0]
    data = bytearray(original)
    for where, mask in flips:
        data[int(where * used)] ^= mask
    inspect_or_refuse(bytes(data))


@settings(max_examples=100, deadline=None)
@given(compression=st.sampled_from(COMPRESSIONS), cut=st.floats(0, 1, exclude_max=True))
def test_truncations_of_a_real_snap(compression: str, cut: float) -> None:
    original = real_snap(compression)
    used = struct.unpack_from("<Q", original, 40)[0]
    result = inspect_or_refuse(original[: int(cut * used)])
    assert isinstance(result, InspectionError)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2048) | st.text(max_size=2048).map(str.encode))
def test_any_snap_yaml_bytes(content: bytes) -> None:
    try:
        parse_snap_yaml(content)
    except InspectionError as e:
        assert e.code


yaml_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=10,
)
snap_yaml_keys = st.sampled_from(
    [
        "name",
        "version",
        "type",
        "base",
        "epoch",
        "architectures",
        "confinement",
        "grade",
        "title",
        "summary",
        "description",
        "license",
        "provenance",
        "apps",
        "plugs",
        "slots",
        "hooks",
    ]
)


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(snap_yaml_keys | st.text(max_size=8), yaml_values, max_size=8))
def test_any_yaml_document(document: dict[str, object]) -> None:
    try:
        meta = parse_snap_yaml(yaml.safe_dump(document).encode())
    except InspectionError as e:
        assert e.code
    else:
        assert meta.name == document["name"]


names = st.from_regex(r"[a-z0-9]{1,5}(-[a-z0-9]{1,5}){0,3}", fullmatch=True).filter(
    lambda n: 2 <= len(n) <= 40 and any(c.isalpha() for c in n)
)
versions = st.from_regex(r"[a-zA-Z0-9]([a-zA-Z0-9:.+~-]{0,30}[a-zA-Z0-9+~])?", fullmatch=True)
texts = st.text(st.characters(codec="utf-8", exclude_categories=["Cs", "Cc"]), max_size=40)
epochs = st.sampled_from(
    [("0", Epoch()), ("3", Epoch((3,), (3,))), ("2*", Epoch((1, 2), (2,)))]
) | st.lists(st.integers(0, 2**32 - 1), min_size=1, max_size=10, unique=True).map(
    lambda numbers: ({"read": sorted(numbers)}, Epoch(tuple(sorted(numbers)), (max(numbers),)))
)


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(
    name=names,
    version=versions,
    kind=st.sampled_from(
        [("app", "core22"), ("gadget", "core20"), ("kernel", None), ("base", None), ("snapd", None)]
    ),
    architectures=st.lists(
        st.sampled_from(sorted(ARCHITECTURES - {"all"})), min_size=1, max_size=3, unique=True
    ),
    confinement=st.sampled_from(["strict", "devmode", "classic"]),
    grade=st.sampled_from(["stable", "devel"]),
    epoch=epochs,
    title=texts,
    summary=texts,
    compression=st.sampled_from(COMPRESSIONS),
)
def test_valid_metadata_round_trips(
    name: str,
    version: str,
    kind: tuple[str, str | None],
    architectures: list[str],
    confinement: str,
    grade: str,
    epoch: tuple[object, Epoch],
    title: str,
    summary: str,
    compression: str,
) -> None:
    snap_type, base = kind
    with tempfile.TemporaryDirectory() as scratch:
        path = build_snap(
            Path(scratch),
            name,
            version,
            snap_type=snap_type,
            base=base,
            architectures=architectures,
            confinement=confinement,
            grade=grade,
            compression=compression,
            extra_yaml={"epoch": epoch[0], "title": title, "summary": summary},
        )
        with path.open("rb") as f:
            meta = inspect_snap(f)
    assert meta == SnapMetadata(
        name=name,
        version=version,
        snap_type=snap_type,
        base=base,
        architectures=tuple(architectures),
        confinement=confinement,
        grade=grade,
        epoch=epoch[1],
        provenance=None,
        summary=summary,
        description=f"The {name} snap, built for tests.",
        title=title,
        license=None,
        snap_yaml=meta.snap_yaml,
        compression=compression,
    )


names_in_tree = st.text(
    st.characters(codec="utf-8", exclude_characters="/\x00", exclude_categories=["Cs"]),
    min_size=1,
    max_size=20,
).filter(lambda n: n not in {".", ".."})


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    paths=st.lists(st.lists(names_in_tree, min_size=1, max_size=4), min_size=1, max_size=60),
    fragments=st.booleans(),
)
def test_walk_lists_exactly_the_tree(paths: list[list[str]], fragments: bool) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch) / "tree"
        (root / "meta").mkdir(parents=True)
        (root / "meta" / "snap.yaml").write_bytes(b"name: tree-snap\nversion: '1'\n")
        for parts in paths:
            target = root.joinpath(*parts)
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes("/".join(parts).encode())
            except (FileExistsError, NotADirectoryError, IsADirectoryError):
                continue  # a name already used as a file or a directory
        expected = {
            str(p.relative_to(root)).encode("utf-8", "surrogateescape") for p in root.rglob("*")
        }
        packed = mksquashfs(root, Path(scratch) / "t.snap", fragments=fragments)
        limits = SquashfsLimits(1 << 30, 1 << 24, 10_000, 4096, 64, 60.0)
        with packed.open("rb") as f:
            image = SquashfsImage(f, limits)
            entries = list(image.walk())
            assert {e.path for e in entries} == expected
            for entry in entries:
                if entry.entry_type == 2 and entry.path != b"meta/snap.yaml":
                    assert image.read_file(entry, 1 << 20) == entry.path
        with packed.open("rb") as f:
            assert inspect_snap(f).name == "tree-snap"
