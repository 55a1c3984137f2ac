"""Store pages: overview and tree, sub-stores, settings, members, invitations, curation, audit."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel, Field
from sqlalchemy import select

from iotstore.accounts.models import Account
from iotstore.db import utcnow
from iotstore.devices.models import RefreshHistoryEntry
from iotstore.errors import IotstoreError
from iotstore.snaps.models import Snap
from iotstore.stores.audit import entry_dict
from iotstore.stores.invitations import invitation_dict
from iotstore.stores.permissions import STORE_ROLES, Permission

from .._curation import include_snap
from ..context import RequestContext
from ..device_service import vault_service
from ._account import invitation_service, store_forest
from ._charts import bar_chart, daily_counts
from ._deps import (
    AuditView,
    Curate,
    FormDep,
    MembersManage,
    MembersView,
    StoreManage,
    StoreView,
)
from ._render import HTML_PAGE as _HTML
from ._render import granted, parse, redirect, refused, reject, render

__all__ = ["router"]

router = APIRouter(tags=["dashboard"], default_response_class=HTMLResponse)
ROLE_NAMES = [r.value for r in STORE_ROLES]
CHART_DAYS = 30
CATALOGUE_LIMIT = 500


def devices_chart(ctx: RequestContext, store_id: str) -> dict[str, Any]:
    """Serials issued per day over the last :data:`CHART_DAYS` days, for models here and below."""
    vault = vault_service(ctx)
    models = vault.models(list(ctx.session.scalars(ctx.stores.subtree_ids(store_id))))
    today = utcnow().date()
    since = datetime.combine(today - timedelta(days=CHART_DAYS - 1), time(), tzinfo=utcnow().tzinfo)
    entries = vault.signing_log([m.id for m in models], since=since, limit=100_000)
    points = daily_counts((e.at for e in entries), today, CHART_DAYS)
    return {
        "svg": bar_chart(
            "Devices registered per day",
            f"Serials issued for this store's models over the last {CHART_DAYS} days;"
            f" {sum(n for _, n in points)} in all.",
            points,
        ),
        "points": points,
        "models": len(models),
    }


def refreshes_chart(ctx: RequestContext, store_id: str) -> dict[str, Any]:
    """Revisions the store sent devices of this store and below per day (installs, refreshes)."""
    today = utcnow().date()
    since = datetime.combine(today - timedelta(days=CHART_DAYS - 1), time(), tzinfo=utcnow().tzinfo)
    moments = ctx.session.scalars(
        select(RefreshHistoryEntry.at).where(
            RefreshHistoryEntry.store_id.in_(ctx.stores.subtree_ids(store_id)),
            RefreshHistoryEntry.event == "offered",
            RefreshHistoryEntry.at >= since,
        )
    )
    points = daily_counts(moments, today, CHART_DAYS)
    return {
        "svg": bar_chart(
            "Refreshes per day",
            f"Snap revisions sent to devices (installs and refreshes) over the last {CHART_DAYS}"
            " days;"
            f" {sum(n for _, n in points)} in all.",
            points,
        ),
        "points": points,
    }


@router.get("/stores/{store_id}", responses=_HTML)
def overview(ctx: StoreView, store_id: str) -> HTMLResponse:
    """The store, its sub-stores as a tree, and the charts the caller may see."""
    store = ctx.stores.get(store_id)
    forest = store_forest(ctx, [store_id])
    devices = Permission.DEVICES_VIEW in granted(ctx, store_id)
    chart = devices_chart(ctx, store_id) if devices else None
    refreshes = refreshes_chart(ctx, store_id) if devices else None
    # only the parents the caller may see: a sub-store's member learns nothing above it
    parents = [p for p in reversed(ctx.stores.ancestors(store_id)) if granted(ctx, p.id)]
    return render(
        ctx, "store.html", store=store, tab="Overview", forest=forest, chart=chart,
        refreshes=refreshes, parents=parents, kinds=["product", "ecosystem"],
    )  # fmt: skip


class NewSubstore(BaseModel):
    """The sub-store form."""

    id: str = Field(min_length=1, max_length=63)
    name: str = Field(min_length=1, max_length=120)
    kind: str = Field(max_length=16)


@router.post("/stores/{store_id}/substores", responses=_HTML)
def create_substore(ctx: StoreManage, store_id: str, form: FormDep) -> Response:
    """Create a product or ecosystem store under this one, then open it."""
    template = "_substore_form.html"
    values = {"store_id": store_id, "kinds": ["product", "ecosystem"]}
    body = parse(NewSubstore, form, ("id", "name", "kind"), template, **values)
    try:
        created = ctx.stores.create_substore(ctx.actor, store_id, body.id, body.name, body.kind)
    except IotstoreError as e:
        raise refused(template, form, e, **values) from e
    return redirect(f"/stores/{created.id}")


# -- settings -----------------------------------------------------------------------------

_FLAGS = ("private", "manual_review", "allow_inclusion", "offer_parent_catalogue")


@router.get("/stores/{store_id}/settings", responses=_HTML)
def settings_page(
    ctx: StoreManage, store_id: str, saved: Annotated[bool, Query()] = False
) -> HTMLResponse:
    """The store's settings form."""
    store = ctx.stores.get(store_id)
    return render(ctx, "settings.html", store=store, tab="Settings", errors={}, saved=saved)


