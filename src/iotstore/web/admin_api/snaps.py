"""Snaps of a store: names, collaborators, revisions, review, tracks, releases, history.

Every route names one permission. Store roles grant it in the store; on the
routes of one snap the collaborator role, granted per snap by its publisher,
grants the collaborator permissions too, even without any role in the store
(:func:`require_snap`). The publishing domain then checks ownership: only the
snap's publisher (or, for brand-owned snaps, a store administrator) and its
collaborators upload and release it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request
from pydantic import Field
from sqlalchemy import select

from iotstore.errors import Forbidden, NotFound
from iotstore.snaps.errors import SnapRuleViolation, UploadNotFound
from iotstore.snaps.models import Collaborator, ReleaseEvent, Revision, Snap, Upload
from iotstore.snaps.services import (
    Publishing,
    collaborator_permissions,
    revision_dict,
    snap_dict,
)
from iotstore.stores.permissions import Permission

from .._publishing import publishing, snap_in_store
from ..auth import authenticate, authorize, require, store_chain
from ..context import RequestContext, request_context
from ..publisher_api._uploads import ID_PREFIX as STORAGE_ID_PREFIX
from ..publisher_api._uploads import open_upload_id
from ._common import Body, Limit, page

__all__ = ["publishing", "require_snap", "router"]

router = APIRouter(prefix="/api/v1/stores/{store_id}", tags=["snaps"])


def require_snap(permission: Permission) -> Callable[..., Any]:
    """Like :func:`~iotstore.web.auth.require` for routes of one snap (``{snap_id}``: id or
    name): an active collaborator of that snap holds the collaborator role's permissions
    there even without a role in the store. Token caveats apply as everywhere."""

    def dependency(
        request: Request,
        ctx: Annotated[RequestContext, Depends(request_context, scope="function")],
    ) -> RequestContext:
        ctx.principal = authenticate(ctx)
        store_id = request.path_params.get("store_id")
        try:
            authorize(ctx, permission, store_id)
        except (NotFound, Forbidden):
            account, token = ctx.principal.account, ctx.principal.token
            snap_ref = request.path_params.get("snap_id")
            if account is None or store_id is None or snap_ref is None:
                raise
            if token is not None and not (
                token.carries(permission) and token.reaches(store_chain(ctx, store_id))
            ):
                raise
            if permission not in collaborator_permissions(
                ctx.session, account.id, store_id, snap_ref
            ):
                raise
        return ctx

    dependency.permission = permission  # type: ignore[attr-defined]  # read by the matrix test
    return dependency


View = Annotated[RequestContext, Depends(require(Permission.SNAP_VIEW))]
Register = Annotated[RequestContext, Depends(require(Permission.SNAP_REGISTER))]
Review = Annotated[RequestContext, Depends(require(Permission.SNAP_REVIEW))]
SnapView = Annotated[RequestContext, Depends(require_snap(Permission.SNAP_VIEW))]
SnapCollaborators = Annotated[RequestContext, Depends(require_snap(Permission.SNAP_COLLABORATORS))]
SnapUpload = Annotated[RequestContext, Depends(require_snap(Permission.SNAP_UPLOAD))]
SnapRelease = Annotated[RequestContext, Depends(require_snap(Permission.SNAP_RELEASE))]
SnapReview = Annotated[RequestContext, Depends(require_snap(Permission.SNAP_REVIEW))]


def _collaborator(c: Collaborator) -> dict[str, Any]:
    return {
        "account-id": c.account_id,
        "since": c.since.isoformat().replace("+00:00", "Z"),
        "granted-by": c.granted_by,
    }


def _event(e: ReleaseEvent) -> dict[str, Any]:
    channel = f"{e.track}/{e.risk}" + (f"/{e.branch}" if e.branch else "")
    return {
        "architecture": e.architecture,
        "channel": channel,
        "track": e.track,
        "risk": e.risk,
        "branch": e.branch or None,
        "revision": e.revision,
        "action": e.action,
        "progressive-percentage": e.progressive_percentage,
        "expiration-date": e.expires_at.isoformat().replace("+00:00", "Z")
        if e.expires_at
        else None,
        "when": e.at.isoformat().replace("+00:00", "Z"),
        "actor-account-id": e.actor_account_id,
    }


# -- names ---------------------------------------------------------------------------


@router.get("/snaps")
def list_snaps(ctx: View, store_id: str, after: str = "", limit: Limit = 100) -> dict[str, Any]:
    """Snaps registered in the store, by name."""
    snaps = publishing(ctx).snaps.list_in_store(store_id, after[:40], limit)
    return page([snap_dict(s) for s in snaps], snaps[-1].name if snaps else None, limit)


class NewSnap(Body):
    """A name to register."""

    name: str = Field(max_length=40)
    type: Literal["app", "base", "os", "snapd", "kernel", "gadget"] = "app"
    private: bool = False


@router.post("/snaps", status_code=201)
def register_snap(ctx: Register, store_id: str, body: NewSnap) -> dict[str, Any]:
    """Register a name; kernel and gadget names only by the store's administrators."""
    snap = publishing(ctx).snaps.register(
        ctx.actor, store_id, body.name, snap_type=body.type, private=body.private
    )
    return snap_dict(snap)


