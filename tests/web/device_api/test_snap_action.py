"""Snap action, info, find, downloads and assertions as a device with a session sees them."""

from __future__ import annotations

import dataclasses
import hashlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from iotstore import asserts
from iotstore.accounts.brands import BrandService
from iotstore.assertdb import trust_database
from iotstore.devices.inventory import InventoryService
from iotstore.devices.models import RefreshHistoryEntry
from tests.web._support import World

from ._device import Device, Fleet
from ._publish import Publisher
from .test_sessions import device_error

FIELDS = [
    "architectures", "base", "confinement", "contact", "created-at", "description", "download",
    "epoch", "license", "name", "prices", "private", "publisher", "revision", "snap-id",
    "snap-yaml", "summary", "title", "type", "version", "website", "store-url", "media",
    "common-ids",
]  # fmt: skip


@pytest.fixture(scope="module")
def publisher(fleet: Fleet, world: World, tmp_path_factory: pytest.TempPathFactory) -> Publisher:
    person = world.factory.person({fleet.store_id: ["admin", "publisher"]})
    return Publisher(world.deployment, person.account_id, tmp_path_factory.mktemp("snaps"))


@pytest.fixture(scope="module")
def hello(publisher: Publisher, fleet: Fleet) -> dict[str, Any]:
    """A snap with revision 1 in stable and revision 2 in beta."""
    snap_id = publisher.register(fleet.store_id, _name("hello"))
    r1 = publisher.push(snap_id, "1.0", ["stable"])
    r2 = publisher.push(snap_id, "2.0", ["beta"])
    return {"snap-id": snap_id, "name": publisher.names[snap_id], "stable": r1, "beta": r2}


_counter = iter(range(10_000))


def _name(prefix: str) -> str:
    return f"{prefix}-{next(_counter)}-{hashlib.sha256(str(id(object())).encode()).hexdigest()[:6]}"


@pytest.fixture
def device(fleet: Fleet) -> Device:
    d = fleet.register()
    assert d.open_session().status_code == 200
    return d


def action(device: Device, body: dict[str, Any], **headers: str) -> httpx.Response:
    body.setdefault("context", [])
    body.setdefault("fields", FIELDS)
    return device.client.post("/v2/snaps/refresh", json=body, headers=device.v2(**headers))


def install(name: str, **extra: Any) -> dict[str, Any]:
    return {"action": "install", "instance-key": "install-1", "name": name, "epoch": None, **extra}


def test_install_by_name_gets_stable(device: Device, hello: dict[str, Any]) -> None:
    response = action(device, {"actions": [install(hello["name"])]})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    (result,) = response.json()["results"]
    assert result["result"] == "install"
    assert result["instance-key"] == "install-1"
    assert result["snap-id"] == hello["snap-id"]
    assert result["effective-channel"] == "latest/stable"
    snap = result["snap"]
    assert snap["revision"] == hello["stable"]
    assert snap["type"] == "app"
    assert len(snap["download"]["sha3-384"]) == 96
    assert "name: " in snap["snap-yaml"]


def test_install_from_beta_and_by_revision(device: Device, hello: dict[str, Any]) -> None:
    response = action(device, {"actions": [install(hello["name"], channel="beta")]})
    assert response.json()["results"][0]["snap"]["revision"] == hello["beta"]
    response = action(device, {"actions": [install(hello["name"], revision=hello["stable"])]})
    assert response.json()["results"][0]["snap"]["revision"] == hello["stable"]


def test_unknown_name_is_an_error_result_with_name(device: Device) -> None:
    response = action(device, {"actions": [install("no-such-snap-here")]})
    (result,) = response.json()["results"]
    assert result["result"] == "error"
    assert result["name"] == "no-such-snap-here"
    assert result["error"]["code"] == "name-not-found"


def test_closed_channel_reports_where_the_snap_is(device: Device, hello: dict[str, Any]) -> None:
    response = action(device, {"actions": [install(hello["name"], revision=999)]})
    (result,) = response.json()["results"]
    assert result["error"]["code"] == "revision-not-found"
    releases = result["error"]["extra"]["releases"]
    assert {"architecture": "amd64", "channel": "latest/stable"} in releases


