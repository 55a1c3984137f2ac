"""Refresh throughput: snap action requests per second, as a ratio to a trivial endpoint.

Run: ``.venv/bin/python -m benchmarks.refresh_bench [--snaps 10000] [--revisions 100000]
[--installed 20] [--seconds 10] [--connections 16] [--workers 1]``

A live ``iotstore serve`` (embedded default: SQLite, files) holds a store
with ``--snaps`` snaps and ``--revisions`` revisions (rows written in bulk:
the refresh path reads them, it never signs). One device with a session
sends what snapd's auto-refresh sends: a context of ``--installed`` snaps
and one refresh action each; two of them have a newer revision in their
channel, the rest are up to date. ``wrk`` drives the same server twice in
the same run: ``GET /api/v1/health`` (no database) and the refresh; the
figure is refresh req/s divided by health req/s (goal >= 0.5).

The device repeats one context, as a device whose updates are held does:
its first refresh records its inventory and the two offers; the identical
ones after it are answered without a write (an unchanged inventory is
rewritten once a minute, an identical offer recorded once per process and
minute), so the figure is the read path. A fleet's first refresh per device
also writes (``benchmarks.device_load`` measures that). The health endpoint
is the app's own (``require(PUBLIC)``: a read-only database transaction and
the thread hand-offs of its synchronous dependencies), untouched here. The
refresh does all its product work each time: the device-state, catalogue,
channel and revision reads run against the database on every request (its
hot reads on the driver's cursor, ``iotstore.db.prepared``), on the event
loop (SQLite; a thread hop cost more than the reads: see ``refresh`` in
``iotstore.web.device_api.snaps``); nothing of the answer is cached across
requests except publisher objects (30 s).

Scaling: the refresh is measured first with the installed snaps alone
(``--installed`` x 5 = 100 revisions), then after the store grows to the
full size; the figure is small/large throughput (goal <= 1.5).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import insert

from iotstore import asserts
from iotstore.deployment import Deployment
from iotstore.settings import Settings
from iotstore.snaps.models import ChannelRelease, Revision, Snap

from .vault_bench import Server, seeded_server_dir, serial_request, serving

__all__ = ["Figures", "main", "populate", "run"]

_REQS = re.compile(r"Requests/sec:\s+([0-9.]+)")
_LAT = re.compile(r"Latency\s+([0-9.]+)(us|ms|s)")


def _snap_id(i: int) -> str:
    return f"bench{i:027d}"


def populate(server: Server, first: int, count: int, revisions_each: int) -> None:
    """Snaps ``first..first+count`` in the demo store, each with ``revisions_each`` revisions;
    the newest in latest/stable and latest/beta, the one before in latest/candidate."""
    settings = Settings(data_dir=server.data_dir, base_url=server.url)
    deployment = Deployment.open(server.data_dir, settings)
    brand = str(server.info["brand_id"])
    store = str(server.info["store_id"])
    try:
        with deployment.database.unit_of_work() as session:
            snaps: list[dict[str, Any]] = []
            revs: list[dict[str, Any]] = []
            for i in range(first, first + count):
                snaps.append({"snap_id": _snap_id(i), "name": f"bench-{i}", "store_id": store,
                              "publisher_id": brand, "snap_type": "app"})  # fmt: skip
                revs.extend(
                    {
                        "snap_id": _snap_id(i), "revision": r, "blob_key": f"{i:016x}{r:016x}",
                        "size": 4096, "sha3_384": f"{i:048x}{r:048x}", "version": f"{r}.0",
                        "snap_type": "app", "base": "core22", "confinement": "strict",
                        "grade": "stable", "architectures": ["amd64"],
                        "epoch": {"read": [0], "write": [0]}, "provenance": "global-upload",
                        "snap_yaml": f"name: bench-{i}\nversion: '{r}.0'\n",
                        "details": {"summary": "bench"}, "status": "approved",
                        "uploaded_by": brand,
                    }
                    for r in range(1, revisions_each + 1)
                )  # fmt: skip
            session.execute(insert(Snap), snaps)
            for chunk in range(0, len(revs), 5000):
                session.execute(insert(Revision), revs[chunk : chunk + 5000])
            rows = session.execute(
                Revision.__table__.select()
                .with_only_columns(Revision.snap_id, Revision.revision, Revision.id)
                .where(Revision.snap_id.in_([s["snap_id"] for s in snaps]))
                .where(Revision.revision >= revisions_each - 1)
            ).all()
            ids = {(row[0], row[1]): row[2] for row in rows}
            channels = []
            for s in snaps:
                newest = ids[(s["snap_id"], revisions_each)]
                older = ids.get((s["snap_id"], revisions_each - 1), newest)
                for risk, rev_id in (("stable", newest), ("candidate", older), ("beta", newest)):
                    channels.append({"snap_id": s["snap_id"], "architecture": "amd64",
                                     "track": "latest", "risk": risk, "branch": "",
                                     "revision_id": rev_id})  # fmt: skip
            session.execute(insert(ChannelRelease), channels)
    finally:
        deployment.close()


def device_session(server: Server) -> str:
    """Register a device with the vault and open a store session, as snapd does."""
    key = asserts.generate_rsa(2048)
    api = {"api-key": str(server.info["api_key"])}
    with httpx.Client(base_url=server.url, timeout=60) as client:
        rid = client.post("/serial-vault/v1/request-id", headers=api).json()["request-id"]
        body = serial_request(key, server.model, rid, None)
        answer = client.post("/serial-vault/v1/serial", headers=api, content=body)
        serial = next(iter(asserts.decode_stream(answer.content)))
        assert isinstance(serial, asserts.Serial)
        nonce = client.post("/api/v1/snaps/auth/nonces").json()["nonce"]
        request = asserts.sign(
            "device-session-request",
            {"brand-id": serial.brand_id, "model": serial.model, "serial": serial.serial,
             "nonce": nonce, "timestamp": asserts.format_time(datetime.now(UTC))},
            key,
        )  # fmt: skip
        response = client.post(
            "/api/v1/snaps/auth/sessions",
            json={
                "device-session-request": request.to_bytes().decode(),
                "serial-assertion": serial.to_bytes().decode(),
                "model-assertion": server.model.to_bytes().decode(),
            },
        )
        response.raise_for_status()
        session: str = response.json()["macaroon"]
        return session


def refresh_body(installed: int, revisions_each: int) -> dict[str, Any]:
    """snapd's auto-refresh: every installed snap in the context, one refresh action each;
    the first two run an older revision, so two updates are offered."""
    context, actions = [], []
    for i in range(installed):
        snap_id = _snap_id(i)
        context.append({
            "snap-id": snap_id, "instance-key": snap_id,
            "revision": revisions_each - 1 if i < 2 else revisions_each,
            "tracking-channel": "latest/stable", "epoch": {"read": [0], "write": [0]},
            "refreshed-date": "2024-01-01T00:00:00Z",
        })  # fmt: skip
        actions.append({"action": "refresh", "instance-key": snap_id, "snap-id": snap_id})
    fields = ["architectures", "base", "confinement", "contact", "created-at", "description",
              "download", "epoch", "license", "name", "prices", "private", "publisher",
              "revision", "snap-id", "snap-yaml", "summary", "title", "type", "version",
              "website", "store-url", "media", "common-ids"]  # fmt: skip
    return {"context": context, "actions": actions, "fields": fields}


@dataclass
class WrkResult:
    """What wrk measured."""

    rate: float
    latency_ms: float
    non_2xx: int


def wrk(url: str, seconds: float, connections: int, script: Path | None = None) -> WrkResult:
    """Run wrk (2 threads) and parse its summary."""
    binary = shutil.which("wrk")
    if binary is None:
        raise SystemExit("wrk is not installed: apt-get install -y wrk")
    cmd = [binary, "-t", "2", "-c", str(connections), "-d", f"{max(1, round(seconds))}s",
           "--timeout", "30s", url]  # fmt: skip
    if script is not None:
        cmd += ["-s", str(script)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=seconds + 60)
    rate = float(_REQS.search(out.stdout).group(1))  # type: ignore[union-attr]
    lat = _LAT.search(out.stdout)
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}
    latency = float(lat.group(1)) * scale[lat.group(2)] if lat else 0.0
    non = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out.stdout)
    return WrkResult(rate, latency, int(non.group(1)) if non else 0)


def _lua(path: Path, body: dict[str, Any], session: str, store: str) -> Path:
    payload = json.dumps(body, separators=(",", ":"))
    headers = {
        "Content-Type": "application/json", "Accept": "application/json",
        "Snap-Device-Authorization": f'Macaroon root="{session}"', "Snap-Device-Store": store,
        "Snap-Device-Architecture": "amd64", "Snap-Device-Series": "16",
    }  # fmt: skip
    lines = ['wrk.method = "POST"', f"wrk.body = {json.dumps(payload)}"]
    lines += [f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}" for k, v in headers.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


@dataclass
class Figures:
    """The benchmark's results."""

    health: float
    refresh_small: float
    refresh_large: float
    latency_ms: float
    non_2xx: int

    @property
    def ratio(self) -> float:
        """Refresh req/s (full-size store) over health req/s."""
        return self.refresh_large / self.health

    @property
    def scaling(self) -> float:
        """Small-store over full-size-store refresh throughput."""
        return self.refresh_small / self.refresh_large


