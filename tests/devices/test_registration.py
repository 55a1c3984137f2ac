"""The device-service protocol at service level: every check ``register`` makes, and its records."""

from __future__ import annotations

import re
import threading
import time
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from iotstore import asserts
from iotstore.db import utcnow
from iotstore.devices.errors import (
    DeviceBlocked,
    InvalidApiKey,
    InvalidNonce,
    InvalidSerialRequest,
    ModelNotFound,
    NotPreauthorised,
    SerialInUse,
    VaultRuleViolation,
)
from iotstore.devices.models import Device, RequestId, SigningLogEntry
from iotstore.stores.audit import AuditLog

from ._live import DeviceKeys, serial_request_stream
from .conftest import ADMIN, VaultWorld, model_headers

UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")


def test_generated_serial_and_what_is_recorded(
    vault_world: VaultWorld, device_keys: DeviceKeys
) -> None:
    row, api_key = vault_world.model()
    key = device_keys.new()
    rid = vault_world.request_id(api_key)
    data = serial_request_stream(key, vault_world.model_assertion(row), rid)
    with vault_world.vault() as vault:
        registration = vault.register(api_key, data, "198.51.100.7")
    serial = registration.serial
    assert UUID_RE.fullmatch(serial.serial), serial.serial
    assert (serial.authority_id, serial.brand_id, serial.model) == (
        row.brand_id, row.brand_id, row.name,
    )  # fmt: skip
    assert serial.device_key == key.signer.public_key
    assert serial.header_str("device-key-sha3-384") == key.id
    # the answer: serial, then the signer's account-key and account
    stream = list(asserts.decode_stream(registration.stream()))
    assert [a.type_name for a in stream] == ["serial", "account-key", "account"]
    assert stream[1].primary_key == (serial.sign_key_id,)
    assert stream[2].primary_key == (row.brand_id,)
    with vault_world.unit() as (session, vault, _):
        (entry,) = vault.signing_log([row.id])
        assert (entry.serial, entry.device_key_id, entry.revision, entry.address) == (
            serial.serial, key.id, 0, "198.51.100.7",
        )  # fmt: skip
        assert entry.sign_key_id == serial.sign_key_id
        device = vault.device(row.brand_id, row.name, serial.serial)
        assert (device.device_key_id, device.serial_revision, device.blocked) == (key.id, 0, False)
        # the request-id is spent
        used = session.get(RequestId, rid)
        assert used is not None and used.used_at is not None


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("serial: BODY-1\n", "BODY-1"),
        ("serial: 'BODY-2'\n", "BODY-2"),
        ('batch: 12\nserial: "BODY-3"\nlot: a\n', "BODY-3"),
        ("serials are great\n", None),
    ],
    ids=["plain", "single-quoted", "double-quoted-among-others", "no-serial"],
)
def test_body_serial_convention(
    vault_world: VaultWorld, device_keys: DeviceKeys, body: str, expected: str | None
) -> None:
    row, api_key = vault_world.model()
    serial = vault_world.register(api_key, row, device_keys.new(), body=body)
    if expected is None:
        assert UUID_RE.fullmatch(serial.serial)
    else:
        assert serial.serial == expected


def test_serial_header_wins_over_the_body(vault_world: VaultWorld, device_keys: DeviceKeys) -> None:
    row, api_key = vault_world.model()
    serial = vault_world.register(
        api_key, row, device_keys.new(), serial="HEADER-1", body="serial: BODY-9\n"
    )
    assert serial.serial == "HEADER-1"


def test_retry_with_the_same_key_returns_the_same_bytes(
    vault_world: VaultWorld, device_keys: DeviceKeys
) -> None:
    row, api_key = vault_world.model()
    key = device_keys.new()
    first = vault_world.register(api_key, row, key, serial="RETRY-1")
    time.sleep(1.1)  # a new signature would carry a new timestamp
    again = vault_world.register(api_key, row, key, serial="RETRY-1")
    assert again.to_bytes() == first.to_bytes()
    with vault_world.vault() as vault:
        assert len(vault.signing_log([row.id])) == 1  # nothing new was issued


