"""Load test of the device store: many devices refreshing while a publisher releases.

Run: ``.venv/bin/python -m benchmarks.device_load [--devices 200] [--seconds 60]
[--think 1.0] [--release-every 3] [--mode both|scale-out|embedded]``

Scale-out shape: two ``iotstore serve`` processes (one data directory for the
keys and secret) share one PostgreSQL server and one S3 store (SeaweedFS);
devices are spread over both. Embedded default: one process, SQLite and
files. Each simulated device registers with the vault, opens a store session
and then loops like snapd's auto-refresh (sped up by ``--think``): a snap
action with its context; when a new revision is offered it downloads it
(following the presigned redirect on S3), checks the SHA3-384, fetches the
``snap-revision`` assertion and checks it names that revision. Meanwhile a
publisher pushes and releases a new revision every ``--release-every``
seconds, through the publishing services on the same database and blobs.

Checks: no 5xx, no stale answer (a refresh that started after a release
committed must not be offered an older revision), every download and
assertion consistent with the answer. Prints p50/p99 latency of the snap
action and the request rate, and exits non-zero when a check fails.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from iotstore import asserts
from iotstore.accounts.services import AccountService
from iotstore.deployment import Deployment
from iotstore.settings import Settings
from iotstore.stores.audit import Actor, AuditLog
from iotstore.stores.services import MembershipService, StoreService

from ._timing import run_async
from .vault_bench import (
    Server,
    free_port,
    percentile,
    seeded_server_dir,
    serial_request,
    serve_process,
)

__all__ = ["Stats", "main", "run"]

SNAP = "load-app"


@dataclass
class Stats:
    """What the devices saw."""

    latencies: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    stale: list[str] = field(default_factory=list)
    mismatches: list[str] = field(default_factory=list)
    downloads: int = 0
    releases: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def server_errors(self) -> int:
        """Count of 5xx answers."""
        return sum(n for s, n in self.statuses.items() if s >= 500)

    def ok(self) -> bool:
        """Whether every check passed."""
        return not (self.server_errors or self.stale or self.mismatches or self.errors)


@dataclass
class Releases:
    """Revisions the publisher committed, with when the commit finished (monotonic)."""

    committed: list[tuple[float, int]] = field(default_factory=list)

    def newest_before(self, when: float) -> int:
        """The newest revision committed before ``when`` (0 if none)."""
        return max((rev for t, rev in self.committed if t < when), default=0)


def _env(data_dir: Path, url: str, extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IOTSTORE_")}
    env.update({"IOTSTORE_BASE_URL": url, "IOTSTORE_DATA_DIR": str(data_dir), **extra})
    return env


@contextlib.contextmanager
def serve(data_dir: Path, url: str, extra: dict[str, str], log: Path) -> Iterator[None]:
    """One ``iotstore serve`` process on ``url`` until the block ends."""
    port = url.rsplit(":", 1)[1]
    args = ["--data-dir", str(data_dir), "--port", port, "--workers", "1", "--no-demo"]
    with serve_process(args, _env(data_dir, url, extra), url, log):
        yield


class Publisher:
    """Pushes and releases revisions of the load snap (same database and blobs as the servers)."""

    def __init__(self, server: Server, extra: dict[str, str], work: Path) -> None:
        from tests.web.device_api._publish import Publisher as Helper  # noqa: PLC0415

        env = _env(server.data_dir, server.url, extra)
        settings = Settings.from_env(server.data_dir, env)
        self.deployment = Deployment.open(server.data_dir, settings)
        store = str(server.info["store_id"])
        with self.deployment.database.unit_of_work() as session:
            account = AccountService(session).create(
                "load-publisher@example.com", "Load publisher", email_verified=True
            )
            audit = AuditLog(session)
            MembershipService(session, StoreService(session, audit), audit).grant(
                Actor(None, None, "load"), store, account.id, "publisher"
            )
            account_id = account.id
        self.helper = Helper(self.deployment, account_id, work)
        self.snap_id = self.helper.register(store, SNAP)
        self.version = 0

    def release(self) -> int:
        """A new revision in latest/stable; returns its number once committed."""
        self.version += 1
        return self.helper.push(self.snap_id, f"1.{self.version}")

    def close(self) -> None:
        """Release the deployment."""
        self.deployment.close()


@dataclass
class Device:
    """A simulated device: its session and what it runs."""

    url: str
    store: str
    session: str
    snap_id: str = ""
    revision: int = 0

    def headers(self, v2: bool = True) -> dict[str, str]:
        """snapd's header family with the session."""
        if v2:
            return {"Snap-Device-Authorization": f'Macaroon root="{self.session}"',
                    "Snap-Device-Store": self.store, "Snap-Device-Architecture": "amd64",
                    "Snap-Device-Series": "16"}  # fmt: skip
        return {"X-Device-Authorization": f'Macaroon root="{self.session}"',
                "X-Ubuntu-Store": self.store, "X-Ubuntu-Architecture": "amd64"}  # fmt: skip