class Settings(BaseModel):
    """The settings form (checkboxes are sent only when ticked)."""

    name: str = Field(min_length=1, max_length=120)


@router.post("/stores/{store_id}/settings", responses=_HTML)
def save_settings(ctx: StoreManage, store_id: str, form: FormDep) -> Response:
    """Save the settings."""
    store = ctx.stores.get(store_id)
    values = {"store": store}
    body = parse(Settings, form, ("name",), "_settings_form.html", **values)
    changes: dict[str, Any] = {"name": body.name} | {f: form.checked(f) for f in _FLAGS}
    try:
        ctx.stores.update(ctx.actor, store_id, changes)
    except IotstoreError as e:
        raise refused("_settings_form.html", form, e, **values) from e
    return redirect(f"/stores/{store_id}/settings?saved=1")


# -- members and invitations ---------------------------------------------------------------


def _accounts(ctx: RequestContext, ids: set[str]) -> dict[str, Account]:
    if not ids:
        return {}
    rows = ctx.session.scalars(select(Account).where(Account.id.in_(sorted(ids))))
    return {a.id: a for a in rows}


@router.get("/stores/{store_id}/members", responses=_HTML)
def members_page(
    ctx: MembersView, store_id: str, history: Annotated[bool, Query()] = False
) -> HTMLResponse:
    """Members and their roles, invitations (pending ones, or all with their states when
    ``history``), and the invite form for administrators."""
    store = ctx.stores.get(store_id)
    rows = ctx.memberships.members(store_id, 0, 500)
    accounts = _accounts(ctx, {m.account_id for m in rows})
    members: dict[str, dict[str, Any]] = {}
    for m in rows:
        account = accounts[m.account_id]
        entry = members.setdefault(
            m.account_id,
            {"id": m.account_id, "email": account.email, "name": account.display_name, "roles": []},
        )
        entry["roles"].append(m.role)
    listed = invitation_service(ctx).list(store_id, include_closed=history, limit=500)
    # newest first: the history is read from the latest change backwards
    invitations = (
        [invitation_dict(i) for i in reversed(listed)]
        if history
        else [invitation_dict(i) for i in listed]
    )
    return render(
        ctx, "members.html", store=store, tab="Members", members=list(members.values()),
        invitations=invitations, roles=ROLE_NAMES, history=history,
    )  # fmt: skip


class NewInvitation(BaseModel):
    """The invite form."""

    email: str = Field(min_length=3, max_length=254)
    role: str = Field(max_length=16)


@router.post("/stores/{store_id}/invitations", responses=_HTML)
def invite(ctx: MembersManage, store_id: str, form: FormDep) -> Response:
    """Email an invitation to a role in the store."""
    template = "_invite_form.html"
    values = {"store_id": store_id, "roles": ROLE_NAMES}
    body = parse(NewInvitation, form, ("email", "role"), template, **values)
    try:
        invitation_service(ctx).invite(ctx.actor, store_id, body.email, body.role)
    except IotstoreError as e:
        raise refused(template, form, e, **values) from e
    return redirect(f"/stores/{store_id}/members")


