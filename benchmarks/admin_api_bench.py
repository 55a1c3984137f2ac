"""Admin API read throughput with 10,000 stores and 100,000 memberships.

Run: ``.venv/bin/python -m benchmarks.admin_api_bench [--stores N] [--memberships M]``

Each figure is a ratio to the same server's trivial endpoint (``/api/v1/health``)
measured in the same run with the same load generator (``wrk`` if installed,
else a Python client), so the machine's speed cancels out. A second pass runs
the same requests in-process with SQL timing on and says which queries dominate.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import event, insert

from iotstore.accounts.models import Account
from iotstore.demo import seed_demo
from iotstore.deployment import Deployment
from iotstore.settings import Settings
from iotstore.stores.models import Membership, Store
from iotstore.web import create_app

from ._timing import run_async
from .vault_bench import serve_process

ROLES = ("admin", "publisher", "reviewer", "viewer")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def populate(deployment: Deployment, brand_id: str, stores: int, memberships: int) -> list[str]:
    """Bulk-insert a store tree and memberships; return the store ids."""
    ids = [f"store-{i:05d}" for i in range(stores)]
    # a wide tree, four levels deep: demo-store -> 10 -> 100 -> rest
    rows = []
    # the materialised ancestry StoreService sets on creation (parents come first)
    paths = {"demo-store": "demo-store/"}
    for i, store_id in enumerate(ids):
        parent = (
            "demo-store" if i < 10 else ids[(i - 10) // 10 if i < 110 else 10 + (i - 110) % 100]
        )
        paths[store_id] = f"{paths[parent]}{store_id}/"
        rows.append(
            {"id": store_id, "name": f"Store {i}", "brand_id": brand_id, "parent_id": parent,
             "kind": "product" if i % 2 else "ecosystem", "path": paths[store_id]}
        )  # fmt: skip
    people = max(1, memberships // 5)
    accounts = [
        {"id": f"bench{i:027d}", "email": f"user{i}@bench.example.com", "display_name": f"U{i}"}
        for i in range(people)
    ]
    rng = random.Random(7)
    seen: set[tuple[str, str, str]] = set()
    member_rows: list[dict[str, str]] = []
    while len(member_rows) < memberships:
        key = (rng.choice(ids), accounts[rng.randrange(people)]["id"], rng.choice(ROLES))
        if key not in seen:
            seen.add(key)
            member_rows.append({"store_id": key[0], "account_id": key[1], "role": key[2]})
    with deployment.database.unit_of_work() as session:
        session.execute(insert(Store), rows)
        session.execute(insert(Account), accounts)
        for start in range(0, len(member_rows), 10_000):
            session.execute(insert(Membership), member_rows[start : start + 10_000])
    return ids


@contextlib.contextmanager
def server(data_dir: Path, port: int, workers: int) -> Iterator[str]:
    """``iotstore serve`` in a subprocess, ready when it answers."""
    url = f"http://127.0.0.1:{port}"
    args = [
        "--data-dir",
        str(data_dir),
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--no-demo",
    ]
    with serve_process(args, dict(os.environ), url, data_dir / "serve.log"):
        yield url


def load(url: str, token: str, seconds: float, connections: int) -> tuple[float, float]:
    """Requests per second and p99 latency (ms) for one URL."""
    wrk = shutil.which("wrk")
    if wrk:
        out = subprocess.run(
            [wrk, "-t2", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency",
             "-H", f"Authorization: Bearer {token}", url],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        if "Non-2xx" in out:
            raise RuntimeError(f"{url}: the server answered errors:\n{out}")
        rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
        p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
        assert p99 is not None
        scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[p99.group(2)]
        return rps, float(p99.group(1)) * scale
    latencies: list[float] = []
    with httpx.Client(headers={"Authorization": f"Bearer {token}"}) as client:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            t = time.perf_counter()
            client.get(url).raise_for_status()
            latencies.append(time.perf_counter() - t)
    latencies.sort()
    return len(latencies) / seconds, latencies[int(len(latencies) * 0.99)] * 1000


def query_profile(
    deployment: Deployment, settings: Settings, token: str, paths: list[str]
) -> list[tuple[float, int, str]]:
    """Total SQL time per statement over the same requests, in-process."""
    totals: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
    started: dict[int, float] = {}

    def before(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        started[id(cursor)] = time.perf_counter()

    def after(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        entry = totals[" ".join(statement.split())[:110]]
        entry[0] += time.perf_counter() - started.pop(id(cursor), time.perf_counter())
        entry[1] += 1

    engine = deployment.database.engine
    event.listen(engine, "before_cursor_execute", before)
    event.listen(engine, "after_cursor_execute", after)
    app = create_app(settings, deployment)
    transport = httpx.ASGITransport(app=app)

    async def run() -> None:
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            for _ in range(200):
                for path in paths:
                    r = await client.get(path, headers={"Authorization": f"Bearer {token}"})
                    r.raise_for_status()

    run_async(run())
    event.remove(engine, "before_cursor_execute", before)
    event.remove(engine, "after_cursor_execute", after)
    return sorted(((t, int(n), s) for s, (t, n) in totals.items()), reverse=True)[:6]


def main(argv: list[str] | None = None) -> int:
    """Build the data set, measure, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stores", type=int, default=10_000)
    parser.add_argument("--memberships", type=int, default=100_000)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="iotstore-bench-") as tmp:
        data_dir = Path(tmp) / "data"
        pem = resources.files("iotstore.asserts.testing").joinpath("keys", "root.pem").read_bytes()
        settings = Settings(data_dir=data_dir)
        deployment = Deployment.init(
            data_dir, settings=settings, root_id="bench-root", root_key_pem=pem
        )
        info = seed_demo(deployment, "http://bench")
        t = time.perf_counter()
        ids = populate(deployment, info["brand_id"], args.stores, args.memberships)
        print(f"data: {args.stores} stores, {args.memberships} memberships "
              f"(inserted in {time.perf_counter() - t:.1f} s)")  # fmt: skip
        token = info["admin_token"]
        deep = ids[-1]  # four levels below the brand store
        paths = {
            "trivial: GET /api/v1/health": "/api/v1/health",
            "GET /api/v1/account": "/api/v1/account",
            "GET /api/v1/stores/{deep store}": f"/api/v1/stores/{deep}",
            "GET /api/v1/stores/{id}/members?limit=100": (
                f"/api/v1/stores/{ids[5]}/members?limit=100"
            ),
            "GET /api/v1/stores?limit=100": "/api/v1/stores?limit=100",
            "GET /api/v1/stores/{id}/audit?limit=100": "/api/v1/stores/demo-store/audit?limit=100",
        }
        port = _free_port()
        results: dict[str, tuple[float, float]] = {}
        with server(data_dir, port, args.workers) as url:
            for name, path in paths.items():
                results[name] = load(url + path, token, args.seconds, args.connections)
        base = results["trivial: GET /api/v1/health"][0]
        print(f"{'request':<46} {'req/s':>9} {'p99 ms':>8} {'ratio':>6}")
        for name, (rps, p99) in results.items():
            print(f"{name:<46} {rps:>9.0f} {p99:>8.1f} {rps / base:>6.2f}")
        print("\nSQL time over 200 rounds of the same requests (in-process):")
        for total, count, statement in query_profile(
            deployment, settings, token, list(paths.values())[1:]
        ):
            print(f"  {total * 1000:8.1f} ms {count:6d}x  {statement}")
        deployment.close()
        print(json.dumps({k: round(v[0] / base, 3) for k, v in results.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