def check_answer(server: Server, session: str, body: dict[str, Any], store: str) -> None:
    """One refresh answered as expected: exactly the two updates."""
    response = httpx.post(
        f"{server.url}/v2/snaps/refresh", json=body, timeout=30,
        headers={"Snap-Device-Authorization": f'Macaroon root="{session}"',
                 "Snap-Device-Store": store, "Snap-Device-Architecture": "amd64"},
    )  # fmt: skip
    response.raise_for_status()
    results = response.json()["results"]
    assert len(results) == 2 and all(r["result"] == "refresh" for r in results), results


def run(
    base: Path, *, snaps: int, revisions: int, installed: int, seconds: float,
    connections: int, workers: int,
) -> Figures:  # fmt: skip
    """Measure; see the module docstring."""
    each = max(2, revisions // snaps)
    server = seeded_server_dir(base, None)
    store = str(server.info["store_id"])
    populate(server, 0, installed, 5)
    with serving(server, workers, base / "server.log"):
        session = device_session(server)
        small_body = refresh_body(installed, 5)
        check_answer(server, session, small_body, store)
        script = _lua(base / "refresh.lua", small_body, session, store)
        health = wrk(f"{server.url}/api/v1/health", seconds, connections)
        small = wrk(f"{server.url}/v2/snaps/refresh", seconds, connections, script)
    # grow the store (server stopped: one bulk write), then measure again
    populate(server, installed, snaps - installed, each)
    with serving(server, workers, base / "server2.log"):
        check_answer(server, session, small_body, store)
        health2 = wrk(f"{server.url}/api/v1/health", seconds, connections)
        large = wrk(f"{server.url}/v2/snaps/refresh", seconds, connections, script)
    return Figures(
        health=max(health.rate, health2.rate), refresh_small=small.rate,
        refresh_large=large.rate, latency_ms=large.latency_ms,
        non_2xx=small.non_2xx + large.non_2xx,
    )  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    """Command line entry point; prints the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--snaps", type=int, default=10_000)
    parser.add_argument("--revisions", type=int, default=100_000)
    parser.add_argument("--installed", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="refresh-bench-") as tmp:
        figures = run(
            Path(tmp), snaps=args.snaps, revisions=args.revisions, installed=args.installed,
            seconds=args.seconds, connections=args.connections, workers=args.workers,
        )  # fmt: skip
    total_revisions = args.installed * 5 + (args.snaps - args.installed) * max(
        2, args.revisions // args.snaps
    )
    print(f"store: {args.snaps} snaps, {total_revisions} revisions; {args.installed} installed")
    print(f"trivial endpoint (GET /api/v1/health): {figures.health:10.0f} req/s")
    print(f"refresh, {args.installed * 5} revisions:          {figures.refresh_small:10.0f} req/s")
    print(f"refresh, full store:                {figures.refresh_large:10.0f} req/s "
          f"(mean latency {figures.latency_ms:.1f} ms)")  # fmt: skip
    print(f"ratio refresh / trivial: {figures.ratio:.2f} (goal >= 0.5)")
    print(f"scaling small / full:    {figures.scaling:.2f} (goal <= 1.5)")
    print(f"non-2xx answers: {figures.non_2xx}")
    return 0 if figures.non_2xx == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
