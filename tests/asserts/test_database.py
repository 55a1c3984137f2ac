"""The trust database (assertions.md §3, snapd's ``database.go`` and its tests).

Every test builds its own in-memory database on a fixed clock, trusting the root of
``mint_chain()``; assertions are signed with the library's fixed test keys.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

import pytest

from iotstore import asserts
from iotstore.asserts.testing import Chain, fixed_key, mint_chain

from .conftest import VECTOR_NOW, replace_once, vector_db, vector_path

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
CHAIN: Chain = mint_chain(now=NOW)
SINCE = NOW - timedelta(hours=1)  # what mint_chain gives the root and brand keys
ROOT = fixed_key("root")
BRAND = fixed_key("brand")
VAULT = fixed_key("vault")
DEVICE = fixed_key("device")
SNAP_ID = "snapidsnapidsnapidsnapidsnapid01"


def t(when: datetime) -> str:
    return asserts.format_time(when)


def database(clock: datetime = NOW, *, members: bool = True) -> asserts.Database:
    db = asserts.Database(CHAIN.trusted, clock=lambda: clock)
    if members:
        for a in CHAIN.members:
            db.add(a)
    return db


def sign(
    type_name: str,
    headers: Mapping[str, object],
    key: asserts.PrivateKey,
    body: str = "",
) -> asserts.Assertion:
    return asserts.sign(type_name, headers, key, body, signed_at=NOW)


def account(
    account_id: str,
    *,
    authority: str = "test-root",
    key: asserts.PrivateKey = ROOT,
    revision: int = 0,
) -> asserts.Assertion:
    headers: dict[str, object] = {
        "authority-id": authority,
        "account-id": account_id,
        "display-name": account_id.title(),
        "validation": "unproven",
        "timestamp": t(SINCE),
    }
    if revision:
        headers["revision"] = str(revision)
    return sign("account", headers, key)


def account_key(
    account_id: str,
    public: asserts.PublicKey,
    *,
    name: str = "default",
    since: datetime = SINCE,
    until: datetime | None = None,
    authority: str = "test-root",
    key: asserts.PrivateKey = ROOT,
) -> asserts.Assertion:
    headers: dict[str, object] = {
        "authority-id": authority,
        "account-id": account_id,
        "name": name,
        "public-key-sha3-384": public.id,
        "since": t(since),
    }
    if until is not None:
        headers["until"] = t(until)
    return sign("account-key", headers, key, public.encoded)


def model(
    *,
    key: asserts.PrivateKey = BRAND,
    brand: str = "test-brand",
    name: str = "gw",
    extra: Mapping[str, object] | None = None,
    **simple: str,
) -> asserts.Assertion:
    headers: dict[str, object] = {
        "authority-id": brand,
        "series": "16",
        "brand-id": brand,
        "model": name,
        "architecture": "amd64",
        "gadget": "pc",
        "kernel": "pc-kernel",
        "timestamp": t(NOW),
    }
    headers.update(simple)
    headers.update(extra or {})
    return sign("model", headers, key)


def serial(
    *, authority: str, key: asserts.PrivateKey, model_name: str = "test-model", number: str = "S-1"
) -> asserts.Assertion:
    return sign(
        "serial",
        {
            "authority-id": authority,
            "brand-id": "test-brand",
            "model": model_name,
            "serial": number,
            "device-key": DEVICE.public_key.encoded,
            "device-key-sha3-384": DEVICE.public_key.id,
            "timestamp": t(NOW),
        },
        key,
    )


def vault_db() -> asserts.Database:
    """The chain plus a second account, test-vault, with its own key."""
    db = database()
    db.add(account("test-vault"))
    db.add(account_key("test-vault", VAULT.public_key))
    return db


class Impostor:
    """Claims one public key but signs with another private key."""

    def __init__(self, claimed: asserts.PublicKey, signer: asserts.RSAPrivateKey) -> None:
        self._claimed = claimed
        self._signer = signer

    @property
    def public_key(self) -> asserts.PublicKey:
        return self._claimed

    def sign_digest(self, digest: bytes) -> bytes:
        return self._signer.sign_digest(digest)


def check_error(db: asserts.Database, a: asserts.Assertion) -> asserts.CheckError:
    with pytest.raises(asserts.CheckError) as caught:
        db.check(a)
    return caught.value


def add_error(db: asserts.Database, a: asserts.Assertion) -> asserts.CheckError:
    with pytest.raises(asserts.CheckError) as caught:
        db.add(a)
    return caught.value


# -- the trusted set ---------------------------------------------------------------------


def test_trusted_set_lookups() -> None:
    db = database(members=False)
    assert db.trusted == [CHAIN.root_account, CHAIN.root_account_key]
    reversed_db = asserts.Database([CHAIN.root_account_key, CHAIN.root_account])
    assert reversed_db.trusted == [CHAIN.root_account, CHAIN.root_account_key]
    assert db.is_trusted_account("test-root")
    assert not db.is_trusted_account("test-brand")
    assert not db.is_trusted_account("")
    assert db.find("account", ("test-root",)) is CHAIN.root_account
    assert db.find("account-key", (ROOT.public_key.id,)) is CHAIN.root_account_key
    assert db.find_many("account", {}) == [CHAIN.root_account]
    assert db.find_many("account-key", {"account-id": "test-root"}) == [CHAIN.root_account_key]
    assert db.find_account_key("test-root", ROOT.public_key.id) is CHAIN.root_account_key


def test_added_accounts_are_not_trusted() -> None:
    db = database()
    assert db.find("account", ("test-brand",)) == CHAIN.brand_account
    assert not db.is_trusted_account("test-brand")


def test_find_missing() -> None:
    db = database()
    with pytest.raises(asserts.NotFoundError) as caught:
        db.find("model", ("16", "test-brand", "nope"))
    assert str(caught.value) == "model assertion not found: 16/test-brand/nope"
    assert caught.value.type_name == "model"
    assert caught.value.primary_key == ("16", "test-brand", "nope")


def test_trusted_set_takes_only_accounts_and_keys() -> None:
    with pytest.raises(asserts.CheckError) as caught:
        asserts.Database([CHAIN.root_account, CHAIN.model])
    assert str(caught.value) == (
        "trusted set may hold only accounts and account-keys: model (16/test-brand/test-model)"
    )


def test_trusted_assertions_are_not_checked() -> None:
    # the trusted set is taken as is, even a key that has expired; it then verifies nothing
    expired = account_key(
        "test-root",
        ROOT.public_key,
        since=NOW - timedelta(days=2),
        until=NOW - timedelta(days=1),
        authority="test-root",
    )
    db = asserts.Database([CHAIN.root_account, expired], clock=lambda: NOW)
    assert db.find("account-key", (ROOT.public_key.id,)) == expired
    assert str(check_error(db, CHAIN.brand_account)).startswith(
        f'assertion is signed with expired public key "{ROOT.public_key.id}" from "test-root"'
    )


def test_primary_key_clashing_with_the_trusted_set() -> None:
    db = database()
    newer_root = account("test-root", revision=1)
    error = add_error(db, newer_root)
    assert str(error).startswith(
        'cannot add "account" assertion with primary key clashing with a trusted assertion: '
    )
    assert db.find("account", ("test-root",)) is CHAIN.root_account
    with pytest.raises(asserts.CheckError):
        db.add(CHAIN.root_account_key)


def test_trusted_clash_message_matches_snapd() -> None:
    error = add_error(database(), account("test-root", revision=1))
    assert str(error) == (
        'cannot add "account" assertion with primary key clashing with a trusted '
        "assertion: [test-root]"
    )


# -- adding with full checks -------------------------------------------------------------


def test_chain_members_are_added_and_found() -> None:
    db = database()
    for a in CHAIN.members:
        assert db.find(a.type_name, a.primary_key) == a
    assert db.find_many("account-key", {"account-id": "test-brand"}) == [CHAIN.brand_account_key]
    assert db.find_many("model", {"brand-id": "test-brand"}) == [CHAIN.model]
    assert db.find_many("model", {"brand-id": "other"}) == []
    assert sorted(a.primary_key for a in db.find_many("account", {})) == [
        ("test-brand",),
        ("test-root",),
    ]


def test_unknown_signing_key() -> None:
    db = database()
    m = model(key=VAULT)
    assert str(check_error(db, m)) == (
        f'no matching public key "{VAULT.public_key.id}" for signature by "test-brand"'
    )


def test_signing_key_of_another_account() -> None:
    db = database()
    m = model(key=ROOT)
    assert str(check_error(db, m)) == (
        "error finding matching public key for signature: found public key "
        f'"{ROOT.public_key.id}" from "test-root" but expected it from: test-brand'
    )


def test_signature_by_the_wrong_key() -> None:
    db = database()
    m = model(key=Impostor(BRAND.public_key, VAULT))
    assert m.sign_key_id == BRAND.public_key.id
    with pytest.raises(asserts.SignatureError) as caught:
        db.check(m)
    assert str(caught.value) == "failed signature verification: RSA verification failure"


def test_tampered_header_fails_with_hash_tag() -> None:
    db = database()
    tampered = asserts.decode(
        replace_once(CHAIN.model.to_bytes(), "architecture: amd64", "architecture: arm64")
    )
    with pytest.raises(asserts.SignatureError) as caught:
        db.add(tampered)
    assert str(caught.value) == "failed signature verification: hash tag doesn't match"


class Clock:
    """A clock the test can move after the database was filled."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.mark.parametrize(
    ("clock", "ok"),
    [
        (SINCE - timedelta(seconds=1), False),
        (SINCE, True),
        (NOW, True),
        (NOW + timedelta(days=3650), True),
    ],
    ids=["before since", "at since (inclusive)", "now", "much later, no until"],
)
def test_key_validity_against_the_clock(clock: datetime, ok: bool) -> None:
    db = asserts.Database(CHAIN.trusted, clock=Clock(clock))
    if ok:
        db.check(CHAIN.brand_account)
        return
    assert str(check_error(db, CHAIN.brand_account)).startswith(
        f'assertion is signed with expired public key "{ROOT.public_key.id}" from "test-root"'
    )


