"""Registration in three steps (check in a read, sign in no transaction, record in one write).

The server signs a serial outside the write transaction; whatever changed
between the check and the record decides, as if the two registrations had
run one after the other: one serial is never bound twice, a spent request-id
is refused, and a signature made for a state that changed is never stored.
Each race is laid out step by step (no threads, no timing).
"""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from iotstore import asserts
from iotstore.devices.errors import (
    DeviceBlocked,
    InvalidApiKey,
    InvalidNonce,
    NotPreauthorised,
    SerialInUse,
)
from iotstore.devices.models import Device, RequestId, SigningLogEntry
from iotstore.devices.services import SerialPlan, sign_serial

from ._live import DeviceKey, DeviceKeys, serial_request_stream
from .conftest import ADMIN, VaultWorld


def _planned(
    world: VaultWorld, api_key: str, data: bytes
) -> tuple[SerialPlan, asserts.Serial | None]:
    with world.unit() as (_, vault, _brands):
        plan = vault.check_registration(api_key, data)
    return plan, sign_serial(plan)


def _stream(
    world: VaultWorld, api_key: str, key: DeviceKey, model: asserts.Model, serial: str
) -> bytes:
    return serial_request_stream(key, model, world.request_id(api_key), serial=serial)


def _records(world: VaultWorld, serial: str) -> tuple[int, int]:
    with world.unit() as (session, _, _brands):
        devices = session.scalar(select(func.count(Device.id)).where(Device.serial == serial))
        log = session.scalar(
            select(func.count(SigningLogEntry.id)).where(SigningLogEntry.serial == serial)
        )
    return int(devices or 0), int(log or 0)


def test_two_keys_signed_for_one_serial_only_the_first_recorded_wins(
    vault_world: VaultWorld, device_keys: DeviceKeys
) -> None:
    row, api_key = vault_world.model()
    model = vault_world.model_assertion(row)
    first = _planned(
        vault_world, api_key, _stream(vault_world, api_key, device_keys.new(), model, "R-1")
    )
    second = _planned(
        vault_world, api_key, _stream(vault_world, api_key, device_keys.new(), model, "R-1")
    )
    assert first[1] is not None and second[1] is not None  # both signed: neither saw the other
    with vault_world.vault() as vault:
        won = vault.record_registration(*first, "192.0.2.1")
    with pytest.raises(SerialInUse), vault_world.vault() as vault:
        vault.record_registration(*second, "192.0.2.2")
    assert won.serial.serial == "R-1"
    assert _records(vault_world, "R-1") == (1, 1)
    with vault_world.vault() as vault:
        stored = vault.device(row.brand_id, row.name, "R-1")
        assert stored.device_key_id == won.serial.device_key.id


def test_the_same_key_twice_at_once_gets_the_recorded_serial(
    vault_world: VaultWorld, device_keys: DeviceKeys
) -> None:
    row, api_key = vault_world.model()
    model = vault_world.model_assertion(row)
    key = device_keys.new()
    first = _planned(vault_world, api_key, _stream(vault_world, api_key, key, model, "R-2"))
    second = _planned(vault_world, api_key, _stream(vault_world, api_key, key, model, "R-2"))
    with vault_world.vault() as vault:
        won = vault.record_registration(*first, None)
    with vault_world.vault() as vault:
        again = vault.record_registration(*second, None)
    # the second signature is discarded: the device gets the stored bytes
    assert second[1] is not None
    assert again.serial.to_bytes() == won.serial.to_bytes()
    assert _records(vault_world, "R-2") == (1, 1)


def test_a_request_id_spent_meanwhile_is_refused_and_nothing_recorded(
    vault_world: VaultWorld, device_keys: DeviceKeys
) -> None:
    row, api_key = vault_world.model()
    model = vault_world.model_assertion(row)
    data = _stream(vault_world, api_key, device_keys.new(), model, "R-3")
    plan, signed = _planned(vault_world, api_key, data)
    again = _planned(vault_world, api_key, data)  # the same request posted twice
    with vault_world.vault() as vault:
        vault.record_registration(plan, signed, None)
    with pytest.raises(InvalidNonce), vault_world.vault() as vault:
        vault.record_registration(*again, None)
    assert _records(vault_world, "R-3") == (1, 1)


def test_a_device_blocked_meanwhile_is_refused(
    vault_world: VaultWorld, device_keys: DeviceKeys
) -> None:
    row, api_key = vault_world.model()
    model = vault_world.model_assertion(row)
    key = device_keys.new()
    vault_world.register(api_key, row, key, serial="R-4")
    with vault_world.vault() as vault:
        vault.update_policy(
            ADMIN, vault.model(row.brand_id, row.name), {"allow_reregistration": True}
        )
    newcomer = _planned(
        vault_world, api_key, _stream(vault_world, api_key, device_keys.new(), model, "R-4")
    )
    with vault_world.vault() as vault:
        vault.set_blocked(ADMIN, vault.model(row.brand_id, row.name), "R-4", True)
    with pytest.raises(DeviceBlocked), vault_world.vault() as vault:
        vault.record_registration(*newcomer, None)
    assert _records(vault_world, "R-4") == (1, 1)


