"""The header grammar (assertions.md §1.2, snapd's ``headers.go``): parse, write, refuse.

Golden half: the worked nesting example, snapd's own ``headers_test.go`` cases and
one row per parser error with snapd's exact text. Property half: any header dict
the writer accepts is read back unchanged, and its text never holds a blank line.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import TypeAlias

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from iotstore import asserts
from iotstore.asserts import _headers

from .conftest import decode_error

Plain: TypeAlias = "str | list[Plain] | dict[str, Plain]"


def write(headers: Mapping[str, object]) -> str:
    """Encode a header block the way the signer does (entries in the given order)."""
    out: list[str] = []
    for name, value in headers.items():
        _headers.write_entry(out, f"{name}:", _headers.freeze(value, name), 0)
    text = "".join(out)
    assert text.startswith("\n")
    return text[1:]


def plain(value: object) -> Plain:
    """A decoded value with tuples as lists and mappings as dicts, for comparisons."""
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    assert isinstance(value, tuple), f"decoded lists must be tuples, got {type(value)}"
    return [plain(v) for v in value]


def assert_frozen(value: object) -> None:
    """Decoded lists are tuples and maps are read-only, all the way down."""
    if isinstance(value, str):
        return
    if isinstance(value, tuple):
        for item in value:
            assert_frozen(item)
        return
    assert isinstance(value, MappingProxyType), type(value)
    for item in value.values():
        assert_frozen(item)


# -- the worked example of §1.2 --------------------------------------------------------

NESTING_EXAMPLE = """\
lst:
  - a
  -
    - b
    - c
  -
    k: v
    m:
        x
        y