def _db_with_vault_key(clock: Clock, until: datetime | None) -> asserts.Database:
    db = asserts.Database(CHAIN.trusted, clock=clock)
    db.add(account("test-vault"))
    db.add(account_key("test-vault", VAULT.public_key, until=until))
    return db


UNTIL = NOW + timedelta(days=1)


@pytest.mark.parametrize(
    ("later", "ok"),
    [
        (UNTIL - timedelta(seconds=1), True),
        (UNTIL, False),
        (UNTIL + timedelta(days=1), False),
    ],
    ids=["just before until", "at until (exclusive)", "after until"],
)
def test_expired_signing_key(later: datetime, ok: bool) -> None:
    clock = Clock(NOW)
    db = _db_with_vault_key(clock, UNTIL)
    clock.now = later
    a = account("x1", authority="test-vault", key=VAULT)  # any type: the key check comes first
    error = check_error(db, a)
    if ok:  # passes the key checks, then fails: the vault is not a trusted authority
        assert str(error) == (
            'account assertion for "x1" is not signed by a directly trusted authority: test-vault'
        )
    else:
        assert str(error).startswith(
            f'assertion is signed with expired public key "{VAULT.public_key.id}" from "test-vault"'
        )


@pytest.mark.parametrize("until", [None, UNTIL], ids=["no until", "until"])
def test_expired_key_message_matches_snapd(until: datetime | None) -> None:
    clock = Clock(NOW)
    db = _db_with_vault_key(clock, until)
    clock.now = SINCE - timedelta(days=1) if until is None else UNTIL + timedelta(days=1)
    error = check_error(db, account("x1", authority="test-vault", key=VAULT))
    if until is None:
        reason = f"current time is {t(clock.now)} but key is valid from {t(SINCE)}"
    else:
        reason = f"current time is {t(clock.now)} but key is valid during [{t(SINCE)}, {t(until)})"
    assert str(error) == (
        f'assertion is signed with expired public key "{VAULT.public_key.id}" from "test-vault": '
        + reason
    )