def context(hello: dict[str, Any], revision: int, channel: str = "latest/stable") -> dict[str, Any]:
    return {
        "snap-id": hello["snap-id"], "instance-key": hello["snap-id"], "revision": revision,
        "tracking-channel": channel, "epoch": {"read": [0], "write": [0]},
    }  # fmt: skip


def refresh(hello: dict[str, Any]) -> dict[str, Any]:
    return {"action": "refresh", "instance-key": hello["snap-id"], "snap-id": hello["snap-id"]}


def test_single_refresh_without_update_returns_current(
    device: Device, hello: dict[str, Any]
) -> None:
    body = {"context": [context(hello, hello["stable"])], "actions": [refresh(hello)]}
    (result,) = action(device, body).json()["results"]
    assert result["result"] == "refresh"
    assert result["snap"]["revision"] == hello["stable"]


def test_refresh_follows_the_tracked_channel(device: Device, hello: dict[str, Any]) -> None:
    body = {
        "context": [context(hello, hello["stable"], "latest/beta")],
        "actions": [refresh(hello)],
    }
    (result,) = action(device, body).json()["results"]
    assert result["snap"]["revision"] == hello["beta"]
    assert result["effective-channel"] == "latest/beta"


def test_refresh_after_a_new_release(device: Device, publisher: Publisher, fleet: Fleet) -> None:
    snap_id = publisher.register(fleet.store_id, _name("upd"))
    first = publisher.push(snap_id, "1")
    hello = {"snap-id": snap_id}
    body = {"context": [context(hello, first)], "actions": [refresh(hello)]}
    assert action(device, body).json()["results"][0]["snap"]["revision"] == first
    second = publisher.push(snap_id, "2")
    (result,) = action(device, body).json()["results"]
    assert result["snap"]["revision"] == second
    # the download is the file the publisher uploaded
    url = httpx.URL(result["snap"]["download"]["url"])
    data = device.client.get(url.raw_path.decode(), headers=device.v1()).content
    assert hashlib.sha3_384(data).hexdigest() == result["snap"]["download"]["sha3-384"]
    assert len(data) == result["snap"]["download"]["size"]


def test_refresh_of_a_snap_not_in_the_catalogue_is_id_not_found(device: Device) -> None:
    ghost = {"snap-id": "x" * 32}
    body = {"context": [context(ghost, 1)], "actions": [refresh(ghost)]}
    (result,) = action(device, body).json()["results"]
    assert result["error"]["code"] == "id-not-found"


def test_auto_refresh_omits_unchanged(
    device: Device, hello: dict[str, Any], publisher: Publisher, fleet: Fleet
) -> None:
    other_id = publisher.register(fleet.store_id, _name("other"))
    r = publisher.push(other_id, "1")
    other = {"snap-id": other_id}
    body = {
        "context": [context(hello, hello["stable"]), context(other, r)],
        "actions": [refresh(hello), refresh(other)],
    }
    assert action(device, body).json()["results"] == []


def test_progressive_release_buckets_per_device(fleet: Fleet, publisher: Publisher) -> None:
    snap_id = publisher.register(fleet.store_id, _name("prog"))
    old = publisher.push(snap_id, "1")
    new = publisher.push(snap_id, "2", progressive=50.0)
    got = []
    for _ in range(12):
        d = fleet.register()
        assert d.open_session().status_code == 200
        answers = set()
        for _ in range(2):  # deterministic per device
            body = {"actions": [install(publisher.names[snap_id])]}
            answers.add(action(d, body).json()["results"][0]["snap"]["revision"])
        assert len(answers) == 1
        got.append(answers.pop())
    assert set(got) == {old, new}


