"""Invitations by email: invite, list, revoke, accept.

The accept endpoint is public: the emailed token is the credential. A caller
who is also signed in (token or dashboard session) accepts for that account,
whose email must be the invited address; an anonymous caller gets a new local
account for the address, or is asked to sign in when one exists.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import Field

from iotstore.accounts.services import normalise_email
from iotstore.errors import Forbidden
from iotstore.stores.invitations import MAX_TOKEN_LENGTH, InvitationService, invitation_dict
from iotstore.stores.permissions import Permission

from ..auth import require
from ..context import RequestContext
from ._common import After, Body, Limit, page

router = APIRouter(prefix="/api/v1", tags=["invitations"])

View = Annotated[RequestContext, Depends(require(Permission.MEMBERS_VIEW))]
Manage = Annotated[RequestContext, Depends(require(Permission.MEMBERS_MANAGE))]
Public = Annotated[RequestContext, Depends(require(Permission.PUBLIC))]


def _service(ctx: RequestContext) -> InvitationService:
    settings = ctx.deployment.settings
    return InvitationService(
        ctx.session,
        ctx.memberships,
        ctx.accounts,
        ctx.audit,
        ctx.deployment.mailer,
        settings.base_url,
        timedelta(days=settings.invitation_days),
        normalise_email=normalise_email,
    )


class NewInvitation(Body):
    """Whom to invite, and to which role."""

    email: str = Field(max_length=254)
    role: str = Field(max_length=16)


@router.post("/stores/{store_id}/invitations", status_code=201)
def invite(ctx: Manage, store_id: str, body: NewInvitation) -> dict[str, Any]:
    """Email an invitation to a role in the store; replaces the address's pending one.

    The token is only in the email. Answers 503 (``mail-failed``) when the mail
    relay does not take the email; then no invitation exists.
    """
    return invitation_dict(_service(ctx).invite(ctx.actor, store_id, body.email, body.role))


@router.get("/stores/{store_id}/invitations")
def list_invitations(
    ctx: View,
    store_id: str,
    include_closed: Annotated[
        bool,
        Query(alias="include-closed", description="Also accepted, revoked and expired ones."),
    ] = False,
    after: After = "",
    limit: Limit = 100,
) -> dict[str, Any]:
    """The store's pending invitations (all of them with ``include-closed``), oldest first."""
    rows = _service(ctx).list(store_id, include_closed=include_closed, after=after, limit=limit)
    return page([invitation_dict(r) for r in rows], rows[-1].id if rows else None, limit)


@router.delete("/stores/{store_id}/invitations/{invitation_id}", status_code=204)
def revoke_invitation(ctx: Manage, store_id: str, invitation_id: str) -> None:
    """Withdraw an invitation: its token stops working (idempotent)."""
    _service(ctx).revoke(ctx.actor, store_id, invitation_id)


class AcceptRequest(Body):
    """The emailed token; a display name and password only to create a new account."""

    token: str = Field(min_length=1, max_length=MAX_TOKEN_LENGTH)
    display_name: str | None = Field(default=None, max_length=120)
    password: str | None = Field(default=None, max_length=1024)


@router.post("/invitations/accept")
def accept_invitation(ctx: Public, body: AcceptRequest) -> dict[str, Any]:
    """Accept an invitation: grants its role in its store to the caller's account.

    Signed in: the account's email must be the invited address. Anonymous: a
    new local account is created for the address (``password`` required,
    email marked verified); if the address has an account, sign in first.
    """
    principal = ctx.principal
    token = principal.token
    # accepting acts for the whole account: a token narrowed to some permissions
    # must not be able to add roles to it
    if (
        token is not None
        and token.permissions is not None
        and Permission.ACCOUNT_SELF not in token.permissions
    ):
        raise Forbidden(f"this token does not carry the {Permission.ACCOUNT_SELF.value} permission")
    accepted = _service(ctx).accept(
        ctx.actor,
        body.token,
        account=principal.account,
        display_name=body.display_name,
        password=body.password,
    )
    store = ctx.stores.get(accepted.store_id)
    return {
        "store-id": store.id,
        "store-name": store.name,
        "role": accepted.role,
        "account-id": accepted.account_id,
        "account-created": accepted.account_created,
        "invitation-id": accepted.invitation.id,
    }
