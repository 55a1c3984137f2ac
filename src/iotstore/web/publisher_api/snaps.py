"""Names, pushes, releases and channel maps as snapcraft asks for them.

``POST /dev/api/register-name/``            register a name (``store`` optional)
``POST /dev/api/snap-push/``                pre-check (``dry_run``), or push an upload
``GET  /dev/api/snap-status/{upload_id}``   the ``status_details_url`` snapcraft polls
``POST /dev/api/snap-release/``             release a revision (progressive too)
``POST /dev/api/snaps/{snap_id}/close``     close channels
``GET  /api/v2/snaps/{name}/channel-map``   channel map, revisions, tracks
``GET  /api/v2/snaps/{name}/releases``      release history and revisions

Which store a call acts in is known only once the snap (or the body's
store) is looked up, so these routes declare ``ACCOUNT_SELF`` (any signed-in
account) and then check the snap permission of the same table
(:func:`authorize_snap`): the snap's store roles, its publisher and
collaborators (``SnapService.check``), the token's permissions and stores,
and a login's package and channel restrictions.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from iotstore.accounts.models import Account
from iotstore.errors import Conflict, Forbidden, InvalidInput, NotFound
from iotstore.snaps.channels import RISKS, parse_channel
from iotstore.snaps.models import Revision, Snap, Upload
from iotstore.snaps.services import Publishing
from iotstore.stores.permissions import Permission, Role

from .._publishing import publishing
from ..auth import authorize, require, store_chain
from ..context import RequestContext
from ._uploads import open_upload_id
from .sso import login_restrictions

__all__ = ["authorize_snap", "publishing", "router"]

router = APIRouter(tags=["publisher: snaps"])

Self = Annotated[RequestContext, Depends(require(Permission.ACCOUNT_SELF))]


class _Lenient(BaseModel):
    # snapcraft sends fields we do not use (series, source_uploaded...): ignore, bound the rest
    model_config = ConfigDict(extra="ignore", str_max_length=4096)


class RegisterName(_Lenient):
    """``/dev/api/register-name/`` (``type`` is ours: kernel and gadget names)."""

    snap_name: str = Field(max_length=64)
    is_private: bool = False
    store: str | None = Field(default=None, max_length=64)
    type: str = Field(default="app", max_length=16)


class Push(_Lenient):
    """``/dev/api/snap-push/``: a pre-check (``dry_run``) or the notification of an upload."""

    name: str = Field(max_length=64)
    dry_run: bool = False
    updown_id: str | None = Field(default=None, max_length=2048)
    binary_filesize: int | None = Field(default=None, ge=0)
    built_at: datetime | None = None
    channels: list[str] | None = Field(default=None, max_length=50)
    components: dict[str, str] | None = None


class Progressive(_Lenient):
    """A progressive release's share of devices."""

    percentage: float = Field(ge=0, le=100)
    paused: bool | None = None


class Release(_Lenient):
    """``/dev/api/snap-release/`` (revision arrives as a string)."""

    name: str = Field(max_length=64)
    revision: int
    channels: list[str] = Field(min_length=1, max_length=50)
    progressive: Progressive | None = None


class Close(_Lenient):
    """``/dev/api/snaps/{snap_id}/close``."""

    channels: list[str] = Field(min_length=1, max_length=50)


def _account(ctx: RequestContext) -> Account:
    account = ctx.principal.account
    if account is None:  # pragma: no cover - require(ACCOUNT_SELF) guarantees one
        raise Forbidden("sign in or send a token")
    return account


def authorize_snap(
    ctx: RequestContext, pub: Publishing, snap: Snap, permission: Permission
) -> None:
    """Raise unless the caller may ``permission`` on ``snap`` (see the module docstring)."""
    pub.snaps.check(ctx.actor, snap, permission)  # 404 when it may not even see the snap
    token = ctx.principal.token
    if token is not None:
        if not token.carries(permission):
            raise Forbidden(f"this token does not carry the {permission.value} permission")
        if not token.reaches(store_chain(ctx, snap.store_id)):
            raise Forbidden("this token is restricted to other stores")
    packages = login_restrictions(ctx).get("packages")
    if packages and snap.name not in packages:
        raise Forbidden(f"this login is restricted to the snaps {', '.join(packages)}")


def _check_channels(ctx: RequestContext, snap: Snap, channels: list[str]) -> None:
    allowed = login_restrictions(ctx).get("channels")
    if not allowed:
        return
    for text in channels:
        channel = parse_channel(text, snap.default_track)
        if not {text, channel.name, channel.risk} & set(allowed):
            raise Forbidden(f"this login may not release to {channel.name}")