multi:
    line1
    
    line3"""  # noqa: W293 - the empty line of the value is exactly 4 spaces


def test_nesting_example_parses() -> None:
    parsed = _headers.parse(NESTING_EXAMPLE)
    assert plain(parsed) == {
        "lst": ["a", ["b", "c"], {"k": "v", "m": "x\ny"}],
        "multi": "line1\n\nline3",
    }
    assert "    \n" in NESTING_EXAMPLE  # the blank value line really is 4 spaces
    assert_frozen(MappingProxyType(parsed))


def test_nesting_example_reencodes_exactly() -> None:
    value = {"lst": ["a", ["b", "c"], {"m": "x\ny", "k": "v"}], "multi": "line1\n\nline3"}
    assert write(value) == NESTING_EXAMPLE
    assert write(_headers.parse(NESTING_EXAMPLE)) == NESTING_EXAMPLE


# -- parsing, after snapd's headers_test.go ----------------------------------------------

PARSE_CASES: list[tuple[str, str, dict[str, Plain]]] = [
    ("simple", "foo: 1\nbar: baz", {"foo": "1", "bar": "baz"}),
    (
        "multiline trailing empty line",
        "foo:\n    abc\n    \nbar: baz",
        {"foo": "abc\n", "bar": "baz"},
    ),
    ("multiline single line", "foo: 1\nbar:\n    baz", {"foo": "1", "bar": "baz"}),
    (
        "multiline trailing newline at end",
        "foo: 1\nbar:\n    baz\n    ",
        {"foo": "1", "bar": "baz\n"},
    ),
    (
        "multiline inner empty line",
        "foo: 1\nbar:\n    baz\n    \n    baz2",
        {"foo": "1", "bar": "baz\n\nbaz2"},
    ),
    (
        "multiline keeps extra indentation",
        "foo:\n     x\n      y",
        {"foo": " x\n  y"},
    ),
    ("simple list", "foo:\n  - x\n  - y\n  - z\nbar: baz", {"foo": ["x", "y", "z"], "bar": "baz"}),
    (
        "list with nested multiline",
        "foo:\n  - x\n  -\n      y1\n      y2\n      \n  - z\nbar: baz",
        {"foo": ["x", "y1\ny2\n", "z"], "bar": "baz"},
    ),
    (
        "list of list then multiline",
        "bar: baz\nfoo:\n  -\n    - u1\n    - u2\n  -\n      y1\n      y2\n      ",
        {"foo": [["u1", "u2"], "y1\ny2\n"], "bar": "baz"},
    ),
    (
        "simple map, empty value keeps nothing after the space",
        "foo:\n  x: X\n  yy: YY\n  z5: \nbar: baz",
        {"foo": {"x": "X", "yy": "YY", "z5": ""}, "bar": "baz"},
    ),
    (
        "map with nested multiline and list",
        "foo:\n  x: X\n  yy:\n      YY1\n      YY2\n  u:\n    - u1\n    - u2\nbar: baz",
        {"foo": {"x": "X", "yy": "YY1\nYY2", "u": ["u1", "u2"]}, "bar": "baz"},
    ),
    ("map in map, empty leaf", "one:\n  two:\n    three: ", {"one": {"two": {"three": ""}}}),
    ("map with multiline value", "one:\n  two:\n      three", {"one": {"two": "three"}}),
    (
        "map within map",
        "map-within-map:\n  lev1:\n    lev2: x",
        {"map-within-map": {"lev1": {"lev2": "x"}}},
    ),
    (
        "list of maps",
        "list-of-maps:\n  -\n    entry: foo\n    bar: baz\n  -\n    entry: bar",
        {"list-of-maps": [{"entry": "foo", "bar": "baz"}, {"entry": "bar"}]},
    ),
    ("empty single-line value", "foo: ", {"foo": ""}),
    ("leading spaces are kept", "foo:  x", {"foo": " x"}),
    ("colons and dashes inside values", "foo: a: b - c", {"foo": "a: b - c"}),
    ("value starting with a dash", "foo: -x", {"foo": "-x"}),
    ("empty list element", "foo:\n  - \n  - x", {"foo": ["", "x"]}),
    ("list element with leading space", "foo:\n  -  x", {"foo": [" x"]}),
    (
        "deep nesting",
        "a:\n  -\n    -\n      -\n        k:\n          - z",
        {"a": [[[{"k": ["z"]}]]]},
    ),
]


@pytest.mark.parametrize(
    ("text", "expected"), [c[1:] for c in PARSE_CASES], ids=[c[0] for c in PARSE_CASES]
)
def test_parse(text: str, expected: dict[str, Plain]) -> None:
    parsed = _headers.parse(text)
    assert plain(parsed) == expected
    assert_frozen(MappingProxyType(parsed))


def test_parsed_maps_are_read_only() -> None:
    parsed = _headers.parse("foo:\n  x: X")
    value = parsed["foo"]
    assert isinstance(value, Mapping)
    with pytest.raises(TypeError):
        value["x"] = "Y"  # type: ignore[index]


# -- writing ------------------------------------------------------------------------

WRITE_CASES: list[tuple[str, dict[str, object], str]] = [
    ("empty string keeps the space", {"foo": ""}, "foo: "),
    ("leading spaces", {"foo": "  x"}, "foo:   x"),
    ("multi-line", {"foo": "a\nb"}, "foo:\n    a\n    b"),
    ("multi-line trailing newline", {"foo": "a\n"}, "foo:\n    a\n    "),
    ("multi-line blank lines", {"foo": "a\n\nb"}, "foo:\n    a\n    \n    b"),
    ("multi-line only newline", {"foo": "\n"}, "foo:\n    \n    "),
    ("list of strings", {"foo": ["x", "", "y z"]}, "foo:\n  - x\n  - \n  - y z"),
    ("list of lists", {"foo": [["a", "b"], ["c"]]}, "foo:\n  -\n    - a\n    - b\n  -\n    - c"),
    ("multi-line in a list", {"foo": ["a\nb\n"]}, "foo:\n  -\n      a\n      b\n      "),
    ("map in a list", {"foo": [{"k": "v"}]}, "foo:\n  -\n    k: v"),
    (
        "map keys sorted bytewise",
        {"m": {"b": "2", "a-b": "3", "a": "1", "a0": "4"}},
        "m:\n  a: 1\n  a-b: 3\n  a0: 4\n  b: 2",
    ),
    ("multi-line in a map", {"m": {"k": "x\ny"}}, "m:\n  k:\n      x\n      y"),
    ("list in a map", {"m": {"k": ["x"]}}, "m:\n  k:\n    - x"),
    ("empty list omitted", {"a": "1", "b": [], "c": "2"}, "a: 1\nc: 2"),
    ("empty map omitted", {"a": "1", "b": {}}, "a: 1"),
    ("empty list inside a list omitted", {"a": ["x", [], "y"]}, "a:\n  - x\n  - y"),
    ("empty map inside a map omitted", {"a": {"k": {}, "l": "v"}}, "a:\n  l: v"),
]


@pytest.mark.parametrize(
    ("value", "expected"), [c[1:] for c in WRITE_CASES], ids=[c[0] for c in WRITE_CASES]
)
def test_write(value: dict[str, object], expected: str) -> None:
    assert write(value) == expected


def test_write_then_parse_drops_empty_containers_only() -> None:
    text = write({"a": ["x", [], {"k": "v", "e": []}]})
    assert plain(_headers.parse(text)) == {"a": ["x", {"k": "v"}]}


# -- parser errors, exact texts (snapd's TestParseHeadersErrors / TestDecodeHeaderParsingErrors)

PARSE_ERRORS: list[tuple[str, str, str, str | None]] = [
    ("missing colon", "foo: a\nbar", "header entry missing ':' separator: \"bar\"", None),
    ("missing colon on first line", "foo", "header entry missing ':' separator: \"foo\"", None),
    ("upper-case name", "TYPE: foo", 'invalid header name: "TYPE"', None),
    ("empty name", ": foo", 'invalid header name: ""', None),
    ("name starting with a digit", "1a: foo", 'invalid header name: "1a"', None),
    ("name ending with a hyphen", "a-: foo", 'invalid header name: "a-"', None),
    ("name with a double hyphen", "a--b: foo", 'invalid header name: "a--b"', None),
    ("name with underscore", "a_b: foo", 'invalid header name: "a_b"', None),
    ("indented name", " a: foo", 'invalid header name: " a"', None),
    ("repeated header", "foo: a:\nbar: b\nfoo: x", 'repeated header: "foo"', "foo"),
    (
        "repeated header after a list",
        "foo:\n  - x\nfoo: y",
        'repeated header: "foo"',
        "foo",
    ),
    (
        "no space after colon",
        "foo: a\nbar:>",
        'header entry should have a space or newline (for multiline) before value: "bar:>"',
        None,
    ),
    (
        "no space after colon in a list",
        "foo:\n  -x",
        'header entry should have a space or newline (for multiline) before value: "  -x"',
        None,
    ),
    (
        "no space after colon in a map",
        "foo:\n  k:v",
        'header entry should have a space or newline (for multiline) before value: "  k:v"',
        None,
    ),
    (
        "multiline introduction at EOF",
        "foo: a\nbar:",
        'expected 4 chars nesting prefix after multiline introduction "bar:": EOF',
        None,
    ),
    (
        "multiline introduction at EOF after a list",
        "foo:\n  - x\n  - y\n  - z\nbar:",
        'expected 4 chars nesting prefix after multiline introduction "bar:": EOF',
        None,
    ),
    (
        "nested multiline introduction at EOF",
        "foo:\n  -",
        'expected 6 chars nesting prefix after multiline introduction "  -": EOF',
        None,
    ),
    (
        "map entry missing colon",
        "foo:\n  x X\nbar: baz",
        "map entry missing ':' separator: \"x X\"",
        None,
    ),
    ("invalid map key", "foo:\n  0x: X\nbar: baz", 'invalid map entry key: "0x"', None),
    ("upper-case map key", "foo:\n  Key: X", 'invalid map entry key: "Key"', None),
    ("repeated map entry", "foo:\n  a: a\n  a: b", 'repeated map entry: "a"', None),
]

PARSE_ERRORS_GO_QUOTED = [
    pytest.param(
        "foo: a\nbar:\nbaz: x",
        'expected 4 chars nesting prefix after multiline introduction "bar:": "baz: x"',
        id="multiline introduction followed by a header",
    ),
    pytest.param(
        "foo:\n - x\n  - y\n  - z\nbar: baz",
        'expected 4 chars nesting prefix after multiline introduction "foo:": " - x"',
        id="list indented by one space",
    ),
]


@pytest.mark.parametrize(
    ("text", "message", "header"), [e[1:] for e in PARSE_ERRORS], ids=[e[0] for e in PARSE_ERRORS]
)
def test_parse_errors(text: str, message: str, header: str | None) -> None:
    with pytest.raises(asserts.DecodeError) as caught:
        _headers.parse(text)
    assert str(caught.value) == message
    assert caught.value.header == header


@pytest.mark.parametrize(
    ("text", "message", "header"), [e[1:] for e in PARSE_ERRORS], ids=[e[0] for e in PARSE_ERRORS]
)
def test_decode_reports_parse_errors_with_prefix(
    text: str, message: str, header: str | None
) -> None:
    error = decode_error(text.encode() + b"\n\nAXNpZw==")
    assert str(error) == "parsing assertion headers: " + message
    assert error.header == header


@pytest.mark.parametrize(("text", "message"), PARSE_ERRORS_GO_QUOTED)
def test_parse_errors_quote_lines_like_go(text: str, message: str) -> None:
    with pytest.raises(asserts.DecodeError) as caught:
        _headers.parse(text)
    assert str(caught.value) == message


def test_non_utf8_header() -> None:
    # snapd's TestDecodeHeaderParsingErrors: {255, '\n', '\n'}
    assert str(decode_error(b"\xff\n\n")) == "parsing assertion headers: header is not utf8"
    assert str(decode_error(b"type: model\nx: \xc3(\n\nAXNpZw==")) == (
        "parsing assertion headers: header is not utf8"
    )


def test_stream_decoder_reports_non_utf8_header() -> None:
    with pytest.raises(asserts.DecodeError) as caught:
        list(asserts.decode_stream(b"a: \xff\n\nAXNpZw==\n"))
    assert str(caught.value) == "parsing assertion headers: header is not utf8"


# -- freezing input values (what sign() accepts) ------------------------------------------


def test_freeze_turns_lists_into_tuples_and_dicts_into_read_only_maps() -> None:
    frozen = _headers.freeze(["a", {"k": ["b"]}], "x")
    assert isinstance(frozen, tuple)
    assert_frozen(frozen)
    assert plain(frozen) == ["a", {"k": ["b"]}]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"Bad": "v"}, 'header "x": invalid map entry key: "Bad"'),
        (["a", {"k": {"0k": "v"}}], 'header "x": invalid map entry key: "0k"'),
        (
            b"bytes",
            'header "x": header values must be strings or nested lists or maps with strings '
            "as the only scalars",
        ),
        (
            ["a", None],
            'header "x": header values must be strings or nested lists or maps with strings '
            "as the only scalars",
        ),
    ],
    ids=["upper-case key", "nested bad key", "bytes", "None in a list"],
)
def test_freeze_refuses(value: object, message: str) -> None:
    with pytest.raises(asserts.DecodeError) as caught:
        _headers.freeze(value, "x")
    assert str(caught.value) == message
    assert caught.value.header == "x"


def test_freeze_names_the_offending_scalar_like_snapd() -> None:
    with pytest.raises(asserts.DecodeError) as caught:
        _headers.freeze(5, "revision")
    assert str(caught.value) == (
        'header "revision": header values must be strings or nested lists or maps with strings '
        "as the only scalars: 5"
    )


# -- properties --------------------------------------------------------------------------

NAMES = st.from_regex(r"[a-z](?:-?[a-z0-9]){0,6}", fullmatch=True)
# Any text except lone surrogates (not encodable as UTF-8). Newlines, spaces, colons and
# dashes are drawn often because they are what the grammar cares about.
STRINGS = st.one_of(
    st.text(st.characters(codec="utf-8"), max_size=20),
    st.text(st.sampled_from([" ", "\n", "-", ":", "a", "\t", "é"]), max_size=12),
)


def values(depth: int) -> st.SearchStrategy[object]:
    """Strings, and non-empty lists/maps nested at most ``depth`` levels."""
    if depth == 0:
        return STRINGS
    inner = values(depth - 1)
    return st.one_of(
        STRINGS,
        st.lists(inner, min_size=1, max_size=3),
        st.dictionaries(NAMES, inner, min_size=1, max_size=3),
    )


HEADER_DICTS = st.dictionaries(NAMES, values(3), min_size=1, max_size=4)


@settings(max_examples=200, deadline=None)
@given(HEADER_DICTS)
def test_write_then_parse_round_trips(headers: dict[str, object]) -> None:
    text = write(headers)
    # the block never holds a blank line and never ends with a newline, so it can sit
    # in front of "\n\n" + body/signature without moving the split points
    assert "\n\n" not in text
    assert not text.endswith("\n")
    parsed = _headers.parse(text)
    assert plain(parsed) == plain({k: _headers.freeze(v, k) for k, v in headers.items()})
    assert list(parsed) == list(headers)
    assert_frozen(MappingProxyType(parsed))
    # and writing the parsed value gives the same text: the encoding is canonical
    assert write(parsed) == text


@settings(max_examples=200, deadline=None)
@given(st.text(st.sampled_from(["a", ":", " ", "\n", "-", "b", "\xff", "A"]), max_size=40))
def test_parse_never_raises_anything_but_decode_error(text: str) -> None:
    try:
        parsed = _headers.parse(text)
    except asserts.DecodeError:
        return
    assert_frozen(MappingProxyType(parsed))