def test_a_serial_released_meanwhile_is_signed_again_for_its_new_revision(
    vault_world: VaultWorld, device_keys: DeviceKeys
) -> None:
    row, api_key = vault_world.model()
    model = vault_world.model_assertion(row)
    vault_world.register(api_key, row, device_keys.new(), serial="R-5")
    with vault_world.vault() as vault:
        vault.release(ADMIN, vault.model(row.brand_id, row.name), "R-5")
    # two new keys both saw the released serial: both signed revision 1
    first = _planned(
        vault_world, api_key, _stream(vault_world, api_key, device_keys.new(), model, "R-5")
    )
    second = _planned(
        vault_world, api_key, _stream(vault_world, api_key, device_keys.new(), model, "R-5")
    )
    assert first[1] is not None and first[1].revision == 1
    with vault_world.vault() as vault:
        vault.record_registration(*first, None)
    # the serial is bound again: the second loses, as it would have in one transaction
    with pytest.raises(SerialInUse), vault_world.vault() as vault:
        vault.record_registration(*second, None)
    with vault_world.vault() as vault:
        vault.release(ADMIN, vault.model(row.brand_id, row.name), "R-5")
    # a plan made before that second release signed revision 1; the row now asks for 2
    third_key = device_keys.new()
    third = _planned(vault_world, api_key, _stream(vault_world, api_key, third_key, model, "R-5"))
    assert third[1] is not None and third[1].revision == 2
    stale = _planned(
        vault_world, api_key, _stream(vault_world, api_key, device_keys.new(), model, "R-5")
    )
    with vault_world.vault() as vault:
        vault.record_registration(*third, None)
        vault.release(ADMIN, vault.model(row.brand_id, row.name), "R-5")
    with vault_world.vault() as vault:
        recorded = vault.record_registration(*stale, None)
    assert stale[1] is not None and stale[1].revision == 2
    assert recorded.serial.revision == 3  # signed again inside the write, for the row as it is
    with vault_world.vault() as vault:
        assert [e.revision for e in vault.signing_log([row.id])] == [0, 1, 2, 3]
        assert vault.device(row.brand_id, row.name, "R-5").serial_revision == 3


def _request_id_usable(world: VaultWorld, plan: SerialPlan) -> bool:
    # a refused write rolls back whole: the request-id is not spent by it
    with world.unit() as (session, _, _brands):
        used = session.scalar(
            select(RequestId.used_at).where(RequestId.id == plan.request.request_id)
        )
    return used is None


def test_an_api_key_revoked_meanwhile_is_refused_and_nothing_recorded(
    vault_world: VaultWorld, device_keys: DeviceKeys
) -> None:
    row, api_key = vault_world.model()
    model = vault_world.model_assertion(row)
    plan = _planned(
        vault_world, api_key, _stream(vault_world, api_key, device_keys.new(), model, "K-1")
    )
    assert plan[1] is not None
    with vault_world.vault() as vault:
        current = vault.model(row.brand_id, row.name)
        (key,) = vault.api_keys(current)
        vault.revoke_api_key(ADMIN, current, key.id)
    with pytest.raises(InvalidApiKey), vault_world.vault() as vault:
        vault.record_registration(*plan, None)
    assert _records(vault_world, "K-1") == (0, 0)
    assert _request_id_usable(vault_world, plan[0])


def test_a_policy_tightened_meanwhile_is_applied(
    vault_world: VaultWorld, device_keys: DeviceKeys
) -> None:
    row, api_key = vault_world.model()  # open enrolment: no allow-list needed at check time
    model = vault_world.model_assertion(row)
    plan = _planned(
        vault_world, api_key, _stream(vault_world, api_key, device_keys.new(), model, "K-2")
    )
    with vault_world.vault() as vault:
        vault.update_policy(ADMIN, vault.model(row.brand_id, row.name), {"open_enrolment": False})
    with pytest.raises(NotPreauthorised), vault_world.vault() as vault:
        vault.record_registration(*plan, None)
    assert _records(vault_world, "K-2") == (0, 0)
    # allow-listed meanwhile instead: the same plan is recorded
    with vault_world.vault() as vault:
        vault.allow(ADMIN, vault.model(row.brand_id, row.name), [("K-2", None)])
    with vault_world.vault() as vault:
        recorded = vault.record_registration(*plan, None)
    assert recorded.serial.serial == "K-2"
    assert _records(vault_world, "K-2") == (1, 1)


def test_an_allowlist_entry_rebound_meanwhile_is_refused(
    vault_world: VaultWorld, device_keys: DeviceKeys
) -> None:
    row, api_key = vault_world.model(require_key_allowlist=True)
    model = vault_world.model_assertion(row)
    key, other = device_keys.new(), device_keys.new()
    with vault_world.vault() as vault:
        vault.allow(ADMIN, vault.model(row.brand_id, row.name), [("K-3", key.id)])
    plan = _planned(vault_world, api_key, _stream(vault_world, api_key, key, model, "K-3"))
    with vault_world.vault() as vault:
        vault.allow(ADMIN, vault.model(row.brand_id, row.name), [("K-3", other.id)])
    with pytest.raises(NotPreauthorised), vault_world.vault() as vault:
        vault.record_registration(*plan, None)
    assert _records(vault_world, "K-3") == (0, 0)
    assert _request_id_usable(vault_world, plan[0])