async def enrol(
    client: httpx.AsyncClient, server: Server, url: str, key: asserts.RSAPrivateKey
) -> Device:
    """Register with the vault and open a store session, as snapd does."""
    api = {"api-key": str(server.info["api_key"])}
    rid = (await client.post(f"{url}/serial-vault/v1/request-id", headers=api)).json()
    body = serial_request(key, server.model, rid["request-id"], None)
    answer = await client.post(f"{url}/serial-vault/v1/serial", headers=api, content=body)
    answer.raise_for_status()
    serial = next(iter(asserts.decode_stream(answer.content)))
    assert isinstance(serial, asserts.Serial)
    nonce = (await client.post(f"{url}/api/v1/snaps/auth/nonces")).json()["nonce"]
    request = asserts.sign(
        "device-session-request",
        {"brand-id": serial.brand_id, "model": serial.model, "serial": serial.serial,
         "nonce": nonce, "timestamp": asserts.format_time(datetime.now(UTC))},
        key,
    )  # fmt: skip
    response = await client.post(
        f"{url}/api/v1/snaps/auth/sessions",
        json={"device-session-request": request.to_bytes().decode(),
              "serial-assertion": serial.to_bytes().decode(),
              "model-assertion": server.model.to_bytes().decode()},
    )  # fmt: skip
    response.raise_for_status()
    return Device(url, str(server.info["store_id"]), response.json()["macaroon"])


async def device_loop(
    client: httpx.AsyncClient, device: Device, snap_id: str, deadline: float, think: float,
    releases: Releases, stats: Stats,
) -> None:  # fmt: skip
    """Refresh until ``deadline``; download and check every new revision."""
    while time.monotonic() < deadline:
        if device.revision:
            body: dict[str, Any] = {
                "context": [{"snap-id": snap_id, "instance-key": snap_id,
                             "revision": device.revision, "tracking-channel": "latest/stable",
                             "epoch": {"read": [0], "write": [0]}}],
                "actions": [{"action": "refresh", "instance-key": snap_id, "snap-id": snap_id}],
            }  # fmt: skip
        else:
            body = {"context": [], "actions": [
                {"action": "install", "instance-key": "install-1", "name": SNAP, "epoch": None}
            ]}  # fmt: skip
        started = time.monotonic()
        expected = releases.newest_before(started)
        try:
            response = await client.post(
                f"{device.url}/v2/snaps/refresh", json=body, headers=device.headers()
            )
        except httpx.HTTPError as e:
            stats.errors.append(f"refresh: {type(e).__name__}: {e}")
            await asyncio.sleep(think)
            continue
        stats.latencies.append(time.monotonic() - started)
        stats.statuses[response.status_code] = stats.statuses.get(response.status_code, 0) + 1
        if response.status_code == 200:
            for result in response.json()["results"]:
                if result.get("result") == "error":
                    if expected:
                        stats.stale.append(f"error although revision {expected} was out")
                    continue
                snap = result["snap"]
                if snap["revision"] < expected:
                    stats.stale.append(f"offered {snap['revision']}, {expected} was out")
                if snap["revision"] != device.revision:
                    await download(client, device, snap, stats)
                    device.revision = snap["revision"]
        await asyncio.sleep(think)


async def download(
    client: httpx.AsyncClient, device: Device, snap: dict[str, Any], stats: Stats
) -> None:
    """Download an offered revision and its snap-revision; check both against the answer."""
    response = await client.get(
        snap["download"]["url"], headers=device.headers(v2=False), follow_redirects=True
    )
    stats.downloads += 1
    if response.status_code != 200:
        stats.mismatches.append(f"download answered {response.status_code}")
        return
    digest = hashlib.sha3_384(response.content).hexdigest()
    if digest != snap["download"]["sha3-384"] or len(response.content) != snap["download"]["size"]:
        stats.mismatches.append(f"downloaded bytes differ from revision {snap['revision']}")
        return
    key = base64.urlsafe_b64encode(bytes.fromhex(digest)).rstrip(b"=").decode()
    answer = await client.get(
        f"{device.url}/v2/assertions/snap-revision/{key}?max-format=0",
        headers=device.headers(v2=False),
    )
    if answer.status_code != 200:
        stats.mismatches.append(f"snap-revision answered {answer.status_code}")
        return
    assertion = asserts.decode(answer.content)
    if assertion.header("snap-revision") != str(snap["revision"]):
        stats.mismatches.append("snap-revision names another revision")


async def publisher_loop(
    publisher: Publisher, every: float, deadline: float, releases: Releases, stats: Stats
) -> None:
    """Release a new revision every ``every`` seconds until ``deadline``."""
    while time.monotonic() + every < deadline:
        await asyncio.sleep(every)
        revision = await asyncio.to_thread(publisher.release)
        releases.committed.append((time.monotonic(), revision))
        stats.releases += 1


