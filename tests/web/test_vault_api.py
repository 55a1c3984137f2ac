"""The serial vault's admin API over HTTP, and the device service's error shapes.

Each test makes its own brand and store in a deployment shared by the module
(both database backends), registers models through the API and drives
registrations through ``/serial-vault/v1`` in-process. Every refusal must be a
4xx with the audience's error body, never a 500.
"""

from __future__ import annotations

import csv
import io
import sqlite3
import threading
import time
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from iotstore import asserts

from ._support import Factory, Person, World, error_of, unique

VAULT = "/serial-vault/v1"
SNAPS = [
    {"name": "pc-kernel", "id": "pYVQrBcKmBa0mZ4CCN7ExT6jH8rY1hza", "type": "kernel",
     "default-channel": "22/stable"},
    {"name": "pc", "id": "UqFziVZDHLSyO3TqSWgNBoAdHbLI4dAH", "type": "gadget",
     "default-channel": "22/stable"},
    {"name": "core22", "id": "amcUKQILKXHHTlmSa7NMdnXSx02dNeeT", "type": "base",
     "default-channel": "latest/stable"},
]  # fmt: skip


def model_json(name: str, store: str, **extra: Any) -> dict[str, Any]:
    """Headers of a model for ``{"key": ..., "headers": ...}``."""
    return {
        "model": name, "architecture": "amd64", "base": "core22", "grade": "signed",
        "store": store, "snaps": SNAPS, **extra,
    }  # fmt: skip


@dataclass
class Brand:
    """A brand's store, its administrator, and a held ``models`` key."""

    brand_id: str
    store_id: str
    admin: Person
    client: httpx.Client

    def url(self, path: str = "") -> str:
        return f"/api/v1/stores/{self.store_id}{path}"

    def post(
        self, path: str, *, headers: dict[str, str] | None = None, **kwargs: Any
    ) -> httpx.Response:
        merged = {**self.admin.headers, **(headers or {})}
        return self.client.post(self.url(path), headers=merged, **kwargs)

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.client.get(self.url(path), headers=self.admin.headers, **kwargs)

    def model(self, name: str | None = None, **policy: bool) -> tuple[str, str]:
        """A model with a 2048-bit serial key and an API key: (model name, API key)."""
        name = name or unique("m")
        made = self.post(
            "/models", json={"key": "models", "headers": model_json(name, self.store_id)}
        )
        assert made.status_code == 201, made.text
        assert self.post(f"/models/{name}/serial-keys", json={"bits": 2048}).status_code == 201
        key = self.post(f"/models/{name}/api-keys", json={"label": "line 1"})
        assert key.status_code == 201, key.text
        if policy:
            patched = self.client.patch(
                self.url(f"/models/{name}"), headers=self.admin.headers,
                json={k.replace("_", "-"): v for k, v in policy.items()},
            )  # fmt: skip
            assert patched.status_code == 200, patched.text
        return name, str(key.json()["api-key"])

    def assertion(self, name: str) -> asserts.Model:
        model = asserts.decode(self.get(f"/models/{name}").json()["assertion"].encode())
        assert isinstance(model, asserts.Model)
        return model


@pytest.fixture
def brand(module_world: World) -> Brand:
    brand_id, store_id = module_world.factory.brand()
    admin = module_world.factory.person({store_id: "admin"})
    made = module_world.client.post(
        f"/api/v1/stores/{store_id}/brand/keys", headers=admin.headers,
        json={"name": "models", "bits": 2048},
    )  # fmt: skip
    assert made.status_code == 201, made.text
    return Brand(brand_id, store_id, admin, module_world.client)


@pytest.fixture(scope="module")
def device_key() -> asserts.RSAPrivateKey:
    return asserts.generate_rsa(2048)


