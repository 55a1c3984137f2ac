"""Store members and their roles."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import Field

from iotstore.stores.models import Membership
from iotstore.stores.permissions import Permission

from ..auth import require
from ..context import RequestContext
from ._common import Body, Limit, page

router = APIRouter(prefix="/api/v1", tags=["members"])

View = Annotated[RequestContext, Depends(require(Permission.MEMBERS_VIEW))]
Manage = Annotated[RequestContext, Depends(require(Permission.MEMBERS_MANAGE))]


def _member(m: Membership) -> dict[str, Any]:
    return {"account-id": m.account_id, "role": m.role, "id": m.id}


@router.get("/stores/{store_id}/members")
def list_members(
    ctx: View, store_id: str, after: int = Query(default=0, ge=0), limit: Limit = 100
) -> dict[str, Any]:
    """Direct roles in the store (administrators of parent stores also administer it)."""
    rows = ctx.memberships.members(store_id, after, limit)
    items = []
    for m in rows:
        account = ctx.accounts.get(m.account_id)
        items.append({**_member(m), "email": account.email, "display-name": account.display_name})
    return page(items, str(rows[-1].id) if rows else None, limit)


@router.put("/stores/{store_id}/members/{account_id}/roles/{role}")
def grant_role(ctx: Manage, store_id: str, account_id: str, role: str) -> dict[str, Any]:
    """Give an existing account a role in the store (idempotent)."""
    ctx.accounts.get(account_id)
    return _member(ctx.memberships.grant(ctx.actor, store_id, account_id, role))


@router.delete("/stores/{store_id}/members/{account_id}/roles/{role}", status_code=204)
def remove_role(ctx: Manage, store_id: str, account_id: str, role: str) -> None:
    """Take a role away; the store's last administrator cannot be removed."""
    ctx.memberships.remove(ctx.actor, store_id, account_id, role)


class RoleChange(Body):
    """Replace one role by another."""

    from_role: str = Field(alias="from", max_length=16)
    to_role: str = Field(alias="to", max_length=16)


@router.post("/stores/{store_id}/members/{account_id}/role-change")
def change_role(ctx: Manage, store_id: str, account_id: str, body: RoleChange) -> dict[str, Any]:
    """Change a member's role in one step."""
    ctx.accounts.get(account_id)
    return _member(
        ctx.memberships.change(ctx.actor, store_id, account_id, body.from_role, body.to_role)
    )
