"""Go's fmt verbs, for error messages that read exactly as snapd's.

snapd's error texts are part of what clients see (and what tests pin), so the
few verbs snapd uses are reproduced here rather than approximated with
``repr`` or JSON: ``%q`` (:func:`q`, :func:`q_rune`) and ``%v`` (:func:`go_v`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from decimal import Decimal

_SIMPLE_ESCAPES = {
    "\a": "\\a",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\v": "\\v",
    "\\": "\\\\",
}


def _escape(ch: str, quote: str) -> str:
    """One character as strconv.appendEscapedRune writes it inside ``quote`` quotes."""
    if ch == quote:
        return "\\" + ch
    escaped = _SIMPLE_ESCAPES.get(ch)
    if escaped is not None:
        return escaped
    # Python's isprintable() and Go's unicode.IsPrint agree: letters, marks,
    # numbers, punctuation, symbols and the ASCII space (only their Unicode
    # versions differ).
    if ch.isprintable():
        return ch
    code = ord(ch)
    if code < 0x20 or code == 0x7F:
        return f"\\x{code:02x}"
    if 0xDC80 <= code <= 0xDCFF:  # a raw byte kept by "surrogateescape": Go's \xNN
        return f"\\x{code - 0xDC00:02x}"
    if 0xD800 <= code <= 0xDFFF:  # not a valid rune: Go prints U+FFFD's escape
        return "\\ufffd"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def _quote_str(s: str) -> str:
    # fast path: most values (names, ids, simple text) need no escaping
    if s.isprintable() and '"' not in s and "\\" not in s:
        return f'"{s}"'
    return '"' + "".join(_escape(ch, '"') for ch in s) + '"'


def q(value: object) -> str:
    """Go's ``%q``: a double-quoted Go string literal (lists and maps element-wise)."""
    if isinstance(value, str):
        return _quote_str(value)
    if value is None:
        return "%!q(<nil>)"
    if isinstance(value, Mapping):
        return "map[" + " ".join(f"{q(k)}:{q(value[k])}" for k in sorted(value)) + "]"
    if isinstance(value, list | tuple):
        return "[" + " ".join(q(v) for v in value) + "]"
    return _quote_str(str(value))


def q_rune(ch: str) -> str:
    """Go's ``%q`` of a rune: a single-quoted character literal."""
    return "'" + _escape(ch, "'") + "'"


def _go_float(f: float) -> str:
    """strconv.FormatFloat(f, 'g', -1, 64), which is what ``%v`` prints for a float64."""
    if math.isnan(f):
        return "NaN"
    if math.isinf(f):
        return "+Inf" if f > 0 else "-Inf"
    sign, digit_tuple, exponent = Decimal(repr(f)).normalize().as_tuple()
    assert isinstance(exponent, int)
    digits = "".join(map(str, digit_tuple))
    if digits == "0":
        return "-0" if sign else "0"
    exp = len(digits) - 1 + exponent  # decimal exponent of the first digit
    minus = "-" if sign else ""
    if exp < -4 or exp >= 6:  # shortest formatting decides with precision 6
        mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{minus}{mantissa}e{'-' if exp < 0 else '+'}{abs(exp):02d}"
    if exp < 0:
        return f"{minus}0.{'0' * (-exp - 1)}{digits}"
    if len(digits) <= exp + 1:
        return minus + digits + "0" * (exp + 1 - len(digits))
    return f"{minus}{digits[: exp + 1]}.{digits[exp + 1 :]}"


def go_v(value: object) -> str:
    """Go's ``%v`` of a decoded header value (strings, lists, maps) or a plain scalar."""
    if isinstance(value, str):
        return value
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _go_float(value)
    if isinstance(value, Mapping):
        return "map[" + " ".join(f"{go_v(k)}:{go_v(value[k])}" for k in sorted(value)) + "]"
    if isinstance(value, list | tuple):
        return "[" + " ".join(go_v(v) for v in value) + "]"
    return str(value)
