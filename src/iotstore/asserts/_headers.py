"""The header grammar of snapd assertions: parsing and canonical writing.

Values are strings, lists or maps nested to any depth. Lists and maps are
introduced by ``NAME:`` at the end of a line and indented two spaces per
level; multi-line strings are indented four. An empty list or map has no
encoding and is left out when writing (see :func:`normalize`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import TypeAlias

from ._names import NameRule
from ._quote import go_v, q
from .errors import DecodeError

HeaderValue: TypeAlias = "str | tuple[HeaderValue, ...] | Mapping[str, HeaderValue]"
"""A decoded header value: strings are the only scalar."""

InputValue: TypeAlias = "str | Sequence[InputValue] | Mapping[str, InputValue]"
"""What callers may pass when building headers (lists and dicts are fine)."""

Headers: TypeAlias = Mapping[str, HeaderValue]

_COMMON = "  "
_MULTI = "    "
_LIST = "  -"
# snapd's headerNameValidity, for header names and map keys
NAME_RE = NameRule("[a-z](?:-?[a-z0-9])*", "[a-z][-a-z0-9]*")
# Names already found valid: every assertion repeats the same few dozen. The
# cap keeps input made of ever-new names from growing it without bound.
_VALID_NAMES: set[str] = set()
_VALID_NAMES_CAP = 4096


def is_valid_name(name: str) -> bool:
    """Whether ``name`` is a valid header name or map key (snapd's headerNameValidity)."""
    if name in _VALID_NAMES:
        return True
    if not NAME_RE.fullmatch(name):
        return False
    if len(_VALID_NAMES) < _VALID_NAMES_CAP:
        _VALID_NAMES.add(name)
    return True


def parse(head: str) -> dict[str, HeaderValue]:
    """Parse the header block (no trailing newline) into frozen values."""
    headers: dict[str, HeaderValue] = {}
    lines = head.split("\n")
    i = 0
    while i < len(lines):
        entry = lines[i]
        colon = entry.find(":")
        if colon == -1:
            raise DecodeError(f"header entry missing ':' separator: {q(entry)}")
        name = entry[:colon]
        if not is_valid_name(name):
            raise DecodeError(f"invalid header name: {q(name)}")
        value, i = _parse_entry(colon + 1, i, lines, 0)
        if name in headers:
            raise DecodeError(f"repeated header: {q(name)}", name)
        headers[name] = value
    return headers


def _parse_entry(
    consumed: int, first: int, lines: list[str], indent: int
) -> tuple[HeaderValue, int]:
    entry = lines[first]
    i = first + 1
    if consumed == len(entry):
        base = " " * indent + _COMMON
        if i < len(lines) and lines[i].startswith(base):
            rest = lines[i][len(base) :]
            if rest.startswith("-"):
                return _parse_list(i, lines, indent)
            if rest and rest[0] != " ":
                return _parse_map(i, lines, indent)
        return _parse_text(i, lines, indent)
    if entry[consumed] != " ":
        raise DecodeError(
            f"header entry should have a space or newline (for multiline) before value: {q(entry)}"
        )
    return entry[consumed + 1 :], i


def _parse_text(first: int, lines: list[str], indent: int) -> tuple[str, int]:
    prefix = " " * indent + _MULTI
    j = first
    while j < len(lines) and lines[j].startswith(prefix):
        j += 1
    if j == first:
        cur = "EOF" if first == len(lines) else q(lines[first])
        raise DecodeError(
            f"expected {len(prefix)} chars nesting prefix after multiline introduction "
            f"{q(lines[first - 1])}: {cur}"
        )
    return "\n".join(line[len(prefix) :] for line in lines[first:j]), j


def _parse_list(first: int, lines: list[str], indent: int) -> tuple[tuple[HeaderValue, ...], int]:
    items: list[HeaderValue] = []
    prefix = " " * indent + _LIST
    j = first
    while j < len(lines) and lines[j].startswith(prefix):
        value, j = _parse_entry(len(prefix), j, lines, indent + len(_LIST) - 1)
        items.append(value)
    return tuple(items), j


def _parse_map(first: int, lines: list[str], indent: int) -> tuple[Mapping[str, HeaderValue], int]:
    result: dict[str, HeaderValue] = {}
    prefix = " " * indent + _COMMON
    j = first
    while j < len(lines) and lines[j].startswith(prefix):
        entry = lines[j][len(prefix) :]
        colon = entry.find(":")
        if colon == -1:
            raise DecodeError(f"map entry missing ':' separator: {q(entry)}")
        key = entry[:colon]
        if not is_valid_name(key):
            raise DecodeError(f"invalid map entry key: {q(key)}")
        value, j = _parse_entry(len(prefix) + colon + 1, j, lines, len(prefix))
        if key in result:
            raise DecodeError(f"repeated map entry: {q(key)}")
        result[key] = value
    return MappingProxyType(result), j


def freeze(value: object, where: str) -> HeaderValue:
    """Check an input value's shape and return it frozen (tuples and read-only maps).

    Empty lists and maps are kept here, as snapd's signer keeps them for its
    checks; :func:`normalize` drops them as the writer does.
    """
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        frozen: dict[str, HeaderValue] = {}
        for k, v in value.items():
            if not isinstance(k, str) or not is_valid_name(k):
                raise DecodeError(f"header {q(where)}: invalid map entry key: {q(k)}", where)
            frozen[k] = freeze(v, where)
        return MappingProxyType(frozen)
    if isinstance(value, Sequence) and not isinstance(value, bytes | bytearray):
        return tuple(freeze(v, where) for v in value)
    message = (
        f"header {q(where)}: header values must be strings or nested lists or maps "
        "with strings as the only scalars"
    )
    if isinstance(value, int | float):  # bool is an int: Go prints all three with %v
        message += f": {go_v(value)}"
    raise DecodeError(message, where)


def normalize(value: HeaderValue, where: str) -> HeaderValue | None:
    """``value`` as it will read back once written: empty lists and maps left out.

    Returns None when the whole value is left out (an empty list or map).
    snapd's writer omits an empty list or map wherever it is, but still writes
    the introduction of a list or map whose every member is left out, which no
    parser accepts; such a value is refused here (DecodeError naming ``where``).
    """
    if isinstance(value, str):
        return value
    if not value:
        return None
    result: HeaderValue
    if isinstance(value, Mapping):
        pairs = [(k, v if isinstance(v, str) else normalize(v, where)) for k, v in value.items()]
        if all(n is value[k] for k, n in pairs):
            return value  # nothing left out: keep the very same object
        result = MappingProxyType({k: n for k, n in pairs if n is not None})
    else:
        items = [v if isinstance(v, str) else normalize(v, where) for v in value]
        if all(n is v for n, v in zip(items, value, strict=True)):
            return value
        result = tuple(n for n in items if n is not None)
    if not result:
        raise DecodeError(
            f"header {q(where)}: a list or map holding only empty lists or maps has no encoding",
            where,
        )
    return result


def write_entry(out: list[str], intro: str, value: HeaderValue, indent: int) -> None:
    """Append one entry (with a leading newline per line) to ``out``, snapd's ``appendEntry``."""
    if isinstance(value, str):
        out.append("\n")
        out.append(intro)
        if "\n" in value:
            prefix = " " * indent + _MULTI
            out.append("\n")
            out.append(prefix)
            out.append(value.replace("\n", "\n" + prefix))
        else:
            out.append(" ")
            out.append(value)
    elif isinstance(value, Mapping):
        if not value:
            return
        out.append("\n")
        out.append(intro)
        prefix = " " * indent + _COMMON
        for key in sorted(value):
            write_entry(out, f"{prefix}{key}:", value[key], len(prefix))
    else:
        if not value:
            return
        out.append("\n")
        out.append(intro)
        prefix = " " * indent + _LIST
        for item in value:
            write_entry(out, prefix, item, indent + len(_LIST) - 1)
