"""Ports of the Go standard-library parsers snapd's checks rely on.

snapd 2.57.6 (built with Go 1.19, as the conformance harness is) accepts
exactly what ``strconv.Atoi``, ``time.Parse(time.RFC3339, ...)``,
``url.Parse`` and ``mail.ParseAddress`` accept, and quotes their error texts
in its own messages. Python's counterparts differ in both (``int()`` reads
Unicode digits, ``urlsplit`` accepts spaces in hosts, ``parseaddr`` never
fails), so the parts snapd observes are ported here, error texts included.
Only what snapd looks at is kept: whether parsing fails and why, and the few
fields it reads afterwards.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from ._quote import q, q_rune

__all__ = ["GoError", "GoURL", "atoi", "parse_address", "parse_rfc3339", "parse_url"]


class GoError(ValueError):
    """A Go parser refused its input; ``str()`` is Go's ``err.Error()``."""


# -- strconv.Atoi ---------------------------------------------------------------------------

_INT64_CUTOFF = 1 << 63
_UINT64_MAX = (1 << 64) - 1


class AtoiError(GoError):
    """strconv.Atoi's *NumError; ``out_of_range`` is ``Err == strconv.ErrRange``."""

    def __init__(self, text: str, out_of_range: bool) -> None:
        reason = "value out of range" if out_of_range else "invalid syntax"
        super().__init__(f"strconv.Atoi: parsing {q(text)}: {reason}")
        self.out_of_range = out_of_range


def atoi(text: str) -> int:
    """``strconv.Atoi`` on a 64-bit platform: optional sign, ASCII digits, int64 range."""
    if 0 < len(text) < 19:  # Go's fast path: cannot overflow
        digits = text[1:] if text[0] in "+-" else text
        if digits and digits.isascii() and digits.isdigit():
            value = int(digits)
            return -value if text[0] == "-" else value
        raise AtoiError(text, out_of_range=False)
    # ParseInt's slow path: the first of "bad character" or "overflow" wins.
    negative = text[:1] == "-"
    digits = text[1:] if text[:1] in ("+", "-") else text
    if not digits:
        raise AtoiError(text, out_of_range=False)
    value = 0
    for ch in digits:
        if not "0" <= ch <= "9":
            raise AtoiError(text, out_of_range=False)
        value = value * 10 + ord(ch) - 48
        if value > _UINT64_MAX:
            raise AtoiError(text, out_of_range=True)
    if value >= _INT64_CUTOFF + negative:
        raise AtoiError(text, out_of_range=True)
    return -value if negative else value


# -- time.Parse(time.RFC3339, value) ------------------------------------------------------------

RFC3339 = "2006-01-02T15:04:05Z07:00"
_DAYS_IN = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def _time_quote(raw: bytes) -> str:
    """The time package's own quote(): non-ASCII and control bytes as \\xNN."""
    out = ['"']
    for b in raw:
        if b < 0x20 or b >= 0x80:
            out.append(f"\\x{b:02x}")
        elif b in (0x22, 0x5C):
            out.append("\\" + chr(b))
        else:
            out.append(chr(b))
    out.append('"')
    return "".join(out)


class _ParseError(GoError):
    def __init__(
        self, value: bytes, layout_elem: str, value_elem: bytes, message: str = ""
    ) -> None:
        if message:
            text = f"parsing time {_time_quote(value)}{message}"
        else:
            text = (
                f"parsing time {_time_quote(value)} as {_time_quote(RFC3339.encode())}: "
                f"cannot parse {_time_quote(value_elem)} as {_time_quote(layout_elem.encode())}"
            )
        super().__init__(text)


def _is_digit(s: bytes, i: int) -> bool:
    return i < len(s) and 0x30 <= s[i] <= 0x39


def _getnum(s: bytes, fixed: bool) -> tuple[int, bytes] | None:
    if not _is_digit(s, 0):
        return None
    if not _is_digit(s, 1):
        return None if fixed else (s[0] - 0x30, s[1:])
    return (s[0] - 0x30) * 10 + s[1] - 0x30, s[2:]


def _starts_fraction(s: bytes) -> bool:
    """A fractional second: '.' or ',' then a digit (Go reads it after the seconds)."""
    return len(s) >= 2 and s[0] in b".," and _is_digit(s, 1)


