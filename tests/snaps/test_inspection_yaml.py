"""snap.yaml validation with snapd's rules: one bad field per row, each with its code."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from iotstore.snaps.inspection import (
    Epoch,
    InspectionError,
    InspectionLimits,
    inspect_snap,
    parse_snap_yaml,
)
from iotstore.snaps.testing import build_snap


class _Drop:
    """Marks a key to remove; a fixed repr keeps test ids equal across xdist workers."""

    def __repr__(self) -> str:
        return "DROP"


_DROP = _Drop()
BASE = {"name": "good-name", "version": "1.0", "summary": "s", "base": "core22"}


def document(**changes: object) -> bytes:
    doc: dict[str, object] = dict(BASE)
    for name, value in changes.items():
        key = name.replace("_", "-")
        if value is _DROP:
            doc.pop(key, None)
        else:
            doc[key] = value
    return yaml.safe_dump(doc).encode()


def code_of(content: bytes, limits: InspectionLimits | None = None) -> str:
    with pytest.raises(InspectionError) as info:
        if limits is None:
            parse_snap_yaml(content)
        else:
            parse_snap_yaml(content, limits=limits)
    assert info.value.message
    return info.value.code


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"name": _DROP}, "invalid-name"),
        ({"name": ""}, "invalid-name"),
        ({"name": "a"}, "invalid-name"),
        ({"name": "x" * 41}, "invalid-name"),
        ({"name": "Upper"}, "invalid-name"),
        ({"name": "-lead"}, "invalid-name"),
        ({"name": "trail-"}, "invalid-name"),
        ({"name": "dou--ble"}, "invalid-name"),
        ({"name": "1234"}, "invalid-name"),
        ({"name": "under_score"}, "invalid-name"),
        ({"name": ["list"]}, "invalid-name"),
        ({"version": _DROP}, "invalid-version"),
        ({"version": ""}, "invalid-version"),
        ({"version": "1" * 33}, "invalid-version"),
        ({"version": "has space"}, "invalid-version"),
        ({"version": "ünicode"}, "invalid-version"),
        ({"version": ".1"}, "invalid-version"),
        ({"version": "1."}, "invalid-version"),
        ({"version": "1_2"}, "invalid-version"),
        ({"version": {"a": 1}}, "invalid-version"),
        ({"type": "application2"}, "invalid-type"),
        ({"type": "core"}, "invalid-type"),
        ({"type": ["app"]}, "invalid-type"),
        ({"type": "base", "base": "core22"}, "invalid-base"),
        ({"type": "os", "base": "core18"}, "invalid-base"),
        ({"base": "Bad"}, "invalid-base"),
        ({"base": "core_x"}, "invalid-base"),
        ({"base": "none", "apps": {"a": {"command": "a"}}}, "invalid-base"),
        ({"confinement": "loose"}, "invalid-confinement"),
        ({"grade": "beta"}, "invalid-grade"),
        ({"epoch": "0*"}, "invalid-epoch"),
        ({"epoch": "01"}, "invalid-epoch"),
        ({"epoch": "-1"}, "invalid-epoch"),
        ({"epoch": "4294967296"}, "invalid-epoch"),
        ({"epoch": "x"}, "invalid-epoch"),
        ({"epoch": {"read": []}}, "invalid-epoch"),
        ({"epoch": {"read": [2, 1]}}, "invalid-epoch"),
        ({"epoch": {"read": [1], "write": [2]}}, "invalid-epoch"),
        ({"epoch": {"read": list(range(1, 12))}}, "invalid-epoch"),
        ({"epoch": {"read": "1"}}, "invalid-epoch"),
        ({"epoch": {"reed": [1]}}, "invalid-epoch"),
        ({"epoch": ["1"]}, "invalid-epoch"),
        ({"architectures": ["amd65"]}, "invalid-architectures"),
        ({"architectures": ["amd64", "amd64"]}, "invalid-architectures"),
        ({"architectures": ["all", "amd64"]}, "invalid-architectures"),
        ({"architectures": "amd64"}, "invalid-architectures"),
        ({"architectures": [["amd64"]]}, "invalid-architectures"),
        ({"provenance": "global-upload"}, "invalid-provenance"),
        ({"provenance": "bad provenance"}, "invalid-provenance"),
        ({"title": "t" * 41}, "invalid-title"),
        ({"summary": "s" * 129}, "invalid-summary"),
        ({"description": "d" * 4097}, "invalid-description"),
        ({"license": ["MIT"]}, "invalid-license"),
        ({"license": "not a license"}, "invalid-license"),
        ({"license": "MIT AND"}, "invalid-license"),
        ({"license": "(MIT"}, "invalid-license"),
        ({"license": "MIT WITH MIT"}, "invalid-license"),
        ({"license": "(" * 100 + "MIT" + ")" * 100}, "invalid-license"),
        ({"apps": ["a"]}, "invalid-apps"),
        ({"apps": {"bad_name": {"command": "x"}}}, "invalid-apps"),
        ({"plugs": {"Bad": None}}, "invalid-plugs"),
        ({"plugs": {1: "x"}}, "invalid-plugs"),
        ({"slots": {"9slot": None}}, "invalid-slots"),
        ({"plugs": {"same": None}, "slots": {"same": None}}, "invalid-slots"),
    ],
    ids=lambda value: repr(value)[:40] if isinstance(value, dict) else str(value),
)
def test_invalid_fields(changes: dict[str, object], code: str) -> None:
    error_code = code_of(document(**changes))
    assert error_code == code


@pytest.mark.parametrize(
    ("changes", "check"),
    [
        ({"version": "1.0+git~2"}, lambda m: m.version == "1.0+git~2"),
        ({"version": "a" * 32}, lambda m: len(m.version) == 32),
        ({"type": "application"}, lambda m: m.snap_type == "app"),
        ({"type": "base", "base": _DROP}, lambda m: m.snap_type == "base" and m.base is None),
        ({"type": "base", "base": "none"}, lambda m: m.base == "none"),
        ({"epoch": "1*"}, lambda m: m.epoch == Epoch(read=(0, 1), write=(1,))),
        ({"epoch": "5"}, lambda m: m.epoch == Epoch(read=(5,), write=(5,))),
        ({"epoch": {"write": [3]}}, lambda m: m.epoch == Epoch(read=(3,), write=(3,))),
        ({"epoch": {"read": [1, 2, 3]}}, lambda m: str(m.epoch) == '{"read":[1,2,3],"write":[3]}'),
        ({"epoch": {"read": [0], "write": [0]}}, lambda m: str(m.epoch) == "0"),
        ({"architectures": []}, lambda m: m.architectures == ("all",)),
        ({"title": "t" * 40}, lambda m: m.title == "t" * 40),
        ({"summary": "é" * 128}, lambda m: m.summary == "é" * 128),
        ({"provenance": "my-brand-store"}, lambda m: m.provenance == "my-brand-store"),
        ({"license": "(MIT OR GPL-2.0+) AND Apache-2.0"}, lambda m: m.license is not None),
        ({"license": "GPL-2.0 WITH Classpath-exception-2.0"}, lambda m: m.license is not None),
        ({"apps": {"App-1": {"command": "x", "daemon": "simple"}}}, lambda m: "App-1" in m.apps),
        ({"plugs": {"home": None, "net": {"interface": "network"}}}, lambda m: len(m.plugs) == 2),
    ],
    ids=lambda value: repr(value)[:40] if isinstance(value, dict) else "",
)
def test_valid_variants(changes: dict[str, object], check: object) -> None:
    meta = parse_snap_yaml(document(**changes))
    assert callable(check)
    assert check(meta)


def test_epoch_written_as_a_yaml_number() -> None:
    assert parse_snap_yaml(b"name: ab\nversion: '1'\nepoch: 2\n").epoch == Epoch((2,), (2,))


def test_raw_values_keep_yaml_types_and_stay_json_safe() -> None:
    meta = parse_snap_yaml(
        b"name: ab\nversion: '1'\napps:\n  ab:\n    command: x\n    stop-timeout: 10\n"
        b"    refresh-mode: endure\n    on-demand: true\n    when: 2024-01-01\n"
    )
    assert meta.apps == {
        "ab": {
            "command": "x",
            "stop-timeout": 10,
            "refresh-mode": "endure",
            "on-demand": True,
            "when": "2024-01-01",
        }
    }


@pytest.mark.parametrize(
    "content",
    [
        b"name: [unclosed\n",
        b"- just\n- a list\n",
        b"plain text",
        b"",
        b"name: ab\nname: cd\nversion: '1'\n",
        b"name: ab\nversion: '1'\n---\nname: cd\n",
        b"\xff\xfename: ab\n",
        b"name: ab\nversion: '1'\nplugs: !!python/object:os.system {}\n",
        b"name: ab\nversion: '1'\nplugs: {x: !!binary notbase64!}\n",
        b"name: ab\nversion: '1'\nplugs: {x: !!binary aGk=}\n",
        b"name: ab\nversion: '1'\nplugs: {x: .nan}\n",
        b"name: ab\nversion: '1'\napps: {ab: {command: \"a\\0b\"}}\n",
        b"name: ab\nversion: '1'\napps: {ab: {command: \"\\ud800\"}}\n",
        b"name: ab\nversion: '1'\napps: {ab: {command: x, \"a\\0\": 1}}\n",
        b"name: ab\nversion: '1'\nplugs: &a {x: *a}\n",
        b"name: ab\nversion: '1'\nx: " + b"[" * 5000 + b"]" * 5000 + b"\n",
    ],
    ids=[
        "syntax",
        "list",
        "scalar",
        "empty",
        "duplicate-key",
        "two-documents",
        "not-utf8",
        "python-tag",
        "bad-binary",
        "binary",
        "nan",
        "nul-in-app",
        "surrogate-in-app",
        "nul-in-key",
        "recursive-alias",
        "deep-nesting",
    ],
)
def test_invalid_yaml(content: bytes) -> None:
    assert code_of(content) == "invalid-yaml"


def test_billion_laughs_is_bounded() -> None:
    lines = ["name: ab", "version: '1'", "a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    lines.append("plugs: {p: *a8}")
    assert code_of("\n".join(lines).encode()) == "invalid-yaml"


def test_yaml_limits_are_configurable() -> None:
    content = document(apps={f"app{i}": {"command": "x"} for i in range(50)})
    assert len(parse_snap_yaml(content).apps) == 50
    assert code_of(content, InspectionLimits(max_yaml_nodes=50)) == "invalid-yaml"
    assert code_of(content, InspectionLimits(max_snap_yaml_bytes=100)) == "snap-yaml-too-large"


@pytest.mark.parametrize("field", ["summary", "title", "description", "base", "license"])
def test_text_a_database_cannot_store(field: str) -> None:
    # a YAML escape makes a NUL, which PostgreSQL text refuses (libyaml refuses lone surrogates)
    content = f'name: ab\nversion: "1"\n{field}: "a\\0b"\n'.encode()
    with pytest.raises(InspectionError) as info:
        parse_snap_yaml(content)
    assert info.value.field == field
    assert "NUL" in info.value.message


def test_error_names_the_field() -> None:
    with pytest.raises(InspectionError) as info:
        parse_snap_yaml(document(version="1_0"))
    assert info.value.field == "version"
    assert "'1_0'" in info.value.message
    assert "contains invalid characters" in info.value.message


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"name": "Bad_Name"}, "invalid-name"),
        ({"version": "not valid!"}, "invalid-version"),
        ({"type": "driver"}, "invalid-type"),
        ({"confinement": "none"}, "invalid-confinement"),
        ({"grade": "rc"}, "invalid-grade"),
        ({"epoch": "0*"}, "invalid-epoch"),
        ({"architectures": ["m68k"]}, "invalid-architectures"),
    ],
    ids=lambda value: next(iter(value)) if isinstance(value, dict) else "",
)
def test_invalid_fields_in_a_real_snap(
    tmp_path: Path, changes: dict[str, object], code: str
) -> None:
    path = build_snap(tmp_path, "real-snap", extra_yaml=changes)
    with path.open("rb") as f, pytest.raises(InspectionError) as info:
        inspect_snap(f)
    assert info.value.code == code
