"""Which path a registration takes: statements alone on driver units, or in full.

A registrar without the assertion database (``trust=None``) serves the common
case and raises NeedsAssertions where the database is needed; register_device
then runs the registration again in full. Either way the device gets the same
answer and the database the same rows (SQLite: PostgreSQL always runs in full).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import func, select

from iotstore import asserts
from iotstore.db import sqlite_url
from iotstore.devices.models import DeviceModel, SigningLogEntry
from iotstore.devices.registration import DeviceRegistrar, NeedsAssertions, SerialPlan
from iotstore.keystore import MemoryKeyStore
from iotstore.web.device_service import register_device

from ._live import DeviceKey, DeviceKeys, serial_request_stream
from .conftest import Backend, VaultWorld, make_backend


def _register(world: VaultWorld, api_key: str, data: bytes) -> asserts.Serial:
    registration = register_device(
        world.database, world.trust, world.keystore, api_key, data, "192.0.2.9"
    )
    return registration.serial


def _check_without_assertions(world: VaultWorld, api_key: str, data: bytes) -> SerialPlan:
    with world.database.driver_unit(write=False) as connection:
        return DeviceRegistrar(connection, world.keystore, None).check_registration(api_key, data)


def _stream(
    world: VaultWorld, api_key: str, row: DeviceModel, key: DeviceKey, serial: str
) -> bytes:
    return serial_request_stream(
        key, world.model_assertion(row), world.request_id(api_key), serial=serial
    )


def _issued(world: VaultWorld, row: DeviceModel) -> int:
    with world.unit() as (session, _, _brands):
        count = session.scalar(
            select(func.count(SigningLogEntry.id)).where(SigningLogEntry.model == row.name)
        )
    return int(count or 0)


@pytest.fixture(scope="module")
def sqlite_backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backend]:
    """The embedded default only: driver units serve SQLite (PostgreSQL runs in full)."""
    path = tmp_path_factory.mktemp("paths") / "vault.sqlite"
    backend = make_backend(sqlite_url(path), MemoryKeyStore())
    yield backend
    backend.close()


@pytest.fixture
def sqlite_world(sqlite_backend: Backend) -> VaultWorld:
    world = sqlite_backend.world()
    assert world.database.embedded
    return world


def test_the_first_registration_of_a_model_loads_its_signing_material_in_full(
    sqlite_world: VaultWorld, device_keys: DeviceKeys
) -> None:
    world = sqlite_world
    row, api_key = world.model()
    first = _stream(world, api_key, row, device_keys.new(), "PATH-1")
    with pytest.raises(NeedsAssertions):
        _check_without_assertions(world, api_key, first)  # nothing cached for this model yet
    assert _register(world, api_key, first).serial == "PATH-1"
    # now cached: the next device's checks need statements only
    second = _stream(world, api_key, row, device_keys.new(), "PATH-2")
    plan = _check_without_assertions(world, api_key, second)
    assert (plan.serial, plan.device_id, plan.revision) == ("PATH-2", None, 0)
    assert _register(world, api_key, second).serial == "PATH-2"
    assert _issued(world, row) == 2


def test_a_retry_is_answered_from_the_stored_serial_in_full(
    sqlite_world: VaultWorld, device_keys: DeviceKeys
) -> None:
    world = sqlite_world
    row, api_key = world.model()
    key = device_keys.new()
    first = _register(world, api_key, _stream(world, api_key, row, key, "PATH-R"))
    retry = _stream(world, api_key, row, key, "PATH-R")
    with pytest.raises(NeedsAssertions):  # the stored serial is read from the assertions
        _check_without_assertions(world, api_key, retry)
    assert _register(world, api_key, retry).to_bytes() == first.to_bytes()
    assert _issued(world, row) == 1


def test_refusals_are_the_same_on_either_path(
    sqlite_world: VaultWorld, device_keys: DeviceKeys
) -> None:
    world = sqlite_world
    row, api_key = world.model()
    _register(world, api_key, _stream(world, api_key, row, device_keys.new(), "PATH-X"))
    taken = _stream(world, api_key, row, device_keys.new(), "PATH-X")
    with pytest.raises(Exception) as lean:
        _check_without_assertions(world, api_key, taken)
    with pytest.raises(Exception) as full, world.vault() as vault:
        vault.check_registration(api_key, taken)
    assert type(lean.value) is type(full.value) and str(lean.value) == str(full.value)
    assert "another device key" in str(lean.value)
