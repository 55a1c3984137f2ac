"""A vault process killed while it signs leaves no half-recorded serial.

A live ``iotstore serve`` (embedded SQLite, and PostgreSQL) gets a burst of
concurrent registrations and is SIGKILLed as soon as the first one is
answered, with the rest in flight. After a restart: every serial a device was
given is recorded; every ``devices`` row has its signing-log entry and its
serial assertion and vice versa; devices whose answer was lost retry with
their key and get a serial (the same bytes, if it had been committed).
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from benchmarks._timing import run_async
from sqlalchemy import select

from iotstore import asserts
from iotstore.assertdb.models import StoredAssertion
from iotstore.db import SqlDatabase
from iotstore.devices.models import Device, SigningLogEntry

from ._live import VAULT_PATH, DeviceKey, DeviceKeys, LiveVault, serial_request_stream

DEVICES = 48
KEYS = 8  # distinct serials may share a key: the rule binds one serial to one key


@dataclass
class Attempt:
    """One device's registration: its key, serial and what it got."""

    key: DeviceKey
    serial: str
    answer: bytes | None = None
    error: str | None = None
    statuses: list[int] = field(default_factory=list)


async def _prepare(client: httpx.AsyncClient, vault: LiveVault, attempt: Attempt) -> bytes | None:
    """``POST request-id`` and the signed serial-request stream; None if refused."""
    try:
        rid = await client.post(f"{VAULT_PATH}/request-id", headers={"api-key": vault.api_key})
    except httpx.TransportError as e:
        attempt.error = f"transport: {e!r}"
        return None
    attempt.statuses.append(rid.status_code)
    if rid.status_code != 200:
        attempt.error = rid.text
        return None
    return serial_request_stream(
        attempt.key, vault.model, rid.json()["request-id"], serial=attempt.serial
    )


async def _post_serial(
    client: httpx.AsyncClient, vault: LiveVault, attempt: Attempt, data: bytes
) -> None:
    try:
        answer = await client.post(
            f"{VAULT_PATH}/serial",
            content=data,
            headers={"api-key": vault.api_key, "Content-Type": asserts.MEDIA_TYPE},
        )
    except httpx.TransportError as e:
        attempt.error = f"transport: {e!r}"
        return
    attempt.statuses.append(answer.status_code)
    if answer.status_code == 200:
        attempt.answer = answer.content
    else:
        attempt.error = answer.text


async def _register(client: httpx.AsyncClient, vault: LiveVault, attempt: Attempt) -> None:
    data = await _prepare(client, vault, attempt)
    if data is not None:
        await _post_serial(client, vault, attempt, data)


async def _burst_then_kill(vault: LiveVault, attempts: list[Attempt]) -> None:
    async with httpx.AsyncClient(
        base_url=vault.url, timeout=60, limits=httpx.Limits(max_connections=DEVICES)
    ) as client:
        # request-ids and signed serial-requests first: during the burst this process
        # only waits, so it notices the first answer at once, however loaded the machine
        bodies = await asyncio.gather(*(_prepare(client, vault, a) for a in attempts))
        answered = asyncio.Event()

        async def post(attempt: Attempt, data: bytes | None) -> None:
            if data is not None:
                await _post_serial(client, vault, attempt, data)
            answered.set()  # a refusal also ends the wait: the assertions report it

        tasks = [asyncio.create_task(post(a, d)) for a, d in zip(attempts, bodies, strict=True)]
        await answered.wait()
        vault.kill()
        await asyncio.gather(*tasks)


async def _retry(vault: LiveVault, attempts: list[Attempt]) -> None:
    async with httpx.AsyncClient(base_url=vault.url, timeout=60) as client:
        await asyncio.gather(*(_register(client, vault, a) for a in attempts))


def _serial_of(answer: bytes) -> asserts.Serial:
    (serial,) = [a for a in asserts.decode_stream(answer) if isinstance(a, asserts.Serial)]
    return serial


def check_consistency(database_url: str) -> dict[str, asserts.Serial]:
    """devices, signing_log and serial assertions agree row for row; return serials by number."""
    database = SqlDatabase.from_url(database_url)
    try:
        with database.unit_of_work(write=False) as session:
            devices = {d.serial: d for d in session.scalars(select(Device))}
            log = list(session.scalars(select(SigningLogEntry)))
            stored = [
                asserts.decode(row.data)
                for row in session.scalars(
                    select(StoredAssertion).where(StoredAssertion.type_name == "serial")
                )
            ]
    finally:
        database.dispose()
    serials = [s for s in stored if isinstance(s, asserts.Serial)]
    assert len(serials) == len(stored)
    issued = {(s.serial, s.revision): s for s in serials}
    logged = {(e.serial, e.revision): e for e in log}
    # one log entry per issued serial revision, and nothing else
    assert len(log) == len(logged) == len(serials) == len(issued)
    assert set(logged) == set(issued)
    for (number, revision), entry in logged.items():
        serial = issued[(number, revision)]
        assert entry.device_key_id == serial.header_str("device-key-sha3-384")
        assert entry.sign_key_id == serial.sign_key_id
    # every device row: its newest serial and log entry; every serial: a device
    newest: dict[str, asserts.Serial] = {}
    for serial in serials:
        if serial.serial not in newest or serial.revision > newest[serial.serial].revision:
            newest[serial.serial] = serial
    assert set(devices) == set(newest)
    for number, device in devices.items():
        assert device.serial_revision == newest[number].revision
        assert device.device_key_id == newest[number].header_str("device-key-sha3-384")
    return newest


@pytest.fixture
def live_vault(database_url: str, tmp_path: Path) -> LiveVault:
    # SQLite: the embedded default (database in the data directory)
    url = database_url if database_url.startswith("postgresql") else None
    return LiveVault(tmp_path / "vault", database_url=url)


def test_killed_while_signing_leaves_no_half_recorded_serial(
    live_vault: LiveVault, device_keys: DeviceKeys
) -> None:
    vault = live_vault
    keys = [device_keys.new() for _ in range(KEYS)]
    attempts = [Attempt(keys[i % KEYS], f"KILL-{i:03d}") for i in range(DEVICES)]
    try:
        run_async(_burst_then_kill(vault, attempts))
        answered = [a for a in attempts if a.answer]
        interrupted = [a for a in attempts if a.answer is None]
        assert answered, [a.error for a in attempts]
        assert interrupted, "the server finished every registration before it was killed"
        # a refusal is not what a crash should look like: the lost ones lost their connection
        assert all(a.error and a.error.startswith("transport") for a in interrupted), [
            (a.statuses, a.error) for a in interrupted
        ]
        assert all(s < 500 for a in attempts for s in a.statuses)
        recorded = check_consistency(vault.resolved_database_url)
        # everything a device was told is recorded
        for a in answered:
            assert a.answer is not None
            assert recorded[a.serial].to_bytes() == _serial_of(a.answer).to_bytes()
        # the device-side view of a crash: retry with the same key
        vault.start()
        for a in interrupted:
            a.error, a.statuses = None, []
        run_async(_retry(vault, interrupted))
        for a in interrupted:
            assert a.answer is not None, (a.statuses, a.error)
            got = _serial_of(a.answer)
            assert got.header_str("device-key-sha3-384") == a.key.id
            if a.serial in recorded:  # committed before the kill, answer lost: same bytes
                assert got.to_bytes() == recorded[a.serial].to_bytes()
    finally:
        with contextlib.suppress(Exception):
            vault.stop()
    final = check_consistency(vault.resolved_database_url)
    assert sorted(final) == sorted(a.serial for a in attempts)
    assert all(s.revision == 0 for s in final.values())