async def drive(
    server: Server, urls: list[str], publisher: Publisher, devices: int, seconds: float,
    think: float, every: float,
) -> Stats:  # fmt: skip
    """Enrol the devices, then run them and the publisher side by side."""
    stats = Stats()
    releases = Releases()
    first = await asyncio.to_thread(publisher.release)
    releases.committed.append((time.monotonic(), first))
    keys = [asserts.generate_rsa(2048) for _ in range(8)]
    limits = httpx.Limits(max_connections=devices + 10, max_keepalive_connections=devices + 10)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:
        semaphore = asyncio.Semaphore(16)

        async def one(i: int) -> Device:
            async with semaphore:
                return await enrol(client, server, urls[i % len(urls)], keys[i % len(keys)])

        fleet = await asyncio.gather(*(one(i) for i in range(devices)))
        deadline = time.monotonic() + seconds
        await asyncio.gather(
            publisher_loop(publisher, every, deadline, releases, stats),
            *(device_loop(client, d, publisher.snap_id, deadline, think, releases, stats)
              for d in fleet),
        )  # fmt: skip
    return stats


def run(
    base: Path, *, mode: str, devices: int, seconds: float, think: float, every: float
) -> Stats:
    """One load run (``mode`` scale-out or embedded); see the module docstring."""
    extra: dict[str, str] = {}
    cleanup: list[Any] = []
    try:
        if mode == "scale-out":
            from tests._pg import start_server  # noqa: PLC0415

            from iotstore.blobstore.testing import join_seaweedfs  # noqa: PLC0415

            pg = start_server()
            cleanup.append(pg)
            database_url = pg.create_database()
            s3 = join_seaweedfs()
            cleanup.append(s3)
            bucket = f"load-{os.getpid()}-{int(time.time())}"
            s3.store(bucket)
            extra = {
                "IOTSTORE_DATABASE_URL": database_url, "IOTSTORE_BLOB_BACKEND": "s3",
                "IOTSTORE_S3_ENDPOINT_URL": s3.endpoint_url, "IOTSTORE_S3_BUCKET": bucket,
                "IOTSTORE_S3_ACCESS_KEY": s3.access_key, "IOTSTORE_S3_SECRET_KEY": s3.secret_key,
            }  # fmt: skip
            server = seeded_server_dir(base, database_url)
            urls = [server.url, f"http://127.0.0.1:{free_port()}"]
        else:
            server = seeded_server_dir(base, None)
            urls = [server.url]
        publisher = Publisher(server, extra, base / "snaps")
        cleanup.append(publisher)
        with contextlib.ExitStack() as stack:
            for i, url in enumerate(urls):
                stack.enter_context(serve(server.data_dir, url, extra, base / f"server{i}.log"))
            return run_async(drive(server, urls, publisher, devices, seconds, think, every))
    finally:
        for item in reversed(cleanup):
            with contextlib.suppress(Exception):
                (getattr(item, "close", None) or getattr(item, "leave", None) or item.stop)()


def report(title: str, stats: Stats, seconds: float) -> None:
    """Print one run's figures."""
    lat = sorted(stats.latencies)
    print(f"== {title}")
    print(f"snap actions: {len(lat)} ({len(lat) / seconds:.1f}/s); statuses {stats.statuses}")
    if lat:
        print(f"latency p50 {percentile(lat, 50) * 1000:.0f} ms, "
              f"p99 {percentile(lat, 99) * 1000:.0f} ms, max {lat[-1] * 1000:.0f} ms")  # fmt: skip
    print(f"releases {stats.releases}, downloads {stats.downloads}; 5xx {stats.server_errors}, "
          f"stale {len(stats.stale)}, mismatches {len(stats.mismatches)}, "
          f"client errors {len(stats.errors)}")  # fmt: skip
    for problem in (stats.stale + stats.mismatches + stats.errors)[:5]:
        print(f"  {problem}")


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--devices", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--think", type=float, default=1.0)
    parser.add_argument("--release-every", type=float, default=3.0)
    parser.add_argument("--mode", choices=("both", "scale-out", "embedded"), default="both")
    args = parser.parse_args(argv)
    modes = ["scale-out", "embedded"] if args.mode == "both" else [args.mode]
    ok = True
    for mode in modes:
        with tempfile.TemporaryDirectory(prefix="device-load-") as tmp:
            stats = run(
                Path(tmp), mode=mode, devices=args.devices, seconds=args.seconds,
                think=args.think, every=args.release_every,
            )  # fmt: skip
        title = ("two servers, PostgreSQL, S3 (SeaweedFS)" if mode == "scale-out"
                 else "embedded default: one server, SQLite, files")  # fmt: skip
        report(f"{title}: {args.devices} devices, {args.seconds:.0f} s", stats, args.seconds)
        ok = ok and stats.ok()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
