"""The device inventory for administrators: who runs what, exportable (admin API shape)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response

from iotstore.devices.inventory import InventoryService, inventory_dict
from iotstore.stores.permissions import Permission

from ..auth import require
from ..context import RequestContext

__all__ = ["router"]

router = APIRouter(prefix="/api/v1/stores/{store_id}/inventory", tags=["devices"])

DevicesView = Annotated[RequestContext, Depends(require(Permission.DEVICES_VIEW))]


def _stores(ctx: RequestContext, store_id: str) -> list[str]:
    # devices of the store and of every store below it
    return list(ctx.session.scalars(ctx.stores.subtree_ids(store_id)))


@router.get("")
def inventory(
    ctx: DevicesView,
    store_id: str,
    after: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """Devices last seen by the store: serial, model, store, installed snaps (paginated by id)."""
    rows = InventoryService(ctx.session).devices(
        _stores(ctx, store_id), after_id=after, limit=limit
    )
    return {
        "devices": [inventory_dict(r) for r in rows],
        "next": rows[-1].id if len(rows) == limit else None,
    }


@router.get("/export.csv")
def export(ctx: DevicesView, store_id: str) -> Response:
    """Every device of the store and its sub-stores as CSV."""
    text = InventoryService(ctx.session).export_csv(_stores(ctx, store_id))
    return Response(
        text,
        media_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{store_id}-inventory.csv"'},
    )
