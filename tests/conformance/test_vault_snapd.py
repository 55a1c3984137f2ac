"""A device running snapd's registration code against a live ``iotstore serve``.

Every registration here is done by ``conformance/devicereg`` (snapd 2.57.6's
``asserts`` code: key encoding, serial-request signing, stream decoding, the
device's assertion database trusting our root). A success means snapd's own
database accepted the serial with the chain the vault sent; a refusal must be
a 4xx whose message snapd can show (``Content-Type`` exactly
``application/json``, ``message``).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest

from tests.devices._live import DeviceKey, DeviceKeys, LiveVault

from .devicereg import DeviceReg, Registration

pytestmark = pytest.mark.snapd

UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")


@pytest.fixture(scope="session")
def devicereg() -> DeviceReg:
    return DeviceReg()


@pytest.fixture(scope="module")
def keys() -> DeviceKeys:
    """snapd-sized (4096-bit) device keys, generated in the background from the start."""
    pool = DeviceKeys()
    pool.prefetch(16)
    return pool


@pytest.fixture(scope="module")
def vault(keys: DeviceKeys, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveVault]:
    server = LiveVault(tmp_path_factory.mktemp("vault"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def admin(vault: LiveVault) -> Iterator[httpx.Client]:
    with vault.admin() as client:
        yield client


@dataclass
class Device:
    """A device of the demo model: its key on disk and how it registers."""

    vault: LiveVault
    devicereg: DeviceReg
    key: DeviceKey
    key_path: Path

    def register(self, **kwargs: Any) -> Registration:
        options: dict[str, Any] = {
            "url": self.vault.device_service_url,
            "model": self.vault.model_seed,
            "trusted": self.vault.root_assert,
            "api_key": self.vault.api_key,
            "key": self.key_path,
            **kwargs,
        }
        return self.devicereg.register(**options)


NewDevice = Callable[[], Device]


@pytest.fixture
def new_device(
    vault: LiveVault, devicereg: DeviceReg, keys: DeviceKeys, tmp_path: Path
) -> NewDevice:
    """Makes devices of the demo model, each with a fresh 4096-bit key."""
    count = 0

    def make() -> Device:
        nonlocal count
        count += 1
        key = keys.new()
        return Device(vault, devicereg, key, key.write(tmp_path / f"device-{count}.pem"))

    return make


def assert_registered(reg: Registration, vault: LiveVault) -> None:
    """snapd's database accepted the serial (the server log is shown otherwise)."""
    assert reg.ok, f"{reg.error}\n{reg}\nserver log:\n{vault.log()}"
    assert reg.stage == "done" and reg.status == 200, reg


def assert_refused(reg: Registration, status: int, message: str | re.Pattern[str]) -> None:
    """A refusal snapd can show: 4xx, exactly application/json, the expected message."""
    assert not reg.ok, reg
    assert 400 <= reg.status < 500, reg
    assert reg.status == status, reg
    assert reg.content_type == "application/json", reg
    if isinstance(message, re.Pattern):
        assert message.search(reg.message), reg
    else:
        assert reg.message == message, reg
    reason = {
        "request-id": "cannot retrieve request-id for making a request for a serial",
        "serial": "cannot deliver device serial request",
    }[reg.stage]
    assert reg.error == f"{reason}: {reg.message}", reg


def test_device_registers_and_its_database_accepts_the_serial(
    vault: LiveVault, devicereg: DeviceReg, admin: httpx.Client, tmp_path: Path
) -> None:
    # as snapd: a fresh 4096-bit key, no proposed serial, the model in the stream
    reg = devicereg.register(
        url=vault.device_service_url, model=vault.model_seed, trusted=vault.root_assert,
        api_key=vault.api_key, save_key=tmp_path / "device.pem",
    )  # fmt: skip
    assert_registered(reg, vault)
    assert reg.stage == "done" and reg.status == 200
    assert reg.content_type == "application/x.ubuntu.assertion"
    # one serial plus its signer's chain, so the device needs no store
    assert reg.stream == ["serial", "account-key", "account"]
    assert reg.model_in_database
    assert UUID_RE.fullmatch(reg.serial), reg.serial
    assert reg.serial_revision == 0
    # the signing log records it, with the device key and the serial key
    log = admin.get(
        f"/api/v1/stores/{vault.store_id}/signing-log", params={"search": reg.serial}
    ).json()["items"]
    assert [(e["serial"], e["device-key-sha3-384"], e["sign-key-sha3-384"]) for e in log] == [
        (reg.serial, reg.device_key_id, reg.serial_sign_key_id)
    ]
    # a device that lost the answer retries with the same key and serial: same bytes
    again = devicereg.register(
        url=vault.device_service_url, model=vault.model_seed, trusted=vault.root_assert,
        api_key=vault.api_key, key=tmp_path / "device.pem", serial=reg.serial,
    )  # fmt: skip
    assert_registered(again, vault)
    assert again.serial_assertion == reg.serial_assertion


