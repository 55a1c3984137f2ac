"""Release throughput with 10,000 snaps, as a ratio to a trivial database write.

Run: ``.venv/bin/python -m benchmarks.release_bench [--snaps N] [--database-url URL]``

The database is filled with ``--snaps`` registered snaps of two approved
revisions each (bulk inserts: the set-up is not measured). Then, each in its
own unit of work as one HTTP request would be:

* **release**: a publisher releases a random snap's other revision to
  ``stable`` (access check, channel row, history row, audit entry);
* **refresh lookup**: one device's ``v2/snaps/refresh`` resolution of 20
  random snaps (one query);
* **trivial write**: one audit entry, the cheapest committed write the
  same database can do.

Each rate is reported with its ratio to the trivial write measured in the
same run, so the machine's speed (and SQLite vs PostgreSQL) cancels out.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import insert, literal, select, text

from iotstore.accounts import adopt_root
from iotstore.accounts.brands import BrandService
from iotstore.accounts.services import AccountService
from iotstore.assertdb import trust_database
from iotstore.blobstore import MemoryBlobStore
from iotstore.db import SqlDatabase, sqlite_url, utcnow
from iotstore.keystore import MemoryKeyStore
from iotstore.migrations import upgrade
from iotstore.snaps.models import ChannelRelease, Revision, Snap
from iotstore.snaps.services import Publishing, ResolveRequest
from iotstore.stores.audit import Actor, AuditLog
from iotstore.stores.services import MembershipService, StoreService

from ._timing import best_rate
from .vault_bench import root_key_pem

_SYSTEM = Actor(account_id=None, address="bench")


def populate(database: SqlDatabase, store_id: str, publisher_id: str, snaps: int) -> list[str]:
    """Bulk-insert ``snaps`` snaps with two approved revisions each; return their ids."""
    ids = [f"bench{i:027d}" for i in range(snaps)]
    now = utcnow()
    snap_rows = [
        {"snap_id": sid, "name": f"bench-{i}", "store_id": store_id,
         "publisher_id": publisher_id, "registered_by": publisher_id, "snap_type": "app",
         "private": False, "created_at": now}
        for i, sid in enumerate(ids)
    ]  # fmt: skip
    revision_rows = [
        {"snap_id": sid, "revision": n, "blob_key": f"blob-{i}-{n}", "size": 4096,
         "sha3_384": f"{i:088d}{n:08d}", "version": f"{n}.0", "snap_type": "app",
         "base": "core22", "confinement": "strict", "grade": "stable",
         "architectures": ["amd64"], "epoch": {"read": [0], "write": [0]},
         "provenance": "global-upload", "snap_yaml": "", "details": {}, "status": "approved",
         "uploaded_by": publisher_id, "created_at": now}
        for i, sid in enumerate(ids)
        for n in (1, 2)
    ]  # fmt: skip
    with database.unit_of_work() as session:
        for start in range(0, len(snap_rows), 2000):
            session.execute(insert(Snap), snap_rows[start : start + 2000])
        for start in range(0, len(revision_rows), 2000):
            session.execute(insert(Revision), revision_rows[start : start + 2000])
        # every snap starts with revision 1 in latest/stable for amd64
        first = select(
            Revision.snap_id, literal("amd64"), literal("latest"), literal("stable"), literal(""),
            Revision.id, literal(now),
        ).where(Revision.revision == 1)  # fmt: skip
        session.execute(
            insert(ChannelRelease).from_select(
                ["snap_id", "architecture", "track", "risk", "branch", "revision_id",
                 "released_at"],
                first,
            )
        )  # fmt: skip
    # fresh statistics, as autovacuum would gather after such a load (else PostgreSQL
    # plans the lookup as a sequential scan of the just-filled tables)
    with database.engine.begin() as connection:
        connection.execute(text("ANALYZE"))
    return ids


def run(database_url: str, snaps: int, seconds: float) -> dict[str, Any]:
    """Set up, measure, and return the figures."""
    database = SqlDatabase.from_url(database_url)
    upgrade(database.engine)
    keystore = MemoryKeyStore()
    root = adopt_root(keystore, "bench-root", root_key_pem())
    blobs = MemoryBlobStore()
    with database.unit_of_work() as session:
        audit = AuditLog(session)
        trust = trust_database(session, root.trusted)
        brand = BrandService(session, keystore, root, trust).create("benchbrand", "Bench")
        stores = StoreService(session, audit)
        store = stores.create_brand_store(_SYSTEM, brand.account_id, "bench-store", "Bench")
        person = AccountService(session).create("bench@example.com", "Bench Publisher")
        MembershipService(session, stores, audit).grant(_SYSTEM, store.id, person.id, "publisher")
        store_id, publisher_id = store.id, person.id
    started = time.perf_counter()
    ids = populate(database, store_id, publisher_id, snaps)
    setup_seconds = time.perf_counter() - started
    actor = Actor(account_id=publisher_id, address="bench")
    rng = random.Random(7)
    turn = {"n": 0}

    def publishing(session: Any) -> Publishing:
        return Publishing(session, keystore=keystore, root=root, blobs=blobs)

    def release() -> None:
        turn["n"] += 1
        snap_id = rng.choice(ids)
        with database.unit_of_work() as session:
            pub = publishing(session)
            snap = pub.snaps.get(snap_id)
            pub.releases.release(actor, snap, 1 + turn["n"] % 2, ["stable"])

    def refresh() -> None:
        wanted = rng.sample(ids, 20)
        with database.unit_of_work(write=False) as session:
            requests = [ResolveRequest(s, s, "stable") for s in wanted]
            publishing(session).resolver.resolve(requests, "amd64", f"device-{rng.random()}")

    def trivial_write() -> None:
        with database.unit_of_work() as session:
            AuditLog(session).record(_SYSTEM, "bench.noop", store_id=store_id)

    measure: Callable[[Callable[[], object]], float] = lambda fn: best_rate(fn, seconds)  # noqa: E731
    trivial = measure(trivial_write)
    releases = measure(release)
    refreshes = measure(refresh)
    trivial_after = measure(trivial_write)
    database.dispose()
    base = max(trivial, trivial_after)
    return {
        "backend": database_url.split(":", 1)[0],
        "snaps": snaps,
        "setup-seconds": round(setup_seconds, 2),
        "trivial-writes-per-second": round(base, 1),
        "releases-per-second": round(releases, 1),
        "release-ratio": round(releases / base, 3),
        "refresh-lookups-per-second": round(refreshes, 1),
        "refresh-lookup-ratio": round(refreshes / base, 3),
    }


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its figures (and one JSON line)."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--snaps", type=int, default=10_000, help="registered snaps")
    parser.add_argument("--seconds", type=float, default=6.0, help="length of each measurement")
    parser.add_argument("--database-url", default="", help="default: a temporary SQLite file")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="release-bench-") as tmp:
        url = args.database_url or sqlite_url(Path(tmp) / "bench.sqlite")
        figures = run(url, args.snaps, args.seconds)
    print(f"backend {figures['backend']}, {figures['snaps']} snaps")
    print(f"trivial write (one audit row): {figures['trivial-writes-per-second']}/s")
    print(
        f"release: {figures['releases-per-second']}/s = {figures['release-ratio']} x trivial write"
    )
    print(
        f"refresh lookup of 20 snaps: {figures['refresh-lookups-per-second']}/s = "
        f"{figures['refresh-lookup-ratio']} x trivial write"
    )
    print(json.dumps(figures, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