@pytest.mark.parametrize(
    ("timestamp", "ok"),
    [
        (SINCE - timedelta(seconds=1), False),
        (SINCE, True),
        (NOW + timedelta(days=1) - timedelta(seconds=1), True),
        (NOW + timedelta(days=1), False),
    ],
    ids=["before since", "at since (inclusive)", "just before until", "at until (exclusive)"],
)
def test_timestamp_must_fall_in_the_key_window(timestamp: datetime, ok: bool) -> None:
    db = asserts.Database(CHAIN.trusted, clock=lambda: NOW)
    db.add(CHAIN.brand_account)
    until = NOW + timedelta(days=1)
    db.add(account_key("test-brand", BRAND.public_key, until=until))
    m = model(timestamp=t(timestamp))
    if ok:
        db.add(m)
        return
    assert str(check_error(db, m)) == (
        f'model assertion timestamp "{timestamp:%Y-%m-%d %H:%M:%S} +0000 UTC" outside of signing '
        f'key validity (key valid since "{SINCE:%Y-%m-%d %H:%M:%S} +0000 UTC" until '
        f'"{until:%Y-%m-%d %H:%M:%S} +0000 UTC")'
    )


def test_timestamp_before_open_ended_key() -> None:
    db = database()
    m = model(timestamp=t(SINCE - timedelta(days=1)))
    assert str(check_error(db, m)) == (
        f'model assertion timestamp "{SINCE - timedelta(days=1):%Y-%m-%d %H:%M:%S} +0000 UTC" '
        f'outside of signing key validity (key valid since "{SINCE:%Y-%m-%d %H:%M:%S} +0000 UTC")'
    )


