"""Device-session macaroons: bound to one device and store, expiring, never forgeable."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pymacaroons import Macaroon

from iotstore.devices.sessions import SessionNeedsRefresh, SessionVerifier

SECRET = b"s" * 32
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def issue(verifier: SessionVerifier, **overrides: object) -> str:
    values: dict[str, object] = {
        "brand_id": "brand", "model": "gw", "serial": "SN-1", "device_key_id": "k" * 64,
        "store_id": "store", "location": "http://store", "now": NOW,
    }  # fmt: skip
    values.update(overrides)
    return verifier.issue(**values)  # type: ignore[arg-type]


def test_round_trip() -> None:
    verifier = SessionVerifier(SECRET)
    identity = verifier.verify(issue(verifier), now=NOW + timedelta(hours=1))
    assert (identity.brand_id, identity.model, identity.serial) == ("brand", "gw", "SN-1")
    assert identity.store_id == "store"
    assert identity.key == "brand/gw/SN-1"


def test_expiry_is_enforced_also_from_the_cache() -> None:
    verifier = SessionVerifier(SECRET)
    session = issue(verifier, lifetime=timedelta(hours=1))
    verifier.verify(session, now=NOW)
    with pytest.raises(SessionNeedsRefresh, match="expired"):
        verifier.verify(session, now=NOW + timedelta(hours=2))


def test_another_deployment_secret_does_not_verify() -> None:
    session = issue(SessionVerifier(SECRET))
    with pytest.raises(SessionNeedsRefresh):
        SessionVerifier(b"t" * 32).verify(session, now=NOW)


def test_added_caveat_denies() -> None:
    session = issue(SessionVerifier(SECRET))
    narrowed = Macaroon.deserialize(session)
    narrowed.add_first_party_caveat("iotstore-store = other")
    with pytest.raises(SessionNeedsRefresh):
        SessionVerifier(SECRET).verify(narrowed.serialize(), now=NOW)


def test_no_quote_in_sessions() -> None:
    # snapd replays it inside Macaroon root="..."
    assert '"' not in issue(SessionVerifier(SECRET))


@given(st.text(max_size=300))
def test_garbage_is_always_a_refresh_never_another_error(text: str) -> None:
    with pytest.raises(SessionNeedsRefresh):
        SessionVerifier(SECRET).verify(text, now=NOW)


@given(st.integers(min_value=0, max_value=2000), st.sampled_from("AZaz09-_="))
def test_one_changed_character_is_refused(position: int, char: str) -> None:
    session = issue(SessionVerifier(SECRET))
    i = position % len(session)
    changed = session[:i] + char + session[i + 1 :]
    if changed == session:
        return
    try:
        identity = SessionVerifier(SECRET).verify(changed, now=NOW)
    except SessionNeedsRefresh:
        return
    # base64 padding bits can change without changing the bytes: then it must be the same
    assert identity.serial == "SN-1" and identity.store_id == "store"