@router.get("/snaps/{snap_id}")
def get_snap(ctx: SnapView, store_id: str, snap_id: str) -> dict[str, Any]:
    """One snap, its tracks and what the caller may do on it."""
    pub, snap = snap_in_store(ctx, store_id, snap_id)
    account = ctx.principal.account
    granted = pub.snaps.permissions(account.id, snap) if account else frozenset()
    return {
        **snap_dict(snap),
        "tracks": pub.snaps.tracks(snap),
        "your-permissions": sorted(p.value for p in granted),
    }


# -- collaborators -------------------------------------------------------------------


@router.get("/snaps/{snap_id}/collaborators")
def list_collaborators(ctx: SnapView, store_id: str, snap_id: str) -> dict[str, Any]:
    """The snap's active collaborators."""
    pub, snap = snap_in_store(ctx, store_id, snap_id)
    return {"items": [_collaborator(c) for c in pub.snaps.collaborators(snap)]}


class NewCollaborator(Body):
    """An account to make a collaborator."""

    account_id: str = Field(min_length=1, max_length=32)


class CollaboratorSet(Body):
    """The complete list of collaborators."""

    account_ids: list[str] = Field(max_length=100)


@router.post("/snaps/{snap_id}/collaborators", status_code=201)
def add_collaborator(
    ctx: SnapCollaborators, store_id: str, snap_id: str, body: NewCollaborator
) -> dict[str, Any]:
    """Let an account upload and release this snap (its publisher only)."""
    pub, snap = snap_in_store(ctx, store_id, snap_id)
    return _collaborator(pub.snaps.add_collaborator(ctx.actor, snap, body.account_id))


@router.put("/snaps/{snap_id}/collaborators")
def set_collaborators(
    ctx: SnapCollaborators, store_id: str, snap_id: str, body: CollaboratorSet
) -> dict[str, Any]:
    """Make the collaborators exactly this list."""
    pub, snap = snap_in_store(ctx, store_id, snap_id)
    pub.snaps.set_collaborators(ctx.actor, snap, body.account_ids)
    return {"items": [_collaborator(c) for c in pub.snaps.collaborators(snap)]}


@router.delete("/snaps/{snap_id}/collaborators/{account_id}", status_code=204)
def remove_collaborator(
    ctx: SnapCollaborators, store_id: str, snap_id: str, account_id: str
) -> None:
    """Take the collaborator role on this snap away."""
    pub, snap = snap_in_store(ctx, store_id, snap_id)
    pub.snaps.remove_collaborator(ctx.actor, snap, account_id)


# -- revisions and review ------------------------------------------------------------


@router.get("/snaps/{snap_id}/revisions")
def list_revisions(
    ctx: SnapView, store_id: str, snap_id: str, after: int = 0, limit: Limit = 100
) -> dict[str, Any]:
    """Revisions, newest first, with their review state and reasons."""
    pub, snap = snap_in_store(ctx, store_id, snap_id)
    revs = pub.revisions.revisions(snap, after=max(after, 0), limit=limit)
    return page([revision_dict(r) for r in revs], str(revs[-1].revision) if revs else None, limit)