def test_key_checks_come_before_the_signature() -> None:
    # an unknown key is reported even when the signature is garbage too
    db = database()
    broken = asserts.decode(
        replace_once(model(key=VAULT).to_bytes(), "architecture: amd64", "architecture: arm64")
    )
    assert str(check_error(db, broken)).startswith("no matching public key")


# -- per-type authority rules ---------------------------------------------------------------


def test_account_needs_a_trusted_authority() -> None:
    db = vault_db()
    a = account("x1", authority="test-vault", key=VAULT)
    assert str(check_error(db, a)) == (
        'account assertion for "x1" is not signed by a directly trusted authority: test-vault'
    )


def test_account_key_rules() -> None:
    db = vault_db()
    by_vault = account_key(
        "test-vault", DEVICE.public_key, name="second", authority="test-vault", key=VAULT
    )
    assert str(check_error(db, by_vault)) == (
        'account-key assertion for "test-vault" is not signed by a directly trusted '
        "authority: test-vault"
    )
    orphan = account_key("nobody", DEVICE.public_key)
    assert str(check_error(db, orphan)) == (
        'account-key assertion for "nobody" does not have a matching account assertion'
    )


def test_account_key_names_are_unique_per_account() -> None:
    db = vault_db()
    clash = account_key("test-brand", DEVICE.public_key, name="default")
    assert str(check_error(db, clash)) == (
        f'account-key assertion for "test-brand" with ID "{DEVICE.public_key.id}" has the same '
        f'name "default" as existing ID "{BRAND.public_key.id}"'
    )
    # another name is fine, and so is the same name for another account
    db.add(account_key("test-brand", DEVICE.public_key, name="device"))
    db.add(account("x1"))
    db.add(account_key("x1", fixed_key("device-4096").public_key, name="default"))
    assert len(db.find_many("account-key", {"name": "default"})) == 3


def test_account_key_without_name_never_clashes() -> None:
    db = database()
    unnamed = sign(
        "account-key",
        {
            "authority-id": "test-root",
            "account-id": "test-brand",
            "public-key-sha3-384": DEVICE.public_key.id,
            "since": t(SINCE),
        },
        ROOT,
        DEVICE.public_key.encoded,
    )
    db.add(unnamed)


def test_model_by_any_account_with_a_key_for_itself() -> None:
    db = vault_db()
    m = model(key=VAULT, brand="test-vault")
    db.add(m)
    assert db.find("model", ("16", "test-vault", "gw")) == m


def test_serial_by_the_brand() -> None:
    db = database()
    s = serial(authority="test-brand", key=BRAND, model_name="not-in-db")
    db.add(s)  # the model is needed only when someone else signs


@pytest.mark.parametrize(
    ("serial_authority", "ok"),
    [(["test-vault"], True), (["other"], False), (None, False)],
    ids=["listed", "not listed", "no serial-authority"],
)
def test_serial_by_another_authority_needs_the_models_serial_authority(
    serial_authority: list[str] | None, ok: bool
) -> None:
    db = vault_db()
    extra: dict[str, object] = {}
    if serial_authority is not None:
        extra["serial-authority"] = serial_authority
    db.add(model(name="vaulted", extra=extra))
    s = serial(authority="test-vault", key=VAULT, model_name="vaulted")
    if ok:
        db.add(s)
        assert db.find("serial", ("test-brand", "vaulted", "S-1")) == s
        return
    assert str(check_error(db, s)).startswith(
        'serial with authority "test-vault" different from brand "test-brand" without model '
        "assertion with serial-authority set to"
    )


def test_serial_by_another_authority_without_the_model() -> None:
    db = vault_db()
    s = serial(authority="test-vault", key=VAULT, model_name="missing")
    assert str(check_error(db, s)).startswith(
        'serial with authority "test-vault" different from brand'
    )


def test_serial_authority_message_matches_snapd() -> None:
    db = vault_db()
    s = serial(authority="test-vault", key=VAULT, model_name="missing")
    assert str(check_error(db, s)) == (
        'serial with authority "test-vault" different from brand "test-brand" without model '
        "assertion with serial-authority set to to allow for them"
    )


def _declaration(
    *,
    key: asserts.PrivateKey = ROOT,
    authority: str = "test-root",
    publisher: str = "test-brand",
    extra: Mapping[str, object] | None = None,
    **simple: str,
) -> asserts.Assertion:
    headers: dict[str, object] = {
        "authority-id": authority,
        "series": "16",
        "snap-id": SNAP_ID,
        "snap-name": "acme-agent",
        "publisher-id": publisher,
        "timestamp": t(NOW),
    }
    headers.update(simple)
    headers.update(extra or {})
    return sign("snap-declaration", headers, key)


