"""Access to the golden assertion vectors made with snapd 2.57.6.

The vectors live in the shared spec (``spec/vectors``; see its README.md):
``$IOTSTORE_SPEC_VECTORS`` or ``../shared/spec/vectors`` beside the checkout.  Their
``manifest.json`` says, per file, which key signed it, from which JSON input,
what it needs in the database first and what snapd answered.
"""

from __future__ import annotations

import json
import os
from functools import cache
from pathlib import Path
from typing import Any

__all__ = [
    "ROOT_STREAM",
    "key_pem",
    "manifest_entries",
    "positive_files",
    "read",
    "vectors_dir",
]

ROOT_STREAM = "root.assert"
"""The trusted set (root account + root account-key) as one stream."""

_TRUSTED_HALVES = ("account-root.assert", "account-key-root.assert")


def vectors_dir() -> Path:
    """Return the vectors directory; raise ``FileNotFoundError`` saying where it looked."""
    default = Path(__file__).resolve().parents[3] / "shared" / "spec" / "vectors"
    path = Path(os.environ.get("IOTSTORE_SPEC_VECTORS") or default)
    if not (path / "manifest.json").is_file():
        raise FileNotFoundError(
            f"golden vectors not found at {path}: set IOTSTORE_SPEC_VECTORS to spec/vectors"
        )
    return path


def read(name: str) -> bytes:
    """Bytes of a vector file, by its path relative to the vectors directory."""
    return (vectors_dir() / name).read_bytes()


@cache
def manifest_entries() -> tuple[dict[str, Any], ...]:
    """The ``files`` list of manifest.json (one dict per vector file)."""
    data = json.loads((vectors_dir() / "manifest.json").read_text())
    return tuple(data["files"])


def positive_files() -> list[str]:
    """Every positive vector that can be added on top of the trusted set.

    That is every top-level ``*.assert`` and ``gpg/*.assert`` except the
    trusted set itself and its two halves.
    """
    base = vectors_dir()
    names = [p.name for p in sorted(base.glob("*.assert"))]
    names += [f"gpg/{p.name}" for p in sorted((base / "gpg").glob("*.assert"))]
    return [n for n in names if n != ROOT_STREAM and n not in _TRUSTED_HALVES]


def key_pem(label: str) -> bytes:
    """PEM private key for a key label of keys/keys.json (root, brand, device, ...)."""
    base = vectors_dir()
    keys = json.loads((base / "keys" / "keys.json").read_text())["keys"]
    return (base / str(keys[label]["file"])).read_bytes()
