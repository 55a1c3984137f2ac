"""Device sessions over HTTP, as snapd's ``store/auth.go`` obtains and uses them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from iotstore import asserts
from iotstore.accounts.brands import BrandService
from iotstore.assertdb import trust_database
from iotstore.asserts.testing import fixed_key
from iotstore.devices.models import Device as DeviceRow
from iotstore.devices.sessions import SessionVerifier
from tests.web._support import World

from ._device import Device, Fleet


@pytest.fixture
def device(fleet: Fleet) -> Device:
    return fleet.register()


def device_error(response: httpx.Response, status: int) -> dict[str, str]:
    """snapd's error-list shape, exactly application/json."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json", response.headers
    body = response.json()
    assert set(body) == {"error-list"}, body
    first = body["error-list"][0]
    assert isinstance(first["code"], str) and isinstance(first["message"], str)
    return dict(first)


def test_nonce_then_session(device: Device) -> None:
    response = device.open_session()
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    session = response.json()["macaroon"]
    assert session and '"' not in session


def test_session_is_bound_to_serial_and_store(device: Device, world: World) -> None:
    assert device.open_session().status_code == 200
    assert device.session is not None
    identity = SessionVerifier(world.deployment.secret).verify(device.session)
    assert identity.serial == device.serial.serial
    assert identity.store_id == device.model.store
    assert identity.device_key_id == device.key.public_key.id


def test_nonce_is_single_use(device: Device) -> None:
    nonce = device.nonce()
    first = device.client.post("/api/v1/snaps/auth/sessions", json=device.session_body(nonce))
    assert first.status_code == 200, first.text
    again = device.client.post("/api/v1/snaps/auth/sessions", json=device.session_body(nonce))
    assert device_error(again, 400)["code"] == "invalid-session-request"


def test_unknown_nonce_is_refused(device: Device) -> None:
    response = device.client.post(
        "/api/v1/snaps/auth/sessions", json=device.session_body("made-up-nonce")
    )
    assert "nonce" in device_error(response, 400)["message"]


def test_request_signed_by_another_key_is_refused(device: Device, fleet: Fleet) -> None:
    other = fleet.register()
    nonce = device.nonce()
    forged = other.session_request(nonce)  # right headers? no: other's serial
    body = device.session_body(nonce, **{"device-session-request": forged.to_bytes().decode()})
    response = device.client.post("/api/v1/snaps/auth/sessions", json=body)
    assert device_error(response, 400)["code"] == "invalid-session-request"
    # same serial headers, signed by the wrong key
    wrong = asserts.sign(
        "device-session-request",
        {
            "brand-id": device.serial.brand_id, "model": device.serial.model,
            "serial": device.serial.serial, "nonce": nonce,
            "timestamp": asserts.format_time(datetime.now(UTC)),
        },
        other.key,
    )  # fmt: skip
    body = device.session_body(nonce, **{"device-session-request": wrong.to_bytes().decode()})
    response = device.client.post("/api/v1/snaps/auth/sessions", json=body)
    assert "device key" in device_error(response, 400)["message"]


def test_stale_timestamp_is_refused(device: Device) -> None:
    nonce = device.nonce()
    old = device.session_request(nonce, datetime.now(UTC) - timedelta(hours=2))
    body = device.session_body(nonce, **{"device-session-request": old.to_bytes().decode()})
    response = device.client.post("/api/v1/snaps/auth/sessions", json=body)
    assert "timestamp" in device_error(response, 400)["message"]


def test_serial_not_chaining_to_the_root_is_refused(device: Device) -> None:
    # a serial signed by an unregistered key of the brand's name
    rogue = asserts.sign(
        "serial",
        {
            "authority-id": device.serial.brand_id, "brand-id": device.serial.brand_id,
            "model": device.serial.model, "serial": device.serial.serial,
            "device-key": device.key.public_key.encoded,
            "device-key-sha3-384": device.key.public_key.id,
            "timestamp": asserts.format_time(datetime.now(UTC)),
        },
        fixed_key("vault"),
    )  # fmt: skip
    nonce = device.nonce()
    body = device.session_body(nonce, **{"serial-assertion": rogue.to_bytes().decode()})
    response = device.client.post("/api/v1/snaps/auth/sessions", json=body)
    assert "do not verify" in device_error(response, 400)["message"]