def test_snap_declaration_rules() -> None:
    db = database()
    by_brand = _declaration(key=BRAND, authority="test-brand")
    assert str(check_error(db, by_brand)) == (
        f'snap-declaration assertion for "acme-agent" (id "{SNAP_ID}") is not signed by a directly '
        "trusted authority: test-brand"
    )
    orphan = _declaration(publisher="nobody")
    assert str(check_error(db, orphan)) == (
        f'snap-declaration assertion for "acme-agent" (id "{SNAP_ID}") does not have a matching '
        'account assertion for the publisher "nobody"'
    )
    db.add(_declaration())


def test_store_rules() -> None:
    db = database()
    headers = {
        "authority-id": "test-root",
        "store": "store1",
        "operator-id": "test-brand",
        "timestamp": t(NOW),
    }
    by_brand = sign("store", {**headers, "authority-id": "test-brand"}, BRAND)
    assert str(check_error(db, by_brand)) == (
        'store assertion "store1" is not signed by a directly trusted authority: test-brand'
    )
    orphan = sign("store", {**headers, "operator-id": "nobody"}, ROOT)
    assert str(check_error(db, orphan)) == (
        'store assertion "store1" does not have a matching account assertion for the '
        'operator "nobody"'
    )
    db.add(sign("store", headers, ROOT))


DIGEST = base64.urlsafe_b64encode(hashlib.sha3_384(b"snap file").digest()).decode().rstrip("=")
REVISION_AUTHORITY = [
    {
        "account-id": "test-brand",
        "provenance": ["acme-factory", "other"],
        "min-revision": "10",
        "max-revision": "20",
    }
]


def _revision(
    *,
    key: asserts.PrivateKey = ROOT,
    authority: str = "test-root",
    revision: int = 15,
    developer: str = "test-brand",
    provenance: str | None = None,
) -> asserts.Assertion:
    headers: dict[str, object] = {
        "authority-id": authority,
        "snap-sha3-384": DIGEST,
        "snap-id": SNAP_ID,
        "snap-size": "9",
        "snap-revision": str(revision),
        "developer-id": developer,
        "timestamp": t(NOW),
    }
    if provenance is not None:
        headers["provenance"] = provenance
    return sign("snap-revision", headers, key)


def _snap_db() -> asserts.Database:
    db = database()
    db.add(_declaration(extra={"revision-authority": REVISION_AUTHORITY}))
    return db


def test_global_upload_revisions_need_a_trusted_authority() -> None:
    db = _snap_db()
    db.add(_revision())
    by_brand = _revision(key=BRAND, authority="test-brand", revision=16)
    assert str(check_error(db, by_brand)) == (
        f'snap-revision assertion for snap id "{SNAP_ID}" is not signed by a store: test-brand'
    )
    explicit = _revision(key=BRAND, authority="test-brand", provenance="global-upload")
    assert str(check_error(db, explicit)).endswith("is not signed by a store: test-brand")


def test_revision_prerequisites() -> None:
    db = database()
    assert str(check_error(db, _revision())) == (
        f'snap-revision assertion for snap id "{SNAP_ID}" does not have a matching '
        "snap-declaration assertion"
    )
    db.add(_declaration())
    assert str(check_error(db, _revision(developer="nobody"))) == (
        f'snap-revision assertion for snap id "{SNAP_ID}" does not have a matching account '
        'assertion for the developer "nobody"'
    )


@pytest.mark.parametrize(
    ("provenance", "revision", "ok"),
    [
        ("acme-factory", 10, True),
        ("acme-factory", 15, True),
        ("acme-factory", 20, True),
        ("other", 12, True),
        ("acme-factory", 9, False),
        ("acme-factory", 21, False),
        ("unlisted", 15, False),
    ],
)
def test_delegated_provenance_needs_a_matching_revision_authority(
    provenance: str, revision: int, ok: bool
) -> None:
    db = _snap_db()
    r = _revision(key=BRAND, authority="test-brand", revision=revision, provenance=provenance)
    if ok:
        db.add(r)
        assert db.find("snap-revision", (DIGEST, provenance)) == r
        return
    assert str(check_error(db, r)) == (
        f'snap-revision assertion with provenance "{provenance}" for snap id "{SNAP_ID}" is not '
        "signed by an authorized authority: test-brand"
    )