def test_private_store_refuses_anonymous(fleet: Fleet, hello: dict[str, Any], world: World) -> None:
    response = world.client.post(
        "/v2/snaps/refresh",
        json={"context": [], "actions": [install(hello["name"])], "fields": FIELDS},
        headers={"Snap-Device-Store": fleet.store_id, "Snap-Device-Architecture": "amd64"},
    )
    assert device_error(response, 401)["code"] == "unauthorized"


def test_viewer_token_can_download(fleet: Fleet, hello: dict[str, Any], world: World) -> None:
    viewer = world.factory.person({fleet.store_id: "viewer"})
    response = world.client.post(
        "/v2/snaps/refresh",
        json={"context": [], "actions": [{"action": "download", "instance-key": "download-1",
                                          "name": hello["name"], "epoch": None}],
              "fields": FIELDS},
        headers={"Snap-Device-Store": fleet.store_id, "Authorization": f"Bearer {viewer.token}"},
    )  # fmt: skip
    assert response.status_code == 200, response.text
    assert response.json()["results"][0]["result"] == "download"
    # snapd's UBUNTU_STORE_AUTH {"t": "macaroon"} form
    response = world.client.post(
        "/v2/snaps/refresh",
        json={"context": [], "actions": [install(hello["name"])], "fields": FIELDS},
        headers={"Snap-Device-Store": fleet.store_id, "Authorization": f"Macaroon {viewer.token}"},
    )
    assert response.json()["results"][0]["result"] == "install"


def test_person_without_role_is_refused(fleet: Fleet, hello: dict[str, Any], world: World) -> None:
    nobody = world.factory.person()
    response = world.client.post(
        "/v2/snaps/refresh",
        json={"context": [], "actions": [install(hello["name"])]},
        headers={"Snap-Device-Store": fleet.store_id, "Authorization": f"Bearer {nobody.token}"},
    )
    assert response.status_code == 404


def test_device_of_another_store_does_not_see_the_snap(
    fleet: Fleet, hello: dict[str, Any], world: World, device: Device
) -> None:
    # a brand with its own store and a snap; the demo device must not see it
    _, other_store = world.factory.brand()
    other_snap = world.factory.snap(other_store)
    with world.deployment.database.unit_of_work(write=False) as session:
        from iotstore.snaps.models import Snap  # noqa: PLC0415

        name = session.get(Snap, other_snap).name  # type: ignore[union-attr]
    (result,) = action(device, {"actions": [install(name)]}).json()["results"]
    assert result["error"]["code"] == "name-not-found"


@pytest.mark.parametrize(
    "body",
    [b"[]", b"{", b'{"actions": 5}', b'{"actions": [5]}', b'{"actions": [{"action": "x"}]}',
     b'{"context": [{"snap-id": 1}], "actions": []}',
     b'{"actions": [{"action": "install", "instance-key": "a", "name": "n", "revision": -1}]}'],
)  # fmt: skip
def test_malformed_actions_are_400(device: Device, body: bytes) -> None:
    response = device.client.post(
        "/v2/snaps/refresh",
        content=body,
        headers={**device.v2(), "Content-Type": "application/json"},
    )
    device_error(response, 400)


def test_fetch_assertions(device: Device, hello: dict[str, Any]) -> None:
    body = {
        "actions": [
            {"action": "fetch-assertions", "key": "g1", "assertions": [
                {"type": "snap-declaration", "primary-key": ["16", hello["snap-id"]]},
                {"type": "store", "primary-key": ["nope"]},
            ]},
            {"action": "fetch-assertions", "key": "g2", "assertions": [
                {"type": "snap-declaration", "primary-key": ["16", hello["snap-id"]],
                 "if-newer-than": 99},
            ]},
        ],
        "assertion-max-formats": {"snap-declaration": 5},
    }  # fmt: skip
    results = action(device, body).json()["results"]
    assert [r["key"] for r in results] == ["g1"]
    (url,) = results[0]["assertion-stream-urls"]
    got = device.client.get(httpx.URL(url).raw_path.decode(), headers=device.v1())
    assert got.status_code == 200
    assert got.headers["content-type"] == "application/x.ubuntu.assertion"
    declaration = asserts.decode(got.content)
    assert declaration.type_name == "snap-declaration"


