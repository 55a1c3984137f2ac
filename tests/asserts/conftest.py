"""Shared fixtures for the assertion library tests: the golden vectors made by snapd."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from iotstore import asserts

VECTORS = Path(__file__).resolve().parents[3] / "shared" / "spec" / "vectors"
# The vectors' keys are valid from 2026-01-01 to 2027-01-01; snapd checks keys
# against "now", so the tests pin the clock inside that window.
VECTOR_NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
KEY_FILES = {
    "root": "keys/root.pem",
    "brand": "keys/brand.pem",
    "device": "keys/device.pem",
    "device-4096": "keys/device-4096.pem",
    "acme-gpg": "gpg/acme-gpg.pem",
}


def vector_path(name: str) -> Path:
    """Path of a vector file, failing clearly when shared/ is missing."""
    path = VECTORS / name
    if not path.exists():
        pytest.fail(f"golden vector {path} is missing: the suite needs ../shared/spec/vectors")
    return path


def manifest() -> list[dict[str, Any]]:
    """The vectors' manifest entries."""
    files: list[dict[str, Any]] = json.loads(vector_path("manifest.json").read_text())["files"]
    return files


def vector_key(label: str) -> asserts.RSAPrivateKey:
    """A published test key by its manifest label."""
    return asserts.load_pem_private_key(vector_path(KEY_FILES[label]).read_bytes())


def root_stream() -> list[asserts.Assertion]:
    """The vectors' trusted set."""
    return list(asserts.decode_stream(vector_path("root.assert").read_bytes()))


def vector_db(*needs: str) -> asserts.Database:
    """A database trusting the vectors' root, holding ``needs`` (added in order)."""
    db = asserts.Database(root_stream(), clock=lambda: VECTOR_NOW)
    for name in needs:
        db.add(asserts.decode(vector_path(name).read_bytes()))
    return db


# -- helpers for the mutation tables ------------------------------------------------

# The signature time of the tests that sign their own assertions with the library's
# fixed test keys (iotstore.asserts.testing).
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def replace_once(data: bytes, old: str | bytes, new: str | bytes) -> bytes:
    """``data`` with the single occurrence of ``old`` replaced; fails if ``old`` is not unique."""
    old_b = old.encode("utf-8") if isinstance(old, str) else old
    new_b = new.encode("utf-8") if isinstance(new, str) else new
    count = data.count(old_b)
    if count != 1:
        pytest.fail(f"mutation target {old_b!r} occurs {count} times, expected once")
    return data.replace(old_b, new_b, 1)


def decode_error(data: bytes) -> asserts.DecodeError:
    """The DecodeError ``asserts.decode`` raises for ``data`` (fails when it decodes)."""
    with pytest.raises(asserts.DecodeError) as caught:
        asserts.decode(data)
    return caught.value


def stream_error(data: bytes) -> asserts.DecodeError:
    """The DecodeError ``asserts.decode_stream`` raises for ``data``."""
    with pytest.raises(asserts.DecodeError) as caught:
        list(asserts.decode_stream(data))
    return caught.value