@router.get("/snaps/{snap_id}/revisions/{revision}")
def get_revision(ctx: SnapView, store_id: str, snap_id: str, revision: int) -> dict[str, Any]:
    """One revision."""
    pub, snap = snap_in_store(ctx, store_id, snap_id)
    return revision_dict(pub.revisions.get(snap, revision))


class Push(Body):
    """An upload to turn into the next revision: the id ``/unscanned-upload/`` answered
    (claimed by the caller now), or an upload the caller holds already."""

    upload_id: str = Field(min_length=1, max_length=1024)
    channels: list[str] = Field(default_factory=list, max_length=50)


@router.post("/snaps/{snap_id}/revisions", status_code=201)
def push_revision(ctx: SnapUpload, store_id: str, snap_id: str, body: Push) -> dict[str, Any]:
    """Run the automated checks on an upload and make it a revision (or say why not)."""
    pub, snap = snap_in_store(ctx, store_id, snap_id)
    pub.snaps.check(ctx.actor, snap, Permission.SNAP_UPLOAD)
    upload_id = body.upload_id
    account = ctx.principal.account
    if upload_id.startswith(STORAGE_ID_PREFIX) and account is not None:
        claimed = open_upload_id(ctx.deployment.secret, upload_id)
        bound = ctx.session.scalars(
            select(Upload).where(Upload.blob_key == claimed.info.key)
        ).first()
        if bound is not None and bound.account_id != account.id:
            raise UploadNotFound("this upload was pushed by another account")
        if bound is None:
            if not ctx.deployment.blobs.exists(claimed.info.key):
                raise UploadNotFound("the uploaded file is gone (expired): upload it again")
            bound = pub.uploads.record(ctx.actor, account.id, claimed.info, claimed.filename)
        upload_id = bound.id
    status = pub.revisions.push(ctx.actor, snap, upload_id, channels=body.channels)
    return status.as_json()


@router.get("/review-queue")
def review_queue(ctx: Review, store_id: str, after: int = 0, limit: Limit = 100) -> dict[str, Any]:
    """Revisions of the store's snaps waiting for a reviewer, oldest first, a page at a time."""
    rows = publishing(ctx).revisions.review_queue(store_id, limit, after=max(after, 0))
    items = [{"snap-id": s.snap_id, "name": s.name, **revision_dict(r)} for s, r in rows]
    return page(items, str(rows[-1][1].id) if rows else None, limit)


class Rejection(Body):
    """Why the revision is refused (shown to the publisher)."""

    reason: str = Field(min_length=1, max_length=2000)


def _reviewed(rev: Revision) -> dict[str, Any]:
    return revision_dict(rev)


@router.post("/snaps/{snap_id}/revisions/{revision}/accept")
def accept_revision(ctx: SnapReview, store_id: str, snap_id: str, revision: int) -> dict[str, Any]:
    """Accept a pending revision: it becomes releasable."""
    pub, snap = snap_in_store(ctx, store_id, snap_id)
    return _reviewed(pub.revisions.accept(ctx.actor, snap, revision))


@router.post("/snaps/{snap_id}/revisions/{revision}/reject")
def reject_revision(
    ctx: SnapReview, store_id: str, snap_id: str, revision: int, body: Rejection
) -> dict[str, Any]:
    """Reject a pending revision with a reason; it can never be released."""
    pub, snap = snap_in_store(ctx, store_id, snap_id)
    return _reviewed(pub.revisions.reject(ctx.actor, snap, revision, body.reason))


# -- tracks, releases, channel map ---------------------------------------------------


class NewTrack(Body):
    """A track to create."""

    name: str = Field(min_length=1, max_length=28)


class DefaultTrack(Body):
    """The track devices follow when they name none (null: latest)."""

    track: str | None = Field(default=None, max_length=28)