def test_assertions_get_and_not_found_shape(
    device: Device, hello: dict[str, Any], world: World
) -> None:
    response = device.client.get(
        f"/v2/assertions/snap-declaration/16/{hello['snap-id']}?max-format=5", headers=device.v1()
    )
    assert response.status_code == 200
    response = device.client.get(
        f"/v2/assertions/store/{device.model.store}?max-format=0", headers=device.v1()
    )
    assert device_error(response, 404) == {"code": "not-found", "message": "not found"}
    # the root's own account and account-key are served too
    root = world.deployment.root
    response = device.client.get(f"/v2/assertions/account/{root.account_id}")
    assert response.status_code == 200


def test_download_ranges_and_bad_links(device: Device, hello: dict[str, Any]) -> None:
    (result,) = action(device, {"actions": [install(hello["name"])]}).json()["results"]
    path = httpx.URL(result["snap"]["download"]["url"]).raw_path.decode()
    whole = device.client.get(path)
    assert whole.status_code == 200
    part = device.client.get(path, headers={"Range": "bytes=100-"})
    assert part.status_code == 206
    assert part.content == whole.content[100:]
    assert device.client.head(path).status_code == 200
    assert (
        device.client.get(path, headers={"Range": f"bytes={len(whole.content)}-"}).status_code
        == 416
    )
    tampered = path.replace("/download/", "/download/0")
    device_error(device.client.get(tampered), 404)


def test_info_and_find(device: Device, hello: dict[str, Any]) -> None:
    response = device.client.get(
        f"/v2/snaps/info/{hello['name']}?architecture=amd64", headers=device.v2()
    )
    assert response.status_code == 200, response.text
    body = response.json()
    channels = {(e["channel"]["track"], e["channel"]["risk"]) for e in body["channel-map"]}
    assert channels == {("latest", "stable"), ("latest", "beta")}
    device_error(device.client.get("/v2/snaps/info/nothing-here", headers=device.v2()), 404)
    response = device.client.get(f"/v2/snaps/find?q={hello['name'][:5]}", headers=device.v2())
    assert response.headers["content-type"] == "application/json"
    assert hello["name"] in [r["name"] for r in response.json()["results"]]


def test_sections_names_cohorts(device: Device, hello: dict[str, Any]) -> None:
    response = device.client.get("/api/v1/snaps/sections", headers=device.v1())
    assert response.headers["content-type"] == "application/hal+json"
    response = device.client.get("/api/v1/snaps/names", headers=device.v1())
    assert response.content.startswith(b'{"_embedded": {"clickindex:package": [')
    response = device.client.post(
        "/v2/cohorts", json={"snaps": [hello["name"]]}, headers=device.v2()
    )
    key = response.json()["cohort-keys"][hello["name"]]
    body = {"actions": [install(hello["name"], **{"cohort-key": key})]}
    assert action(device, body).json()["results"][0]["result"] == "install"


def test_inventory_records_context_and_offers(
    device: Device, hello: dict[str, Any], world: World, tmp_path: Path
) -> None:
    body = {
        "context": [context(hello, hello["stable"], "latest/beta")],
        "actions": [refresh(hello)],
    }
    assert action(device, body).status_code == 200
    with world.deployment.database.unit_of_work(write=False) as session:
        from iotstore.devices.inventory import DeviceRef  # noqa: PLC0415

        ref = DeviceRef(device.serial.brand_id, device.serial.model, device.serial.serial,
                        str(device.model.store))  # fmt: skip
        row = InventoryService(session).get(ref)
        assert row is not None
        assert row.snaps == [{"snap-id": hello["snap-id"], "revision": hello["stable"],
                              "channel": "latest/beta"}]  # fmt: skip
        events = session.query(RefreshHistoryEntry).filter_by(serial=device.serial.serial).all()
        assert {(e.event, e.to_revision) for e in events} == {
            ("installed", hello["stable"]), ("offered", hello["beta"]),
        }  # fmt: skip
        csv_text = InventoryService(session).export_csv([str(device.model.store)])
        assert device.serial.serial in csv_text


