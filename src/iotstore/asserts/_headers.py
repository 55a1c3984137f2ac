"""The header grammar of snapd assertions: parsing and canonical writing.

Values are strings, lists or maps nested to any depth. Lists and maps are
introduced by ``NAME:`` at the end of a line and indented two spaces per
level; multi-line strings are indented four. An empty list or map has no
encoding and is left out when writing.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import TypeAlias

from ._quote import q
from .errors import DecodeError

HeaderValue: TypeAlias = "str | tuple[HeaderValue, ...] | Mapping[str, HeaderValue]"
"""A decoded header value: strings are the only scalar."""

InputValue: TypeAlias = "str | Sequence[InputValue] | Mapping[str, InputValue]"
"""What callers may pass when building headers (lists and dicts are fine)."""

Headers: TypeAlias = Mapping[str, HeaderValue]

NAME_RE = re.compile(r"[a-z](?:-?[a-z0-9])*")
_COMMON = "  "
_MULTI = "    "
_LIST = "  -"


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
        if not NAME_RE.fullmatch(name):
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
        cur = "EOF" if first == len(lines) else repr(lines[first])
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
        if not NAME_RE.fullmatch(key):
            raise DecodeError(f"invalid map entry key: {q(key)}")
        value, j = _parse_entry(len(prefix) + colon + 1, j, lines, len(prefix))
        if key in result:
            raise DecodeError(f"repeated map entry: {q(key)}")
        result[key] = value
    return MappingProxyType(result), j


def freeze(value: object, where: str) -> HeaderValue:
    """Check an input value's shape and return it frozen (tuples and read-only maps).

    Empty lists and maps are kept here; the writer leaves them out.
    """
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        frozen: dict[str, HeaderValue] = {}
        for k, v in value.items():
            if not isinstance(k, str) or not NAME_RE.fullmatch(k):
                raise DecodeError(f"header {q(where)}: invalid map entry key: {q(k)}", where)
            frozen[k] = freeze(v, where)
        return MappingProxyType(frozen)
    if isinstance(value, Sequence) and not isinstance(value, bytes | bytearray):
        return tuple(freeze(v, where) for v in value)
    raise DecodeError(
        f"header {q(where)}: header values must be strings or nested lists or maps "
        "with strings as the only scalars",
        where,
    )


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


def is_empty(value: HeaderValue) -> bool:
    """True for the empty list or map, which have no encoding."""
    return not isinstance(value, str) and not value
