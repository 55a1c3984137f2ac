"""The ports of Go's parsers that snapd's checks rely on, pinned to Go 1.19's own output.

Every expected value below was produced by Go 1.19 (the toolchain snapd 2.57.6 and the
conformance harness are built with) from the same input: ``OK ...`` for success, ``E ...``
for the error text. Lax corners Go accepts are kept on purpose (one-digit hours, ``+-1:00``
offsets, a fraction standing in for the seconds), since snapd accepts them too.
"""

from __future__ import annotations

from datetime import datetime

import pytest

from iotstore.asserts import _golang
from iotstore.asserts._quote import go_v, q


def _outcome(call: object) -> str:
    try:
        result = call()  # type: ignore[operator]
    except _golang.GoError as e:
        return f"E {e}"
    return "OK" if result is None else f"OK {result}"


def _utc(when: datetime) -> str:
    return f"{when.year:04d}-{when:%m-%dT%H:%M:%S.%f}Z"


ATOI = [
    ("0", "OK 0"),
    ("+5", "OK 5"),
    ("-0", "OK 0"),
    ("", 'E strconv.Atoi: parsing "": invalid syntax'),
    ("+", 'E strconv.Atoi: parsing "+": invalid syntax'),
    ("1_000", 'E strconv.Atoi: parsing "1_000": invalid syntax'),
    ("٢", 'E strconv.Atoi: parsing "٢": invalid syntax'),
    ("-9223372036854775808", "OK -9223372036854775808"),
    ("9223372036854775808", 'E strconv.Atoi: parsing "9223372036854775808": value out of range'),
    (
        "99999999999999999999x",
        'E strconv.Atoi: parsing "99999999999999999999x": value out of range',
    ),
    ("9999999999999999999x", 'E strconv.Atoi: parsing "9999999999999999999x": invalid syntax'),
]

TIMES = [
    ("2026-02-01T00:00:00Z", "OK 2026-02-01T00:00:00.000000Z"),
    ("2026-02-01T01:00:00+01:00", "OK 2026-02-01T00:00:00.000000Z"),
    ("2026-02-01T00:00:00.123456789Z", "OK 2026-02-01T00:00:00.123456Z"),
    ("2026-02-01T00:00:00,5Z", "OK 2026-02-01T00:00:00.500000Z"),
    ("2026-02-01T0:00:00Z", "OK 2026-02-01T00:00:00.000000Z"),
    ("2026-02-01T00:00:.5Z", "OK 2026-02-01T00:00:00.500000Z"),
    ("2026-02-01T00:00:00+99:99", "OK 2026-01-27T19:21:00.000000Z"),
    ("2026-02-01T00:00:00+-1:00", "OK 2026-02-01T01:00:00.000000Z"),
    ("12:30", 'E parsing time "12:30" as "2006-01-02T15:04:05Z07:00": cannot parse "0" as "2006"'),
    (
        "2026-02-01",
        'E parsing time "2026-02-01" as "2006-01-02T15:04:05Z07:00": cannot parse "" as "T"',
    ),
    (
        "2026-02-01t00:00:00Z",
        'E parsing time "2026-02-01t00:00:00Z"'
        ' as "2006-01-02T15:04:05Z07:00"'
        ': cannot parse "t00:00:00Z" as "T"',
    ),
    ("2026-13-01T00:00:00Z", 'E parsing time "2026-13-01T00:00:00Z": month out of range'),
    ("2026-02-30T00:00:00Z", 'E parsing time "2026-02-30T00:00:00Z": day out of range'),
    ("2024-02-29T00:00:00Z", "OK 2024-02-29T00:00:00.000000Z"),
    ("2026-02-01T24:00:00Z", 'E parsing time "2026-02-01T24:00:00Z": hour out of range'),
    ("2026-02-01T00:00:60Z", 'E parsing time "2026-02-01T00:00:60Z": second out of range'),
    ("2026-02-01T00:00:00Zjunk", 'E parsing time "2026-02-01T00:00:00Zjunk": extra text: "junk"'),
    (
        "٢٠٢٦-02-01T00:00:00Z",
        'E parsing time "\\xd9\\xa2\\xd9\\xa0\\xd9\\xa2\\xd9\\xa6-02-01T00:00:00Z"'
        ' as "2006-01-02T15:04:05Z07:00"'
        ': cannot parse "\\xd9\\xa2\\xd9\\xa0\\xd9\\xa2\\xd9\\xa6-02-01T00:00:00Z"'
        ' as "2006"',
    ),
    (
        "2026-02-01T00:00:00+ab:cd",
        'E parsing time "2026-02-01T00:00:00+ab:cd"'
        ' as "2006-01-02T15:04:05Z07:00"'
        ': cannot parse "" as "Z07:00"',
    ),
    (
        "2026-02-01T00:00:00.Z",
        'E parsing time "2026-02-01T00:00:00.Z"'
        ' as "2006-01-02T15:04:05Z07:00"'
        ': cannot parse ".Z" as "Z07:00"',
    ),
    (
        "2026-02-01T00:00:00",
        'E parsing time "2026-02-01T00:00:00"'
        ' as "2006-01-02T15:04:05Z07:00"'
        ': cannot parse "" as "Z07:00"',
    ),
]