def test_inventory_api_lists_and_exports(
    device: Device, hello: dict[str, Any], fleet: Fleet, world: World
) -> None:
    body = {"context": [context(hello, hello["stable"])], "actions": [refresh(hello)]}
    assert action(device, body).status_code == 200
    response = world.client.get(f"/api/v1/stores/{fleet.store_id}/inventory?limit=1000",
                                headers=fleet.admin)  # fmt: skip
    assert response.status_code == 200, response.text
    serials = {d["serial"] for d in response.json()["devices"]}
    assert device.serial.serial in serials
    csv_response = world.client.get(
        f"/api/v1/stores/{fleet.store_id}/inventory/export.csv", headers=fleet.admin
    )
    assert csv_response.headers["content-type"].startswith("text/csv")
    assert device.serial.serial in csv_response.text
    viewer = world.factory.person({fleet.store_id: "viewer"})
    denied = world.client.get(f"/api/v1/stores/{fleet.store_id}/inventory", headers=viewer.headers)
    assert denied.status_code == 403


def _validation_set(world: World, fleet: Fleet, hello: dict[str, Any], sequence: int,
                    revision: int = 0) -> asserts.Assertion:  # fmt: skip
    deployment = world.deployment
    with deployment.database.unit_of_work() as session:
        trust = trust_database(session, deployment.root.trusted)
        brands = BrandService(session, deployment.keystore, deployment.root, trust)
        brand_id = fleet.model.brand_id
        key_name = brands.key(brand_id, "models").keystore_name
        assert key_name is not None
        headers: dict[str, Any] = {
            "series": "16", "authority-id": brand_id, "account-id": brand_id,
            "name": "base-set", "sequence": str(sequence),
            "snaps": [{"name": hello["name"], "id": hello["snap-id"], "presence": "required"}],
            "timestamp": asserts.format_time(datetime.now(UTC)),
        }  # fmt: skip
        if revision:
            headers["revision"] = str(revision)
        signed = asserts.sign("validation-set", headers, deployment.keystore.signer(key_name))
        trust.add(signed)
        return signed


def test_sequence_forming_assertions(
    device: Device, hello: dict[str, Any], fleet: Fleet, world: World
) -> None:
    brand_id = fleet.model.brand_id
    base = f"/v2/assertions/validation-set/16/{brand_id}/base-set"
    if device.client.get(f"{base}?sequence=latest", headers=device.v1()).status_code == 404:
        _validation_set(world, fleet, hello, 1)
        _validation_set(world, fleet, hello, 2)
        _validation_set(world, fleet, hello, 2, revision=1)
    latest = device.client.get(f"{base}?sequence=latest&max-format=0", headers=device.v1())
    assert latest.status_code == 200, latest.text
    got = asserts.decode(latest.content)
    assert (got.header("sequence"), got.revision) == ("2", 1)
    pinned = device.client.get(f"{base}?sequence=1", headers=device.v1())
    assert asserts.decode(pinned.content).header("sequence") == "1"
    full_key = device.client.get(f"{base}/2", headers=device.v1())
    assert asserts.decode(full_key.content).revision == 1
    device_error(device.client.get(f"{base}?sequence=9", headers=device.v1()), 404)
    device_error(device.client.get(f"{base}?sequence=zero", headers=device.v1()), 400)
    # fetch-assertions with a sequence key, as snapd's bulk refresh asks
    body = {"actions": [{"action": "fetch-assertions", "key": "vs", "assertions": [
        {"type": "validation-set", "sequence-key": ["16", brand_id, "base-set"],
         "sequence": 1}]}]}  # fmt: skip
    (result,) = action(device, body).json()["results"]
    (url,) = result["assertion-stream-urls"]
    stream = device.client.get(httpx.URL(url).raw_path.decode(), headers=device.v1())
    assert asserts.decode(stream.content).header("sequence") == "1"


