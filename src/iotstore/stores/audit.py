"""The audit log: who changed what, where, when, from which address, before and after."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from .models import AuditEntry

__all__ = ["Actor", "AuditLog", "entries_to_csv", "entry_dict"]


@dataclass(frozen=True)
class Actor:
    """Who acts: an account, possibly through one of its tokens, from an address."""

    account_id: str | None
    token_id: str | None = None
    address: str | None = None


class AuditLog:
    """Append-only record of changes; written in the caller's transaction."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def record(
        self,
        actor: Actor,
        action: str,
        *,
        store_id: str | None = None,
        target: str = "",
        before: dict[str, Any] | None = None,
        after: dict[str, Any] | None = None,
    ) -> None:
        """Add one entry (flushed with the change it describes, committed with it)."""
        self._session.add(
            AuditEntry(
                actor_account_id=actor.account_id,
                actor_token_id=actor.token_id,
                store_id=store_id,
                action=action,
                target=target,
                before=before,
                after=after,
                address=actor.address,
            )
        )

    def query(
        self,
        *,
        store_ids: Sequence[str] | Select[Any] | None = None,
        action: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        after_id: int = 0,
        limit: int = 100,
    ) -> list[AuditEntry]:
        """Entries oldest first, filtered, paginated by id (``after_id``)."""
        q = select(AuditEntry).where(AuditEntry.id > after_id)
        if store_ids is not None:
            q = q.where(AuditEntry.store_id.in_(store_ids))
        if action:
            q = q.where(AuditEntry.action == action)
        if since:
            q = q.where(AuditEntry.at >= since)
        if until:
            q = q.where(AuditEntry.at < until)
        return list(self._session.scalars(q.order_by(AuditEntry.id).limit(limit)))


def entry_dict(entry: AuditEntry) -> dict[str, Any]:
    """One entry as plain JSON-ready values."""
    return {
        "id": entry.id,
        "at": entry.at.isoformat().replace("+00:00", "Z"),
        "actor-account-id": entry.actor_account_id,
        "actor-token-id": entry.actor_token_id,
        "store-id": entry.store_id,
        "action": entry.action,
        "target": entry.target,
        "before": entry.before,
        "after": entry.after,
        "address": entry.address,
    }


_CSV_FIELDS = [
    "id", "at", "actor-account-id", "actor-token-id", "store-id", "action", "target",
    "before", "after", "address",
]  # fmt: skip


def entries_to_csv(entries: Iterator[AuditEntry] | Sequence[AuditEntry]) -> str:
    """CSV export; before/after are JSON text in their cells."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=_CSV_FIELDS)
    writer.writeheader()
    for entry in entries:
        row = entry_dict(entry)
        row["before"] = json.dumps(row["before"], sort_keys=True) if row["before"] else ""
        row["after"] = json.dumps(row["after"], sort_keys=True) if row["after"] else ""
        writer.writerow(row)
    return out.getvalue()
