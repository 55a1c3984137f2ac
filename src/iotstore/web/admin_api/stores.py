"""Stores, sub-stores, settings, curation and the audit log."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import PlainTextResponse
from pydantic import Field
from sqlalchemy import select

from iotstore.errors import InvalidInput
from iotstore.snaps.models import Snap
from iotstore.stores.audit import entries_to_csv, entry_dict
from iotstore.stores.permissions import Permission
from iotstore.stores.services import store_dict

from .._curation import include_snap
from ..auth import require
from ..context import RequestContext
from ._common import After, Body, Limit, page

router = APIRouter(prefix="/api/v1", tags=["stores"])

Self = Annotated[RequestContext, Depends(require(Permission.ACCOUNT_SELF))]
View = Annotated[RequestContext, Depends(require(Permission.STORE_VIEW))]
Manage = Annotated[RequestContext, Depends(require(Permission.STORE_MANAGE))]
Curate = Annotated[RequestContext, Depends(require(Permission.CURATION_MANAGE))]
Audit = Annotated[RequestContext, Depends(require(Permission.AUDIT_VIEW))]


@router.get("/stores")
def list_stores(ctx: Self, after: After = "", limit: Limit = 100) -> dict[str, Any]:
    """Stores where the caller holds a role (or administers a parent), by id."""
    assert ctx.principal.account is not None
    visible = ctx.memberships.visible_store_ids(ctx.principal.account.id)
    stores = ctx.stores.list_stores(visible, after, limit)
    return page([store_dict(s) for s in stores], stores[-1].id if stores else None, limit)


@router.get("/stores/{store_id}")
def get_store(ctx: View, store_id: str) -> dict[str, Any]:
    """One store and its direct sub-stores."""
    store = ctx.stores.get(store_id)
    children = [s.id for s in ctx.stores.children(store_id)]
    return {**store_dict(store), "substores": children}


class StoreSettings(Body):
    """Settings an administrator can change; omitted ones stay."""

    name: str | None = Field(default=None, min_length=1, max_length=120)
    private: bool | None = None
    manual_review: bool | None = None
    allow_inclusion: bool | None = None
    offer_parent_catalogue: bool | None = None


@router.patch("/stores/{store_id}")
def update_store(ctx: Manage, store_id: str, body: StoreSettings) -> dict[str, Any]:
    """Change store settings."""
    changes = body.model_dump(exclude_none=True)
    return store_dict(ctx.stores.update(ctx.actor, store_id, changes))


class NewSubstore(Body):
    """A product or ecosystem store under this one."""

    id: str = Field(max_length=63)
    name: str = Field(min_length=1, max_length=120)
    kind: str = Field(max_length=16)


@router.post("/stores/{store_id}/substores", status_code=201)
def create_substore(ctx: Manage, store_id: str, body: NewSubstore) -> dict[str, Any]:
    """Create a sub-store; the caller administers it through this store."""
    return store_dict(
        ctx.stores.create_substore(ctx.actor, store_id, body.id, body.name, body.kind)
    )


@router.get("/stores/{store_id}/tree")
def store_tree(ctx: View, store_id: str, after: After = "", limit: Limit = 100) -> dict[str, Any]:
    """Every store below this one (each with its parent), by id, paginated."""
    below = ctx.stores.subtree_ids(store_id, include_roots=False)
    stores = ctx.stores.list_stores(below, after, limit)
    return page([store_dict(s) for s in stores], stores[-1].id if stores else None, limit)


@router.get("/stores/{store_id}/catalogue")
def catalogue(ctx: View, store_id: str, after: After = "", limit: Limit = 100) -> dict[str, Any]:
    """Snaps the store's devices and viewers see: own, included and inherited."""
    scope = ctx.stores.catalogue(store_id)
    rows = ctx.session.scalars(
        select(Snap)
        .where(scope.sql_filter(Snap.store_id, Snap.snap_id), Snap.name > after)
        .order_by(Snap.name)
        .limit(limit)
    ).all()
    items = [
        {"snap-id": s.snap_id, "name": s.name, "store-id": s.store_id, "type": s.snap_type}
        for s in rows
    ]
    return page(items, rows[-1].name if rows else None, limit)


@router.get("/stores/{store_id}/curation")
def curation(ctx: View, store_id: str) -> dict[str, Any]:
    """The store's includes and excludes."""
    includes, excludes = ctx.stores.curation(store_id)
    return {
        "includes": [
            {"snap-id": i.snap_id, "source-store-id": i.source_store_id} for i in includes
        ],
        "excludes": [{"snap-id": e.snap_id} for e in excludes],
    }


class SnapRef(Body):
    """A snap of another store, by id."""

    snap_id: str = Field(min_length=32, max_length=32, pattern=r"^[A-Za-z0-9]{32}$")


@router.post("/stores/{store_id}/includes", status_code=201)
def include(ctx: Curate, store_id: str, body: SnapRef) -> dict[str, Any]:
    """Include a snap of a store that allows inclusion."""
    snap = include_snap(ctx, store_id, body.snap_id, field="snap-id")
    return {"snap-id": snap.snap_id, "source-store-id": snap.store_id}


@router.delete("/stores/{store_id}/includes/{snap_id}", status_code=204)
def uninclude(ctx: Curate, store_id: str, snap_id: str) -> None:
    """Remove an include."""
    ctx.stores.uninclude(ctx.actor, store_id, snap_id)


@router.post("/stores/{store_id}/excludes", status_code=201)
def exclude(ctx: Curate, store_id: str, body: SnapRef) -> dict[str, Any]:
    """Hide a snap the parent's catalogue offers."""
    ctx.stores.exclude(ctx.actor, store_id, body.snap_id)
    return {"snap-id": body.snap_id}


@router.delete("/stores/{store_id}/excludes/{snap_id}", status_code=204)
def unexclude(ctx: Curate, store_id: str, snap_id: str) -> None:
    """Show an excluded snap again."""
    ctx.stores.unexclude(ctx.actor, store_id, snap_id)


def _utc_bound(value: datetime | None, field: str) -> datetime | None:
    """``value`` in UTC; a time whose offset takes it outside the calendar is refused."""
    if value is None:
        return None
    try:
        return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    except OverflowError as e:
        raise InvalidInput(f"{field} is outside the years 1 to 9999 in UTC", field=field) from e


@router.get("/stores/{store_id}/audit", response_model=None)
def audit(
    ctx: Audit,
    store_id: str,
    action: str | None = Query(default=None, max_length=64),
    since: datetime | None = None,
    until: datetime | None = None,
    after: int = Query(default=0, ge=0),
    limit: Limit = 100,
    format: str = Query(default="json", pattern="^(json|csv)$"),
) -> dict[str, Any] | PlainTextResponse:
    """Changes in this store and the stores below it, oldest first; JSON or CSV."""
    entries = ctx.audit.query(
        store_ids=ctx.stores.subtree_ids(store_id),
        action=action,
        since=_utc_bound(since, "since"),
        until=_utc_bound(until, "until"),
        after_id=after,
        limit=limit,
    )
    if format == "csv":
        return PlainTextResponse(
            entries_to_csv(entries),
            media_type="text/csv",
            headers={"Content-Disposition": f'attachment; filename="audit-{store_id}.csv"'},
        )
    return page([entry_dict(e) for e in entries], str(entries[-1].id) if entries else None, limit)