def test_public_store_serves_anonymous_devices(world: World, publisher: Publisher) -> None:
    _, store_id = world.factory.brand()
    world.factory.settings(store_id, private=False)
    publisher_person = world.factory.person({store_id: "publisher"})
    public = Publisher(world.deployment, publisher_person.account_id, publisher.workdir)
    snap_id = public.register(store_id, _name("pub"))
    revision = public.push(snap_id, "1")
    response = world.client.post(
        "/v2/snaps/refresh",
        json={"context": [], "actions": [install(public.names[snap_id])], "fields": FIELDS},
        headers={"Snap-Device-Store": store_id},
    )
    assert response.status_code == 200, response.text
    assert response.json()["results"][0]["snap"]["revision"] == revision


def test_unchanged_refresh_reads_state_and_skips_the_inventory_write(
    device: Device, hello: dict[str, Any], world: World
) -> None:
    from iotstore.devices.inventory import DeviceRef  # noqa: PLC0415

    ref = DeviceRef(device.serial.brand_id, device.serial.model, device.serial.serial,
                    str(device.model.store))  # fmt: skip
    with world.deployment.database.unit_of_work(write=False) as session:
        assert InventoryService(session).state(ref).inventory is None  # never seen yet
    # up to date: the single refresh answers the current revision, nothing is offered
    body = {"context": [context(hello, hello["beta"], "latest/beta")],
            "actions": [refresh(hello)]}  # fmt: skip
    seen = []
    for _ in range(2):
        (result,) = action(device, body).json()["results"]
        assert result["snap"]["revision"] == hello["beta"]
        with world.deployment.database.unit_of_work(write=False) as session:
            state = InventoryService(session).state(ref)
            assert not state.blocked and state.inventory is not None
            assert state.inventory.snaps == [
                {"snap-id": hello["snap-id"], "revision": hello["beta"], "channel": "latest/beta"}
            ]
            seen.append(state.inventory.last_seen_at)
    # the second, identical refresh within SEEN_INTERVAL wrote nothing
    assert seen[0] == seen[1]


def test_a_repeated_offer_is_recorded_once(
    device: Device, hello: dict[str, Any], world: World
) -> None:
    # a device asking again with the same context (a held refresh, a retry) is offered the
    # same revision: its history says so once, not once per request
    body = {"context": [context(hello, hello["stable"], "latest/beta")],
            "actions": [refresh(hello)]}  # fmt: skip
    for _ in range(3):
        (result,) = action(device, body).json()["results"]
        assert result["snap"]["revision"] == hello["beta"]

    def events() -> list[tuple[str, int]]:
        with world.deployment.database.unit_of_work(write=False) as session:
            rows = session.query(RefreshHistoryEntry).filter_by(serial=device.serial.serial)
            return sorted((e.event, e.to_revision) for e in rows)

    assert events() == [("installed", hello["stable"]), ("offered", hello["beta"])]
    # what changes is recorded at once: it installed the offer
    body = {"context": [context(hello, hello["beta"], "latest/beta")],
            "actions": [refresh(hello)]}  # fmt: skip
    assert action(device, body).status_code == 200
    assert events() == [
        ("installed", hello["stable"]), ("installed", hello["beta"]), ("offered", hello["beta"]),
    ]  # fmt: skip


def test_download_urls_point_at_the_listener_when_one_is_configured(
    device: Device, hello: dict[str, Any], world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    listening = dataclasses.replace(world.deployment.settings, download_listen=("0.0.0.0", 8001))
    monkeypatch.setattr(world.deployment, "settings", listening)
    (result,) = action(device, {"actions": [install(hello["name"])]}).json()["results"]
    url = httpx.URL(result["snap"]["download"]["url"])
    assert (url.scheme, url.host, url.port) == ("http", "testserver", 8001)
    # the same signed path: the main route serves it too (the listener's own tests serve it there)
    assert device.client.get(url.raw_path.decode()).status_code == 200