@pytest.mark.parametrize(
    "body",
    [b"", b"[]", b"{}", b'{"device-session-request": 5}', b"\xff\xfe", b'{"model-assertion": ""}'],
)
def test_malformed_bodies_are_400(device: Device, body: bytes) -> None:
    response = device.client.post(
        "/api/v1/snaps/auth/sessions",
        content=body,
        headers={"Content-Type": "application/json"},
    )
    device_error(response, 400)


def test_blocked_device_is_refused(device: Device, fleet: Fleet, world: World) -> None:
    assert device.open_session().status_code == 200
    with world.deployment.database.unit_of_work() as session:
        row = session.query(DeviceRow).filter_by(serial=device.serial.serial).one()
        row.blocked = True
    response = device.open_session()
    assert device_error(response, 403)["code"] == "device-blocked"
    # and the session it already holds stops working
    response = device.client.get(
        f"/v2/assertions/account/{device.serial.brand_id}", headers=device.v1()
    )
    assert device_error(response, 403)["code"] == "device-blocked"
    # the snap action reads the flag together with the inventory: refused the same way
    response = device.client.post(
        "/v2/snaps/refresh", json={"context": [], "actions": []}, headers=device.v2()
    )
    assert device_error(response, 403)["code"] == "device-blocked"


def test_model_of_a_store_not_here_is_refused(device: Device, fleet: Fleet, world: World) -> None:
    with world.deployment.database.unit_of_work() as session:
        trust = trust_database(session, world.deployment.root.trusted)
        brands = BrandService(session, world.deployment.keystore, world.deployment.root, trust)
        key_name = brands.key(fleet.model.brand_id, "models").keystore_name
        assert key_name is not None
        signer = world.deployment.keystore.signer(key_name)
    headers = {k: v for k, v in fleet.model.headers.items() if k not in ("sign-key-sha3-384",)}
    headers["store"] = "elsewhere"
    headers["revision"] = "7"
    moved = asserts.sign("model", dict(headers), signer)
    assert isinstance(moved, asserts.Model)
    device.model = moved
    response = device.open_session()
    assert device_error(response, 403)["code"] == "device-refused"


def test_garbage_session_asks_for_refresh(device: Device) -> None:
    device.session = "garbage"
    response = device.client.get(
        f"/v2/assertions/account/{device.serial.brand_id}", headers=device.v1()
    )
    assert device_error(response, 401)["code"] == "device-authorization-needs-refresh"
    assert "refresh_device_session=1" in response.headers["www-authenticate"]


def test_expired_session_asks_for_refresh(device: Device, world: World) -> None:
    verifier = SessionVerifier(world.deployment.secret)
    device.session = verifier.issue(
        brand_id=device.serial.brand_id, model=device.serial.model, serial=device.serial.serial,
        device_key_id=device.key.public_key.id, store_id=str(device.model.store),
        location="x", now=datetime.now(UTC) - timedelta(days=2), lifetime=timedelta(hours=1),
    )  # fmt: skip
    response = device.client.get(
        f"/v2/assertions/account/{device.serial.brand_id}", headers=device.v1()
    )
    assert "refresh_device_session=1" in response.headers["www-authenticate"]
    # snapd then gets a new session and retries: that works
    assert device.open_session().status_code == 200
    response = device.client.get(
        f"/v2/assertions/account/{device.serial.brand_id}", headers=device.v1()
    )
    assert response.status_code == 200, response.text


def test_session_for_another_store_header_asks_for_refresh(device: Device) -> None:
    assert device.open_session().status_code == 200
    headers = device.v1(**{"X-Ubuntu-Store": "some-other-store"})
    response = device.client.get(
        f"/v2/assertions/account/{device.serial.brand_id}", headers=headers
    )
    assert "refresh_device_session=1" in response.headers["www-authenticate"]


def test_tampered_session_is_refused(device: Device, tmp_path: Path) -> None:
    assert device.open_session().status_code == 200
    assert device.session is not None
    device.session = device.session[:-4] + (
        "AAAA" if not device.session.endswith("AAAA") else "BBBB"
    )
    response = device.client.get(
        f"/v2/assertions/account/{device.serial.brand_id}", headers=device.v1()
    )
    device_error(response, 401)
