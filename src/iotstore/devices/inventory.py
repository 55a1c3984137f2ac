"""Device inventory: what each serial last told the store, and its refresh history.

Every snap action of a device carries its installed snaps (the ``context``);
the store keeps the latest picture per serial (model, store, snaps and
revisions, when it was last seen) and appends a history row whenever a
revision is offered to the device or shows up installed, which is what a
progressive release's health check compares later. Writes are throttled: a
device that refreshes often with nothing new costs one row update a minute.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, bindparam, select
from sqlalchemy.orm import Session

from iotstore.db import utcnow
from iotstore.db.prepared import PreparedRead

from .models import Device, InventoryEntry, RefreshHistoryEntry

__all__ = [
    "SEEN_INTERVAL",
    "DeviceRef",
    "DeviceState",
    "InstalledSnap",
    "InventoryService",
    "InventorySnapshot",
    "Offer",
    "inventory_dict",
]

SEEN_INTERVAL = timedelta(minutes=1)


@dataclass(frozen=True)
class DeviceRef:
    """A device as the inventory keys it, and the store it was served from."""

    brand_id: str
    model: str
    serial: str
    store_id: str


@dataclass(frozen=True, order=True)
class InstalledSnap:
    """One entry of a device's refresh context."""

    snap_id: str
    revision: int
    channel: str = ""

    def as_json(self) -> dict[str, Any]:
        """The stored shape."""
        return {"snap-id": self.snap_id, "revision": self.revision, "channel": self.channel}


@dataclass(frozen=True)
class Offer:
    """A revision the store answered a device with."""

    snap_id: str
    from_revision: int | None
    to_revision: int
    channel: str


@dataclass(frozen=True)
class InventorySnapshot:
    """What :meth:`InventoryService.needs_write` compares: a device's stored picture."""

    snaps: list[dict[str, Any]]
    store_id: str
    last_seen_at: datetime


@dataclass(frozen=True)
class DeviceState:
    """A device's vault block flag and stored inventory, read in one query."""

    blocked: bool
    inventory: InventorySnapshot | None


def inventory_dict(row: InventoryEntry) -> dict[str, Any]:
    """An inventory row as JSON-ready values."""
    return {
        "brand-id": row.brand_id,
        "model": row.model,
        "serial": row.serial,
        "store-id": row.store_id,
        "first-seen": row.first_seen_at.isoformat(),
        "last-seen": row.last_seen_at.isoformat(),
        "snaps": list(row.snaps or []),
    }


def _same_device(table: type[Device] | type[InventoryEntry]) -> ColumnElement[bool]:
    return and_(
        table.brand_id == bindparam("brand_id"),
        table.model == bindparam("model"),
        table.serial == bindparam("serial"),
    )


def _inventory(column: Any) -> Any:
    return select(column).where(_same_device(InventoryEntry)).scalar_subquery()


# built once (the refresh runs it on every request); no FROM of its own
_STATE = select(
    select(Device.blocked).where(_same_device(Device)).scalar_subquery().label("blocked"),
    _inventory(InventoryEntry.snaps).label("snaps"),
    _inventory(InventoryEntry.store_id).label("store_id"),
    _inventory(InventoryEntry.last_seen_at).label("last_seen_at"),
)
# on the driver's cursor: SQLAlchemy's per-execution work cost more than this lookup
_STATE_READ = PreparedRead(_STATE)


