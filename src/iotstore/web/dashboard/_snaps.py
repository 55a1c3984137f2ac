"""Snap pages: names, collaborators, revisions, the review queue, channel map and releases.

Routes of one snap use the admin API's ``require_snap`` (one declared
permission, which a snap's collaborator holds too) and its ``publishing``
services; the publishing domain checks ownership again, as for the API.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel, Field

from iotstore.errors import IotstoreError
from iotstore.snaps.models import Snap
from iotstore.snaps.services import Publishing, revision_dict, snap_dict
from iotstore.stores.permissions import Permission

from .._publishing import publishing, snap_in_store
from ..admin_api.snaps import SnapCollaborators as OneSnapCollaborators
from ..admin_api.snaps import SnapRelease as OneSnapRelease
from ..admin_api.snaps import SnapReview as OneSnapReview
from ..admin_api.snaps import SnapView as OneSnapView
from ..context import RequestContext
from ._charts import bar_chart, progress_bar
from ._deps import FormDep, SnapRegister, SnapReview, SnapView
from ._render import HTML_PAGE as _HTML
from ._render import granted, parse, redirect, refused, reject, render
from ._stores import _accounts

__all__ = ["router"]

router = APIRouter(tags=["dashboard"], default_response_class=HTMLResponse)
SNAP_TYPES = ["app", "base", "os", "snapd", "kernel", "gadget"]


@router.get("/stores/{store_id}/snaps", responses=_HTML)
def snaps_page(ctx: SnapView, store_id: str) -> HTMLResponse:
    """Snaps registered in the store; the register form; how many revisions wait for review."""
    store = ctx.stores.get(store_id)
    pub = publishing(ctx)
    snaps = [snap_dict(s) for s in pub.snaps.list_in_store(store_id, "", 500)]
    waiting = (
        len(pub.revisions.review_queue(store_id, 500))
        if Permission.SNAP_REVIEW in granted(ctx, store_id)
        else None
    )
    return render(
        ctx, "snaps.html", store=store, tab="Snaps", snaps=snaps, waiting=waiting,
        types=SNAP_TYPES,
    )  # fmt: skip


class NewSnap(BaseModel):
    """The register-a-name form."""

    name: str = Field(min_length=1, max_length=40)
    type: str = Field(default="app", max_length=16)


@router.post("/stores/{store_id}/snaps", responses=_HTML)
def register_snap(ctx: SnapRegister, store_id: str, form: FormDep) -> Response:
    """Register a snap name in the store."""
    template = "_register_snap_form.html"
    values = {"store_id": store_id, "types": SNAP_TYPES}
    body = parse(NewSnap, form, ("name", "type"), template, **values)
    try:
        snap = publishing(ctx).snaps.register(
            ctx.actor, store_id, body.name, snap_type=body.type, private=form.checked("private")
        )
    except IotstoreError as e:
        raise refused(template, form, e, **values) from e
    return redirect(f"/stores/{store_id}/snaps/{snap.name}")


@router.get("/stores/{store_id}/review", responses=_HTML)
def review_page(ctx: SnapReview, store_id: str) -> HTMLResponse:
    """Revisions waiting for a reviewer, oldest first, with accept and reject."""
    store = ctx.stores.get(store_id)
    rows = publishing(ctx).revisions.review_queue(store_id, 500)
    queue = [{"snap": snap_dict(s), **revision_dict(r)} for s, r in rows]
    return render(ctx, "review.html", store=store, tab="Snaps", queue=queue)


def _names(ctx: RequestContext, ids: set[str]) -> dict[str, str]:
    return {k: a.email for k, a in _accounts(ctx, ids - {""}).items()}


def _channel_chart(pub: Publishing, snap: Snap) -> dict[str, Any] | None:
    events = [e for e in pub.releases.history(snap, limit=1000) if e.action == "release"]
    if not events:
        return None
    per_channel: Counter[str] = Counter()
    seen: set[tuple[str, int | None]] = set()
    for e in events:
        channel = f"{e.track}/{e.risk}" + (f"/{e.branch}" if e.branch else "")
        if (channel, e.revision) not in seen:
            seen.add((channel, e.revision))
            per_channel[channel] += 1
    points = sorted(per_channel.items())
    return {
        "svg": bar_chart(
            "Revisions released per channel",
            "How many different revisions each channel has held: "
            + ", ".join(f"{c} {n}" for c, n in points),
            points,
        ),
        "points": points,
    }


@router.get("/stores/{store_id}/snaps/{snap_id}", responses=_HTML)
def snap_page(ctx: OneSnapView, store_id: str, snap_id: str) -> HTMLResponse:
    """One snap: channel map with release controls, revisions, collaborators, history."""
    store = ctx.stores.get(store_id)
    pub, snap = snap_in_store(ctx, store_id, snap_id)
    account = ctx.principal.account
    allowed = pub.snaps.permissions(account.id, snap) if account else frozenset()
    revisions = [revision_dict(r) for r in pub.revisions.revisions(snap, limit=100)]
    channel_map = []
    for entry in pub.releases.channel_map(snap):
        item = entry.as_json()
        pct = entry.progressive_percentage
        item["progress"] = progress_bar(f"{item['channel']} rollout", pct) if pct else None
        item["percentage"] = pct
        item["version"] = entry.version
        channel_map.append(item)
    collaborators = pub.snaps.collaborators(snap)
    history = pub.releases.history(snap, limit=50)
    names = _names(
        ctx,
        {c.account_id for c in collaborators}
        | {e.actor_account_id or "" for e in history}
        | {r["uploaded-by"] or "" for r in revisions},
    )
    return render(
        ctx, "snap.html", store=store, tab="Snaps", snap=snap_dict(snap),
        tracks=pub.snaps.tracks(snap), revisions=revisions, channel_map=channel_map,
        collaborators=collaborators, history=history, names=names,
        snap_can=lambda name: Permission(name) in allowed,
        chart=_channel_chart(pub, snap),
        releasable=[r["revision"] for r in revisions if r["status"] == "approved"],
    )  # fmt: skip


@router.get("/stores/{store_id}/snaps/{snap_id}/revisions/{revision}", responses=_HTML)
def revision_page(ctx: OneSnapView, store_id: str, snap_id: str, revision: int) -> HTMLResponse:
    """One revision: everything the admin API tells of it, the channels holding it, and the
    review controls while it waits for review."""
    store = ctx.stores.get(store_id)
    pub, snap = snap_in_store(ctx, store_id, snap_id)
    rev = revision_dict(pub.revisions.get(snap, revision))
    account = ctx.principal.account
    allowed = pub.snaps.permissions(account.id, snap) if account else frozenset()
    channels = [e.as_json() for e in pub.releases.channel_map(snap) if e.revision == revision]
    names = _names(ctx, {rev["uploaded-by"] or "", rev["reviewed-by"] or ""})
    return render(
        ctx, "revision.html", store=store, tab="Snaps", snap=snap_dict(snap), rev=rev,
        channels=channels, names=names, snap_can=lambda name: Permission(name) in allowed,
    )  # fmt: skip


# -- collaborators ---------------------------------------------------------------------------


class CollaboratorForm(BaseModel):
    """An account, by email."""

    email: str = Field(min_length=3, max_length=254)


@router.post("/stores/{store_id}/snaps/{snap_id}/collaborators", responses=_HTML)
def add_collaborator(
    ctx: OneSnapCollaborators, store_id: str, snap_id: str, form: FormDep
) -> Response:
    """Let an account (by email) upload and release this snap."""
    template = "_collaborator_form.html"
    values = {"store_id": store_id, "snap_name": snap_id}
    body = parse(CollaboratorForm, form, ("email",), template, **values)
    try:
        pub, snap = snap_in_store(ctx, store_id, snap_id)
        account = ctx.accounts.find_by_email(body.email)
        if account is None:
            raise reject(template, form, {"email": "no account has this email"}, **values)
        pub.snaps.add_collaborator(ctx.actor, snap, account.id)
    except IotstoreError as e:
        raise refused(template, form, e, **values) from e
    return redirect(f"/stores/{store_id}/snaps/{snap.name}")


@router.post(
    "/stores/{store_id}/snaps/{snap_id}/collaborators/{account_id}/remove", responses=_HTML
)
def remove_collaborator(
    ctx: OneSnapCollaborators, store_id: str, snap_id: str, account_id: str
) -> Response:
    """Take the collaborator role on this snap away."""
    pub, snap = snap_in_store(ctx, store_id, snap_id)
    pub.snaps.remove_collaborator(ctx.actor, snap, account_id)
    return redirect(f"/stores/{store_id}/snaps/{snap.name}")


# -- review ----------------------------------------------------------------------------------


@router.post("/stores/{store_id}/snaps/{snap_id}/revisions/{revision}/accept", responses=_HTML)
def accept_revision(ctx: OneSnapReview, store_id: str, snap_id: str, revision: int) -> Response:
    """Accept a pending revision: it becomes releasable."""
    pub, snap = snap_in_store(ctx, store_id, snap_id)
    pub.revisions.accept(ctx.actor, snap, revision)
    return redirect(ctx.request.headers.get("hx-current-url") or f"/stores/{store_id}/review")


class Rejection(BaseModel):
    """Why a revision is refused."""

    reason: str = Field(min_length=1, max_length=2000)


@router.post("/stores/{store_id}/snaps/{snap_id}/revisions/{revision}/reject", responses=_HTML)
def reject_revision(
    ctx: OneSnapReview, store_id: str, snap_id: str, revision: int, form: FormDep
) -> Response:
    """Reject a pending revision with a reason the publisher sees."""
    template = "_reject_form.html"
    values = {"store_id": store_id, "snap_name": snap_id, "revision": revision}
    body = parse(Rejection, form, ("reason",), template, **values)
    try:
        pub, snap = snap_in_store(ctx, store_id, snap_id)
        pub.revisions.reject(ctx.actor, snap, revision, body.reason)
    except IotstoreError as e:
        raise refused(template, form, e, **values) from e
    return redirect(ctx.request.headers.get("hx-current-url") or f"/stores/{store_id}/review")


# -- releases ----------------------------------------------------------------------------------


def _channels(text: str) -> list[str]:
    return [c for c in text.replace(",", " ").split() if c]


class ReleaseForm(BaseModel):
    """Release a revision to channels, optionally progressively."""

    revision: int = Field(ge=1)
    channels: str = Field(min_length=1, max_length=2000)
    percentage: float | None = Field(default=None, gt=0, lt=100)


@router.post("/stores/{store_id}/snaps/{snap_id}/releases", responses=_HTML)
def release(ctx: OneSnapRelease, store_id: str, snap_id: str, form: FormDep) -> Response:
    """Release a revision to one or more channels."""
    template = "_release_form.html"
    values: dict[str, Any] = {"store_id": store_id, "snap_name": snap_id, "releasable": []}
    body = parse(ReleaseForm, form, ("revision", "channels", "percentage"), template, **values)
    try:
        pub, snap = snap_in_store(ctx, store_id, snap_id)
        pub.releases.release(
            ctx.actor, snap, body.revision, _channels(body.channels),
            progressive_percentage=body.percentage,
        )  # fmt: skip
    except IotstoreError as e:
        raise refused(template, form, e, **values) from e
    return redirect(f"/stores/{store_id}/snaps/{snap.name}")


class CloseForm(BaseModel):
    """Channels to close; the channel's name typed again."""

    channel: str = Field(min_length=1, max_length=200)
    confirm: str = Field(min_length=1, max_length=200)


