"""Shared header checks used by every assertion family.

Each helper reads one entry of a header mapping (or a nested map), checks it
the way snapd does and raises :class:`DecodeError` naming the entry.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Protocol

from . import _golang
from ._headers import HeaderValue
from ._names import NameRule
from ._quote import go_v, q
from .errors import DecodeError

M = Mapping[str, HeaderValue]


class Matcher(Protocol):
    """What a string check needs of a pattern: ``re.Pattern`` or a :class:`NameRule`."""

    def fullmatch(self, string: str, /) -> object:
        """Truthy when ``string`` is accepted as a whole."""
        ...


ACCOUNT_ID_RE = re.compile(r"(?:[a-z0-9A-Z]{32}|[-a-z0-9]{2,28})")
SNAP_ID_RE = re.compile(r"[a-z0-9A-Z]{32}")
# snapd's naming regexps with nested quantifiers ("(?:[a-z0-9]+-?)*...") are
# exponential in Python's backtracking re; see NameRule.
MODEL_NAME_RE = NameRule("[a-zA-Z0-9](?:-?[a-zA-Z0-9])*", r"[a-zA-Z0-9][-a-zA-Z0-9]*")
PROVENANCE_RE = NameRule("[a-zA-Z0-9](?:-?[a-zA-Z0-9])*", r"[a-zA-Z0-9][-a-zA-Z0-9]*")
SNAP_NAME_RE = NameRule(
    "(?:[a-z0-9]+-?)*[a-z](?:-?[a-z0-9])*", r"[a-z0-9][-a-z0-9]*", needs=re.compile("[a-z]")
)
KEY_NAME_RE = NameRule(
    "(?:[a-z0-9]+-?)*[a-z](?:-?[a-z0-9])*", r"[a-z0-9][-a-z0-9]*", needs=re.compile("[a-z]")
)
# The strict, common form of RFC 3339; anything else goes through the Go port.
_RFC3339_FAST = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]{1,9}))?"
    r"(Z|[+-][0-9]{2}:[0-9]{2})"
)
_DIGEST_RE = re.compile(r"[A-Za-z0-9_-]*")
_UINT64_MAX = 2**64 - 1


class within:  # noqa: N801 - used like a function: ``with within("snaps"):``
    """Errors from checks inside a header's nested maps name that top-level header.

    The nested checks name the map key they looked at (``id``, ``name``); the
    key is in the message already, and ``DecodeError.header`` is documented to
    name a header of the assertion. (A class, not @contextmanager: it is
    entered while decoding every assertion.)
    """

    __slots__ = ("_header",)

    def __init__(self, header: str) -> None:
        self._header = header

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: object, error: BaseException | None, tb: object) -> None:
        if isinstance(error, DecodeError):
            error.header = self._header


def _q(name: str, what: str) -> str:
    return f'"{name}" {what}'


def exists_string(m: M, name: str, what: str = "header") -> str:
    """A mandatory string entry, possibly empty."""
    if name not in m:
        raise DecodeError(f"{_q(name, what)} is mandatory", name)
    value = m[name]
    if not isinstance(value, str):
        raise DecodeError(f"{_q(name, what)} must be a string", name)
    return value


def not_empty_string(m: M, name: str, what: str = "header") -> str:
    """A mandatory, non-empty string entry."""
    value = exists_string(m, name, what)
    if not value:
        raise DecodeError(f"{_q(name, what)} should not be empty", name)
    return value


def optional_string(m: M, name: str, what: str = "header") -> str | None:
    """A string entry that may be absent (``None``)."""
    if name not in m:
        return None
    value = m[name]
    if not isinstance(value, str):
        raise DecodeError(f"{_q(name, what)} must be a string", name)
    return value


def string_matches(m: M, name: str, pattern: Matcher, what: str = "header") -> str:
    """A non-empty string entry matching ``pattern`` in full."""
    value = not_empty_string(m, name, what)
    if not pattern.fullmatch(value):
        raise DecodeError(f"{_q(name, what)} contains invalid characters: {q(value)}", name)
    return value


def primary_key(m: M, name: str) -> str:
    """A primary-key header: non-empty, no '/' (it becomes a URL path segment)."""
    value = not_empty_string(m, name)
    if "/" in value:
        raise DecodeError(f"\"{name}\" primary key header cannot contain '/'", name)
    return value


def parse_int(value: str, name: str, what: str = "header") -> int:
    """A decimal integer as snapd's atoi reads it: strconv.Atoi, then no leading zeros."""
    try:
        number = _golang.atoi(value)
    except _golang.AtoiError as e:
        reason = "is out of range" if e.out_of_range else "is not an integer"
        raise DecodeError(f"{_q(name, what)} {reason}: {value}", name) from e
    if value.startswith("0") and value != "0":
        raise DecodeError(f"{_q(name, what)} has invalid prefix zeros: {value}", name)
    return number


def int_with_default(m: M, name: str, default: int) -> int:
    """An optional integer header."""
    if name not in m:
        return default
    value = m[name]
    if not isinstance(value, str):
        # snapd prints the offending list or map with %v: "[1]", "map[a:b]"
        raise DecodeError(f'"{name}" header is not an integer: {go_v(value)}', name)
    return parse_int(value, name)


