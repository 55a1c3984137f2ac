"""Serial signing keys (rotation, disabling) and API keys (shown once, hashed, revocable)."""

from __future__ import annotations

import hashlib

import pytest
from sqlalchemy import select

from iotstore import asserts
from iotstore.accounts.errors import AccountRuleViolation
from iotstore.devices.errors import InvalidApiKey, KeyGuard, ModelNotFound
from iotstore.devices.models import ApiKey, SerialKey
from iotstore.stores.audit import AuditLog

from ._live import DeviceKeys
from .conftest import ADMIN, KEY_BITS, VaultWorld


def device_database(world: VaultWorld, *serials: asserts.Serial) -> asserts.Database:
    """A device-side database: only the root is trusted; serials come with their chain."""
    db = asserts.Database(world.root.trusted)
    chain: dict[asserts.Ref, asserts.Assertion] = {}
    with world.unit() as (session, _, _brands):
        trust = world.trust(session)
        for serial in serials:
            for a in (
                trust.find("account", (serial.authority_id,)),
                trust.find("account-key", (serial.sign_key_id,)),
            ):
                chain[a.ref] = a
    for a in [*chain.values(), *serials]:
        db.add(a)
    return db


def test_rotation_keeps_old_serials_valid_and_signs_new_ones(
    vault_world: VaultWorld, device_keys: DeviceKeys
) -> None:
    row, api_key = vault_world.model()
    first_key = device_keys.new()
    old = vault_world.register(api_key, row, first_key, serial="SN-1")
    with vault_world.vault() as vault:
        (only, old_key), = vault.serial_keys(row)  # fmt: skip
        assert only.active and old.sign_key_id == old_key.key_id
        new_key = vault.rotate_serial_key(ADMIN, row, KEY_BITS)
        assert vault.active_serial_key(row).key_id == new_key.key_id != old_key.key_id
        assert [(b.key_id, s.active) for s, b in vault.serial_keys(row)] == [
            (new_key.key_id, True), (old_key.key_id, False),
        ]  # fmt: skip
    new = vault_world.register(api_key, row, device_keys.new(), serial="SN-2")
    assert new.sign_key_id == new_key.key_id
    # a device holding the old serial still verifies it; new devices verify theirs
    db = device_database(vault_world, old, new)
    assert db.find("serial", (row.brand_id, row.name, "SN-1")) == old
    # the old device retrying gets its serial again, as signed then
    again = vault_world.register(api_key, row, first_key, serial="SN-1")
    assert again.to_bytes() == old.to_bytes()


def test_disabling_serial_keys_has_guard_rails(
    vault_world: VaultWorld, device_keys: DeviceKeys
) -> None:
    row, api_key = vault_world.model()
    with vault_world.vault() as vault:
        (_, first), = vault.serial_keys(row)  # fmt: skip
        first_name = first.name
        # never the only active key
        with pytest.raises(KeyGuard, match="only active serial key"):
            vault.disable_serial_key(ADMIN, row, first_name, first_name)
        with pytest.raises(ModelNotFound):
            vault.disable_serial_key(ADMIN, row, "models", "models")  # not a serial key
        second = vault.rotate_serial_key(ADMIN, row, KEY_BITS)
    with vault_world.vault() as vault, pytest.raises(AccountRuleViolation):
        vault.disable_serial_key(ADMIN, row, first_name, "wrong")  # typed confirmation
    with vault_world.vault() as vault:
        disabled = vault.disable_serial_key(ADMIN, row, first_name, first_name)
        assert disabled.state == "disabled"
        assert vault.active_serial_key(row).key_id == second.key_id
        with pytest.raises(KeyGuard):
            vault.disable_serial_key(ADMIN, row, second.name, second.name)
    after = vault_world.register(api_key, row, device_keys.new())
    assert after.sign_key_id == second.key_id
    with vault_world.unit() as (session, _, _brands):
        actions = [e.action for e in AuditLog(session).query(store_ids=[row.store_id], limit=500)]
        assert "serial-key.rotate" in actions and "serial-key.disable" in actions
        # the disabled key's certificate stays: what it signed keeps verifying
        assert session.scalars(select(SerialKey).where(SerialKey.model_id == row.id)).all()


def test_a_model_without_serial_key_cannot_issue(
    vault_world: VaultWorld, device_keys: DeviceKeys
) -> None:
    row, api_key = vault_world.model(serial_key=False)
    with pytest.raises(ModelNotFound, match="no active serial signing key"):
        vault_world.register(api_key, row, device_keys.new())


def test_api_keys_are_shown_once_stored_hashed_and_revocable(
    vault_world: VaultWorld, device_keys: DeviceKeys
) -> None:
    row, first_secret = vault_world.model()
    with vault_world.vault() as vault:
        key, secret = vault.create_api_key(ADMIN, row, "line 2")
        key_id = key.id
    assert secret.startswith("iotk_") and len(secret) >= 40 and secret != first_secret
    with vault_world.unit() as (session, vault, _):
        stored = session.get(ApiKey, key_id)
        assert stored is not None
        assert stored.key_hash == hashlib.sha256(secret.encode()).hexdigest()
        assert stored.prefix == secret[:12]
        # the secret itself is nowhere in the table
        for other in session.scalars(select(ApiKey)):
            values = [str(getattr(other, c.key)) for c in ApiKey.__table__.columns]
            assert not any(secret in v for v in values)
        assert [k.label for k in vault.api_keys(row)] == ["test", "line 2"]
    # both keys work
    vault_world.register(secret, row, device_keys.new())
    request_id = vault_world.request_id(secret)
    with vault_world.vault() as vault:
        vault.revoke_api_key(ADMIN, row, key_id)
        vault.revoke_api_key(ADMIN, row, key_id)  # idempotent
    for attempt in (
        lambda: vault_world.request_id(secret),
        # a request-id obtained before revocation does not help
        lambda: vault_world.register(secret, row, device_keys.new(), request_id=request_id),
    ):
        with pytest.raises(InvalidApiKey, match="unknown or revoked"):
            attempt()
    vault_world.register(first_secret, row, device_keys.new())  # the other key still works
    other_row, _ = vault_world.model()
    with vault_world.vault() as vault, pytest.raises(ModelNotFound):
        vault.revoke_api_key(ADMIN, other_row, key_id)  # not that model's key


@pytest.mark.parametrize("value", [None, "", "x" * 201, "iotk_unknown"])
def test_bad_api_keys_get_no_request_id(vault_world: VaultWorld, value: str | None) -> None:
    with vault_world.vault() as vault, pytest.raises(InvalidApiKey):
        vault.new_request_id(value)