def _snap_by_name(pub: Publishing, name: str) -> Snap:
    return pub.snaps.by_name(name)


@router.post("/dev/api/register-name/", status_code=201)
def register_name(
    ctx: Self, body: RegisterName, dry_run: Annotated[bool, Query()] = False
) -> dict[str, Any]:
    """Register a snap name in a store the caller publishes in."""
    account = _account(ctx)
    store_id = body.store
    if store_id is None:
        stores = sorted(
            {s for s, role in ctx.memberships.direct_roles(account.id) if role == Role.PUBLISHER}
        )
        if len(stores) != 1:
            raise InvalidInput(
                "name the store to register in ('store')"
                if stores
                else "you are not a publisher in any store",
                field="store",
            )
        store_id = stores[0]
    authorize(ctx, Permission.SNAP_REGISTER, store_id)
    pub = publishing(ctx)
    snap = pub.snaps.register(
        ctx.actor,
        store_id,
        body.snap_name,
        snap_type=body.type,
        private=body.is_private,
        dry_run=dry_run,
    )
    return {"snap_id": snap.snap_id, "snap_name": snap.name, "store": snap.store_id}


def _status_url(ctx: RequestContext, upload_id: str) -> str:
    return f"{ctx.deployment.settings.base_url}/dev/api/snap-status/{upload_id}"


@router.post("/dev/api/snap-push/", response_model=None)
def snap_push(ctx: Self, body: Push) -> dict[str, Any] | JSONResponse:
    """Check the caller may upload (``dry_run``), or push an upload as the next revision.

    The upload id is bound to the first account that pushes it; another
    account's push of it is refused, and so is a second push.
    """
    pub = publishing(ctx)
    snap = _snap_by_name(pub, body.name)
    authorize_snap(ctx, pub, snap, Permission.SNAP_UPLOAD)
    if body.dry_run:
        return {"success": True, "snap_id": snap.snap_id}
    if not body.updown_id:
        raise InvalidInput("updown_id is required (upload the file first)", field="updown_id")
    if body.components:
        raise InvalidInput("components are not supported by this store", field="components")
    if body.channels:
        _check_channels(ctx, snap, body.channels)
    claimed = open_upload_id(ctx.deployment.secret, body.updown_id)
    if body.binary_filesize is not None and body.binary_filesize != claimed.info.size:
        raise InvalidInput(
            f"binary_filesize {body.binary_filesize} does not match the {claimed.info.size} "
            "bytes received",
            field="binary_filesize",
        )
    account = _account(ctx)
    bound = ctx.session.scalars(select(Upload).where(Upload.blob_key == claimed.info.key)).first()
    if bound is not None:
        if bound.account_id != account.id:
            raise Forbidden("this upload was pushed by another account")
        raise Conflict(f"this upload was pushed already: see {_status_url(ctx, bound.id)}")
    if not ctx.deployment.blobs.exists(claimed.info.key):
        raise NotFound("the uploaded file is gone (expired): upload it again")
    upload = pub.uploads.record(ctx.actor, account.id, claimed.info, claimed.filename)
    status = pub.revisions.push(
        ctx.actor, snap, upload.id, channels=body.channels or (), built_at=body.built_at
    )
    return JSONResponse(
        {
            "success": True,
            "status_details_url": _status_url(ctx, upload.id),
            "upload_id": upload.id,
            "code": status.code,
        },
        status_code=202,
    )


@router.get("/dev/api/snap-status/{upload_id}")
def snap_status(ctx: Self, upload_id: str) -> dict[str, Any]:
    """Where the caller's push stands (``processed`` once nothing changes without a person)."""
    status = publishing(ctx).revisions.status(upload_id, _account(ctx).id)
    return status.as_json()


@router.post("/dev/api/snap-release/")
def snap_release(ctx: Self, body: Release) -> dict[str, Any]:
    """Release a revision to channels (all its architectures), progressively if asked."""
    pub = publishing(ctx)
    snap = _snap_by_name(pub, body.name)
    authorize_snap(ctx, pub, snap, Permission.SNAP_RELEASE)
    _check_channels(ctx, snap, body.channels)
    percentage = body.progressive.percentage if body.progressive else None
    if percentage is not None and percentage >= 100:
        percentage = None  # 100 % is an ordinary release
    if percentage is not None and percentage <= 0:
        raise InvalidInput("a progressive percentage is above 0", field="progressive")
    entries = pub.releases.release(
        ctx.actor, snap, body.revision, body.channels, progressive_percentage=percentage
    )
    return {
        "success": True,
        "opened_channels": sorted({e.channel.name for e in entries}),
        "channel_map": [e.as_json() for e in pub.releases.channel_map(snap)],
    }