def serial_request(
    client: httpx.Client,
    api_key: str,
    model: asserts.Model,
    key: asserts.RSAPrivateKey,
    serial: str | None = None,
) -> bytes:
    """What a device posts to ``serial``: a fresh request-id's serial-request, then the model."""
    rid = client.post(f"{VAULT}/request-id", headers={"api-key": api_key})
    assert rid.status_code == 200, rid.text
    headers: dict[str, object] = {
        "brand-id": model.brand_id, "model": model.model,
        "request-id": rid.json()["request-id"], "device-key": key.public_key.encoded,
    }  # fmt: skip
    if serial:
        headers["serial"] = serial
    return asserts.encode_stream([asserts.sign("serial-request", headers, key), model])


def post_serial(client: httpx.Client, api_key: str, stream: bytes) -> httpx.Response:
    """``POST serial`` with the stream, as snapd sends it."""
    return client.post(
        f"{VAULT}/serial", content=stream,
        headers={"api-key": api_key, "Content-Type": asserts.MEDIA_TYPE},
    )  # fmt: skip


def register(
    client: httpx.Client,
    api_key: str,
    model: asserts.Model,
    key: asserts.RSAPrivateKey,
    serial: str | None = None,
) -> httpx.Response:
    """A device registration through the device service: request-id, then serial."""
    return post_serial(client, api_key, serial_request(client, api_key, model, key, serial))


