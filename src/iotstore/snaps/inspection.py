"""Read and check ``meta/snap.yaml`` of an uploaded snap without extracting it.

STUB: signatures are final, the implementation lands next.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import BinaryIO

from iotstore.errors import InvalidInput

__all__ = [
    "DEFAULT_LIMITS",
    "Epoch",
    "InspectionError",
    "InspectionLimits",
    "SnapMetadata",
    "inspect_snap",
]


class InspectionError(InvalidInput):
    """The file is not an acceptable snap; ``code`` says why (stable), ``message`` for people.

    Codes: ``not-squashfs``, ``truncated``, ``unsupported-compression``, ``too-large``,
    ``too-many-inodes``, ``bad-squashfs``, ``bad-path``, ``no-snap-yaml``,
    ``snap-yaml-not-file``, ``snap-yaml-too-large``, ``invalid-yaml``, ``invalid-name``,
    ``invalid-version``, ``invalid-type``, ``invalid-base``, ``invalid-confinement``,
    ``invalid-grade``, ``invalid-epoch``, ``invalid-architectures``, ``invalid-field``,
    ``too-slow``.
    """

    def __init__(self, code: str, message: str, *, field: str | None = None) -> None:
        super().__init__(message, field=field)
        self.code = code


@dataclass(frozen=True, slots=True)
class InspectionLimits:
    """Upper bounds applied while reading an untrusted snap."""

    max_file_size: int = 8 << 30
    max_snap_yaml_bytes: int = 1 << 20
    max_metadata_bytes: int = 64 << 20
    max_inodes: int = 1_000_000
    max_path_length: int = 4096
    max_path_depth: int = 64
    max_seconds: float = 20.0


DEFAULT_LIMITS = InspectionLimits()


@dataclass(frozen=True, slots=True)
class Epoch:
    """A snap epoch: the epochs this revision can read and write (snapd's ``snap.Epoch``)."""

    read: tuple[int, ...] = (0,)
    write: tuple[int, ...] = (0,)

    def __str__(self) -> str:
        """The short form snapcraft writes: ``0``, ``1``, ``2*``, or ``read/write`` lists."""
        raise NotImplementedError

    def as_json(self) -> dict[str, list[int]]:
        """The store API form: ``{"read": [...], "write": [...]}``."""
        return {"read": list(self.read), "write": list(self.write)}


@dataclass(frozen=True, slots=True)
class SnapMetadata:
    """What ``meta/snap.yaml`` says, validated with snapd's rules."""

    name: str
    version: str
    snap_type: str
    base: str | None
    architectures: tuple[str, ...]
    confinement: str
    grade: str
    epoch: Epoch
    provenance: str | None
    summary: str | None
    description: str | None
    title: str | None
    license: str | None
    apps: Mapping[str, object] = field(default_factory=dict)
    plugs: Mapping[str, object] = field(default_factory=dict)
    slots: Mapping[str, object] = field(default_factory=dict)
    snap_yaml: str = ""
    compression: str = "xz"


def inspect_snap(f: BinaryIO, *, limits: InspectionLimits = DEFAULT_LIMITS) -> SnapMetadata:
    """Read ``meta/snap.yaml`` from the squashfs in ``f`` and validate it.

    ``f`` must be seekable; only the superblock, the directory and inode tables
    and snap.yaml's blocks are read. Raises :class:`InspectionError`.
    """
    raise NotImplementedError
