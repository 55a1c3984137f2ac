"""Load test of the device service: N devices registering at once against a live server.

Run: ``.venv/bin/python -m benchmarks.vault_load [--devices 500] [--workers 1]
[--database-url URL | --start-postgres] [--duplicates 20]``

A load test; the suite runs a small one (``tests/devices/test_vault_benchmarks.py``).
It seeds a fresh data directory (the demo model, its serial key and API key, as
``iotstore serve`` does on first start), runs ``iotstore serve`` (embedded
default: SQLite in the data directory; or the PostgreSQL database given by
``--database-url``, which must be empty, or a throwaway server with
``--start-postgres``), then fires every registration at once: each device does
what snapd does, ``POST request-id`` then ``POST serial`` with its
serial-request and the model.

Device keys come from a pool generated once (``--keys``, 2048 bits): the
client must stay cheap, it shares the machine with the server. Reusing a key
is sound here because every registration asks for a different serial (the
vault generates UUIDs): the rule under test is that one *serial* is never
bound to two keys, not that a key holds one serial. That rule is exercised
separately with ``--duplicates M``: M serials each requested at the same
moment by two *different* keys; exactly one of each pair must win and the
other get a 4xx.

Checks: every registration succeeds (200), no 5xx at all, no serial issued
twice, every returned serial verifies against the deployment's root with the
chain sent alongside, and the database holds exactly one device row and one
signing-log entry per serial. Prints throughput and latency percentiles and
exits non-zero when a check fails.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
from sqlalchemy import func, select

from iotstore import asserts
from iotstore.db import SqlDatabase
from iotstore.devices.models import Device, SigningLogEntry

from ._timing import run_async
from .vault_bench import Outcome, device_keys, percentile, register, seeded_server_dir, serving


@contextlib.contextmanager
def throwaway_postgres() -> Iterator[str]:
    """A private PostgreSQL server and an empty database (the test suite's helper)."""
    from tests._pg import start_server  # noqa: PLC0415 - only with --start-postgres

    server = start_server()
    try:
        yield server.create_database()
    finally:
        server.stop()


async def fire(
    url: str,
    api_key: str,
    model: asserts.Model,
    jobs: list[tuple[asserts.RSAPrivateKey, str | None]],
) -> tuple[list[Outcome], float]:
    """Start every registration at once; (outcomes in job order, wall seconds)."""
    limits = httpx.Limits(max_connections=len(jobs), max_keepalive_connections=len(jobs))
    async with httpx.AsyncClient(base_url=url, timeout=600, limits=limits) as client:
        start = time.perf_counter()
        outcomes = await asyncio.gather(
            *(register(client, api_key, model, key, serial) for key, serial in jobs)
        )
        return list(outcomes), time.perf_counter() - start


def verify_answers(root_stream: bytes, outcomes: list[Outcome]) -> list[asserts.Serial]:
    """Decode each answer and check its serial against the root with the chain sent."""
    db = asserts.Database(list(asserts.decode_stream(root_stream)))
    serials = []
    for outcome in outcomes:
        members = list(asserts.decode_stream(outcome.answer))
        (serial,) = [a for a in members if isinstance(a, asserts.Serial)]
        chain = sorted((a for a in members if a is not serial), key=lambda a: a.type_name)
        for a in chain:  # "account" before "account-key"
            try:
                db.find(a.type_name, a.primary_key)
            except asserts.NotFoundError:
                db.add(a)
        db.check(serial)
        serials.append(serial)
    return serials


def database_counts(url: str) -> tuple[int, int, int]:
    """(devices, signing-log entries, distinct serials in the log)."""
    database = SqlDatabase.from_url(url)
    try:
        with database.unit_of_work(write=False) as session:
            devices = session.scalar(select(func.count(Device.id))) or 0
            log = session.scalar(select(func.count(SigningLogEntry.id))) or 0
            distinct = session.scalar(select(func.count(func.distinct(SigningLogEntry.serial))))
            return devices, log, distinct or 0
    finally:
        database.dispose()


def run(args: argparse.Namespace, database_url: str | None) -> bool:
    """One load run; print the figures; return whether every check passed."""
    failures: list[str] = []
    keys = device_keys(args.keys, args.key_bits)
    with tempfile.TemporaryDirectory(prefix="iotstore-vault-load-") as tmp:
        base = Path(tmp)
        server = seeded_server_dir(base, database_url)
        backend = "PostgreSQL" if database_url else "embedded SQLite"
        with serving(server, args.workers, base / "server.log"):
            # warm-up: a few registrations so the first batch does not pay for imports
            warm, _ = run_async(
                fire(server.url, server.api_key, server.model, [(k, None) for k in keys[:4]])
            )
            jobs: list[tuple[asserts.RSAPrivateKey, str | None]] = [
                (keys[i % len(keys)], None) for i in range(args.devices)
            ]
            outcomes, wall = run_async(fire(server.url, server.api_key, server.model, jobs))
            dup_jobs: list[tuple[asserts.RSAPrivateKey, str | None]] = []
            for i in range(args.duplicates):
                serial = f"DUP-{i:05d}"
                dup_jobs += [
                    (keys[(2 * i) % len(keys)], serial),
                    (keys[(2 * i + 1) % len(keys)], serial),
                ]
            duplicates, _ = (
                run_async(fire(server.url, server.api_key, server.model, dup_jobs))
                if dup_jobs
                else ([], 0.0)
            )
        log_text = (base / "server.log").read_text(errors="replace")
        statuses = Counter(s for o in outcomes for s in o.statuses)
        good = [o for o in outcomes if o.ok]
        print(f"\n{backend}, {args.workers} worker(s): {args.devices} devices at once")
        print(f"  statuses (request-id and serial calls): {dict(sorted(statuses.items()))}")
        errors = Counter(o.error.split(":")[0] for o in outcomes if o.error)
        if errors:
            print(f"  client-side errors: {dict(errors)}")
        lat = [o.seconds * 1000 for o in good]
        serial_lat = [o.serial_seconds * 1000 for o in good]
        print(f"  wall {wall:.2f} s, throughput {len(good) / wall:.1f} registrations/s")
        print(
            f"  latency per registration: p50 {percentile(lat, 50):.0f} ms, "
            f"p99 {percentile(lat, 99):.0f} ms, max {max(lat, default=0):.0f} ms"
        )
        print(
            f"  serial call alone: p50 {percentile(serial_lat, 50):.0f} ms, "
            f"p99 {percentile(serial_lat, 99):.0f} ms"
        )
        if len(good) != len(outcomes):
            failures.append(f"{len(outcomes) - len(good)} registrations failed")
        if any(s >= 500 for o in outcomes + duplicates for s in o.statuses):
            failures.append("the server answered 5xx")
        serials = verify_answers(server.root_stream, good)
        numbers = [s.serial for s in serials]
        if len(set(numbers)) != len(numbers):
            failures.append(f"{len(numbers) - len(set(numbers))} serials issued twice")
        print(f"  {len(set(numbers))} distinct serials, each verified against the root")
        if duplicates:
            pairs = [duplicates[i : i + 2] for i in range(0, len(duplicates), 2)]
            won = sum(1 for pair in pairs if sum(o.ok for o in pair) == 1)
            lost = Counter(o.statuses[-1] for pair in pairs for o in pair if not o.ok)
            print(
                f"  same serial, two keys at once: {won}/{len(pairs)} pairs with exactly one "
                f"winner; losers got {dict(lost)}"
            )
            if won != len(pairs) or any(not 400 <= s < 500 for s in lost):
                failures.append("a duplicate serial was not refused with a 4xx exactly once")
        devices, log, distinct = database_counts(server.database_url)
        expected = len(good) + len(warm) + sum(o.ok for o in duplicates)
        print(f"  database: {devices} devices, {log} signing-log entries, {distinct} distinct")
        if not devices == log == distinct == expected:
            failures.append(f"database counts {devices}/{log}/{distinct}, expected {expected}")
        if "Traceback" in log_text:
            failures.append("the server logged a traceback")
    for failure in failures:
        print(f"  FAILED: {failure}")
    print(
        json.dumps(
            {
                "backend": backend, "devices": args.devices, "ok": len(good),
                "throughput_per_s": round(len(good) / wall, 2),
                "p50_ms": round(percentile(lat, 50)), "p99_ms": round(percentile(lat, 99)),
                "passed": not failures,
            }
        )
    )  # fmt: skip
    return not failures


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run, and exit 1 if a check failed."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--devices", type=int, default=500, help="registrations fired at once")
    parser.add_argument("--workers", type=int, default=1, help="server worker processes")
    parser.add_argument("--keys", type=int, default=32, help="device keys in the pool")
    parser.add_argument("--key-bits", type=int, default=2048, help="device key size")
    parser.add_argument("--duplicates", type=int, default=20, help="serials raced by two keys")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--database-url", help="an empty PostgreSQL database for the server")
    source.add_argument(
        "--start-postgres", action="store_true", help="start a throwaway PostgreSQL server"
    )
    args = parser.parse_args(argv)
    if args.start_postgres:
        with throwaway_postgres() as url:
            return 0 if run(args, url) else 1
    return 0 if run(args, args.database_url) else 1


if __name__ == "__main__":
    sys.exit(main())
