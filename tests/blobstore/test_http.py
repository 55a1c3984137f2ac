"""The Range header and Content-Disposition rules, as tables and Hypothesis properties."""

from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from iotstore.blobstore import ByteRange, RangeNotSatisfiable, content_disposition, parse_range

sizes = st.integers(min_value=0, max_value=10**12)
offsets = st.integers(min_value=0, max_value=10**13)


def model(first: int | None, last: int | None, size: int) -> ByteRange | str | None:
    """RFC 9110 section 14.1.2 for one range-spec, written the plain way: the oracle."""
    if first is None and last is None:
        return None
    if first is None:
        assert last is not None
        if last == 0 or size == 0:
            return "416"
        n = min(last, size)
        return ByteRange(size - n, n, size)
    if last is not None and last < first:
        return None
    if first >= size:
        return "416"
    stop = size if last is None else min(last + 1, size)
    return ByteRange(first, stop - first, size)


def outcome(header: str, size: int) -> ByteRange | str | None:
    try:
        return parse_range(header, size)
    except RangeNotSatisfiable as e:
        assert e.size == size
        return "416"


@pytest.mark.parametrize(
    ("header", "size", "expected"),
    [
        (None, 1000, None),
        ("bytes=0-99", 1000, ByteRange(0, 100, 1000)),
        ("bytes=100-", 1000, ByteRange(100, 900, 1000)),
        ("bytes=-100", 1000, ByteRange(900, 100, 1000)),
        ("bytes=0-0", 1, ByteRange(0, 1, 1)),
        ("bytes=0-", 0, "416"),
        ("bytes=-1", 0, "416"),
        ("bytes=-0", 1000, "416"),
        ("bytes=1000-", 1000, "416"),
        ("bytes=1000-2000", 1000, "416"),
        ("bytes=999-5000", 1000, ByteRange(999, 1, 1000)),
        ("bytes=-5000", 1000, ByteRange(0, 1000, 1000)),
        ("BYTES=1-2", 1000, ByteRange(1, 2, 1000)),
        (" bytes = 1-2 ", 1000, ByteRange(1, 2, 1000)),
        # ignored: served whole with 200, as RFC 9110 section 14.2 allows
        ("bytes=5-2", 1000, None),
        ("bytes=0-1,5-6", 1000, None),
        ("bytes=-", 1000, None),
        ("bytes=", 1000, None),
        ("items=0-1", 1000, None),
        ("bytes 0-1", 1000, None),
        ("bytes=+1-2", 1000, None),
        ("bytes=1_0-20", 1000, None),
        ("bytes=\u0661-2", 1000, None),  # an Arabic-Indic digit: int() would take it
        ("bytes=0x1-2", 1000, None),
        ("", 1000, None),
    ],
)
def test_table(header: str | None, size: int, expected: ByteRange | str | None) -> None:
    if expected == "416":
        with pytest.raises(RangeNotSatisfiable):
            parse_range(header, size)
    else:
        assert parse_range(header, size) == expected


@given(first=offsets, last=offsets, size=sizes)
@example(first=0, last=0, size=0)
@example(first=5, last=4, size=10)
def test_closed_ranges_match_the_model(first: int, last: int, size: int) -> None:
    assert outcome(f"bytes={first}-{last}", size) == model(first, last, size)


@given(first=offsets, size=sizes)
def test_open_ended_ranges_match_the_model(first: int, size: int) -> None:
    assert outcome(f"bytes={first}-", size) == model(first, None, size)


@given(suffix=offsets, size=sizes)
def test_suffix_ranges_match_the_model(suffix: int, size: int) -> None:
    assert outcome(f"bytes=-{suffix}", size) == model(None, suffix, size)


@given(header=st.text(max_size=40), size=sizes)
@example(header="bytes=0-", size=5)
def test_any_text_gives_a_valid_range_none_or_416(header: str, size: int) -> None:
    result = outcome(header, size)
    if isinstance(result, ByteRange):
        assert result.start >= 0
        assert result.length >= 1
        assert result.start + result.length <= size
        assert result.end == result.start + result.length - 1
        assert result.content_range == f"bytes {result.start}-{result.end}/{size}"


@given(header=st.from_regex(r"\A *bytes *= *[0-9]{0,4}-[0-9]{0,4} *\Z"), size=sizes)
def test_well_formed_headers_never_raise_anything_else(header: str, size: int) -> None:
    outcome(header, size)


def test_negative_size_is_a_caller_bug() -> None:
    with pytest.raises(ValueError, match="size"):
        parse_range("bytes=0-1", -1)


@pytest.mark.parametrize(
    ("filename", "expected"),
    [
        ("demo_12.snap", 'attachment; filename="demo_12.snap"'),
        ('a"b\\c/d.snap', 'attachment; filename="abcd.snap"'),
        ("x\r\nSet-Cookie: y.snap", 'attachment; filename="xSet-Cookie: y.snap"'),
        ("", 'attachment; filename="download"'),
        (
            "héllo_1.snap",
            "attachment; filename=\"h_llo_1.snap\"; filename*=UTF-8''h%C3%A9llo_1.snap",
        ),
    ],
)
def test_content_disposition(filename: str, expected: str) -> None:
    assert content_disposition(filename) == expected


@given(st.text(max_size=60))
def test_content_disposition_is_always_one_safe_header_line(filename: str) -> None:
    value = content_disposition(filename)
    assert value.isascii()
    assert all(c.isprintable() for c in value)
    assert value.startswith('attachment; filename="')
    quoted = value.split('"')[1]
    assert value.count('"') == 2
    assert "\\" not in quoted