def test_delegated_provenance_by_an_unlisted_account() -> None:
    db = _snap_db()
    db.add(account("test-vault"))
    db.add(account_key("test-vault", VAULT.public_key))
    r = _revision(key=VAULT, authority="test-vault", provenance="acme-factory")
    assert str(check_error(db, r)).endswith("is not signed by an authorized authority: test-vault")
    # the store itself is no exception for a delegated provenance
    by_root = _revision(provenance="acme-factory")
    assert str(check_error(db, by_root)).endswith(
        "is not signed by an authorized authority: test-root"
    )


def test_revisions_of_several_provenances_coexist() -> None:
    db = _snap_db()
    store_rev = _revision()
    brand_rev = _revision(key=BRAND, authority="test-brand", provenance="acme-factory")
    db.add(store_rev)
    db.add(brand_rev)
    assert db.find("snap-revision", (DIGEST, "global-upload")) == store_rev
    assert db.find("snap-revision", (DIGEST, "acme-factory")) == brand_rev


def _snap_developer(
    *,
    key: asserts.PrivateKey = BRAND,
    authority: str = "test-brand",
    publisher: str = "test-brand",
    developers: list[dict[str, object]] | None = None,
) -> asserts.Assertion:
    return sign(
        "snap-developer",
        {
            "authority-id": authority,
            "snap-id": SNAP_ID,
            "publisher-id": publisher,
            "developers": developers
            if developers is not None
            else [{"developer-id": "test-vault", "since": t(SINCE)}],
        },
        key,
    )


def test_snap_developer_rules() -> None:
    db = vault_db()
    assert str(check_error(db, _snap_developer())) == (
        f'snap-developer assertion for snap id "{SNAP_ID}" does not have a matching '
        "snap-declaration assertion"
    )
    db.add(_declaration())
    by_publisher = _snap_developer()
    db.check(by_publisher)
    by_store = _snap_developer(key=ROOT, authority="test-root")
    db.check(by_store)
    by_other = _snap_developer(key=VAULT, authority="test-vault")
    assert str(check_error(db, by_other)) == (
        "snap-developer must be signed by the publisher or a trusted authority but got authority "
        '"test-vault" and publisher "test-brand"'
    )
    unknown_dev = _snap_developer(developers=[{"developer-id": "nobody", "since": t(SINCE)}])
    assert str(check_error(db, unknown_dev)) == (
        f'snap-developer assertion for snap-id "{SNAP_ID}" does not have a matching account '
        'assertion for the developer "nobody"'
    )
    db.add(by_publisher)
    assert db.find("snap-developer", (SNAP_ID, "test-brand")) == by_publisher


def test_snap_developer_publisher_without_account() -> None:
    db = vault_db()
    db.add(_declaration())
    a = _snap_developer(key=ROOT, authority="test-root", publisher="nobody")
    assert str(check_error(db, a)) == (
        f'snap-developer assertion for snap-id "{SNAP_ID}" does not have a matching account '
        'assertion for the publisher "nobody"'
    )


def _validation_set(sequence: int, *, revision: int = 0) -> asserts.Assertion:
    headers: dict[str, object] = {
        "authority-id": "test-brand",
        "series": "16",
        "account-id": "test-brand",
        "name": "base-set",
        "sequence": str(sequence),
        "snaps": [{"name": "acme-agent", "id": SNAP_ID}],
        "timestamp": t(NOW),
    }
    if revision:
        headers["revision"] = str(revision)
    return sign("validation-set", headers, BRAND)


def test_validation_set_by_its_account() -> None:
    db = database()
    one, two = _validation_set(1), _validation_set(2)
    db.add(one)
    db.add(two)
    assert db.find("validation-set", ("16", "test-brand", "base-set", "1")) == one
    assert db.find("validation-set", ("16", "test-brand", "base-set", "2")) == two
    with pytest.raises(asserts.SigningError) as caught:
        sign(
            "validation-set",
            {
                **dict(_validation_set(1).headers),
                "account-id": "other",
                "snaps": [{"name": "acme-agent", "id": SNAP_ID}],
            },
            BRAND,
        )
    assert str(caught.value) == (
        "assertion validation-set: authority-id and account-id must match, validation-set "
        'assertions are expected to be signed by the issuer account: "test-brand" != "other"'
    )


def test_system_user_by_any_account_with_a_key() -> None:
    db = vault_db()
    u = sign(
        "system-user",
        {
            "authority-id": "test-vault",
            "brand-id": "test-brand",
            "email": "ops@example.com",
            "username": "ops",
            "models": ["test-model"],
            "since": t(SINCE),
            "until": t(NOW + timedelta(days=30)),
        },
        VAULT,
    )
    db.add(u)
    assert db.find("system-user", ("test-brand", "ops@example.com")) == u


