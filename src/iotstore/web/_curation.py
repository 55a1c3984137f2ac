"""Including another store's snap: shared by the admin API and the dashboard."""

from __future__ import annotations

from iotstore.errors import NotFound
from iotstore.snaps.models import Snap

from .context import RequestContext

__all__ = ["include_snap"]


def _offered_to(ctx: RequestContext, source_store_id: str) -> bool:
    """Whether the caller may learn of the store's snaps: it allows inclusion, or is theirs."""
    if ctx.stores.get(source_store_id).allow_inclusion:
        return True
    account = ctx.principal.account
    return account is not None and bool(ctx.memberships.permissions(account.id, source_store_id))


def include_snap(ctx: RequestContext, store_id: str, snap_id: str, field: str) -> Snap:
    """Include ``snap_id`` in ``store_id``; ``field`` names the input in a refusal."""
    snap = ctx.session.get(Snap, snap_id)
    if snap is None or not _offered_to(ctx, snap.store_id):
        # a snap of a store that neither offers it nor has the caller as a member is
        # answered like an unknown one: the refusal would reveal where it lives
        raise NotFound(f"no snap {snap_id!r}", field=field)
    ctx.stores.include(ctx.actor, store_id, snap.snap_id, snap.store_id)
    return snap
