"""The signed-in person's pages: home (their stores), sign-in, API tokens, accepting invitations."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel, Field

from iotstore.accounts.brands import brand_dict
from iotstore.accounts.services import account_dict, normalise_email
from iotstore.accounts.tokens import token_dict
from iotstore.db import utcnow
from iotstore.errors import IotstoreError
from iotstore.stores.invitations import MAX_TOKEN_LENGTH, InvitationService
from iotstore.stores.models import Store
from iotstore.stores.permissions import Permission, Role

from ..context import RequestContext
from ..signin import safe_next
from ._deps import FormDep, Operator, Public, Self
from ._render import HTML_PAGE as _HTML
from ._render import parse, redirect, refused, render, render_fragment

__all__ = ["router"]

router = APIRouter(tags=["dashboard"], default_response_class=HTMLResponse)

_PERMISSION_NAMES = sorted(p.value for p in Permission if p is not Permission.PUBLIC)


def invitation_service(ctx: RequestContext) -> InvitationService:
    """Invitations over the request's transaction, with the deployment's mailer."""
    settings = ctx.deployment.settings
    return InvitationService(
        ctx.session, ctx.memberships, ctx.accounts, ctx.audit, ctx.deployment.mailer,
        settings.base_url, timedelta(days=settings.invitation_days),
        normalise_email=normalise_email,
    )  # fmt: skip


def store_forest(ctx: RequestContext, store_ids: list[str]) -> list[tuple[Store, int]]:
    """The stores in ``store_ids`` and everything below them, depth-first, with their depth."""
    rows = ctx.stores.list_stores(ctx.stores.subtree_ids(*store_ids), "", 500) if store_ids else []
    by_parent: dict[str | None, list[Store]] = {}
    known = {s.id for s in rows}
    for s in rows:
        parent = s.parent_id if s.parent_id in known else None
        by_parent.setdefault(parent, []).append(s)
    out: list[tuple[Store, int]] = []

    def walk(parent: str | None, depth: int) -> None:
        for s in sorted(by_parent.get(parent, []), key=lambda s: s.name.lower()):
            out.append((s, depth))
            walk(s.id, depth + 1)

    walk(None, 0)
    return out


@router.get("/", responses=_HTML)
def home(ctx: Self) -> HTMLResponse:
    """Your stores (and the stores below the ones you administer), as a tree."""
    account = ctx.principal.account
    assert account is not None
    roles = ctx.memberships.direct_roles(account.id)
    by_store: dict[str, list[str]] = {}
    for store_id, role in roles:
        by_store.setdefault(store_id, []).append(role)
    forest = store_forest(ctx, sorted(by_store))
    return render(ctx, "home.html", forest=forest, roles=by_store)


@router.get("/sign-in", responses=_HTML)
def sign_in(
    ctx: Public,
    next_path: Annotated[str, Query(alias="next", max_length=2048)] = "/",
    failed: Annotated[bool, Query()] = False,
) -> HTMLResponse:
    """Sign in: the single sign-on button when configured, and the local form."""
    oidc = ctx.deployment.settings.oidc
    return render(
        ctx, "sign_in.html", next=safe_next(next_path), failed=failed,
        sso_name=oidc.name if oidc else None,
    )  # fmt: skip


# -- tokens -------------------------------------------------------------------------------


class NewToken(BaseModel):
    """A token as the dashboard's form describes it."""

    description: str = Field(default="", max_length=200)
    stores: str = Field(default="", max_length=2000)
    expires_days: int | None = Field(default=None, ge=1, le=366)


def _tokens_page(ctx: RequestContext) -> HTMLResponse:
    account = ctx.principal.account
    assert account is not None
    tokens = [token_dict(t) for t in ctx.tokens.list(account.id, "", 500)]
    return render(ctx, "tokens.html", tokens=tokens, permission_names=_PERMISSION_NAMES)


@router.get("/tokens", responses=_HTML)
def tokens_page(ctx: Self) -> HTMLResponse:
    """Your API tokens (never their secrets), a form for a new one."""
    return _tokens_page(ctx)


@router.post("/tokens", responses=_HTML)
def create_token(ctx: Self, form: FormDep) -> Response:
    """Issue a token; the answer shows its secret, once."""
    account = ctx.principal.account
    assert account is not None
    template = "_token_form.html"
    names = _PERMISSION_NAMES
    body = parse(
        NewToken, form, ("description", "stores", "expires_days"), template, permission_names=names
    )
    permissions = form.getlist("permissions") or None
    if permissions is not None and set(permissions) - set(names):
        raise refused(
            template, form, _field_error("unknown permission", "permissions"),
            permission_names=names,
        )  # fmt: skip
    stores = [s.strip() for s in body.stores.replace(",", " ").split() if s.strip()] or None
    expires = utcnow() + timedelta(days=body.expires_days) if body.expires_days else None
    try:
        token, macaroon = ctx.tokens.issue(
            account, description=body.description, stores=stores,
            permissions=permissions, expires_at=expires,
        )  # fmt: skip
    except IotstoreError as e:
        raise refused(template, form, e, permission_names=names) from e
    ctx.audit.record(ctx.actor, "token.issue", target=token.id, after=token_dict(token))
    return render_fragment(
        "_secret.html", title="Your new token", secret=macaroon, what="token",
        note="Copy it now: it is not shown again. Send it as 'Authorization: Bearer <token>'.",
        back="/tokens",
    )  # fmt: skip