@router.post("/dev/api/snaps/{snap_id}/close")
def close_channels(ctx: Self, snap_id: str, body: Close) -> dict[str, Any]:
    """Close channels: devices tracking them follow the next more stable risk."""
    pub = publishing(ctx)
    snap = pub.snaps.get(snap_id)
    authorize_snap(ctx, pub, snap, Permission.SNAP_RELEASE)
    _check_channels(ctx, snap, body.channels)
    closed = pub.releases.close(ctx.actor, snap, body.channels)
    return {"success": True, "closed_channels": closed}


def _iso(when: datetime | None) -> str | None:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ") if when else None


def _revision_json(rev: Revision) -> dict[str, Any]:
    return {
        "revision": rev.revision,
        "version": rev.version,
        "architectures": list(rev.architectures),
        "base": rev.base,
        "build-url": None,
        "confinement": rev.confinement,
        "created-at": _iso(rev.created_at),
        "epoch": rev.epoch,
        "grade": rev.grade,
        "sha3-384": rev.sha3_384,
        "size": rev.size,
        "attributes": {},
        "status": _STATUS.get(rev.status, rev.status),
    }


# our revision states in the store's vocabulary (publisher-api.md 4.3)
_STATUS = {
    "approved": "Published",
    "pending-review": "ManualReviewPending",
    "rejected": "Rejected",
}


def _viewable(ctx: RequestContext, name: str) -> tuple[Publishing, Snap]:
    pub = publishing(ctx)
    snap = _snap_by_name(pub, name)
    authorize_snap(ctx, pub, snap, Permission.SNAP_VIEW)
    return pub, snap


@router.get("/api/v2/snaps/{name}/channel-map")
def channel_map(ctx: Self, name: str) -> dict[str, Any]:
    """The snap's open channels, the revisions in them, its channels and tracks."""
    pub, snap = _viewable(ctx, name)
    entries = pub.releases.channel_map(snap)
    numbers = sorted({e.revision for e in entries}, reverse=True)
    revisions = [pub.revisions.get(snap, n) for n in numbers]
    tracks = pub.snaps.tracks(snap)
    channels: list[dict[str, Any]] = []
    for track in tracks:
        for i, risk in enumerate(RISKS):
            channels.append(
                {
                    "name": f"{track}/{risk}",
                    "track": track,
                    "risk": risk,
                    "branch": None,
                    "fallback": f"{track}/{RISKS[i - 1]}" if i else None,
                }
            )
    for e in entries:
        if e.channel.branch and not any(c["name"] == e.channel.name for c in channels):
            channels.append(
                {
                    "name": e.channel.name,
                    "track": e.channel.track,
                    "risk": e.channel.risk,
                    "branch": e.channel.branch,
                    "fallback": f"{e.channel.track}/{e.channel.risk}",
                }
            )
    return {
        "channel-map": [e.as_json() for e in entries],
        "revisions": [_revision_json(r) for r in revisions],
        "snap": {
            "name": snap.name,
            "id": snap.snap_id,
            "private": snap.private,
            "default-track": snap.default_track,
            "channels": channels,
            "tracks": [
                {"name": t, "status": "active", "creation-date": None, "version-pattern": None}
                for t in tracks
            ],
        },
    }


@router.get("/api/v2/snaps/{name}/releases")
def releases(ctx: Self, name: str) -> dict[str, Any]:
    """Every channel change (newest first) and every revision of the snap."""
    pub, snap = _viewable(ctx, name)
    return {
        "releases": [
            {
                "architecture": e.architecture,
                "branch": e.branch or None,
                "channel": f"{e.track}/{e.risk}" + (f"/{e.branch}" if e.branch else ""),
                "expiration-date": _iso(e.expires_at),
                "progressive": {
                    "paused": None,
                    "percentage": e.progressive_percentage,
                    "current-percentage": e.progressive_percentage,
                },
                "revision": e.revision,
                "risk": e.risk,
                "track": e.track,
                "when": _iso(e.at),
            }
            for e in pub.releases.history(snap)
        ],
        "revisions": [_revision_json(r) for r in pub.revisions.revisions(snap)],
    }