def vault_error(response: httpx.Response, status: int) -> str:
    """Assert a device-service refusal snapd can show; return its message."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"  # exactly, or snapd ignores it
    body = response.json()
    assert body["success"] is False
    assert body["message"] and body["error_list"][0]["message"] == body["message"]
    assert body["error_list"][0]["code"] == body["error_code"]
    return str(body["message"])


# -- models ------------------------------------------------------------------------------


def test_register_a_model_from_json_headers(brand: Brand) -> None:
    made = brand.post(
        "/models", json={"key": "models", "headers": model_json("kiosk", brand.store_id)}
    )
    assert made.status_code == 201, made.text
    details = made.json()
    assert details["model"] == "kiosk" and details["brand-id"] == brand.brand_id
    assert details["store-id"] == brand.store_id and details["revision"] == 0
    assert details["grade"] == "signed"
    assert details["device-service-url"] == f"http://testserver{VAULT}/"
    assert details["serial-keys"] == [] and details["api-keys"] == []
    model = asserts.decode(details["assertion"].encode())
    assert isinstance(model, asserts.Model) and model.authority_id == brand.brand_id
    assert brand.get("/models").json()["items"][0]["model"] == "kiosk"
    assert brand.get("/models/kiosk").json()["assertion"] == details["assertion"]


def test_register_a_model_signed_by_the_brand_itself(brand: Brand) -> None:
    """As after ``snap create-key`` + ``snap export-key`` + ``snap sign``."""
    own = asserts.generate_rsa(2048)
    request = asserts.sign(
        "account-key-request",
        {"account-id": brand.brand_id, "name": "offline",
         "public-key-sha3-384": own.public_key.id,
         "since": asserts.format_time(asserts.parse_time("2024-01-01T00:00:00Z", "since"))},
        own, own.public_key.encoded,
    )  # fmt: skip
    registered = brand.post(
        "/brand/keys/register", content=request.to_bytes(),
        headers={"Content-Type": asserts.MEDIA_TYPE},
    )  # fmt: skip
    assert registered.status_code == 201, registered.text
    headers = {
        "type": "model", "authority-id": brand.brand_id, "brand-id": brand.brand_id,
        "series": "16", "timestamp": "2025-01-01T00:00:00Z",
        **model_json("uploaded", brand.store_id),
    }  # fmt: skip
    signed = asserts.sign("model", headers, own)
    upload = brand.post(
        "/models", content=signed.to_bytes(), headers={"Content-Type": asserts.MEDIA_TYPE}
    )
    assert upload.status_code == 201, upload.text
    assert upload.json()["assertion"].encode() == signed.to_bytes()
    # the same, newer revision, as JSON {"assertion": ...}
    newer = asserts.sign("model", {**headers, "revision": "1"}, own)
    again = brand.post("/models", json={"assertion": newer.to_bytes().decode()})
    assert again.status_code == 201, again.text
    assert again.json()["revision"] == 1
    # an older revision is refused
    stale = brand.post(
        "/models", content=signed.to_bytes(), headers={"Content-Type": asserts.MEDIA_TYPE}
    )
    assert error_of(stale, 400)["field"] == "assertion"


@pytest.mark.parametrize(
    ("content", "content_type", "field"),
    [
        (b"type: model\nnot really", asserts.MEDIA_TYPE, "assertion"),
        (b"", asserts.MEDIA_TYPE, "assertion"),
        (b"\x00\xff garbage", asserts.MEDIA_TYPE, "assertion"),
        (b"type: model\n", "text/plain", None),
        (b"<xml/>", "application/xml", None),
        (b'{"headers": {"model": "x"}}', "application/json", None),
        (b'{"assertion": 5}', "application/json", None),
        (b'{"assertion": "garbage"}', "application/json", "assertion"),
        (b'{"key": "models", "headers": {"model": "x"}, "extra": 1}', "application/json", None),
        (b'{"key": "models", "headers": {"model": "BAD NAME"}}', "application/json", "headers"),
    ],
    ids=[
        "truncated",
        "empty",
        "binary",
        "text-plain",
        "xml",
        "headers-without-key",
        "assertion-not-a-string",
        "assertion-garbage",
        "unknown-member",
        "invalid-headers",
    ],
)
def test_bad_model_uploads_are_4xx(
    brand: Brand, content: bytes, content_type: str, field: str | None
) -> None:
    response = brand.post("/models", content=content, headers={"Content-Type": content_type})
    error = error_of(response, 400)
    if field is not None:
        assert error.get("field") == field, error


def test_oversize_model_uploads_are_refused(brand: Brand) -> None:
    # over the vault's own limit (256 KiB) but under the server's body limit
    big = b"type: model\n" + b"x" * (300 * 1024)
    error = error_of(
        brand.post("/models", content=big, headers={"Content-Type": asserts.MEDIA_TYPE}), 400
    )
    assert "too large" in error["message"]
    # over the server's body limit: refused before it is read
    huge = b"x" * (2 * 1024 * 1024)
    error_of(brand.post("/models", content=huge, headers={"Content-Type": asserts.MEDIA_TYPE}), 413)


def test_model_store_must_be_this_store_or_below(brand: Brand, module_world: World) -> None:
    product = module_world.factory.substore(brand.store_id)
    # the brand store registers a model of its product store: fine
    below = brand.post("/models", json={"key": "models", "headers": model_json("prod", product)})
    assert below.status_code == 201, below.text
    # through the product store, a model of the parent store is refused
    up = module_world.client.post(
        f"/api/v1/stores/{product}/models", headers=brand.admin.headers,
        json={"key": "models", "headers": model_json("up", brand.store_id)},
    )  # fmt: skip
    assert error_of(up, 400)["field"] == "store"
    _, foreign = module_world.factory.brand()
    other = brand.post("/models", json={"key": "models", "headers": model_json("f", foreign)})
    assert error_of(other, 400)["field"] == "store"
    unknown = brand.get("/models/no-such-model")
    error_of(unknown, 404)


# -- keys and policy -----------------------------------------------------------------------


def test_serial_keys_rotate_and_disable(brand: Brand) -> None:
    name, _ = brand.model()
    (first,) = brand.get(f"/models/{name}").json()["serial-keys"]
    only = brand.post(
        f"/models/{name}/serial-keys/{first['name']}/disable", json={"confirm": first["name"]}
    )
    assert "only active serial key" in error_of(only, 409)["message"]
    error_of(brand.post(f"/models/{name}/serial-keys", json={"bits": 1000}), 400)
    rotated = brand.post(f"/models/{name}/serial-keys", json={"bits": 2048})
    assert rotated.status_code == 201, rotated.text
    wrong = brand.post(
        f"/models/{name}/serial-keys/{first['name']}/disable", json={"confirm": "no"}
    )
    assert error_of(wrong, 400)["field"] == "confirm"
    disabled = brand.post(
        f"/models/{name}/serial-keys/{first['name']}/disable", json={"confirm": first["name"]}
    )
    assert disabled.status_code == 200, disabled.text
    assert disabled.json()["state"] == "disabled"
    keys = brand.get(f"/models/{name}").json()["serial-keys"]
    assert [(k["key-id"], k["active"]) for k in keys] == [
        (rotated.json()["key-id"], True), (first["key-id"], False),
    ]  # fmt: skip


def test_api_keys_are_shown_once_and_revocable(
    brand: Brand, device_key: asserts.RSAPrivateKey
) -> None:
    name, secret = brand.model()
    details = brand.get(f"/models/{name}")
    assert secret not in details.text
    (listed,) = details.json()["api-keys"]
    assert listed == {
        "id": listed["id"],
        "label": "line 1",
        "prefix": secret[:12],
        "revoked": False,
    }
    ok = brand.client.post(f"{VAULT}/request-id", headers={"api-key": secret})
    assert ok.status_code == 200 and ok.json()["success"] is True
    revoked = brand.client.delete(
        brand.url(f"/models/{name}/api-keys/{listed['id']}"), headers=brand.admin.headers
    )
    assert revoked.status_code == 204
    assert brand.get(f"/models/{name}").json()["api-keys"][0]["revoked"] is True
    refused = brand.client.post(f"{VAULT}/request-id", headers={"api-key": secret})
    assert vault_error(refused, 400) == "unknown or revoked API key"
    error_of(
        brand.client.delete(
            brand.url(f"/models/{name}/api-keys/999999"), headers=brand.admin.headers
        ),
        404,
    )


def test_policy_patch(brand: Brand) -> None:
    name, _ = brand.model()
    patched = brand.client.patch(
        brand.url(f"/models/{name}"), headers=brand.admin.headers,
        json={"open-enrolment": False, "allow-reregistration": True},
    )  # fmt: skip
    assert patched.status_code == 200, patched.text
    assert patched.json()["open-enrolment"] is False
    assert patched.json()["allow-reregistration"] is True
    assert patched.json()["require-key-allowlist"] is False
    for bad in ({"open-enrolment": "maybe"}, {"nonsense": True}):
        error_of(
            brand.client.patch(brand.url(f"/models/{name}"), headers=brand.admin.headers, json=bad),
            400,
        )


# -- allow-list ------------------------------------------------------------------------------


def test_allowlist_csv_upload_and_json(brand: Brand, device_key: asserts.RSAPrivateKey) -> None:
    name, api_key = brand.model(open_enrolment=False)
    upload = brand.post(
        f"/models/{name}/allowlist",
        content=f"serial,device-key\nOK-1,\nOK-2,{device_key.public_key.id}\n",
        headers={"Content-Type": "text/csv; charset=utf-8"},
    )
    assert upload.status_code == 200, upload.text
    assert upload.json() == {"added": 2}
    more = brand.post(f"/models/{name}/allowlist", json={"entries": [{"serial": "OK-3"}]})
    assert more.json() == {"added": 1}
    listed = brand.get(f"/models/{name}/allowlist").json()["items"]
    assert listed == [
        {"serial": "OK-1", "device-key": None},
        {"serial": "OK-2", "device-key": device_key.public_key.id},
        {"serial": "OK-3", "device-key": None},
    ]
    for content, content_type in [
        ("device-key\nabc\n", "text/csv"),
        ("serial\n\n,x\n", "text/csv"),
        ("serial,device-key\nOK-4,short\n", "text/csv"),
        ('{"entries": [{"serial": "has space"}]}', "application/json"),
        ('{"entries": "no"}', "application/json"),
        ("serial\nOK-5\n", "text/plain"),
    ]:
        bad = brand.post(
            f"/models/{name}/allowlist", content=content, headers={"Content-Type": content_type}
        )
        error_of(bad, 400)
    model = brand.assertion(name)
    refused = register(brand.client, api_key, model, device_key, serial="NOT-LISTED")
    assert "not pre-authorised" in vault_error(refused, 403)
    assert register(brand.client, api_key, model, device_key, serial="OK-2").status_code == 200


# -- signing log, devices, block/release -----------------------------------------------------


def test_signing_log_and_devices(brand: Brand) -> None:
    name, api_key = brand.model()
    model = brand.assertion(name)
    keys = [asserts.generate_rsa(2048) for _ in range(3)]
    for i, key in enumerate(keys):
        answer = register(brand.client, api_key, model, key, serial=f"LOG-{i}")
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"] == asserts.MEDIA_TYPE
    log = brand.get("/signing-log").json()
    assert [e["serial"] for e in log["items"]] == ["LOG-0", "LOG-1", "LOG-2"]
    entry = log["items"][0]
    assert set(entry) == {
        "id", "at", "brand-id", "model", "serial", "device-key-sha3-384", "revision",
        "sign-key-sha3-384", "address",
    }  # fmt: skip
    assert entry["device-key-sha3-384"] == keys[0].public_key.id and entry["revision"] == 0
    assert entry["address"] == "127.0.0.1"
    found = brand.get("/signing-log", params={"search": keys[1].public_key.id[:20]}).json()
    assert [e["serial"] for e in found["items"]] == ["LOG-1"]
    first = brand.get("/signing-log", params={"limit": 2}).json()
    rest = brand.get("/signing-log", params={"limit": 2, "after": first["next"]}).json()
    assert [e["serial"] for e in first["items"] + rest["items"]] == ["LOG-0", "LOG-1", "LOG-2"]
    exported = brand.get("/signing-log", params={"format": "csv"})
    assert exported.status_code == 200
    assert exported.headers["content-type"].startswith("text/csv")
    assert "attachment" in exported.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert [r["serial"] for r in rows] == ["LOG-0", "LOG-1", "LOG-2"]
    assert rows[2]["device-key-sha3-384"] == keys[2].public_key.id
    error_of(brand.get("/signing-log", params={"format": "xml"}), 400)
    error_of(brand.get("/signing-log", params={"limit": 0}), 400)
    devices = brand.get("/devices").json()["items"]
    assert [(d["serial"], d["blocked"], d["revision"]) for d in devices] == [
        ("LOG-0", False, 0), ("LOG-1", False, 0), ("LOG-2", False, 0),
    ]  # fmt: skip
    assert [
        d["serial"] for d in brand.get("/devices", params={"search": "G-2"}).json()["items"]
    ] == ["LOG-2"]


def test_block_unblock_release(brand: Brand, device_key: asserts.RSAPrivateKey) -> None:
    name, api_key = brand.model()
    model = brand.assertion(name)
    assert register(brand.client, api_key, model, device_key, serial="DEV-1").status_code == 200
    path = f"/models/{name}/devices/DEV-1"
    assert brand.post(f"{path}/block").json() == {"serial": "DEV-1", "blocked": True}
    assert brand.get("/devices").json()["items"][0]["blocked"] is True
    refused = register(brand.client, api_key, model, device_key, serial="DEV-1")
    assert vault_error(refused, 403) == "device 'DEV-1' is blocked"
    assert brand.post(f"{path}/unblock").json() == {"serial": "DEV-1", "blocked": False}
    assert brand.post(f"{path}/release").json() == {"serial": "DEV-1", "released": True}
    newcomer = asserts.generate_rsa(2048)
    again = register(brand.client, api_key, model, newcomer, serial="DEV-1")
    assert again.status_code == 200, again.text
    serial = next(a for a in asserts.decode_stream(again.content) if isinstance(a, asserts.Serial))
    assert serial.revision == 1
    error_of(brand.post(f"/models/{name}/devices/NOPE/block"), 404)
    error_of(brand.post(f"/models/{name}/devices/NOPE/release"), 404)
    audit = brand.get("/audit", params={"limit": 500}).json()["items"]
    actions = [e["action"] for e in audit if e["action"].startswith("device.")]
    assert actions == ["device.block", "device.unblock", "device.release"]


# -- permissions -----------------------------------------------------------------------------


def _vault_calls(name: str) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        ("GET", "/models", {}),
        ("POST", "/models", {"json": {"key": "models", "headers": model_json("x", "y")}}),
        ("GET", f"/models/{name}", {}),
        ("PATCH", f"/models/{name}", {"json": {"open-enrolment": False}}),
        ("POST", f"/models/{name}/serial-keys", {"json": {"bits": 2048}}),
        ("POST", f"/models/{name}/api-keys", {"json": {}}),
        ("DELETE", f"/models/{name}/api-keys/1", {}),
        ("GET", f"/models/{name}/allowlist", {}),
        ("POST", f"/models/{name}/allowlist", {"json": {"entries": []}}),
        ("GET", "/signing-log", {}),
        ("GET", "/signing-log?format=csv", {}),
        ("GET", "/devices", {}),
        ("POST", f"/models/{name}/devices/X/block", {}),
        ("POST", f"/models/{name}/devices/X/unblock", {}),
        ("POST", f"/models/{name}/devices/X/release", {}),
    ]


def test_non_admins_are_denied(brand: Brand, module_world: World) -> None:
    factory: Factory = module_world.factory
    name, _ = brand.model()
    publisher = factory.person({brand.store_id: "publisher"})
    viewer = factory.person({brand.store_id: "viewer"})
    _, other_store = factory.brand()
    stranger = factory.person({other_store: "admin"})
    callers: list[tuple[dict[str, str], set[int]]] = [
        ({}, {401}),
        (publisher.headers, {403}),
        (viewer.headers, {403}),
        (stranger.headers, {403, 404}),
    ]
    for method, path, kwargs in _vault_calls(name):
        for headers, statuses in callers:
            response = brand.client.request(method, brand.url(path), headers=headers, **kwargs)
            error_of(response, statuses)
    # nothing was changed by the refused calls
    assert brand.get(f"/models/{name}").json()["open-enrolment"] is True


# -- the device service's error shape ----------------------------------------------------------


def test_device_service_refusals_have_snapds_shape(
    brand: Brand, device_key: asserts.RSAPrivateKey
) -> None:
    name, api_key = brand.model()
    model = brand.assertion(name)
    client = brand.client
    assert vault_error(client.post(f"{VAULT}/request-id"), 400) == "missing api-key header"
    too_long = client.post(f"{VAULT}/request-id", headers={"api-key": "k" * 500})
    assert vault_error(too_long, 400) == "unknown or revoked API key"
    garbage = client.post(
        f"{VAULT}/serial", content=b"garbage",
        headers={"api-key": api_key, "Content-Type": asserts.MEDIA_TYPE},
    )  # fmt: skip
    assert "cannot decode" in vault_error(garbage, 400)
    huge = client.post(
        f"{VAULT}/serial", content=b"x" * (300 * 1024),
        headers={"api-key": api_key, "Content-Type": asserts.MEDIA_TYPE},
    )  # fmt: skip
    assert "too large" in vault_error(huge, 400)
    ok = register(client, api_key, model, device_key, serial="SHAPE-1")
    assert ok.status_code == 200, ok.text
    types = [a.type_name for a in asserts.decode_stream(ok.content)]
    assert types == ["serial", "account-key", "account"]
    version = client.get(f"{VAULT}/version")
    assert version.status_code == 200 and version.json()["version"] == "1"


def test_lean_device_service_paths_keep_routing_and_limits(brand: Brand, world: World) -> None:
    # request-id and serial skip the router (LeanPaths) for POST only: other
    # methods are still routed, and the app's body limit still applies first
    client = brand.client
    for path in ("request-id", "serial"):
        assert client.get(f"{VAULT}/{path}").status_code == 405
    limit = world.app.state.settings.max_body_bytes
    over = client.post(
        f"{VAULT}/serial", content=b"x" * (limit + 1),
        headers={"Content-Type": asserts.MEDIA_TYPE},
    )  # fmt: skip
    assert over.status_code == 413
    assert over.json()["success"] is False  # snapd's shape


def test_serial_signing_postponed_with_202_while_the_key_store_is_unavailable(
    world: World, device_key: asserts.RSAPrivateKey
) -> None:
    # A real fault: another process holds the key database's exclusive lock, so
    # the key store cannot read the serial key (KeyStorageError after its busy
    # timeout). snapd's 202 contract: same serial-request again later, same request-id.
    brand_id, store_id = world.factory.brand()
    admin = world.factory.person({store_id: "admin"})
    made = world.client.post(
        f"/api/v1/stores/{store_id}/brand/keys", headers=admin.headers,
        json={"name": "models", "bits": 2048},
    )  # fmt: skip
    assert made.status_code == 201, made.text
    b = Brand(brand_id, store_id, admin, world.client)
    name, api_key = b.model()
    model = b.assertion(name)
    assert register(world.client, api_key, model, asserts.generate_rsa(2048)).status_code == 200

    serial_number = unique("sn")
    stream = serial_request(world.client, api_key, model, device_key, serial_number)

    locker = sqlite3.connect(world.deployment.data_dir / "keys.sqlite", timeout=0)
    try:
        locker.execute("BEGIN EXCLUSIVE")
        pending = post_serial(world.client, api_key, stream)
    finally:
        locker.rollback()
        locker.close()
    assert pending.status_code == 202, pending.text
    assert pending.headers["content-type"] == "application/json"
    assert pending.json()["error_code"] == "signing-pending"
    log = b.get("/signing-log", params={"search": serial_number}).json()["items"]
    assert log == []  # nothing half-written

    # the key store is back: the very same request (same request-id) now gets its serial
    answer = post_serial(world.client, api_key, stream)
    assert answer.status_code == 200, answer.text
    serial = next(iter(asserts.decode_stream(answer.content)))
    assert isinstance(serial, asserts.Serial) and serial.serial == serial_number
    # and it stays single use
    again = post_serial(world.client, api_key, stream)
    assert "request-id" in vault_error(again, 400)


def test_a_serial_checked_while_another_writer_holds_the_database_waits_and_is_issued(
    brand: Brand, module_world: World
) -> None:
    # POST serial's checks run on the event loop (WAL reads take no lock); the signing
    # thread's write waits for the writer, as any unit of work would.
    database = module_world.deployment.database
    if not database.embedded:
        pytest.skip("the event loop checks only on SQLite")
    name, api_key = brand.model()
    model = brand.assertion(name)
    assert register(brand.client, api_key, model, asserts.generate_rsa(2048)).status_code == 200
    serial_number = unique("sn")
    stream = serial_request(brand.client, api_key, model, asserts.generate_rsa(2048), serial_number)
    path = database.engine.url.database
    assert path is not None
    writer = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    writer.execute("BEGIN IMMEDIATE")
    timer = threading.Timer(0.5, writer.execute, ("ROLLBACK",))
    timer.start()
    try:
        started = time.monotonic()
        answer = post_serial(brand.client, api_key, stream)
        waited = time.monotonic() - started
    finally:
        timer.join()
        writer.close()
    assert answer.status_code == 200, answer.text
    assert waited >= 0.4  # it waited for the writer's lock, and was not refused
    serial = next(iter(asserts.decode_stream(answer.content)))
    assert isinstance(serial, asserts.Serial) and serial.serial == serial_number
    log = brand.get("/signing-log", params={"search": serial_number}).json()["items"]
    assert len(log) == 1