def _field_error(message: str, field: str) -> IotstoreError:
    return IotstoreError(message, field=field)


@router.post("/tokens/{token_id}/revoke", responses=_HTML)
def revoke_token(ctx: Self, token_id: str) -> Response:
    """Revoke one of your tokens."""
    account = ctx.principal.account
    assert account is not None
    token = ctx.tokens.revoke(account.id, token_id)
    ctx.audit.record(ctx.actor, "token.revoke", target=token.id, after=token_dict(token))
    return redirect("/tokens")


# -- invitations --------------------------------------------------------------------------


@router.get("/invitations/accept", responses=_HTML)
def accept_page(
    ctx: Public, token: Annotated[str, Query(max_length=MAX_TOKEN_LENGTH)] = ""
) -> HTMLResponse:
    """Where an invitation email's link leads: accept as yourself, or make an account."""
    return render(ctx, "accept.html", token=token, errors={}, form=None)


class Acceptance(BaseModel):
    """The accept form: the emailed token; a name and password for a new account."""

    token: str = Field(min_length=1, max_length=MAX_TOKEN_LENGTH)
    display_name: str | None = Field(default=None, max_length=120)
    password: str | None = Field(default=None, min_length=8, max_length=1024)


@router.post("/invitations/accept", responses=_HTML)
def accept(ctx: Public, form: FormDep) -> Response:
    """Accept an invitation; a new account is signed in through the sign-in page afterwards."""
    account = ctx.principal.account
    template = "_accept_form.html"
    fields = ("token",) if account else ("token", "display_name", "password")
    body = parse(Acceptance, form, fields, template, account=account)
    try:
        accepted = invitation_service(ctx).accept(
            ctx.actor, body.token, account=account,
            display_name=body.display_name, password=body.password,
        )  # fmt: skip
    except IotstoreError as e:
        raise refused(template, form, e, account=account) from e
    if account is None:
        return redirect(f"/sign-in?next={'/stores/' + accepted.store_id}")
    return redirect(f"/stores/{accepted.store_id}")


# -- deployment operators -------------------------------------------------------------------


@router.get("/operator", responses=_HTML)
def operator_page(ctx: Operator) -> HTMLResponse:
    """What deployment operators do: create brands (with their root store) and accounts."""
    return render(ctx, "operator.html", created=None)


class NewAccount(BaseModel):
    """The new-account form."""

    email: str = Field(min_length=3, max_length=254)
    display_name: str = Field(min_length=1, max_length=120)
    password: str | None = Field(default=None, min_length=8, max_length=1024)


@router.post("/operator/accounts", responses=_HTML)
def create_account(ctx: Operator, form: FormDep) -> Response:
    """Create a local account (without a password it signs in through single sign-on)."""
    template = "_account_form.html"
    body = parse(NewAccount, form, ("email", "display_name", "password"), template)
    try:
        account = ctx.accounts.create(
            body.email, body.display_name, password=body.password, email_verified=False
        )
    except IotstoreError as e:
        raise refused(template, form, e) from e
    ctx.audit.record(ctx.actor, "account.create", target=account.id, after=account_dict(account))
    return redirect("/operator?created=account")


class NewBrand(BaseModel):
    """The new-brand form."""

    username: str = Field(min_length=1, max_length=28)
    display_name: str = Field(min_length=1, max_length=120)
    store_id: str = Field(min_length=1, max_length=63)
    store_name: str | None = Field(default=None, max_length=120)
    admin_email: str | None = Field(default=None, max_length=254)


@router.post("/operator/brands", responses=_HTML)
def create_brand(ctx: Operator, form: FormDep) -> Response:
    """Create a brand, its ``account`` assertion and root store, and its administrator."""
    template = "_brand_form.html"
    names = ("username", "display_name", "store_id", "store_name", "admin_email")
    body = parse(NewBrand, form, names, template)
    try:
        brand = ctx.brands.create(body.username, body.display_name)
        store = ctx.stores.create_brand_store(
            ctx.actor, brand.account_id, body.store_id, body.store_name or body.display_name
        )
        admin = ctx.principal.account
        if body.admin_email:
            admin = ctx.accounts.find_by_email(body.admin_email) or ctx.accounts.create(
                body.admin_email, body.admin_email
            )
        assert admin is not None
        ctx.memberships.grant(ctx.actor, store.id, admin.id, Role.ADMIN.value)
    except IotstoreError as e:
        raise refused(template, form, e) from e
    ctx.audit.record(
        ctx.actor, "brand.create", store_id=store.id, target=brand.account_id,
        after=brand_dict(brand),
    )  # fmt: skip
    return redirect(f"/stores/{store.id}")