@router.post("/snaps/{snap_id}/tracks", status_code=201)
def create_track(ctx: SnapRelease, store_id: str, snap_id: str, body: NewTrack) -> dict[str, Any]:
    """Create a track."""
    pub, snap = snap_in_store(ctx, store_id, snap_id)
    pub.snaps.create_track(ctx.actor, snap, body.name)
    return {"tracks": pub.snaps.tracks(snap), "default-track": snap.default_track}


@router.put("/snaps/{snap_id}/default-track")
def set_default_track(
    ctx: SnapRelease, store_id: str, snap_id: str, body: DefaultTrack
) -> dict[str, Any]:
    """Set the snap's default track."""
    pub, snap = snap_in_store(ctx, store_id, snap_id)
    pub.snaps.set_default_track(ctx.actor, snap, body.track)
    return {"tracks": pub.snaps.tracks(snap), "default-track": snap.default_track}


class Release(Body):
    """Release a revision to channels, optionally to a share of devices first."""

    revision: int = Field(ge=1)
    channels: list[str] = Field(min_length=1, max_length=50)
    progressive_percentage: float | None = Field(default=None, gt=0, lt=100)


class Close(Body):
    """Channels to close (every architecture unless named)."""

    channels: list[str] = Field(min_length=1, max_length=50)
    architectures: list[str] = Field(default_factory=list, max_length=20)


class Progressive(Body):
    """Change an ongoing progressive release of one channel."""

    channel: str = Field(min_length=1, max_length=200)
    action: Literal["update", "complete", "abandon"]
    percentage: float | None = Field(default=None, gt=0, lt=100)


def _channel_map(pub: Publishing, snap: Snap) -> dict[str, Any]:
    return {
        "channel-map": [e.as_json() for e in pub.releases.channel_map(snap)],
        "tracks": pub.snaps.tracks(snap),
        "default-track": snap.default_track,
    }


@router.post("/snaps/{snap_id}/releases")
def release(ctx: SnapRelease, store_id: str, snap_id: str, body: Release) -> dict[str, Any]:
    """Release a revision (each of its architectures) to one or more channels."""
    pub, snap = snap_in_store(ctx, store_id, snap_id)
    pub.releases.release(
        ctx.actor,
        snap,
        body.revision,
        body.channels,
        progressive_percentage=body.progressive_percentage,
    )
    return _channel_map(pub, snap)


@router.post("/snaps/{snap_id}/close")
def close_channels(ctx: SnapRelease, store_id: str, snap_id: str, body: Close) -> dict[str, Any]:
    """Close channels: devices on them follow the next more stable risk."""
    pub, snap = snap_in_store(ctx, store_id, snap_id)
    closed = pub.releases.close(ctx.actor, snap, body.channels, body.architectures)
    return {"closed-channels": closed, **_channel_map(pub, snap)}


@router.post("/snaps/{snap_id}/progressive")
def progressive(ctx: SnapRelease, store_id: str, snap_id: str, body: Progressive) -> dict[str, Any]:
    """Raise or lower, complete or abandon a progressive release."""
    pub, snap = snap_in_store(ctx, store_id, snap_id)
    if body.action == "update":
        if body.percentage is None:
            raise SnapRuleViolation("update needs a percentage", field="percentage")
        pub.releases.set_progress(ctx.actor, snap, body.channel, body.percentage)
    elif body.action == "complete":
        pub.releases.complete(ctx.actor, snap, body.channel)
    else:
        pub.releases.abandon(ctx.actor, snap, body.channel)
    return _channel_map(pub, snap)


@router.get("/snaps/{snap_id}/channel-map")
def channel_map(ctx: SnapView, store_id: str, snap_id: str) -> dict[str, Any]:
    """What each channel of each architecture holds now."""
    pub, snap = snap_in_store(ctx, store_id, snap_id)
    return _channel_map(pub, snap)


@router.get("/snaps/{snap_id}/releases")
def release_history(
    ctx: SnapView, store_id: str, snap_id: str, after: int = 0, limit: Limit = 500
) -> dict[str, Any]:
    """Every channel change, newest first, a page at a time."""
    pub, snap = snap_in_store(ctx, store_id, snap_id)
    events = pub.releases.history(snap, limit=limit, before=max(after, 0))
    return page([_event(e) for e in events], str(events[-1].id) if events else None, limit)
