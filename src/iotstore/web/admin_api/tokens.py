"""API tokens (macaroons): issue with a password or a session, list, revoke."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from pydantic import Field

from iotstore.accounts.models import Account
from iotstore.accounts.tokens import token_dict
from iotstore.db import utcnow
from iotstore.errors import Forbidden, InvalidInput
from iotstore.stores.permissions import Permission

from ..auth import require
from ..context import RequestContext
from ._common import After, Body, Limit, page

router = APIRouter(prefix="/api/v1", tags=["tokens"])

Public = Annotated[RequestContext, Depends(require(Permission.PUBLIC))]
Self = Annotated[RequestContext, Depends(require(Permission.ACCOUNT_SELF))]

_PERMISSION_NAMES = sorted(p.value for p in Permission if p is not Permission.PUBLIC)


class TokenRequest(Body):
    """What a new token may do: omitted restrictions mean everything the account may do."""

    description: str = Field(default="", max_length=200)
    stores: list[str] | None = Field(default=None, max_length=100)
    permissions: list[str] | None = Field(default=None, max_length=100)
    expires_in: int | None = Field(default=None, ge=60, le=366 * 24 * 3600)


class PasswordTokenRequest(TokenRequest):
    """A token for a local account, by email and password."""

    email: str = Field(max_length=254)
    password: str = Field(max_length=1024)


def _issue(ctx: RequestContext, account: Account, body: TokenRequest) -> dict[str, Any]:
    if body.permissions is not None:
        unknown = sorted(set(body.permissions) - set(_PERMISSION_NAMES))
        if unknown:
            raise InvalidInput(f"unknown permissions: {', '.join(unknown)}", field="permissions")
    expires = utcnow() + timedelta(seconds=body.expires_in) if body.expires_in else None
    token, macaroon = ctx.tokens.issue(
        account,
        description=body.description,
        stores=body.stores,
        permissions=body.permissions,
        expires_at=expires,
    )
    ctx.audit.record(ctx.actor, "token.issue", target=token.id, after=token_dict(token))
    return {**token_dict(token), "token": macaroon}


@router.post("/tokens/password", status_code=201)
def token_by_password(ctx: Public, body: PasswordTokenRequest) -> dict[str, Any]:
    """Exchange a local account's email and password for a token (shown once)."""
    account = ctx.accounts.authenticate(body.email, body.password)
    return _issue(ctx, account, body)


@router.post("/tokens", status_code=201)
def create_token(ctx: Self, body: TokenRequest) -> dict[str, Any]:
    """A new token for the caller; a token can only mint tokens as narrow as itself."""
    account = ctx.principal.account
    assert account is not None
    current = ctx.principal.token
    if current is not None:
        if current.stores is not None and (
            body.stores is None or not set(body.stores) <= current.stores
        ):
            raise Forbidden("a store-restricted token cannot mint a wider token")
        if current.permissions is not None and (
            body.permissions is None or not set(body.permissions) <= current.permissions
        ):
            raise Forbidden("a permission-restricted token cannot mint a wider token")
    return _issue(ctx, account, body)


@router.get("/tokens")
def list_tokens(ctx: Self, after: After = "", limit: Limit = 100) -> dict[str, Any]:
    """The caller's tokens (never their secrets)."""
    assert ctx.principal.account is not None
    tokens = ctx.tokens.list(ctx.principal.account.id, after, limit)
    return page([token_dict(t) for t in tokens], tokens[-1].id if tokens else None, limit)


@router.delete("/tokens/{token_id}", status_code=204)
def revoke_token(ctx: Self, token_id: str) -> None:
    """Revoke one of the caller's tokens."""
    assert ctx.principal.account is not None
    token = ctx.tokens.revoke(ctx.principal.account.id, token_id)
    ctx.audit.record(ctx.actor, "token.revoke", target=token.id, after=token_dict(token))