URLS = [
    ("https://store.example.com", 'OK "https" true false false'),
    ("://example.com", 'E parse "://example.com": missing protocol scheme'),
    ("https://user@/", 'OK "https" false false false'),
    (
        "https://exa mple.com/",
        'E parse "https://exa mple.com/": invalid character " " in host name',
    ),
    (
        "https://example.com:80x/",
        'E parse "https://example.com:80x/": invalid port ":80x" after host',
    ),
    ("http://[::1]:8080/", 'OK "http" true false false'),
    ("http://[::1/", "E parse \"http://[::1/\": missing ']' in host"),
    ("https://a%20b/", 'E parse "https://a%20b/": invalid URL escape "%20"'),
    ("https://%C3%A9.com/", 'OK "https" true false false'),
    ("https://example.com/%zz", 'E parse "https://example.com/%zz": invalid URL escape "%zz"'),
    ("https://example.com/#%zz", 'E parse "https://example.com/#%zz": invalid URL escape "%zz"'),
    ("https://u%zz@h/", 'E parse "https://u%zz@h/": invalid URL escape "%zz"'),
    ("mailto:%zz", 'OK "mailto" false false false'),
    ("a:b/c", 'OK "a" false false false'),
    ("x:y", 'OK "x" false false false'),
    ("1http://x", 'E parse "1http://x": first path segment in URL cannot contain colon'),
    ("https://example.com/?", 'OK "https" true false false'),
    (
        "https://ex\x7fample.com/",
        'E parse "https://ex\\x7fample.com/": net/url: invalid control character in URL',
    ),
    ("https://[fe80::1%25en0]/", 'OK "https" true false false'),
    ("https://[fe80::1%25%41]/", 'OK "https" true false false'),
    ("https://a b@c/", 'E parse "https://a b@c/": net/url: invalid userinfo'),
]

ADDRESSES = [
    ("foo@example.com", "OK"),
    ("<alice!example.com>", "E mail: missing @ in addr-spec"),
    ("Alice <alice@example.com>", "OK"),
    ("no-mail", "E mail: missing '@' or angle-addr"),
    ("", "E mail: no address"),
    ("Full Name", "E mail: no angle-addr"),
    ("a@b, c@d", 'E mail: expected single address, got ", c@d"'),
    ("Group: a@b.c;", "OK"),
    ("Group: a@b.c, d@e.f;", "E mail: group with multiple addresses"),
    ("Group:;", "E mail: empty group"),
    ('"quoted"@example.com', "OK"),
    ('""@example.com', "E mail: no angle-addr"),
    ('<"unclosed@x>', "E mail: empty quoted string in addr-spec"),
    ("a..b@c", "E mail: no angle-addr"),
    (".a@c", "E mail: no angle-addr"),
    ("a@b (comment)", "OK"),
    ("a@b (unclosed", "E mail: misformatted parenthetical comment"),
    ("=?koi8-r?q?x?= <a@b.c>", 'E mail: missing word in phrase: charset not supported: "koi8-r"'),
    ("=?utf-8?q?J=C3=B6rg?= <j@x.y>", "OK"),
    ("a@b (=?koi8-r?q?x?=)", 'E charset not supported: "koi8-r"'),
    ("<a@b", "E mail: unclosed angle-addr"),
    ("Jörg <j@x.y>", "OK"),
    ('"a\x00"@b', "E mail: missing word in phrase: mail: bad character in quoted-string: '\\x00'"),
    ("a@", "E mail: no angle-addr"),
]


@pytest.mark.parametrize(("text", "expected"), ATOI)
def test_atoi_matches_strconv(text: str, expected: str) -> None:
    assert _outcome(lambda: _golang.atoi(text)) == expected


@pytest.mark.parametrize(("text", "expected"), TIMES)
def test_rfc3339_matches_time_parse(text: str, expected: str) -> None:
    assert _outcome(lambda: _utc(_golang.parse_rfc3339(text))) == expected


def _url_summary(text: str) -> str:
    u = _golang.parse_url(text)
    flags = " ".join(str(bool(v)).lower() for v in (u.host, u.raw_query, u.fragment))
    return f"{q(u.scheme)} {flags}"


@pytest.mark.parametrize(("text", "expected"), URLS)
def test_url_matches_url_parse(text: str, expected: str) -> None:
    # snapd reads only Scheme and whether Host, RawQuery and Fragment are empty
    assert _outcome(lambda: _url_summary(text)) == expected


@pytest.mark.parametrize(("text", "expected"), ADDRESSES)
def test_address_matches_mail_parse_address(text: str, expected: str) -> None:
    assert _outcome(lambda: _golang.parse_address(text)) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("plain", '"plain"'),
        ('with "quotes" and \\', '"with \\"quotes\\" and \\\\"'),
        ("tab\tnl\n", '"tab\\tnl\\n"'),
        ("\x00\x7f", '"\\x00\\x7f"'),
        ("é", '"é"'),
        ("\u200b", '"\\u200b"'),
        ("😀", '"😀"'),
        ("\xa0", '"\\u00a0"'),
        ("\ufeff", '"\\ufeff"'),
    ],
)
def test_q_matches_go_quoting(text: str, expected: str) -> None:
    assert q(text) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (5.0, "5"),
        (0.5, "0.5"),
        (1000000.0, "1e+06"),
        (123456.0, "123456"),
        (1e-05, "1e-05"),
        (1e21, "1e+21"),
        (-2.5, "-2.5"),
        (0.0, "0"),
    ],
)
def test_go_v_of_floats(value: float, expected: str) -> None:
    assert go_v(value) == expected


def test_go_v_of_header_values() -> None:
    # fmt's %v of []interface{} and map[string]interface{} (keys sorted)
    assert go_v(("1",)) == "[1]"
    assert go_v(("a", ("b", "c"))) == "[a [b c]]"
    assert go_v({"b": "2", "a": ("x",)}) == "map[a:[x] b:2]"
    assert go_v(None) == "<nil>"
    assert go_v(True) == "true"


def test_years_go_allows_but_datetime_cannot_hold_are_refused() -> None:
    with pytest.raises(_golang.GoError) as caught:
        _golang.parse_rfc3339("0000-01-01T00:00:00Z")
    assert "year outside 1-9999 is not supported" in str(caught.value)