@router.post("/stores/{store_id}/invitations/{invitation_id}/revoke", responses=_HTML)
def revoke_invitation(ctx: MembersManage, store_id: str, invitation_id: str) -> Response:
    """Withdraw an invitation."""
    invitation_service(ctx).revoke(ctx.actor, store_id, invitation_id)
    return redirect(f"/stores/{store_id}/members")


class RoleForm(BaseModel):
    """Grant a role, or change one into another."""

    role: str = Field(max_length=16)
    from_role: str | None = Field(default=None, max_length=16)


class Grant(BaseModel):
    """Give an existing account (by email) a role."""

    email: str = Field(min_length=3, max_length=254)
    role: str = Field(max_length=16)


@router.post("/stores/{store_id}/members", responses=_HTML)
def grant_by_email(ctx: MembersManage, store_id: str, form: FormDep) -> Response:
    """Give a role to someone who has an account already (others get an invitation)."""
    template = "_grant_form.html"
    values = {"store_id": store_id, "roles": ROLE_NAMES}
    body = parse(Grant, form, ("email", "role"), template, **values)
    try:
        account = ctx.accounts.find_by_email(body.email)
        if account is None:
            error = {"email": "no account has this email: invite it"}
            raise reject(template, form, error, **values)
        ctx.memberships.grant(ctx.actor, store_id, account.id, body.role)
    except IotstoreError as e:
        raise refused(template, form, e, **values) from e
    return redirect(f"/stores/{store_id}/members")


@router.post("/stores/{store_id}/members/{account_id}/role", responses=_HTML)
def set_role(ctx: MembersManage, store_id: str, account_id: str, form: FormDep) -> Response:
    """Grant a role, or change ``from_role`` into it in one step (the API's role-change)."""
    # a refused form is drawn again with the roles the member holds, to change one of them
    held = [m.role for m in ctx.memberships.members(store_id, 0, 500) if m.account_id == account_id]
    values = {"store_id": store_id, "account_id": account_id, "roles": ROLE_NAMES, "held": held}
    template = "_role_form.html"
    body = parse(RoleForm, form, ("role", "from_role"), template, **values)
    try:
        ctx.accounts.get(account_id)
        if body.from_role:
            ctx.memberships.change(ctx.actor, store_id, account_id, body.from_role, body.role)
        else:
            ctx.memberships.grant(ctx.actor, store_id, account_id, body.role)
    except IotstoreError as e:
        raise refused(template, form, e, **values) from e
    return redirect(f"/stores/{store_id}/members")


@router.post("/stores/{store_id}/members/{account_id}/roles/{role}/remove", responses=_HTML)
def remove_role(ctx: MembersManage, store_id: str, account_id: str, role: str) -> Response:
    """Take a role away (never the store's last administrator)."""
    ctx.memberships.remove(ctx.actor, store_id, account_id, role)
    return redirect(f"/stores/{store_id}/members")


# -- curation ------------------------------------------------------------------------------


def _snap_names(ctx: RequestContext, ids: set[str]) -> dict[str, Snap]:
    if not ids:
        return {}
    return {s.snap_id: s for s in ctx.session.scalars(select(Snap).where(Snap.snap_id.in_(ids)))}


@router.get("/stores/{store_id}/curation", responses=_HTML)
def curation_page(ctx: StoreView, store_id: str) -> HTMLResponse:
    """Snaps included from other stores and snaps of the parent's catalogue hidden here."""
    store = ctx.stores.get(store_id)
    includes, excludes = ctx.stores.curation(store_id)
    snaps = _snap_names(ctx, {i.snap_id for i in includes} | {e.snap_id for e in excludes})
    scope = ctx.stores.catalogue(store_id)
    catalogue = ctx.session.scalars(
        select(Snap)
        .where(scope.sql_filter(Snap.store_id, Snap.snap_id))
        .order_by(Snap.name)
        .limit(CATALOGUE_LIMIT)
    ).all()
    return render(
        ctx, "curation.html", store=store, tab="Curation", snaps=snaps,
        includes=includes, excludes=excludes, catalogue=catalogue, limit=CATALOGUE_LIMIT,
    )  # fmt: skip


class SnapRef(BaseModel):
    """A snap by id."""

    snap_id: str = Field(min_length=32, max_length=32, pattern=r"^[A-Za-z0-9]{32}$")


