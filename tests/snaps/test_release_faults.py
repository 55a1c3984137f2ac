"""A server killed (SIGKILL) in the middle of releases leaves no half-visible channel.

A live ``iotstore serve`` (SQLite, and PostgreSQL) gets a burst of concurrent
release requests through the admin API, each releasing a two-architecture
revision to three channels (six channel rows, six history rows, one audit
entry), and is killed as soon as the first one is answered. Afterwards every
snap has all of its release or none of it, and every answered release is there.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from dataclasses import dataclass
from pathlib import Path

import httpx
from benchmarks._timing import run_async
from sqlalchemy import func, insert, select

from iotstore.db import utcnow
from iotstore.deployment import Deployment
from iotstore.snaps.models import ChannelRelease, ReleaseEvent, Revision, Snap
from iotstore.snaps.services import Publishing
from iotstore.stores.audit import Actor
from iotstore.stores.models import AuditEntry
from tests.web._support import Factory, LiveServer, make_deployment

SNAPS = 96
CONCURRENCY = 16  # the rest wait in the client's queue: many are in flight at the kill
CHANNELS = ["stable", "beta", "edge"]
ARCHES = ["amd64", "arm64"]


class KillableServer(LiveServer):
    """The live server, which this test SIGKILLs."""

    def kill(self) -> None:
        """SIGKILL the server and its workers (granian runs them as child processes):
        no clean-up of any kind runs."""
        for child in _descendants(self._process.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGKILL)
        self._process.kill()
        self._process.wait(timeout=15)


def _descendants(pid: int) -> list[int]:
    """The processes below ``pid`` (from /proc), deepest first."""
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return []
    out: list[int] = []
    for child in map(int, children):
        out += [*_descendants(child), child]
    return out


@dataclass
class Attempt:
    """One release request and its answer."""

    name: str
    status: int | None = None


def _setup(deployment: Deployment) -> tuple[str, str, list[str]]:
    """A store, a publisher with a token, and snaps with one approved revision each."""
    factory = Factory(deployment)
    _, store = factory.brand()
    publisher = factory.person({store: "publisher"})
    names = [f"fault-{i:02d}-{store[-6:]}" for i in range(SNAPS)]
    actor = Actor(account_id=publisher.account_id)
    with deployment.database.unit_of_work() as session:
        pub = Publishing(
            session, keystore=deployment.keystore, root=deployment.root, blobs=deployment.blobs
        )
        snaps = [pub.snaps.register(actor, store, name) for name in names]
        session.execute(
            insert(Revision),
            [
                {"snap_id": s.snap_id, "revision": 1, "blob_key": f"k-{s.snap_id}", "size": 1,
                 "sha3_384": f"{i:096d}", "version": "1", "snap_type": "app", "base": None,
                 "confinement": "strict", "grade": "stable", "architectures": ARCHES,
                 "epoch": {"read": [0], "write": [0]}, "provenance": "global-upload",
                 "snap_yaml": "", "details": {}, "status": "approved",
                 "uploaded_by": publisher.account_id, "created_at": utcnow()}
                for i, s in enumerate(snaps)
            ],
        )  # fmt: skip
    return store, publisher.token, names


async def _release(client: httpx.AsyncClient, url: str, token: str, attempt: Attempt) -> None:
    try:
        r = await client.post(
            url.format(name=attempt.name),
            headers={"Authorization": f"Bearer {token}"},
            json={"revision": 1, "channels": CHANNELS},
        )
        attempt.status = r.status_code
    except httpx.TransportError:
        attempt.status = None


async def _burst_then_kill(
    server: KillableServer, url: str, token: str, attempts: list[Attempt]
) -> None:
    async with httpx.AsyncClient(
        base_url=server.url, timeout=60, limits=httpx.Limits(max_connections=CONCURRENCY)
    ) as client:
        tasks = [asyncio.create_task(_release(client, url, token, a)) for a in attempts]
        while not any(a.status == 200 for a in attempts):
            await asyncio.sleep(0.002)
            if all(t.done() for t in tasks):
                break
        server.kill()
        await asyncio.gather(*tasks)


def test_killed_mid_release_leaves_no_half_visible_channel(
    database_url: str, tmp_path: Path
) -> None:
    deployment = make_deployment(tmp_path / "data", database_url)
    try:
        store, token, names = _setup(deployment)
        server = KillableServer(tmp_path / "data", database_url, tmp_path / "server.log")
        url = f"/api/v1/stores/{store}/snaps/{{name}}/releases"
        attempts = [Attempt(n) for n in names]
        run_async(_burst_then_kill(server, url, token, attempts))
        answered = {a.name for a in attempts if a.status == 200}
        assert answered, f"no release was answered before the kill:\n{server.log()}"
        with deployment.database.unit_of_work(write=False) as session:
            ids = {s.name: s.snap_id for s in session.scalars(select(Snap))}
            committed = 0
            for name in names:
                sid = ids[name]
                rows = session.scalar(select(func.count()).where(ChannelRelease.snap_id == sid))
                events = session.scalar(select(func.count()).where(ReleaseEvent.snap_id == sid))
                audits = session.scalar(
                    select(func.count()).where(
                        AuditEntry.target == sid, AuditEntry.action == "snap.release"
                    )
                )
                # all of a release, or nothing of it
                assert (rows, events, audits) in {(0, 0, 0), (6, 6, 1)}, name
                if name in answered:
                    assert rows == 6, f"{name} was answered 200 but is not released"
                committed += rows == 6
        # the kill interrupted the burst: some releases never happened, none half-way
        assert committed < len(names), f"answered {len(answered)}: the kill came too late"
    finally:
        deployment.close()
