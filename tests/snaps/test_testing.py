"""build_snap and mksquashfs make real snap files with what was asked for."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from iotstore.snaps.inspection import inspect_snap
from iotstore.snaps.testing import COMPRESSIONS, build_snap, mksquashfs, snap_yaml


def test_build_snap_writes_a_squashfs_with_the_requested_snap_yaml(tmp_path: Path) -> None:
    path = build_snap(
        tmp_path,
        "hello-iot",
        "2.1",
        snap_type="app",
        base="core22",
        architectures=("arm64", "armhf"),
        confinement="devmode",
        grade="devel",
        extra_yaml={"epoch": "2*", "title": "Hello"},
    )
    assert path.parent == tmp_path
    assert path.name == "hello-iot_2.1.snap"
    assert path.read_bytes()[:4] == b"hsqs"
    with path.open("rb") as f:
        meta = inspect_snap(f)
    assert (meta.name, meta.version, meta.snap_type, meta.base) == (
        "hello-iot",
        "2.1",
        "app",
        "core22",
    )
    assert meta.architectures == ("arm64", "armhf")
    assert (meta.confinement, meta.grade, str(meta.epoch), meta.title) == (
        "devmode",
        "devel",
        "2*",
        "Hello",
    )


def test_build_snap_never_overwrites(tmp_path: Path) -> None:
    first = build_snap(tmp_path, "twice")
    second = build_snap(tmp_path, "twice", "1.0")
    assert first != second
    assert first.exists() and second.exists()
    # names from odd (invalid) versions stay inside the directory
    odd = build_snap(tmp_path, "odd", "../1/2")
    assert odd.parent == tmp_path


@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_each_compression(tmp_path: Path, compression: str) -> None:
    path = build_snap(tmp_path, "packed", compression=compression)
    with path.open("rb") as f:
        assert inspect_snap(f).compression == compression


def test_files_padding_and_snap_yaml_override(tmp_path: Path) -> None:
    text = "name: custom\nversion: '3'\n"
    path = build_snap(
        tmp_path,
        "ignored",
        files={"meta/snap.yaml": text.encode(), "bin/tool": b"#!/bin/sh\n"},
        padding=300_000,
    )
    assert path.stat().st_size > 300_000  # random padding does not compress
    with path.open("rb") as f:
        meta = inspect_snap(f)
    assert meta.name == "custom"
    assert meta.snap_yaml == text


def test_files_must_stay_inside_the_tree(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="leaves the snap tree"):
        build_snap(tmp_path, "escape", files={"../outside": b"x"})
    assert not list(tmp_path.glob("*.snap"))


def test_snap_yaml_extra_keys_win() -> None:
    document = yaml.safe_load(snap_yaml("abc", extra_yaml={"type": "gadget", "base": "core18"}))
    assert document["type"] == "gadget"
    assert document["base"] == "core18"
    assert "base" not in yaml.safe_load(snap_yaml("abc", base=None))


def test_mksquashfs_refuses_unknown_compression(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="compression"):
        mksquashfs(tmp_path, tmp_path / "x.snap", compression="lz4")