def test_proposed_serial_and_body_serial(vault: LiveVault, new_device: NewDevice) -> None:
    proposed = new_device().register(serial="SN-PROPOSED-0001")
    assert_registered(proposed, vault)
    assert proposed.serial == "SN-PROPOSED-0001"
    # Canonical's convention: "serial: X" in registration.body
    from_body = new_device().register(body="serial: SN-BODY-0001\nbatch: 7\n")
    assert_registered(from_body, vault)
    assert from_body.serial == "SN-BODY-0001"


def test_bad_api_key_is_refused_with_its_message(new_device: NewDevice) -> None:
    device = new_device()
    assert_refused(device.register(api_key="iotk_not-a-key"), 400, "unknown or revoked API key")
    assert_refused(device.register(api_key=None), 400, "missing api-key header")
    # a good key for the request-id, a bad one for the serial
    refused = device.register(serial_api_key="iotk_not-a-key")
    assert refused.stage == "serial"
    assert_refused(refused, 400, "unknown or revoked API key")


def test_unknown_model_is_refused(vault: LiveVault, new_device: NewDevice) -> None:
    device = new_device()
    # a model the brand signed but never registered, with the demo model's API key
    ghost = device.register(model=vault.ghost_model)
    assert ghost.stage == "serial"
    assert_refused(
        ghost, 400, re.compile(r"this API key is for \S+/demo-model, not \S+/ghost-model")
    )
    # the serial-request names the demo model but the stream carries another one
    mixed = device.register(stream_model=vault.ghost_model)
    assert_refused(mixed, 400, "the model in the stream is not the request's model")


def test_replayed_request_id_is_refused(vault: LiveVault, new_device: NewDevice) -> None:
    first = new_device().register()
    assert_registered(first, vault)
    replay = new_device().register(request_id=first.request_id)
    assert replay.stage == "serial"
    assert_refused(replay, 400, "request-id is invalid, expired or already used")
    assert_refused(
        new_device().register(request_id="made-up-nonce"),
        400,
        "request-id is invalid, expired or already used",
    )


def test_blocked_device_is_refused(
    vault: LiveVault, new_device: NewDevice, admin: httpx.Client
) -> None:
    device = new_device()
    first = device.register(serial="SN-BLOCK-0001")
    assert_registered(first, vault)
    path = f"/api/v1/stores/{device.vault.store_id}/models/demo-model/devices/SN-BLOCK-0001"
    blocked = admin.post(f"{path}/block")
    assert blocked.status_code == 200, blocked.text
    assert blocked.json() == {"serial": "SN-BLOCK-0001", "blocked": True}
    assert_refused(
        device.register(serial="SN-BLOCK-0001"), 403, "device 'SN-BLOCK-0001' is blocked"
    )
    # a new key cannot take a blocked serial either
    assert_refused(
        new_device().register(serial="SN-BLOCK-0001"), 403, "device 'SN-BLOCK-0001' is blocked"
    )
    assert admin.post(f"{path}/unblock").status_code == 200
    back = device.register(serial="SN-BLOCK-0001")
    assert_registered(back, vault)
    assert back.serial_assertion == first.serial_assertion


def test_duplicate_serial_with_a_new_key_then_release(
    vault: LiveVault, new_device: NewDevice, admin: httpx.Client
) -> None:
    original, replacement = new_device(), new_device()
    first = original.register(serial="SN-DUP-0001")
    assert_registered(first, vault)
    assert_refused(
        replacement.register(serial="SN-DUP-0001"),
        409,
        "serial 'SN-DUP-0001' is registered to another device key; an administrator can release it",
    )
    # an administrator frees the serial: the next key gets it, as revision 1
    released = admin.post(
        f"/api/v1/stores/{original.vault.store_id}/models/demo-model/devices/SN-DUP-0001/release"
    )
    assert released.status_code == 200, released.text
    second = replacement.register(serial="SN-DUP-0001")
    assert_registered(second, vault)
    assert second.serial_revision == first.serial_revision + 1 == 1
    assert second.device_key_id == replacement.key.id != first.device_key_id
    # and the serial is now bound to the new key
    assert_refused(
        original.register(serial="SN-DUP-0001"),
        409,
        "serial 'SN-DUP-0001' is registered to another device key; an administrator can release it",
    )


