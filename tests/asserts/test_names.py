"""Name checks run in linear time and accept exactly what snapd's Go regexps accept.

snapd's ``(?:[a-z0-9]+-?)*[a-z](?:-?[a-z0-9])*`` is linear in Go's RE2 but exponential
in Python's backtracking ``re``; decoding checks names before any signature, so the
library checks them with :class:`NameRule` instead. The property tests compare each rule
with snapd's own regexp (run by ``re`` on short strings, where backtracking is cheap); the
adversarial tests feed 10,000-character near-misses, which an exponential matcher would
never finish, so they need no clock: finishing is the assertion.
"""

from __future__ import annotations

import importlib
import pkgutil
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from iotstore import asserts
from iotstore.asserts import _checks, _headers, _names, model, snap, validation_set
from iotstore.asserts.testing import fixed_key

from .conftest import NOW

# Every rule and the snapd regexp it stands for, anchors left out (file: Go name).
RULES: dict[str, tuple[_names.NameRule, str]] = {
    "header name": (_headers.NAME_RE, "[a-z](?:-?[a-z0-9])*"),  # headers.go headerNameValidity
    "key name": (_checks.KEY_NAME_RE, "(?:[a-z0-9]+-?)*[a-z](?:-?[a-z0-9])*"),  # account_key.go
    "snap name": (_checks.SNAP_NAME_RE, "(?:[a-z0-9]+-?)*[a-z](?:-?[a-z0-9])*"),  # naming
    "model": (_checks.MODEL_NAME_RE, "[a-zA-Z0-9](?:-?[a-zA-Z0-9])*"),  # model.go validModel
    "provenance": (_checks.PROVENANCE_RE, "[a-zA-Z0-9](?:-?[a-zA-Z0-9])*"),  # naming
    "app": (snap._APP_RE, "[a-zA-Z0-9](?:-?[a-zA-Z0-9])*"),  # naming.ValidApp
    "validation-set name": (validation_set._NAME_RE, "[a-z0-9](?:-?[a-z0-9])*"),
}
# Characters that matter to these rules, plus a few that must always be refused.
NEAR_NAMES = st.text(st.sampled_from("az09AZ-_.!é \n"), max_size=14)


@pytest.mark.parametrize("label", sorted(RULES))
def test_rule_is_snapds_regexp(label: str) -> None:
    rule, go_pattern = RULES[label]
    assert rule.pattern == go_pattern


@pytest.mark.parametrize("label", sorted(RULES))
@settings(max_examples=400, deadline=None)
@given(text=NEAR_NAMES)
def test_rule_accepts_exactly_what_the_regexp_accepts(label: str, text: str) -> None:
    rule, go_pattern = RULES[label]
    assert rule.fullmatch(text) == (re.fullmatch(go_pattern, text) is not None)


@settings(max_examples=400, deadline=None)
@given(text=st.text(st.sampled_from("az09-_A"), max_size=44))
def test_snap_names_follow_naming_validate_snap(text: str) -> None:
    # naming.ValidateSnap: 2-40 bytes, almostValidName, no leading/trailing/double hyphen
    expected = (
        2 <= len(text) <= 40
        and re.fullmatch("[a-z0-9-]*[a-z][a-z0-9-]*", text) is not None
        and text[0] != "-"
        and text[-1] != "-"
        and "--" not in text
    )
    assert model.is_valid_snap_name(text) == expected


# -- adversarial input: 10,000 characters, no clock -------------------------------------------

N = 10_000
NEAR_MISSES = [
    "a" * N + "!",  # the classic: a long valid run, then one bad character
    "a" * N + "-",
    "a-" * (N // 2) + "-",
    "1" * N,  # no letter: refused by the key and snap name rules
    "aA0-" * (N // 4) + "_",
    "-" + "a" * N,
]


@pytest.mark.parametrize("label", sorted(RULES))
def test_rules_refuse_long_near_misses(label: str) -> None:
    rule, _ = RULES[label]
    for text in NEAR_MISSES:
        if label in ("model", "provenance", "app", "validation-set name") and text == "1" * N:
            assert rule.fullmatch(text)  # digits alone are fine here
            continue
        assert not rule.fullmatch(text)


def test_public_key_name_pattern_refuses_long_near_misses() -> None:
    # asserts.KEY_NAME_RE is public API (the admin API checks key names with it)
    assert not asserts.KEY_NAME_RE.fullmatch("a" * N + "!")
    assert asserts.KEY_NAME_RE.fullmatch("a" * N)


ROOT = fixed_key("root")
BRAND = fixed_key("brand")
REQUEST = asserts.sign(
    "account-key-request",
    {
        "account-id": "acme",
        "name": "default",
        "public-key-sha3-384": BRAND.public_key.id,
        "since": "2026-02-01T00:00:00Z",
    },
    BRAND,
    BRAND.public_key.encoded,
    signed_at=NOW,
)
DECLARATION = asserts.sign(
    "snap-declaration",
    {
        "authority-id": "test-root",
        "series": "16",
        "snap-id": "snapidsnapidsnapidsnapidsnapid01",
        "snap-name": "first",
        "publisher-id": "test-brand",
        "aliases": [{"name": "cmd", "target": "cmd-1"}],
        "timestamp": "2026-02-01T00:00:00Z",
    },
    ROOT,
    signed_at=NOW,
)


@pytest.mark.parametrize("bad", ["a" * N + "!", "a-" * (N // 2) + "-"])
def test_decoding_long_near_miss_names_is_refused(bad: str) -> None:
    # These run before any signature check: anyone can send them.
    data = REQUEST.to_bytes().replace(b"name: default\n", f"name: {bad}\n".encode())
    with pytest.raises(asserts.DecodeError) as caught:
        asserts.decode(data)
    assert str(caught.value).startswith('assertion account-key-request: "name" header contains')
    data = DECLARATION.to_bytes().replace(b"target: cmd-1\n", f"target: {bad}\n".encode())
    with pytest.raises(asserts.DecodeError) as caught:
        asserts.decode(data)
    assert '"target" for alias "cmd" contains invalid characters' in str(caught.value)
    data = REQUEST.to_bytes().replace(b"name: default\n", f"{bad}: x\n".encode())
    with pytest.raises(asserts.DecodeError) as caught:
        asserts.decode(data)
    assert str(caught.value).startswith("parsing assertion headers: invalid header name")


def _patterns() -> list[tuple[str, re.Pattern[str] | _names.NameRule]]:
    """Every module-level pattern of every module of the package."""
    found: list[tuple[str, re.Pattern[str] | _names.NameRule]] = []
    for info in pkgutil.walk_packages(asserts.__path__, asserts.__name__ + "."):
        module = importlib.import_module(info.name)
        for name, value in vars(module).items():
            if isinstance(value, re.Pattern | _names.NameRule):
                found.append((f"{info.name}.{name}", value))
    return found


PATTERNS = _patterns()


@pytest.mark.parametrize(("name", "pattern"), PATTERNS, ids=[name for name, _ in PATTERNS])
def test_every_pattern_in_the_package_finishes_on_long_near_misses(
    name: str, pattern: re.Pattern[str] | _names.NameRule
) -> None:
    # Whatever each pattern accepts, none may backtrack exponentially.
    for text in [*NEAR_MISSES, "2026-02-01T00:00:00" + "0" * N, "$" + "a" * N + "$"]:
        pattern.fullmatch(text)