class InventoryService:
    """The inventory over the caller's transaction (flushes; the caller commits)."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def get(self, device: DeviceRef) -> InventoryEntry | None:
        """The device's row, if it was ever seen."""
        return self._session.scalars(
            select(InventoryEntry).where(
                InventoryEntry.brand_id == device.brand_id,
                InventoryEntry.model == device.model,
                InventoryEntry.serial == device.serial,
            )
        ).first()

    def state(self, device: DeviceRef) -> DeviceState:
        """Whether the vault blocked the device, and its inventory picture, in one round trip.

        The refresh reads both on every request; as scalar subqueries of one
        SELECT (a device the vault or the store never saw reads as NULL) they
        cost one statement instead of two.
        """
        (row,) = _STATE_READ.rows(
            self._session.connection(),
            {"brand_id": device.brand_id, "model": device.model, "serial": device.serial},
        )
        snapshot = None
        if row.last_seen_at is not None:
            snapshot = InventorySnapshot(list(row.snaps or []), row.store_id, row.last_seen_at)
        return DeviceState(bool(row.blocked), snapshot)

    @staticmethod
    def needs_write(
        row: InventoryEntry | InventorySnapshot | None,
        device: DeviceRef,
        installed: Sequence[InstalledSnap],
        offers: Sequence[Offer],
        now: datetime | None = None,
    ) -> bool:
        """Whether :meth:`record` would change anything worth a write now."""
        if row is None or offers:
            return True
        now = now or utcnow()
        snapshot = [s.as_json() for s in sorted(installed)]
        return (
            row.snaps != snapshot
            or row.store_id != device.store_id
            or now - row.last_seen_at >= SEEN_INTERVAL
        )

    def record(
        self,
        device: DeviceRef,
        installed: Sequence[InstalledSnap],
        offers: Sequence[Offer],
        now: datetime | None = None,
    ) -> InventoryEntry:
        """Remember what the device runs and what it was offered."""
        now = now or utcnow()
        row = self.get(device)
        snapshot = [s.as_json() for s in sorted(installed)]
        before: dict[str, int] = {}
        if row is None:
            row = InventoryEntry(
                brand_id=device.brand_id, model=device.model, serial=device.serial,
                store_id=device.store_id, first_seen_at=now, last_seen_at=now, snaps=snapshot,
            )  # fmt: skip
            self._session.add(row)
        else:
            before = {str(s["snap-id"]): int(s["revision"]) for s in row.snaps or []}
            row.snaps = snapshot
            row.store_id = device.store_id
            row.last_seen_at = now
        for snap in installed:
            old = before.get(snap.snap_id)
            if old != snap.revision:
                self._history(
                    device, snap.snap_id, "installed", old, snap.revision, snap.channel, now
                )
        for offer in offers:
            self._history(
                device, offer.snap_id, "offered", offer.from_revision, offer.to_revision,
                offer.channel, now,
            )  # fmt: skip
        self._session.flush()
        return row

    def _history(
        self,
        device: DeviceRef,
        snap_id: str,
        event: str,
        old: int | None,
        new: int,
        channel: str,
        now: datetime,
    ) -> None:
        self._session.add(
            RefreshHistoryEntry(
                at=now, brand_id=device.brand_id, model=device.model, serial=device.serial,
                store_id=device.store_id, snap_id=snap_id, event=event, from_revision=old,
                to_revision=new, channel=channel[:128],
            )
        )  # fmt: skip

    def devices(
        self, store_ids: Iterable[str], *, after_id: int = 0, limit: int = 100
    ) -> list[InventoryEntry]:
        """Inventory rows of devices served from ``store_ids``, paginated by id."""
        return list(
            self._session.scalars(
                select(InventoryEntry)
                .where(InventoryEntry.store_id.in_(list(store_ids)), InventoryEntry.id > after_id)
                .order_by(InventoryEntry.id)
                .limit(limit)
            )
        )

    def export_csv(self, store_ids: Iterable[str]) -> str:
        """Every device of ``store_ids`` as CSV (snaps as a JSON column)."""
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(
            ["brand-id", "model", "serial", "store-id", "first-seen", "last-seen", "snaps"]
        )
        after = 0
        while True:
            rows = self.devices(store_ids, after_id=after, limit=1000)
            for row in rows:
                d = inventory_dict(row)
                writer.writerow(
                    [d["brand-id"], d["model"], d["serial"], d["store-id"], d["first-seen"],
                     d["last-seen"], json.dumps(d["snaps"], separators=(",", ":"))]
                )  # fmt: skip
            if len(rows) < 1000:
                return out.getvalue()
            after = rows[-1].id

    def history(
        self, snap_id: str, *, revision: int | None = None, limit: int = 1000
    ) -> list[RefreshHistoryEntry]:
        """History rows of one snap (optionally one target revision), newest first."""
        q = select(RefreshHistoryEntry).where(RefreshHistoryEntry.snap_id == snap_id)
        if revision is not None:
            q = q.where(RefreshHistoryEntry.to_revision == revision)
        return list(self._session.scalars(q.order_by(RefreshHistoryEntry.id.desc()).limit(limit)))