def _time_atoi(s: bytes) -> int | None:
    """The time package's atoi: optional sign, then ASCII digits only."""
    negative = s[:1] == b"-"
    if s[:1] in (b"-", b"+"):
        s = s[1:]
    if not all(0x30 <= b <= 0x39 for b in s):
        return None
    value = int(s) if s else 0
    return -value if negative else value


def _is_leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def parse_rfc3339(text: str) -> datetime:
    """Go 1.19's ``time.Parse(time.RFC3339, text)``, returned in UTC.

    Raises :class:`GoError` with Go's ParseError text. Go's generic parser is
    laxer than RFC 3339 in places (a one-digit hour, a comma before the
    fraction, any two-digit zone offset, even ``+-1:00``) and all of that is
    kept. Python's datetime cannot hold the years Go allows beyond 1-9999;
    those are refused with a message saying so.
    """
    original = value = text.encode("utf-8")

    def fail(layout_elem: str, value_elem: bytes, message: str = "") -> _ParseError:
        return _ParseError(original, layout_elem, value_elem, message)

    # "2006": four bytes, the first a digit, all read by atoi
    if len(value) < 4 or not _is_digit(value, 0):
        raise fail("2006", value)
    year_part, value = value[:4], value[4:]
    year = _time_atoi(year_part)
    if year is None:
        raise fail("2006", value)  # Go 1.19 reports the rest, not the year bytes
    fields: list[int] = []
    for sep, elem, fixed, limit, what in (
        (b"-", "01", True, 13, "month"),
        (b"-", "02", True, 100, ""),
        (b"T", "15", False, 24, "hour"),
        (b":", "04", True, 60, "minute"),
        (b":", "05", True, 60, "second"),
    ):
        if value[:1] != sep:
            raise fail(sep.decode(), value)
        value = value[1:]
        got = _getnum(value, fixed)
        if got is None:
            if what == "second" and _starts_fraction(value):
                # Go 1.19 quirk: the fraction parser overwrites the seconds error,
                # so "...:00:.5Z" is read as second 0 and half a second.
                fields.append(0)
                continue
            raise fail(elem, value)
        number, value = got
        if number >= limit or (what == "month" and number == 0):
            raise fail(elem, value, f": {what} out of range")
        fields.append(number)
    month, day, hour, minute, second = fields
    nanos = 0
    if _starts_fraction(value):
        n = 2
        while _is_digit(value, n):
            n += 1
        digits = value[1 : min(n, 10)]
        nanos = int(digits) * 10 ** (9 - len(digits))
        value = value[n:]
    offset = 0
    if value[:1] == b"Z":
        value = value[1:]
    else:
        if len(value) < 6 or value[3:4] != b":":
            raise fail("Z07:00", value)
        sign, hh, mm, value = value[:1], value[1:3], value[4:6], value[6:]
        hours, minutes = _time_atoi(hh), _time_atoi(mm)
        if hours is None or minutes is None or sign not in (b"+", b"-"):
            raise fail("Z07:00", value)
        offset = (hours * 60 + minutes) * 60 * (-1 if sign == b"-" else 1)
    if value:
        raise fail("", value, f": extra text: {_time_quote(value)}")
    days = 29 if month == 2 and _is_leap(year) else _DAYS_IN[month - 1]
    if day < 1 or day > days:
        raise fail("", value, ": day out of range")
    try:
        when = datetime(year, month, day, hour, minute, second, nanos // 1000, UTC)
        return when - timedelta(seconds=offset)
    except (ValueError, OverflowError) as e:
        raise GoError(
            f"parsing time {_time_quote(original)}: year outside 1-9999 is not supported"
        ) from e


# -- url.Parse ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GoURL:
    """The url.URL fields snapd's store check reads."""

    scheme: str
    host: str
    raw_query: str
    fragment: str


_HOST_SUBDELIMS = frozenset("!$&'()*+,;=:[]<>\"")
_UNRESERVED_MARKS = frozenset("-_.~")
_HEX = frozenset("0123456789abcdefABCDEF")
_USERINFO = frozenset(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._:~!$&'()*+,;=%@"
)


def _url_error(op_input: str, reason: str) -> GoError:
    return GoError(f"parse {q(op_input)}: {reason}")


def _host_char_ok(ch: str) -> bool:
    """Not shouldEscape(ch, encodeHost), for ASCII ``ch`` (encodeZone is the same)."""
    return ch.isalnum() or ch in _HOST_SUBDELIMS or ch in _UNRESERVED_MARKS


def _unescape(s: str, mode: str) -> None:
    """url.unescape's validation (the decoded text itself is never needed here)."""
    i = 0
    while i < len(s):
        ch = s[i]
        if ch == "%":
            if i + 2 >= len(s) or s[i + 1] not in _HEX or s[i + 2] not in _HEX:
                # Go quotes the next three bytes, which may cut a character
                excerpt = s[i:].encode("utf-8")[:3].decode("utf-8", "surrogateescape")
                raise ValueError(f"invalid URL escape {q(excerpt)}")
            escape = s[i : i + 3]
            byte = int(s[i + 1 : i + 3], 16)
            if mode == "host" and byte < 0x80 and escape != "%25":
                raise ValueError(f"invalid URL escape {q(escape)}")
            # a zone may escape only what a host could hold as it is (and a space)
            zone_ok = escape == "%25" or byte == 0x20 or (byte < 0x80 and _host_char_ok(chr(byte)))
            if mode == "zone" and not zone_ok:
                raise ValueError(f"invalid URL escape {q(escape)}")
            i += 3
            continue
        if mode in ("host", "zone") and ch < "\x80" and not _host_char_ok(ch):
            raise ValueError(f"invalid character {q(ch)} in host name")
        i += 1


def _valid_optional_port(port: str) -> bool:
    return port == "" or (port[0] == ":" and all("0" <= c <= "9" for c in port[1:]))


def _parse_host(host: str) -> str:
    if host.startswith("["):
        close = host.rfind("]")
        if close < 0:
            raise ValueError("missing ']' in host")
        port = host[close + 1 :]
        if not _valid_optional_port(port):
            raise ValueError(f"invalid port {q(port)} after host")
        zone = host.find("%25", 0, close)
        if zone >= 0:
            _unescape(host[:zone], "host")
            _unescape(host[zone:close], "zone")
            _unescape(host[close:], "host")
            return host
    else:
        colon = host.rfind(":")
        if colon != -1 and not _valid_optional_port(host[colon:]):
            raise ValueError(f"invalid port {q(host[colon:])} after host")
    _unescape(host, "host")
    return host


def _parse_authority(authority: str) -> str:
    at = authority.rfind("@")
    host = _parse_host(authority[at + 1 :])
    if at >= 0:
        userinfo = authority[:at]
        if not all(c in _USERINFO for c in userinfo):
            raise ValueError("net/url: invalid userinfo")
        for part in userinfo.split(":", 1):
            _unescape(part, "userinfo")
    return host


def _get_scheme(raw: str) -> tuple[str, str]:
    for i, ch in enumerate(raw):
        if "a" <= ch <= "z" or "A" <= ch <= "Z":
            continue
        if "0" <= ch <= "9" or ch in "+-.":
            if i == 0:
                return "", raw
            continue
        if ch == ":":
            if i == 0:
                raise ValueError("missing protocol scheme")
            return raw[:i], raw[i + 1 :]
        return "", raw
    return "", raw


def _parse(raw: str) -> GoURL:
    if any(ch < " " or ch == "\x7f" for ch in raw):
        raise ValueError("net/url: invalid control character in URL")
    if raw == "*":
        return GoURL("", "", "", "")
    scheme, rest = _get_scheme(raw)
    scheme = scheme.lower()
    if rest.endswith("?") and rest.count("?") == 1:
        rest, query = rest[:-1], ""
    else:
        rest, _, query = rest.partition("?")
    if not rest.startswith("/"):
        if scheme:
            return GoURL(scheme, "", query, "")  # opaque: "scheme:rest"
        if ":" in rest.partition("/")[0]:
            raise ValueError("first path segment in URL cannot contain colon")
    host = ""
    if (scheme or not rest.startswith("///")) and rest.startswith("//"):
        authority, slash, path = rest[2:].partition("/")
        host = _parse_authority(authority)
        rest = slash + path
    _unescape(rest, "path")
    return GoURL(scheme, host, query, "")


def parse_url(raw: str) -> GoURL:
    """Go 1.19's ``url.Parse``; raises :class:`GoError` (a *url.Error) when Go does."""
    head, _, fragment = raw.partition("#")
    try:
        url = _parse(head)
    except ValueError as e:
        raise _url_error(head, str(e)) from e
    if fragment:
        try:
            _unescape(fragment, "fragment")
        except ValueError as e:
            raise _url_error(raw, str(e)) from e
    return GoURL(url.scheme, url.host, url.raw_query, fragment)


# -- mail.ParseAddress --------------------------------------------------------------------------


def _is_vchar(ch: str) -> bool:
    return "!" <= ch <= "~" or ch >= "\x80"


def _is_atext(ch: str, dot: bool, permissive: bool) -> bool:
    if ch == ".":
        return dot
    if ch in "()[];@\\,":
        return permissive
    if ch in '<>":':
        return False
    return _is_vchar(ch)


class _MailError(GoError):
    pass


class _CharsetError(GoError):
    """mime's CharsetReader refusal, which net/mail passes on."""


def _decode_rfc2047_word(word: str) -> tuple[str, bool]:
    """mime.WordDecoder.Decode as net/mail uses it: (decoded, is_encoded).

    Only utf-8, us-ascii and iso-8859-1 are known; a well-formed word in any
    other charset raises _CharsetError. Malformed words are left as they are.
    """
    if (
        len(word) < 8
        or not word.startswith("=?")
        or not word.endswith("?=")
        or word.count("?") != 4
    ):
        return word, False
    charset, _, rest = word[2:-2].partition("?")
    encoding, _, text = rest.partition("?")
    if not charset or len(encoding) != 1:
        return word, False
    if encoding in "Bb":
        try:
            content = base64.b64decode(text.encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError, ValueError):
            return word, False
    elif encoding in "Qq":
        decoded = _q_decode(text)
        if decoded is None:
            return word, False
        content = decoded
    else:
        return word, False
    lowered = charset.lower()
    if lowered == "utf-8":
        return content.decode("utf-8", "replace"), True
    if lowered == "iso-8859-1":
        return content.decode("latin-1"), True
    if lowered == "us-ascii":
        return "".join(chr(b) if b < 0x80 else "\ufffd" for b in content), True
    # mime hands the CharsetReader the lower-cased name, which net/mail quotes
    raise _CharsetError(f"charset not supported: {q(lowered)}")


def _q_decode(text: str) -> bytes | None:
    out = bytearray()
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "_":
            out.append(0x20)
        elif ch == "=":
            pair = text[i + 1 : i + 3]
            if i + 2 >= len(text) or not all(c in _HEX for c in pair):
                return None
            out.append(int(pair, 16))
            i += 2
        elif " " <= ch <= "~" or ch in "\n\r\t":
            out.append(ord(ch))
        else:
            return None
        i += 1
    return bytes(out)


class _AddrParser:
    """net/mail's addrParser, restricted to ParseAddress (one address or a group)."""

    def __init__(self, s: str) -> None:
        self.s = s

    def consume(self, ch: str) -> bool:
        if self.s[:1] != ch:
            return False
        self.s = self.s[1:]
        return True

    def skip_space(self) -> None:
        self.s = self.s.lstrip(" \t")

    def skip_cfws(self) -> bool:
        self.skip_space()
        while self.consume("("):
            if self.consume_comment() is None:
                return False
            self.skip_space()
        return True

    def consume_comment(self) -> str | None:
        depth = 1
        comment: list[str] = []
        while self.s and depth:
            if self.s[0] == "\\" and len(self.s) > 1:
                self.s = self.s[1:]
            elif self.s[0] == "(":
                depth += 1
            elif self.s[0] == ")":
                depth -= 1
            if depth > 0:
                comment.append(self.s[0])
            self.s = self.s[1:]
        return "".join(comment) if depth == 0 else None

    def consume_atom(self, dot: bool, permissive: bool) -> str:
        i = 0
        while i < len(self.s) and _is_atext(self.s[i], dot, permissive):
            i += 1
        if i == 0:
            raise _MailError("mail: invalid string")
        atom, self.s = self.s[:i], self.s[i:]
        if not permissive:
            if atom.startswith("."):
                raise _MailError("mail: leading dot in atom")
            if ".." in atom:
                raise _MailError("mail: double dot in atom")
            if atom.endswith("."):
                raise _MailError("mail: trailing dot in atom")
        return atom

    def consume_quoted_string(self) -> str:
        i = 1  # the opening quote
        out: list[str] = []
        escaped = False
        while True:
            if i >= len(self.s):
                raise _MailError("mail: unclosed quoted-string")
            ch = self.s[i]
            if escaped:
                if not _is_vchar(ch) and ch not in " \t":
                    raise _MailError(f"mail: bad character in quoted-string: {q_rune(ch)}")
                out.append(ch)
                escaped = False
            elif (_is_vchar(ch) and ch not in '\\"') or ch in " \t":
                out.append(ch)
            elif ch == '"':
                break
            elif ch == "\\":
                escaped = True
            else:
                raise _MailError(f"mail: bad character in quoted-string: {q_rune(ch)}")
            i += 1
        self.s = self.s[i + 1 :]
        return "".join(out)

    def consume_addr_spec(self) -> str:
        saved = self.s
        try:
            self.skip_space()
            if not self.s:
                raise _MailError("mail: no addr-spec")
            if self.s[0] == '"':
                try:
                    local = self.consume_quoted_string()
                except GoError:
                    local = ""  # Go reports any failure here as an empty local part
                if not local:
                    raise _MailError("mail: empty quoted string in addr-spec")
            else:
                local = self.consume_atom(dot=True, permissive=False)
            if not self.consume("@"):
                raise _MailError("mail: missing @ in addr-spec")
            self.skip_space()
            if not self.s:
                raise _MailError("mail: no domain in addr-spec")
            return local + "@" + self.consume_atom(dot=True, permissive=False)
        except GoError:
            self.s = saved
            raise

    def consume_phrase(self) -> str:
        words: list[str] = []
        prev_encoded = False
        error: GoError | None = None
        while True:
            self.skip_space()
            if not self.s:
                break
            encoded = False
            try:
                if self.s[0] == '"':
                    word = self.consume_quoted_string()
                else:
                    word = self.consume_atom(dot=True, permissive=True)
                    word, encoded = _decode_rfc2047_word(word)
            except GoError as e:
                error = e
                break
            if prev_encoded and encoded:
                words[-1] += word
            else:
                words.append(word)
            prev_encoded = encoded
        if error is not None and not words:
            raise _MailError(f"mail: missing word in phrase: {error}")
        return " ".join(words)

    def consume_display_name_comment(self) -> None:
        self.consume("(")
        comment = self.consume_comment()
        if comment is None:
            raise _MailError("mail: misformatted parenthetical comment")
        for word in comment.replace("\t", " ").split(" "):
            if word:
                _decode_rfc2047_word(word)

    def parse_address(self, handle_group: bool) -> int:
        """Parse one address (or, at the top, a group); return how many addresses."""
        self.skip_space()
        if not self.s:
            raise _MailError("mail: no address")
        try:
            self.consume_addr_spec()
        except GoError:
            pass
        else:
            self.skip_space()
            if self.s[:1] == "(":
                self.consume_display_name_comment()
            return 1
        name = ""
        if self.s[:1] != "<":
            name = self.consume_phrase()
        self.skip_space()
        if handle_group and self.consume(":"):
            return self.consume_group_list()
        if not self.consume("<"):
            if all(_is_atext(ch, True, False) for ch in name):
                raise _MailError("mail: missing '@' or angle-addr")
            raise _MailError("mail: no angle-addr")
        self.consume_addr_spec()
        if not self.consume(">"):
            raise _MailError("mail: unclosed angle-addr")
        return 1

    def consume_group_list(self) -> int:
        count = 0
        self.skip_space()
        if self.consume(";"):
            self.skip_cfws()
            return 0
        while True:
            self.skip_space()
            count += self.parse_address(handle_group=False)
            if not self.skip_cfws():
                raise _MailError("mail: misformatted parenthetical comment")
            if self.consume(";"):
                self.skip_cfws()
                return count
            if not self.consume(","):
                raise _MailError("mail: expected comma")


def parse_address(address: str) -> None:
    """Go 1.19's ``mail.ParseAddress`` as a check: raise :class:`GoError` when Go fails."""
    parser = _AddrParser(address)
    count = parser.parse_address(handle_group=True)
    if not parser.skip_cfws():
        raise _MailError("mail: misformatted parenthetical comment")
    if parser.s:
        raise _MailError(f"mail: expected single address, got {q(parser.s)}")
    if count == 0:
        raise _MailError("mail: empty group")
    if count > 1:
        raise _MailError("mail: group with multiple addresses")