# -- self-signed requests ----------------------------------------------------------------------


def _serial_request(key: asserts.PrivateKey = DEVICE) -> asserts.Assertion:
    return sign(
        "serial-request",
        {
            "brand-id": "test-brand",
            "model": "test-model",
            "request-id": "REQ-1",
            "device-key": DEVICE.public_key.encoded,
        },
        key,
    )


def test_serial_request_is_verified_with_its_own_key() -> None:
    db = database()
    db.check(_serial_request())
    with pytest.raises(asserts.CheckError) as caught:
        db.add(_serial_request())
    assert str(caught.value) == '"serial-request" assertions cannot be stored'


def test_serial_request_signed_by_another_key() -> None:
    db = database()
    forged = _serial_request(Impostor(DEVICE.public_key, VAULT))
    with pytest.raises(asserts.SignatureError) as caught:
        db.check(forged)
    assert str(caught.value) == "failed signature verification: RSA verification failure"
    # naming the real signer in sign-key-sha3-384 is refused while decoding already
    with pytest.raises(asserts.SigningError) as refused:
        _serial_request(VAULT)
    assert str(refused.value) == (
        "assertion serial-request: device key does not match included signing key id"
    )


def _key_request(key: asserts.PrivateKey, account_id: str = "test-brand") -> asserts.Assertion:
    return sign(
        "account-key-request",
        {
            "account-id": account_id,
            "name": "second",
            "public-key-sha3-384": VAULT.public_key.id,
            "since": t(SINCE),
        },
        key,
        VAULT.public_key.encoded,
    )


def test_account_key_request_is_verified_with_the_key_in_its_body() -> None:
    db = database()
    good = _key_request(VAULT)
    db.check(good)
    db.add(good)
    assert db.find("account-key-request", (VAULT.public_key.id,)) == good
    other = _key_request(DEVICE)  # sign-key-sha3-384 names the device key: snapd's signer allows it
    assert other.sign_key_id == DEVICE.public_key.id
    with pytest.raises(asserts.SignatureError) as caught:
        db.check(other)
    assert str(caught.value) == "failed signature verification: RSA verification failure"


def test_account_key_request_needs_the_account() -> None:
    db = database()
    assert str(check_error(db, _key_request(VAULT, "nobody"))) == (
        'account-key-request assertion for "nobody" does not have a matching account assertion'
    )


def test_device_session_request_has_no_key_of_its_own() -> None:
    db = database()
    dsr = sign(
        "device-session-request",
        {
            "brand-id": "test-brand",
            "model": "test-model",
            "serial": "TEST-0001",
            "nonce": "n",
            "timestamp": t(NOW),
        },
        DEVICE,
    )
    assert str(check_error(db, dsr)) == (
        'cannot check no-authority assertion type "device-session-request" without its device key'
    )
    s = db.find("serial", ("test-brand", "test-model", "TEST-0001"))
    assert isinstance(s, asserts.Serial)
    asserts.verify_signature(dsr, s.device_key)


# -- revisions -------------------------------------------------------------------------------


def test_newer_revision_replaces_and_older_or_equal_is_refused() -> None:
    db = database()
    rev0, rev1, rev2 = (
        model(name="rev"),
        model(name="rev", revision="1"),
        model(name="rev", revision="2"),
    )
    db.add(rev0)
    assert db.find("model", ("16", "test-brand", "rev")) == rev0
    db.add(rev2)
    assert db.find("model", ("16", "test-brand", "rev")) == rev2
    with pytest.raises(asserts.RevisionError) as same:
        db.add(rev2)
    assert str(same.value) == "revision 2 is already the current revision"
    assert (same.value.used, same.value.current) == (2, 2)
    with pytest.raises(asserts.RevisionError) as older:
        db.add(rev1)
    assert str(older.value) == "revision 1 is older than current revision 2"
    assert (older.value.used, older.value.current) == (1, 2)
    with pytest.raises(asserts.RevisionError) as oldest:
        db.add(rev0)
    assert str(oldest.value) == "revision 0 is older than current revision 2"
    assert db.find("model", ("16", "test-brand", "rev")) == rev2
    assert db.find_many("model", {"model": "rev"}) == [rev2]


def test_same_revision_with_other_content_is_refused() -> None:
    db = database()
    db.add(model(name="rev", extra={"display-name": "One"}))
    with pytest.raises(asserts.RevisionError) as caught:
        db.add(model(name="rev", extra={"display-name": "Two"}))
    assert str(caught.value) == "revision 0 is already the current revision"


