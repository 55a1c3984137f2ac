"""The publishing services for one request: shared by the admin, publisher and dashboard edges."""

from __future__ import annotations

from iotstore.snaps.services import Publishing

from .context import RequestContext

__all__ = ["publishing"]


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