def test_request_ids_are_single_use_and_expire(
    vault_world: VaultWorld, device_keys: DeviceKeys
) -> None:
    row, api_key = vault_world.model()
    rid = vault_world.request_id(api_key)
    vault_world.register(api_key, row, device_keys.new(), request_id=rid)
    with pytest.raises(InvalidNonce):
        vault_world.register(api_key, row, device_keys.new(), request_id=rid)
    with pytest.raises(InvalidNonce):
        vault_world.register(api_key, row, device_keys.new(), request_id="x" * 65)
    stale = vault_world.request_id(api_key)
    with vault_world.unit() as (session, _, _brands):
        session.execute(
            update(RequestId)
            .where(RequestId.id == stale)
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
    with pytest.raises(InvalidNonce):
        vault_world.register(api_key, row, device_keys.new(), request_id=stale)
    # expired ones are swept when new ones are handed out
    vault_world.request_id(api_key)
    with vault_world.unit() as (session, _, _brands):
        assert session.get(RequestId, stale) is None


def test_one_request_id_used_twice_at_once(
    vault_world: VaultWorld, device_keys: DeviceKeys
) -> None:
    """Two registrations racing on one request-id: exactly one wins, on either backend."""
    row, api_key = vault_world.model()
    model = vault_world.model_assertion(row)
    rid = vault_world.request_id(api_key)
    first_in = threading.Event()
    release = threading.Event()
    outcomes: dict[str, object] = {}

    def attempt(name: str, serial: str, hold: bool) -> None:
        data = serial_request_stream(device_keys.new(), model, rid, serial=serial)
        try:
            with vault_world.vault() as vault:
                vault.register(api_key, data, None)
                if hold:
                    first_in.set()
                    release.wait(10)
            outcomes[name] = "ok"
        except Exception as e:
            outcomes[name] = e
        finally:
            first_in.set()

    first = threading.Thread(target=attempt, args=("first", "RACE-1", True))
    first.start()
    assert first_in.wait(30)
    second = threading.Thread(target=attempt, args=("second", "RACE-2", False))
    second.start()
    time.sleep(0.5)  # the second one runs up to the point where it must wait
    release.set()
    first.join(30)
    second.join(30)
    assert outcomes["first"] == "ok", outcomes
    assert isinstance(outcomes["second"], InvalidNonce), outcomes
    with vault_world.vault() as vault:
        assert [e.serial for e in vault.signing_log([row.id])] == ["RACE-1"]


def test_malformed_serial_requests_are_refused(
    vault_world: VaultWorld, device_keys: DeviceKeys
) -> None:
    row, api_key = vault_world.model()
    model = vault_world.model_assertion(row)
    key = device_keys.new()

    def request(**headers: object) -> asserts.Assertion:
        merged: dict[str, object] = {
            "brand-id": row.brand_id, "model": row.name, "request-id": "r",
            "device-key": key.signer.public_key.encoded, **headers,
        }  # fmt: skip
        return asserts.sign("serial-request", merged, key.signer)

    # a header changed after signing: the signature no longer matches
    forged = asserts.encode_stream([request(), model]).replace(
        b"request-id: r\n", b"request-id: s\n", 1
    )
    small = asserts.generate_rsa(1024)
    weak = asserts.sign(
        "serial-request",
        {"brand-id": row.brand_id, "model": row.name, "request-id": "r",
         "device-key": small.public_key.encoded},
        small,
    )  # fmt: skip
    cases = {
        "garbage": b"hello",
        "empty": b"",
        "model first": asserts.encode_stream([model, request()]),
        "three members": asserts.encode_stream([request(), model, model]),
        "forged signature": forged,
        "weak key": asserts.encode_stream([weak, model]),
        "too large": asserts.encode_stream([request()]) + b"\n" * (300 * 1024),
    }
    for name, data in cases.items():
        with vault_world.vault() as vault, pytest.raises(InvalidSerialRequest):
            vault.register(api_key, data, None)
            pytest.fail(f"{name} was accepted")
    # a bad serial value is refused only after the nonce check, so use a real one
    for serial in ("has space", "-dash-first", "x" * 129):
        rid = vault_world.request_id(api_key)
        data = serial_request_stream(key, model, rid, serial=serial)
        with vault_world.vault() as vault, pytest.raises(InvalidSerialRequest):
            vault.register(api_key, data, None)


def test_the_model_sent_must_be_the_requested_one_and_verify(
    vault_world: VaultWorld, device_keys: DeviceKeys
) -> None:
    row, api_key = vault_world.model()
    other_row, _ = vault_world.model()
    key = device_keys.new()
    rid = vault_world.request_id(api_key)
    model = vault_world.model_assertion(row)
    # serial-request for this model, stream carrying another one
    mixed = (
        serial_request_stream(key, model, rid, send_model=False)
        + b"\n"
        + (vault_world.model_assertion(other_row).to_bytes())
    )
    with vault_world.vault() as vault, pytest.raises(InvalidSerialRequest, match="not the request"):
        vault.register(api_key, mixed, None)
    # the same model name signed by a key the brand never registered
    impostor_headers = model_headers(row.brand_id, row.name, row.store_id, revision="5")
    impostor = asserts.sign("model", impostor_headers, asserts.generate_rsa(2048))
    assert isinstance(impostor, asserts.Model)
    data = serial_request_stream(key, impostor, rid)
    with vault_world.vault() as vault, pytest.raises(InvalidSerialRequest, match="does not verify"):
        vault.register(api_key, data, None)
    # the model may be left out; the vault knows it
    with vault_world.vault() as vault:
        alone = serial_request_stream(key, model, rid, send_model=False)
        assert vault.register(api_key, alone, None).serial.model == row.name


def test_api_key_of_another_model_is_refused(
    vault_world: VaultWorld, device_keys: DeviceKeys
) -> None:
    row, _ = vault_world.model()
    _, other_key = vault_world.model()
    with pytest.raises(InvalidApiKey, match="this API key is for"):
        vault_world.register(other_key, row, device_keys.new(), request_id=None)


def test_serial_bound_to_another_key_unless_policy_allows(
    vault_world: VaultWorld, device_keys: DeviceKeys
) -> None:
    row, api_key = vault_world.model()
    first = vault_world.register(api_key, row, device_keys.new(), serial="DUP-1")
    with pytest.raises(SerialInUse):
        vault_world.register(api_key, row, device_keys.new(), serial="DUP-1")
    with vault_world.vault() as vault:
        vault.update_policy(
            ADMIN, vault.model(row.brand_id, row.name), {"allow_reregistration": True}
        )
        with pytest.raises(VaultRuleViolation):
            vault.update_policy(ADMIN, vault.model(row.brand_id, row.name), {"nonsense": True})
    second_key = device_keys.new()
    second = vault_world.register(api_key, row, second_key, serial="DUP-1")
    assert second.revision == first.revision + 1 == 1
    with vault_world.vault() as vault:
        device = vault.device(row.brand_id, row.name, "DUP-1")
        assert (device.device_key_id, device.serial_revision) == (second_key.id, 1)
        assert [e.revision for e in vault.signing_log([row.id])] == [0, 1]


def test_block_unblock_release_are_enforced_and_audited(
    vault_world: VaultWorld, device_keys: DeviceKeys
) -> None:
    row, api_key = vault_world.model()
    key = device_keys.new()
    vault_world.register(api_key, row, key, serial="BLK-1")
    with vault_world.vault() as vault:
        vault.set_blocked(ADMIN, row, "BLK-1", True)
        with pytest.raises(ModelNotFound):
            vault.set_blocked(ADMIN, row, "NOPE", True)
    for device_key in (key, device_keys.new()):
        with pytest.raises(DeviceBlocked):
            vault_world.register(api_key, row, device_key, serial="BLK-1")
    with vault_world.vault() as vault:
        vault.set_blocked(ADMIN, row, "BLK-1", False)
        vault.release(ADMIN, row, "BLK-1")
        with pytest.raises(ModelNotFound):
            vault.release(ADMIN, row, "NOPE")
    newcomer = device_keys.new()
    serial = vault_world.register(api_key, row, newcomer, serial="BLK-1")
    assert serial.revision == 1
    with pytest.raises(SerialInUse):  # the old key lost it
        vault_world.register(api_key, row, key, serial="BLK-1")
    with vault_world.unit() as (session, _, _brands):
        entries = AuditLog(session).query(store_ids=[row.store_id], limit=500)
        audited = [(e.action, e.target) for e in entries if e.action.startswith("device.")]
        target = f"{row.brand_id}/{row.name}/BLK-1"
        assert audited == [
            ("device.block", target), ("device.unblock", target), ("device.release", target),
        ]  # fmt: skip
        release = next(e for e in entries if e.action == "device.release")
        assert release.before == {"device-key": key.id, "revision": 0}


def test_allowlist_and_csv_import(vault_world: VaultWorld, device_keys: DeviceKeys) -> None:
    row, api_key = vault_world.model(open_enrolment=False)
    bound = device_keys.new()
    with vault_world.vault() as vault:
        added = vault.import_allowlist_csv(
            ADMIN, row, f"serial,device-key\nALW-1,\nALW-2,{bound.id}\n"
        )
        assert added == 2
        # re-importing updates, adds nothing
        assert vault.import_allowlist_csv(ADMIN, row, "serial\nALW-1\n") == 0
        assert [(e.serial, e.device_key_id) for e in vault.allowlist(row)] == [
            ("ALW-1", None), ("ALW-2", bound.id),
        ]  # fmt: skip
    for text, problem in [
        ("", "header row"),
        ("device-key\nabc\n", "header row"),
        ("serial\n\n,\n", "empty serial"),
        ("serial,device-key\nALW-3,not-a-key-id\n", "not a device-key id"),
        ("serial\nbad serial\n", "serials are"),
    ]:
        with (
            vault_world.vault() as vault,
            pytest.raises((VaultRuleViolation, InvalidSerialRequest), match=problem),
        ):
            vault.import_allowlist_csv(ADMIN, row, text)
    with pytest.raises(NotPreauthorised):
        vault_world.register(api_key, row, device_keys.new(), serial="ALW-9")
    with pytest.raises(NotPreauthorised):
        vault_world.register(api_key, row, device_keys.new())  # generated serial
    with pytest.raises(NotPreauthorised):
        vault_world.register(api_key, row, device_keys.new(), serial="ALW-2")
    vault_world.register(api_key, row, device_keys.new(), serial="ALW-1")
    vault_world.register(api_key, row, bound, serial="ALW-2")
    # key allow-listing: every entry must name the key
    keyed_row, keyed_api = vault_world.model(require_key_allowlist=True)
    with vault_world.vault() as vault:
        vault.allow(ADMIN, keyed_row, [("KEY-1", None)])
    with pytest.raises(NotPreauthorised, match="device key"):
        vault_world.register(keyed_api, keyed_row, device_keys.new(), serial="KEY-1")


def test_signing_log_search(vault_world: VaultWorld, device_keys: DeviceKeys) -> None:
    row, api_key = vault_world.model()
    other_row, other_api = vault_world.model()
    keys = [device_keys.new() for _ in range(3)]
    for i, key in enumerate(keys):
        vault_world.register(api_key, row, key, serial=f"LOG-{i}")
    vault_world.register(other_api, other_row, device_keys.new(), serial="LOG-X")
    with vault_world.vault() as vault:
        everything = vault.signing_log([row.id, other_row.id])
        assert [e.serial for e in everything] == ["LOG-0", "LOG-1", "LOG-2", "LOG-X"]
        assert [e.serial for e in vault.signing_log([row.id])] == ["LOG-0", "LOG-1", "LOG-2"]
        assert [e.serial for e in vault.signing_log([row.id], search="G-1")] == ["LOG-1"]
        by_key = vault.signing_log([row.id], search=keys[2].id[5:30])
        assert [e.serial for e in by_key] == ["LOG-2"]
        page = vault.signing_log([row.id], limit=2)
        rest = vault.signing_log([row.id], after_id=page[-1].id)
        assert [e.serial for e in page + rest] == ["LOG-0", "LOG-1", "LOG-2"]
        assert vault.signing_log([row.id], since=utcnow() + timedelta(minutes=1)) == []
        assert vault.signing_log([]) == []
    with vault_world.unit() as (session, _, _brands):
        # every device row has its signing-log entry and its serial assertion
        trust = vault_world.trust(session)
        for device in session.scalars(select(Device).where(Device.model == row.name)):
            log = session.scalars(
                select(SigningLogEntry).where(SigningLogEntry.serial == device.serial)
            ).all()
            assert [e.device_key_id for e in log] == [device.device_key_id]
            serial = trust.find("serial", (device.brand_id, device.model, device.serial))
            assert serial.header_str("device-key-sha3-384") == device.device_key_id


def test_registration_with_the_encrypted_key_store(
    encrypted_world: VaultWorld, device_keys: DeviceKeys
) -> None:
    row, api_key = encrypted_world.model()
    key = device_keys.new()
    serial = encrypted_world.register(api_key, row, key, serial="ENC-1")
    with encrypted_world.vault() as vault:
        signer = vault.active_serial_key(row)
    assert serial.sign_key_id == signer.key_id
    assert signer.keystore_name is not None
    assert encrypted_world.keystore.get(signer.keystore_name).backend == "encrypted"
    again = encrypted_world.register(api_key, row, key, serial="ENC-1")
    assert again.to_bytes() == serial.to_bytes()