@dataclass(frozen=True)
class GatedModel:
    """A second model of the demo brand with open enrolment off."""

    seed: Path
    api_key: str


@pytest.fixture(scope="module")
def gated_model(
    vault: LiveVault, admin: httpx.Client, tmp_path_factory: pytest.TempPathFactory
) -> GatedModel:
    store = vault.store_id
    snaps = [dict(snap) for snap in vault.model.header("snaps")]  # type: ignore[union-attr,arg-type]
    made = admin.post(
        f"/api/v1/stores/{store}/models",
        json={"key": "models", "headers": {
            "model": "gated-model", "architecture": "amd64", "base": "core22",
            "grade": "signed", "store": store, "snaps": snaps,
        }},
    )  # fmt: skip
    assert made.status_code == 201, made.text
    base = f"/api/v1/stores/{store}/models/gated-model"
    assert admin.post(f"{base}/serial-keys", json={"bits": 2048}).status_code == 201
    api_key = admin.post(f"{base}/api-keys", json={"label": "factory"}).json()["api-key"]
    policy = admin.patch(base, json={"open-enrolment": False})
    assert policy.status_code == 200, policy.text
    assert policy.json()["open-enrolment"] is False
    seed = tmp_path_factory.mktemp("gated") / "gated-model.seed"
    seed.write_bytes(made.json()["assertion"].encode() + b"\n" + vault.model_chain)
    return GatedModel(seed, api_key)


def test_only_preauthorised_serials_register(
    gated_model: GatedModel, new_device: NewDevice, admin: httpx.Client, vault: LiveVault
) -> None:
    bound, other = new_device(), new_device()
    csv_text = f"serial,device-key\nGATE-0001,\nGATE-0002,{bound.key.id}\n"
    upload = admin.post(
        f"/api/v1/stores/{vault.store_id}/models/gated-model/allowlist",
        content=csv_text,
        headers={"Content-Type": "text/csv"},
    )
    assert upload.status_code == 200, upload.text
    assert upload.json() == {"added": 2}

    def register(device: Device, serial: str | None) -> Registration:
        return device.register(model=gated_model.seed, api_key=gated_model.api_key, serial=serial)

    assert_refused(
        register(other, "GATE-9999"), 403, "serial 'GATE-9999' is not pre-authorised for this model"
    )
    # no proposed serial: a generated one cannot be on the list
    assert_refused(register(other, None), 403, re.compile(r"is not pre-authorised for this model"))
    # a key-bound entry refuses every other key
    assert_refused(
        register(other, "GATE-0002"), 403, "this device key is not pre-authorised for that serial"
    )
    listed = register(other, "GATE-0001")
    assert_registered(listed, vault)
    assert listed.model_in_database
    key_bound = register(bound, "GATE-0002")
    assert_registered(key_bound, vault)
    # the demo model's API key does not open the gated model
    assert_refused(
        bound.register(model=gated_model.seed, serial="GATE-0001"),
        400,
        re.compile(r"this API key is for \S+/demo-model, not \S+/gated-model"),
    )


class _Poll202(BaseHTTPRequestHandler):
    """A proxy that answers the first serial POST with 202 and forwards the rest."""

    upstream: ClassVar[str] = ""
    serial_bodies: ClassVar[list[bytes]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if self.path.endswith("/serial"):
            type(self).serial_bodies.append(body)
            if len(self.serial_bodies) == 1:
                self.send_response(202)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
        skip = {"host", "content-length", "connection"}
        headers = {k: v for k, v in self.headers.items() if k.lower() not in skip}
        answer = httpx.post(self.upstream + self.path, content=body, headers=headers, timeout=60)
        self.send_response(answer.status_code)
        self.send_header("Content-Type", answer.headers.get("content-type", ""))
        self.send_header("Content-Length", str(len(answer.content)))
        self.end_headers()
        self.wfile.write(answer.content)

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_202_is_polled_with_the_same_serial_request(
    vault: LiveVault, new_device: NewDevice
) -> None:
    class Handler(_Poll202):
        upstream = vault.url
        serial_bodies: ClassVar[list[bytes]] = []

    proxy = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=proxy.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{proxy.server_address[1]}/serial-vault/v1/"
        reg = new_device().register(url=url, poll_delay=0.2)
    finally:
        proxy.shutdown()
        proxy.server_close()
        thread.join(timeout=10)
    assert_registered(reg, vault)
    assert reg.polls == 1
    bodies = Handler.serial_bodies
    assert len(bodies) == 2 and bodies[0] == bodies[1]