@router.post("/stores/{store_id}/snaps/{snap_id}/close", responses=_HTML)
def close_channel(ctx: OneSnapRelease, store_id: str, snap_id: str, form: FormDep) -> Response:
    """Close a channel (every architecture): devices on it follow the next more stable risk."""
    template = "_close_form.html"
    values = {"store_id": store_id, "snap_name": snap_id, "channel": form.get("channel")}
    body = parse(CloseForm, form, ("channel", "confirm"), template, **values)
    if body.confirm != body.channel:
        raise reject(template, form, {"confirm": f"type {body.channel} to close it"}, **values)
    try:
        pub, snap = snap_in_store(ctx, store_id, snap_id)
        pub.releases.close(ctx.actor, snap, [body.channel])
    except IotstoreError as e:
        raise refused(template, form, e, **values) from e
    return redirect(f"/stores/{store_id}/snaps/{snap.name}")


class ProgressForm(BaseModel):
    """Change an ongoing progressive release."""

    channel: str = Field(min_length=1, max_length=200)
    action: str = Field(pattern="^(update|complete|abandon)$")
    percentage: float | None = Field(default=None, gt=0, lt=100)


@router.post("/stores/{store_id}/snaps/{snap_id}/progressive", responses=_HTML)
def progressive(ctx: OneSnapRelease, store_id: str, snap_id: str, form: FormDep) -> Response:
    """Raise or lower, complete or abandon a progressive release."""
    template = "_progress_form.html"
    values = {
        "store_id": store_id, "snap_name": snap_id, "channel": form.get("channel"),
        "percentage": None,
    }  # fmt: skip
    body = parse(ProgressForm, form, ("channel", "action", "percentage"), template, **values)
    try:
        pub, snap = snap_in_store(ctx, store_id, snap_id)
        if body.action == "update":
            if body.percentage is None:
                raise reject(template, form, {"percentage": "give a percentage"}, **values)
            pub.releases.set_progress(ctx.actor, snap, body.channel, body.percentage)
        elif body.action == "complete":
            pub.releases.complete(ctx.actor, snap, body.channel)
        else:
            pub.releases.abandon(ctx.actor, snap, body.channel)
    except IotstoreError as e:
        raise refused(template, form, e, **values) from e
    return redirect(f"/stores/{store_id}/snaps/{snap.name}")


class TrackForm(BaseModel):
    """A track to create, or to make the default."""

    name: str = Field(default="", max_length=28)


@router.post("/stores/{store_id}/snaps/{snap_id}/tracks", responses=_HTML)
def create_track(ctx: OneSnapRelease, store_id: str, snap_id: str, form: FormDep) -> Response:
    """Create a track; ``default`` ticked makes it the default track."""
    template = "_track_form.html"
    values = {"store_id": store_id, "snap_name": snap_id}
    body = parse(TrackForm, form, ("name",), template, **values)
    if not body.name:
        raise reject(template, form, {"name": "name the track"}, **values)
    try:
        pub, snap = snap_in_store(ctx, store_id, snap_id)
        if body.name not in pub.snaps.tracks(snap):
            pub.snaps.create_track(ctx.actor, snap, body.name)
        if form.checked("default"):
            pub.snaps.set_default_track(ctx.actor, snap, body.name)
    except IotstoreError as e:
        raise refused(template, form, e, **values) from e
    return redirect(f"/stores/{store_id}/snaps/{snap.name}")
