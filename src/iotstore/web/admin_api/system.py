"""Deployment-level endpoints: health, the caller's account, brands."""

from __future__ import annotations

import unicodedata
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from pydantic import AfterValidator, Field

from iotstore.accounts.brands import brand_dict
from iotstore.accounts.services import account_dict
from iotstore.stores.permissions import Permission, Role
from iotstore.stores.services import store_dict

from ..auth import require
from ..context import RequestContext
from ._common import Body

router = APIRouter(prefix="/api/v1", tags=["system"])

Public = Annotated[RequestContext, Depends(require(Permission.PUBLIC))]
Self = Annotated[RequestContext, Depends(require(Permission.ACCOUNT_SELF))]
Operator = Annotated[RequestContext, Depends(require(Permission.BRANDS_CREATE))]

# Bidirectional overrides and isolates: they make a name render as another (spoofing).
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def _printable_name(value: str) -> str:
    """Refuse control characters in names people and devices are shown.

    A display name goes into the brand's ``account`` assertion and onto
    dashboards: NUL is refused by PostgreSQL but stored by SQLite, line breaks
    and escapes garble listings and CSV exports, lone surrogates cannot be
    encoded as UTF-8 at all.
    """
    for ch in value:
        if unicodedata.category(ch) in ("Cc", "Cs", "Zl", "Zp") or ch in _BIDI_CONTROLS:
            raise ValueError(f"names must not contain control characters (found U+{ord(ch):04X})")
    return value


DisplayName = Annotated[str, Field(max_length=120), AfterValidator(_printable_name)]


@router.get("/health")
def health(ctx: Public) -> dict[str, Any]:
    """Liveness: answers without touching the database."""
    del ctx
    return {"status": "ok"}


@router.get("/root")
def root(ctx: Public) -> dict[str, Any]:
    """The deployment's root authority: what devices must trust."""
    r = ctx.deployment.root
    return {"account-id": r.account_id, "key-id": r.account_key.key_id}


@router.get("/account")
def whoami(ctx: Self) -> dict[str, Any]:
    """The calling account and the stores it holds roles in."""
    account = ctx.principal.account
    assert account is not None
    info = account_dict(account)
    info["roles"] = [
        {"store-id": store_id, "role": role}
        for store_id, role in ctx.memberships.direct_roles(account.id)
    ]
    return info


class NewAccount(Body):
    """A local account created by an operator."""

    email: str = Field(max_length=254)
    display_name: DisplayName
    password: str | None = Field(default=None, max_length=1024)


@router.post("/accounts", status_code=201)
def create_account(ctx: Operator, body: NewAccount) -> dict[str, Any]:
    """Create a local account (operators)."""
    account = ctx.accounts.create(
        body.email, body.display_name, password=body.password, email_verified=False
    )
    ctx.audit.record(ctx.actor, "account.create", target=account.id, after=account_dict(account))
    return account_dict(account)


class NewBrand(Body):
    """A brand, its root store, and who administers it."""

    username: str = Field(max_length=28)
    display_name: DisplayName
    account_id: str | None = Field(default=None, max_length=32)
    validation: str = Field(default="verified", max_length=16)
    store_id: str = Field(max_length=63)
    store_name: DisplayName | None = None
    admin_email: str | None = Field(default=None, max_length=254)


@router.post("/brands", status_code=201)
def create_brand(ctx: Operator, body: NewBrand) -> dict[str, Any]:
    """Create a brand with its ``account`` assertion and its root store (operators)."""
    brand = ctx.brands.create(
        body.username, body.display_name, account_id=body.account_id, validation=body.validation
    )
    store = ctx.stores.create_brand_store(
        ctx.actor, brand.account_id, body.store_id, body.store_name or body.display_name
    )
    admin = ctx.principal.account
    if body.admin_email:
        admin = ctx.accounts.find_by_email(body.admin_email)
        if admin is None:
            admin = ctx.accounts.create(body.admin_email, body.admin_email)
    assert admin is not None
    ctx.memberships.grant(ctx.actor, store.id, admin.id, Role.ADMIN.value)
    ctx.audit.record(
        ctx.actor, "brand.create", store_id=store.id, target=brand.account_id,
        after=brand_dict(brand),
    )  # fmt: skip
    return {**brand_dict(brand), "store": store_dict(store)}
