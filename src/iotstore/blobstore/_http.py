"""Pure HTTP helpers for downloads: the Range header and the response headers.

Kept free of I/O so the rules are tested on their own (with Hypothesis).
"""

from __future__ import annotations

import re
import unicodedata
from types import MappingProxyType
from urllib.parse import quote

from .errors import RangeNotSatisfiable
from .interfaces import ByteRange

__all__ = ["content_disposition", "download_headers", "parse_range"]

# RFC 9110 section 14.1.2: "bytes=" then one range-spec; ASCII digits only
# (int() alone would also take "+5", "1_0" and other Unicode digits).
_RANGE_SPEC = re.compile(r"([0-9]*)-([0-9]*)")


def parse_range(header: str | None, size: int) -> ByteRange | None:
    """Interpret a Range header for a blob of ``size`` bytes.

    Returns the one :class:`ByteRange` to serve with 206, or None to serve
    the whole blob with 200: no header, a unit other than ``bytes``, several
    ranges, or a malformed header (RFC 9110 section 14.2 lets a server ignore
    Range; snapd only ever sends one ``bytes=N-`` to resume). Raises
    :class:`RangeNotSatisfiable` for a well-formed single range that selects
    nothing: a first byte at or past the end, or a zero-length suffix.
    """
    if size < 0:
        raise ValueError("size must not be negative")
    if header is None:
        return None
    unit, sep, spec = header.strip().partition("=")
    if not sep or unit.strip().lower() != "bytes":
        return None
    spec = spec.strip(" \t")
    if "," in spec:
        return None
    match = _RANGE_SPEC.fullmatch(spec)
    if match is None:
        return None
    first, last = match.group(1), match.group(2)
    if first:
        start = int(first)
        if last and int(last) < start:
            return None  # "bytes=5-2" is invalid, not unsatisfiable (section 14.1.1)
        if start >= size:
            raise RangeNotSatisfiable(size)
        end = min(int(last), size - 1) if last else size - 1
        return ByteRange(start=start, length=end - start + 1, size=size)
    if not last:
        return None  # "bytes=-"
    suffix = int(last)
    if suffix == 0 or size == 0:
        raise RangeNotSatisfiable(size)
    length = min(suffix, size)
    return ByteRange(start=size - length, length=length, size=size)


def content_disposition(filename: str) -> str:
    """An ``attachment`` Content-Disposition naming ``filename`` safely (RFC 6266).

    Quotes, backslashes and control characters never reach the header; a
    non-ASCII name goes in ``filename*`` (UTF-8, percent-encoded) with an
    ASCII fallback in ``filename``.
    """
    cleaned = "".join(
        c for c in filename if unicodedata.category(c)[0] != "C" and c not in '"\\/'
    ).strip()
    if not cleaned:
        cleaned = "download"
    ascii_name = cleaned.encode("ascii", "replace").decode("ascii").replace("?", "_")
    value = f'attachment; filename="{ascii_name}"'
    if ascii_name != cleaned:
        value += f"; filename*=UTF-8''{quote(cleaned, safe='')}"
    return value


def download_headers(
    key: str, size: int, byte_range: ByteRange | None, filename: str
) -> MappingProxyType[str, str]:
    """Response headers for serving blob ``key`` (whole, or ``byte_range`` of it)."""
    headers = {
        "Content-Type": "application/octet-stream",
        "Content-Disposition": content_disposition(filename),
        "Accept-Ranges": "bytes",
        # blobs never change, so the key is a strong validator (If-Range works)
        "ETag": f'"{key}"',
        "Content-Length": str(size if byte_range is None else byte_range.length),
    }
    if byte_range is not None:
        headers["Content-Range"] = byte_range.content_range
    return MappingProxyType(headers)