def mandatory_int(m: M, name: str, what: str = "header") -> int:
    """A mandatory integer entry."""
    return parse_int(not_empty_string(m, name, what), name, what)


def iteration(m: M, name: str) -> int:
    """``format`` or ``revision``: a non-negative integer defaulting to 0."""
    number = int_with_default(m, name, 0)
    if number < 0:
        raise DecodeError(f"{name} should be positive: {number}", name)
    return number


def uint64(m: M, name: str) -> int:
    """A mandatory unsigned 64-bit integer header (``snap-size``)."""
    value = not_empty_string(m, name)
    if not value.isascii() or not value.isdigit():
        raise DecodeError(f'"{name}" header is not an unsigned integer: {value}', name)
    number = int(value)
    if number > _UINT64_MAX:
        raise DecodeError(f'"{name}" header is out of range: {value}', name)
    if value.startswith("0") and value != "0":
        raise DecodeError(f'"{name}" header has invalid prefix zeros: {value}', name)
    return number


def parse_time(value: str, name: str, what: str = "header") -> datetime:
    """``time.Parse(time.RFC3339, value)`` as snapd (Go 1.19) runs it; returned in UTC."""
    match = _RFC3339_FAST.fullmatch(value)
    if match is not None:
        when = _fast_time(match)
        if when is not None:
            return when
    try:
        return _golang.parse_rfc3339(value)
    except _golang.GoError as e:
        raise DecodeError(f"{_q(name, what)} is not a RFC3339 date: {e}", name) from e


def _fast_time(match: re.Match[str]) -> datetime | None:
    """The well-formed case without the Go port's byte walk; None to let the port decide."""
    year, month, day, hour, minute, second, frac, zone = match.groups()
    try:
        when = datetime(
            int(year),
            int(month),
            int(day),
            int(hour),
            int(minute),
            int(second),
            int(frac[:6].ljust(6, "0")) if frac else 0,
            UTC,
        )
    except ValueError:
        return None  # out of range: the port words the error
    if zone != "Z":
        # Go 1.19 takes any two-digit offset, even beyond 24 hours
        offset = timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6]))
        try:
            when = when - offset if zone[0] == "+" else when + offset
        except OverflowError:
            return None
    return when


def rfc3339(m: M, name: str, what: str = "header") -> datetime:
    """A mandatory RFC 3339 time entry."""
    return parse_time(not_empty_string(m, name, what), name, what)


def optional_rfc3339(m: M, name: str, what: str = "header") -> datetime | None:
    """An RFC 3339 time entry that may be absent."""
    value = optional_string(m, name, what)
    return None if value is None else parse_time(value, name, what)


def format_time(when: datetime) -> str:
    """The form snapd writes: ``YYYY-MM-DDTHH:MM:SSZ`` in UTC."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def digest(m: M, name: str) -> bytes:
    """A mandatory SHA3-384 digest header, base64url without padding."""
    value = not_empty_string(m, name)
    if len(value) % 4 == 1 or not _DIGEST_RE.fullmatch(value):
        raise DecodeError(f'"{name}" header cannot be decoded: illegal base64 data', name)
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError) as e:
        raise DecodeError(f'"{name}" header cannot be decoded: illegal base64 data', name) from e
    if len(raw) != 48:
        raise DecodeError(
            f'"{name}" header does not have the expected bit length: {len(raw) * 8}', name
        )
    return raw


def optional_bool(m: M, name: str) -> bool:
    """``true`` or ``false``; absent means false."""
    if name not in m:
        return False
    value = m[name]
    if value not in ("true", "false"):
        raise DecodeError(f"\"{name}\" header must be 'true' or 'false'", name)
    return value == "true"


def string_list(
    m: M, name: str, pattern: Matcher | None = None, what: str | None = None
) -> tuple[str, ...]:
    """An optional list of strings (absent: empty), each matching ``pattern`` if given."""
    label = what or f'"{name}" header'
    if name not in m:
        return ()
    value = m[name]
    if isinstance(value, str | Mapping):
        raise DecodeError(f"{label} must be a list of strings", name)
    result: list[str] = []
    for item in value:
        if not isinstance(item, str):
            raise DecodeError(f"{label} must be a list of strings", name)
        if pattern is not None and not pattern.fullmatch(item):
            raise DecodeError(f"{label} contains an invalid element: {q(item)}", name)
        result.append(item)
    return tuple(result)


def optional_map(m: M, name: str, what: str = "header") -> M | None:
    """A map entry that may be absent."""
    if name not in m:
        return None
    value = m[name]
    if not isinstance(value, Mapping):
        raise DecodeError(f"{_q(name, what)} must be a map", name)
    return value


def list_of_maps(m: M, name: str, what: str = "header") -> tuple[M, ...]:
    """An optional list whose elements must all be maps."""
    if name not in m:
        return ()
    value = m[name]
    if isinstance(value, str | Mapping):
        raise DecodeError(f"{_q(name, what)} must be a list of maps", name)
    result: list[M] = []
    for item in value:
        if not isinstance(item, Mapping):
            raise DecodeError(f"{_q(name, what)} must be a list of maps", name)
        result.append(item)
    return tuple(result)
