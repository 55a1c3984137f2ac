"""A private store's snaps stay hidden in ``v2/assertions`` too: their declaration and
revision assertions reach only those who may see the snap."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import pytest

from iotstore import asserts
from iotstore.snaps.models import Revision
from tests.web._support import World

from ._device import Device, Fleet
from ._publish import Publisher
from .test_sessions import device_error

_names = iter(range(10_000))


def _name(prefix: str) -> str:
    return f"{prefix}-{next(_names)}-{hashlib.sha256(prefix.encode()).hexdigest()[:4]}"


@pytest.fixture(scope="module")
def publisher(fleet: Fleet, world: World, tmp_path_factory: pytest.TempPathFactory) -> Publisher:
    person = world.factory.person({fleet.store_id: ["admin", "publisher"]})
    return Publisher(world.deployment, person.account_id, tmp_path_factory.mktemp("snaps"))


def _paths(world: World, publisher: Publisher, store_id: str) -> dict[str, Any]:
    """A released snap of ``store_id``: the URLs of its declaration and revision assertion."""
    snap_id = publisher.register(store_id, _name("secret"))
    number = publisher.push(snap_id, "1.0", ["stable"])
    with world.deployment.database.unit_of_work(write=False) as session:
        rev = session.query(Revision).filter_by(snap_id=snap_id, revision=number).one()
        digest = base64.urlsafe_b64encode(bytes.fromhex(rev.sha3_384)).rstrip(b"=").decode()
    return {
        "snap-id": snap_id,
        "declaration": f"/v2/assertions/snap-declaration/16/{snap_id}",
        "revision": f"/v2/assertions/snap-revision/{digest}",
    }


@pytest.fixture(scope="module")
def secret(world: World, publisher: Publisher, fleet: Fleet) -> dict[str, Any]:
    return _paths(world, publisher, fleet.store_id)


@pytest.fixture
def device(fleet: Fleet) -> Device:
    d = fleet.register()
    assert d.open_session().status_code == 200
    return d


def _both(world: World, secret: dict[str, Any], headers: dict[str, str]) -> list[int]:
    return [
        world.client.get(secret[kind], headers=headers).status_code
        for kind in ("declaration", "revision")
    ]


def test_a_device_of_the_store_gets_both(
    world: World, secret: dict[str, Any], device: Device
) -> None:
    for headers in (device.v1(), device.v2()):
        for kind, type_name in (("declaration", "snap-declaration"), ("revision", "snap-revision")):
            got = world.client.get(secret[kind], headers=headers)
            assert got.status_code == 200, got.text
            assertion = asserts.decode(got.content)
            assert assertion.type_name == type_name
            assert assertion.headers["snap-id"] == secret["snap-id"]


def test_anonymous_callers_are_told_it_does_not_exist(
    world: World, secret: dict[str, Any], fleet: Fleet
) -> None:
    for headers in ({}, {"Snap-Device-Store": fleet.store_id}, {"X-Ubuntu-Store": fleet.store_id}):
        for kind in ("declaration", "revision"):
            response = world.client.get(secret[kind], headers=headers)
            assert response.status_code == 404, (headers, kind)
            assert device_error(response, 404) == {"code": "not-found", "message": "not found"}


def test_a_viewer_gets_both_and_a_stranger_neither(
    world: World, secret: dict[str, Any], fleet: Fleet
) -> None:
    viewer = world.factory.person({fleet.store_id: "viewer"})
    stranger = world.factory.person()
    store = {"Snap-Device-Store": fleet.store_id}
    assert _both(world, secret, {**store, "Authorization": f"Macaroon {viewer.token}"}) == [200] * 2
    # a person with a role in the snap's store, without naming the store
    assert _both(world, secret, {"Authorization": f"Bearer {viewer.token}"}) == [200] * 2
    assert _both(world, secret, {"Authorization": f"Bearer {stranger.token}"}) == [404] * 2


def test_a_device_of_another_store_does_not_see_it(
    world: World, publisher: Publisher, device: Device
) -> None:
    _, other_store = world.factory.brand()
    owner = world.factory.person({other_store: "publisher"})
    theirs = _paths(
        world, Publisher(world.deployment, owner.account_id, publisher.workdir), other_store
    )
    assert _both(world, theirs, device.v2()) == [404] * 2


def test_a_public_stores_snaps_are_served_to_anyone(world: World, publisher: Publisher) -> None:
    _, store_id = world.factory.brand()
    world.factory.settings(store_id, private=False)
    owner = world.factory.person({store_id: "publisher"})
    public = _paths(
        world, Publisher(world.deployment, owner.account_id, publisher.workdir), store_id
    )
    assert _both(world, public, {}) == [200] * 2


@pytest.mark.parametrize("key", ["not-base64!", "AAAA", "A" * 64 + "B"])
def test_malformed_revision_keys_are_not_found_or_400(world: World, key: str) -> None:
    response = world.client.get(f"/v2/assertions/snap-revision/{key}")
    assert response.status_code in (400, 404)