@router.post("/stores/{store_id}/includes", responses=_HTML)
def include(ctx: Curate, store_id: str, form: FormDep) -> Response:
    """Include a snap of a store that allows inclusion."""
    template = "_snapref_form.html"
    values = {"action": f"/stores/{store_id}/includes", "label": "Include", "id": "include"}
    body = parse(SnapRef, form, ("snap_id",), template, **values)
    try:
        include_snap(ctx, store_id, body.snap_id, field="snap_id")
    except IotstoreError as e:
        raise refused(template, form, e, **values) from e
    return redirect(f"/stores/{store_id}/curation")


@router.post("/stores/{store_id}/includes/{snap_id}/remove", responses=_HTML)
def uninclude(ctx: Curate, store_id: str, snap_id: str) -> Response:
    """Remove an include."""
    ctx.stores.uninclude(ctx.actor, store_id, snap_id)
    return redirect(f"/stores/{store_id}/curation")


@router.post("/stores/{store_id}/excludes", responses=_HTML)
def exclude(ctx: Curate, store_id: str, form: FormDep) -> Response:
    """Hide a snap the parent's catalogue offers."""
    template = "_snapref_form.html"
    values = {"action": f"/stores/{store_id}/excludes", "label": "Exclude", "id": "exclude"}
    body = parse(SnapRef, form, ("snap_id",), template, **values)
    try:
        ctx.stores.exclude(ctx.actor, store_id, body.snap_id)
    except IotstoreError as e:
        raise refused(template, form, e, **values) from e
    return redirect(f"/stores/{store_id}/curation")


@router.post("/stores/{store_id}/excludes/{snap_id}/remove", responses=_HTML)
def unexclude(ctx: Curate, store_id: str, snap_id: str) -> Response:
    """Show an excluded snap again."""
    ctx.stores.unexclude(ctx.actor, store_id, snap_id)
    return redirect(f"/stores/{store_id}/curation")


# -- audit ---------------------------------------------------------------------------------


def _day(text: str) -> date | None:
    try:
        return date.fromisoformat(text) if text else None
    except ValueError:
        return None


def _audit_export(store_id: str, action: str, start: datetime | None, end: datetime | None) -> str:
    """The admin API's CSV export of the same filter (the browser's session reads it)."""
    query = {"format": "csv", "limit": "500"}
    if action:
        query["action"] = action
    if start:
        query["since"] = start.isoformat()
    if end:
        query["until"] = end.isoformat()
    return f"/api/v1/stores/{store_id}/audit?{urlencode(query)}"


@router.get("/stores/{store_id}/audit", responses=_HTML)
def audit_page(
    ctx: AuditView,
    store_id: str,
    action: Annotated[str, Query(max_length=64)] = "",
    since_text: Annotated[str, Query(alias="since", max_length=32)] = "",
    until_text: Annotated[str, Query(alias="until", max_length=32)] = "",
    after: Annotated[int, Query(ge=0)] = 0,
) -> HTMLResponse:
    """Changes in this store and below, 100 a page, with a CSV export of the same filter."""
    store = ctx.stores.get(store_id)
    # a date field left empty is sent as "": no bound, like a date that does not parse
    since, until = _day(since_text), _day(until_text)
    start = datetime.combine(since, time(), tzinfo=UTC) if since else None
    # "until" is a day the person means to include; the calendar's last day leaves no bound
    end = None
    if until is not None and until < date.max:
        end = datetime.combine(until + timedelta(days=1), time(), tzinfo=UTC)
    entries = ctx.audit.query(
        store_ids=ctx.stores.subtree_ids(store_id), action=action or None, after_id=after,
        since=start, until=end, limit=100,
    )  # fmt: skip
    actors = _accounts(ctx, {e.actor_account_id for e in entries if e.actor_account_id})
    rows = [entry_dict(e) for e in entries]
    return render(
        ctx, "audit.html", store=store, tab="Audit log", rows=rows, action=action,
        since=since.isoformat() if since else "", until=until.isoformat() if until else "",
        export=_audit_export(store_id, action, start, end),
        actors={k: a.email for k, a in actors.items()},
        next_after=entries[-1].id if len(entries) == 100 else None,
    )  # fmt: skip
