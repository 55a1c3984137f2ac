"""The publishing services for one request: shared by the admin, publisher and dashboard edges."""

from __future__ import annotations

from iotstore.snaps.models import Snap
from iotstore.snaps.services import Publishing
from iotstore.stores.permissions import Permission

from .context import RequestContext

__all__ = ["publishing", "snap_in_store"]


def publishing(ctx: RequestContext) -> Publishing:
    """The publishing services in the request's transaction."""
    d = ctx.deployment
    return Publishing(
        ctx.session,
        keystore=d.keystore,
        root=d.root,
        blobs=d.blobs,
        audit=ctx.audit,
        stores=ctx.stores,
        memberships=ctx.memberships,
        trust=ctx.trust,
    )


def snap_in_store(ctx: RequestContext, store_id: str, ref: str) -> tuple[Publishing, Snap]:
    """The publishing services and the snap ``ref`` (id or name) of ``store_id``.

    Unknown, and known but hidden from the caller, both answer 404.
    """
    pub = publishing(ctx)
    snap = pub.snaps.in_store(store_id, ref)
    pub.snaps.check(ctx.actor, snap, Permission.SNAP_VIEW)
    return pub, snap