def test_revision_error_is_a_check_error() -> None:
    assert issubclass(asserts.RevisionError, asserts.CheckError)
    assert issubclass(asserts.UnsupportedFormatError, asserts.CheckError)
    for cls in (
        asserts.CheckError,
        asserts.DecodeError,
        asserts.SignatureError,
        asserts.SigningError,
        asserts.InvalidKeyError,
        asserts.NotFoundError,
    ):
        assert issubclass(cls, asserts.AssertsError)


def test_unsupported_format_is_refused_before_anything_else() -> None:
    db = database()
    decl = _declaration()
    data = replace_once(
        decl.to_bytes(), "type: snap-declaration\n", "type: snap-declaration\nformat: 6\n"
    )
    future = asserts.decode(data)
    with pytest.raises(asserts.UnsupportedFormatError) as caught:
        db.add(future)
    assert (
        str(caught.value)
        == 'proposed "snap-declaration" assertion has format 6 but 5 is latest supported'
    )


# -- bytes, ordering, generic assertions -------------------------------------------------------


def test_database_reserves_the_exact_bytes() -> None:
    db = database()
    for a in CHAIN.members:
        assert db.find(a.type_name, a.primary_key).to_bytes() == a.to_bytes()


def test_non_canonical_header_order_is_kept() -> None:
    for name in (
        "model-classic.order-scrambled.assert",
        "model-classic.order-scrambled-type-not-first.assert",
    ):
        data = vector_path(f"negative/{name}").read_bytes()
        db = vector_db("account-brand.assert", "account-key-brand.assert")
        a = asserts.decode(data)
        db.add(a)
        found = db.find("model", a.primary_key)
        assert found.to_bytes() == data
        # the library's own signer would have written another order
        assert asserts.sign(a.type_name, dict(a.headers), fixed_key("brand")).content != a.content


def test_vector_database_clock() -> None:
    db = vector_db("account-brand.assert")
    assert db.find("account", ("acme",)).authority_id == "test-root"
    assert VECTOR_NOW.year == 2026


def test_add_many_orders_by_itself() -> None:
    db = database(members=False)
    members = list(reversed(CHAIN.members))
    assert db.add_many(members) == {}
    for a in CHAIN.members:
        assert db.find(a.type_name, a.primary_key) == a
    # members already present with the same revision count as added
    assert db.add_many(CHAIN.members) == {}


def test_add_many_reports_what_stays_refused() -> None:
    db = database(members=False)
    orphan = serial(authority="test-vault", key=VAULT)
    older = model(name="rev")
    newer = model(name="rev", revision="1")
    errors = db.add_many([orphan, *CHAIN.members, newer])
    assert list(errors) == [orphan]
    assert (
        str(errors[orphan])
        == f'no matching public key "{VAULT.public_key.id}" for signature by "test-vault"'
    )
    errors = db.add_many([older])
    assert list(errors) == [older]
    assert isinstance(errors[older], asserts.RevisionError)
    assert str(errors[older]) == "revision 0 is older than current revision 1"


def test_generic_assertions_are_refused() -> None:
    db = database()
    data = replace_once(CHAIN.model.to_bytes(), "type: model\n", "type: frobnicate\n")
    g = asserts.decode(data)
    assert isinstance(g, asserts.GenericAssertion)
    assert str(check_error(db, g)) == 'unsupported assertion type: "frobnicate"'
    assert str(add_error(db, g)) == '"frobnicate" assertions cannot be stored'


def test_memory_backstore_keeps_revisions_and_filters_by_format() -> None:
    store = asserts.MemoryBackstore()
    d0 = _declaration()
    d1 = _declaration(revision="1", format="1", extra={"plugs": {"network": "true"}})
    store.put(d0)
    store.put(d1)
    assert store.get("snap-declaration", ("16", SNAP_ID)) == d1
    assert store.get("snap-declaration", ("16", SNAP_ID), max_format=0) == d0
    assert store.search("snap-declaration", {"snap-id": SNAP_ID}, max_format=0) == [d0]
    with pytest.raises(asserts.RevisionError):
        store.put(d0)
    with pytest.raises(asserts.NotFoundError):
        store.get("snap-declaration", ("16", "nope"))
    db = asserts.Database(CHAIN.trusted, backstore=store, clock=lambda: NOW)
    assert db.find("snap-declaration", ("16", SNAP_ID)) == d1
    assert db.find("snap-declaration", ("16", SNAP_ID), max_format=0) == d0


def test_default_clock_is_the_current_time() -> None:
    fresh = mint_chain()  # keys valid from an hour ago
    db = asserts.Database(fresh.trusted)
    for a in fresh.members:
        db.add(a)
    assert fresh.database().find("serial", fresh.serial.primary_key) == fresh.serial
