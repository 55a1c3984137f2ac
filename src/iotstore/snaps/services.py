"""Publishing rules: names, collaborators, uploads, revisions, review, channels, releases.

Services flush, never commit: the caller (one HTTP request, one CLI command)
owns the unit of work, so a failure anywhere leaves nothing half-written.
Everything an account changes is written to the audit log in the same
transaction. Assertions (snap-declaration, snap-revision, snap-developer and
the ``account`` of every publisher and developer) are signed by the
deployment's root and stored in the assertions table, where the device API
serves them from.

Access: the store roles (:mod:`iotstore.stores.permissions`) say what an
account may do in a store; on one snap, uploading, releasing and managing
collaborators additionally need the account to be the snap's publisher (for
brand-owned kernel and gadget snaps: an administrator of the store) or, for
upload and release, one of its collaborators (:meth:`SnapService.permissions`).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import re
import secrets
import string
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, BinaryIO

from sqlalchemy import Connection, bindparam, func, select
from sqlalchemy.orm import Session

from iotstore import asserts
from iotstore.accounts.models import Account
from iotstore.accounts.root_authority import RootAuthority
from iotstore.assertdb import SqlBackstore, trust_database
from iotstore.blobstore import BlobInfo, BlobStore
from iotstore.db import utcnow
from iotstore.db.prepared import PreparedRead
from iotstore.keystore import KeyStore
from iotstore.stores.audit import Actor, AuditLog
from iotstore.stores.permissions import ROLE_PERMISSIONS, Permission, Role
from iotstore.stores.services import CatalogueScope, MembershipService, StoreService

from .channels import DEFAULT_TRACK, RISKS, Channel, fallback_chain, parse_channel, valid_track_name
from .errors import (
    ChannelError,
    NotReleasable,
    RevisionNotFound,
    SnapAccessDenied,
    SnapNameTaken,
    SnapNotFound,
    SnapRuleViolation,
    UploadNotFound,
)
from .inspection import InspectionError, inspect_snap
from .models import ChannelRelease, Collaborator, ReleaseEvent, Revision, Snap, Track, Upload

__all__ = [
    "BRANCH_LIFETIME",
    "BRAND_ONLY_TYPES",
    "ChannelMapEntry",
    "ChannelResolver",
    "Publishing",
    "PushStatus",
    "ReleaseService",
    "ResolveRequest",
    "ResolvedRevision",
    "RevisionService",
    "SnapService",
    "UploadService",
    "collaborator_permissions",
    "progressive_bucket",
    "revision_dict",
    "snap_dict",
    "valid_snap_name",
]

SERIES = "16"
DEFAULT_PROVENANCE = "global-upload"
BRAND_ONLY_TYPES = frozenset({"kernel", "gadget"})
# types snapd's store API knows (details_v2.go); "os" is the legacy core
SNAP_TYPES = frozenset({"app", "base", "os", "snapd", "kernel", "gadget"})
# Canonical's store closes a branch 30 days after its last release
BRANCH_LIFETIME = timedelta(days=30)
_NAME_RE = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
_ID_ALPHABET = string.ascii_letters + string.digits
# what a publisher, collaborator... may do on a snap beyond viewing it
_SNAP_WRITE = frozenset(
    {Permission.SNAP_UPLOAD, Permission.SNAP_RELEASE, Permission.SNAP_COLLABORATORS}
)
_COLLABORATOR_WRITE = ROLE_PERMISSIONS[Role.COLLABORATOR] & _SNAP_WRITE
_MAX_TRACKS = 50


def valid_snap_name(name: str) -> bool:
    """Lower-case letters, digits and single inner hyphens, 2-40 characters, one letter at least."""
    return (
        2 <= len(name) <= 40
        and bool(_NAME_RE.fullmatch(name))
        and any("a" <= c <= "z" for c in name)
    )


def _new_id(length: int = 32) -> str:
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(length))


def _iso(when: datetime | None) -> str | None:
    return asserts.format_time(when) if when is not None else None


def _b64url(hex_digest: str) -> str:
    return base64.urlsafe_b64encode(bytes.fromhex(hex_digest)).rstrip(b"=").decode("ascii")


def snap_dict(snap: Snap) -> dict[str, Any]:
    """A registered snap as JSON-ready values (also the audit log's before/after)."""
    return {
        "snap-id": snap.snap_id,
        "name": snap.name,
        "store-id": snap.store_id,
        "publisher-id": snap.publisher_id,
        "type": snap.snap_type,
        "private": snap.private,
        "default-track": snap.default_track,
        "registered-by": snap.registered_by,
        "created-at": _iso(snap.created_at),
    }


def revision_dict(rev: Revision) -> dict[str, Any]:
    """A revision as JSON-ready values (``sha3-384`` as lower-case hex)."""
    return {
        "revision": rev.revision,
        "version": rev.version,
        "type": rev.snap_type,
        "base": rev.base,
        "confinement": rev.confinement,
        "grade": rev.grade,
        "architectures": list(rev.architectures),
        "epoch": rev.epoch,
        "provenance": rev.provenance,
        "sha3-384": rev.sha3_384,
        "size": rev.size,
        "status": rev.status,
        "review-reason": rev.review_reason,
        "reviewed-by": rev.reviewed_by,
        "reviewed-at": _iso(rev.reviewed_at),
        "uploaded-by": rev.uploaded_by,
        "created-at": _iso(rev.created_at),
        "built-at": _iso(rev.built_at),
        "release-on-accept": rev.release_on_accept,
    }


def _can_read(target: Mapping[str, Any], current: Mapping[str, Sequence[int]]) -> bool:
    """snapd's ``Epoch.CanRead``: the target reads one of the epochs the current one wrote."""
    return bool(set(target.get("read") or [0]) & set(current.get("write") or [0]))


def progressive_bucket(snap_id: str, revision: int, device_key: str) -> float:
    """A device's place in ``[0, 100)`` for a progressive release of ``revision``.

    Deterministic per device and release, and independent of the percentage:
    raising the percentage keeps every device already chosen.
    """
    digest = hashlib.sha256(f"{snap_id}\x00{revision}\x00{device_key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 * 100


def collaborator_permissions(
    session: Session, account_id: str, store_id: str, snap_ref: str
) -> frozenset[Permission]:
    """What the collaborator role gives ``account_id`` on the snap ``snap_ref`` (id or name)
    of ``store_id``: nothing when it is not an active collaborator there."""
    found = session.scalars(
        select(Collaborator.id)
        .join(Snap, Snap.snap_id == Collaborator.snap_id)
        .where(
            Collaborator.account_id == account_id,
            Collaborator.revoked_at.is_(None),
            Snap.store_id == store_id,
            (Snap.snap_id == snap_ref) | (Snap.name == snap_ref),
        )
    ).first()
    return ROLE_PERMISSIONS[Role.COLLABORATOR] if found is not None else frozenset()


class _RootSigner:
    """Signs assertions as the deployment's root and adds them to the trust database."""

    def __init__(
        self, session: Session, keystore: KeyStore, root: RootAuthority, trust: asserts.Database
    ) -> None:
        self._session = session
        self._keystore = keystore
        self._root = root
        self.trust = trust
        self.backstore = SqlBackstore(session)

    def sign(self, type_name: str, headers: dict[str, Any]) -> asserts.Assertion:
        signer = self._keystore.signer(self._root.key_name)
        a = asserts.sign(type_name, {"authority-id": self._root.account_id, **headers}, signer)
        self.trust.add(a)
        return a

    def next_revision(self, type_name: str, primary_key: tuple[str, ...]) -> int:
        revisions = list(self.backstore.revisions(type_name, primary_key))
        return revisions[-1] + 1 if revisions else 0

    def ensure_account(self, account_id: str) -> None:
        """Sign an ``account`` assertion for a person who has none yet (brands have one)."""
        try:
            self.trust.find("account", (account_id,))
        except asserts.NotFoundError:
            pass
        else:
            return
        person = self._session.get(Account, account_id)
        if person is None:
            raise SnapRuleViolation(f"no account {account_id!r}", field="account-id")
        self.sign(
            "account",
            {
                "account-id": account_id,
                "display-name": person.display_name or account_id,
                "validation": "unproven",
                "timestamp": asserts.format_time(utcnow()),
            },
        )


# -- names and collaborators ---------------------------------------------------------


class SnapService:
    """Register names, manage collaborators and tracks, decide who may do what on a snap."""

    def __init__(
        self,
        session: Session,
        audit: AuditLog,
        signer: _RootSigner,
        stores: StoreService,
        memberships: MembershipService,
    ) -> None:
        self._session = session
        self._audit = audit
        self._signer = signer
        self._stores = stores
        self._memberships = memberships

    # lookups

    def get(self, snap_id: str) -> Snap:
        """The snap by id; raises :class:`SnapNotFound`."""
        snap = self._session.get(Snap, snap_id)
        if snap is None:
            raise SnapNotFound(f"no snap {snap_id!r}")
        return snap

    def by_name(self, name: str) -> Snap:
        """The snap by name; raises :class:`SnapNotFound`."""
        snap = self._session.scalars(select(Snap).where(Snap.name == name)).first()
        if snap is None:
            raise SnapNotFound(f"no snap named {name!r}")
        return snap

    def in_store(self, store_id: str, ref: str) -> Snap:
        """The snap registered in ``store_id`` whose id or name is ``ref``."""
        snap = self._session.scalars(
            select(Snap).where(
                Snap.store_id == store_id, (Snap.snap_id == ref) | (Snap.name == ref)
            )
        ).first()
        if snap is None:
            raise SnapNotFound(f"store {store_id!r} has no snap {ref!r}")
        return snap

    def list_in_store(self, store_id: str, after: str = "", limit: int = 100) -> list[Snap]:
        """Snaps registered in the store, by name, paginated (``after`` a name)."""
        return list(
            self._session.scalars(
                select(Snap)
                .where(Snap.store_id == store_id, Snap.name > after)
                .order_by(Snap.name)
                .limit(limit)
            )
        )

    def account_snaps(self, account_id: str) -> list[Snap]:
        """Snaps the account publishes or collaborates on, by name (``/dev/api/account``)."""
        collaborating = select(Collaborator.snap_id).where(
            Collaborator.account_id == account_id, Collaborator.revoked_at.is_(None)
        )
        return list(
            self._session.scalars(
                select(Snap)
                .where(
                    (Snap.publisher_id == account_id)
                    | (Snap.registered_by == account_id)
                    | Snap.snap_id.in_(collaborating)
                )
                .order_by(Snap.name)
            )
        )

    # access

    def _owns(self, account_id: str, snap: Snap, roles: set[Role]) -> bool:
        if account_id in (snap.publisher_id, snap.registered_by):
            return True
        # brand-owned snaps are managed by the brand's store administrators
        store = self._stores.get(snap.store_id)
        return snap.publisher_id == store.brand_id and Role.ADMIN in roles

    def is_collaborator(self, account_id: str, snap: Snap) -> bool:
        """Whether the account is an active collaborator of the snap."""
        return (
            self._session.scalars(
                select(Collaborator.id).where(
                    Collaborator.snap_id == snap.snap_id,
                    Collaborator.account_id == account_id,
                    Collaborator.revoked_at.is_(None),
                )
            ).first()
            is not None
        )

    def permissions(self, account_id: str, snap: Snap) -> frozenset[Permission]:
        """What the account may do on this snap: its store roles' permissions, where
        upload/release/collaborators need ownership, plus the collaborator role's."""
        roles = self._memberships.roles(account_id, snap.store_id)
        granted: set[Permission] = set()
        for role in roles:
            granted |= ROLE_PERMISSIONS[role]
        if not self._owns(account_id, snap, roles):
            granted -= _SNAP_WRITE
        if self.is_collaborator(account_id, snap):
            granted |= ROLE_PERMISSIONS[Role.COLLABORATOR]
        return frozenset(granted)

    def check(self, actor: Actor, snap: Snap, permission: Permission) -> None:
        """Raise :class:`SnapAccessDenied` (or :class:`SnapNotFound` when the account may
        not even see the snap) unless ``actor`` may act; an actor without account is the
        system itself (seeding, CLI run by the operator) and may do anything."""
        if actor.account_id is None:
            return
        granted = self.permissions(actor.account_id, snap)
        if not granted:
            raise SnapNotFound(f"no snap {snap.name!r}")
        if permission not in granted:
            what = "its publisher or a collaborator" if permission in _COLLABORATOR_WRITE else ""
            hint = f" (only {what} may)" if what else ""
            raise SnapAccessDenied(f"you may not {permission.value} on {snap.name!r}{hint}")

    # registration

    def register(
        self,
        actor: Actor,
        store_id: str,
        name: str,
        *,
        snap_type: str = "app",
        private: bool = False,
        dry_run: bool = False,
    ) -> Snap:
        """Register ``name`` in ``store_id`` and sign its snap-declaration.

        ``actor.account_id`` becomes the publisher, except for kernel and gadget
        snaps: only an administrator of the store (acting for the brand) may
        register those, and the brand is their publisher. Raises
        :class:`SnapRuleViolation`, :class:`SnapNameTaken`, :class:`SnapAccessDenied`.
        With ``dry_run`` nothing is written and an unsaved :class:`Snap` returns.
        """
        if not valid_snap_name(name):
            raise SnapRuleViolation(
                "snap names are 2-40 lower-case letters, digits and single inner hyphens, "
                "with at least one letter",
                field="name",
            )
        if snap_type not in SNAP_TYPES:
            raise SnapRuleViolation(
                f"type must be one of {', '.join(sorted(SNAP_TYPES))}", field="type"
            )
        store = self._stores.get(store_id)
        publisher_id = actor.account_id
        if snap_type in BRAND_ONLY_TYPES:
            if actor.account_id is not None and Role.ADMIN not in self._memberships.roles(
                actor.account_id, store_id
            ):
                raise SnapAccessDenied(
                    f"{snap_type} snaps are registered by the brand: only administrators of "
                    f"{store_id!r} may register them"
                )
            publisher_id = store.brand_id
        if publisher_id is None:
            raise SnapRuleViolation("a snap needs a publisher account", field="publisher-id")
        taken = self._session.scalars(select(Snap.snap_id).where(Snap.name == name)).first()
        if taken is not None:
            raise SnapNameTaken(f"the name {name!r} is registered already", field="name")
        snap = Snap(
            snap_id=_new_id(),
            name=name,
            store_id=store.id,
            publisher_id=publisher_id,
            snap_type=snap_type,
            registered_by=actor.account_id,
            private=private,
        )
        if dry_run:
            return snap
        self._session.add(snap)
        self._session.flush()
        self._sign_declaration(snap)
        self._audit.record(
            actor, "snap.register", store_id=store.id, target=snap.snap_id, after=snap_dict(snap)
        )
        return snap

    def _sign_declaration(self, snap: Snap, extra: dict[str, Any] | None = None) -> None:
        self._signer.ensure_account(snap.publisher_id)
        key = (SERIES, snap.snap_id)
        headers: dict[str, Any] = {
            "series": SERIES,
            "snap-id": snap.snap_id,
            "snap-name": snap.name,
            "publisher-id": snap.publisher_id,
            "timestamp": asserts.format_time(utcnow()),
            **(extra or {}),
        }
        revision = self._signer.next_revision("snap-declaration", key)
        if revision:
            headers["revision"] = str(revision)
        self._signer.sign("snap-declaration", headers)

    def declaration(self, snap: Snap) -> asserts.Assertion:
        """The snap's newest snap-declaration."""
        return self._signer.trust.find("snap-declaration", (SERIES, snap.snap_id))

    def update_declaration(self, actor: Actor, snap: Snap, headers: dict[str, Any]) -> None:
        """Re-issue the snap-declaration (revision + 1) with extra headers, e.g. ``plugs``,
        ``slots``, ``aliases``; the name, id and publisher always come from the snap."""
        self.check(actor, snap, Permission.SNAP_COLLABORATORS)
        fixed = {"series", "snap-id", "snap-name", "publisher-id", "timestamp", "revision"}
        if fixed & set(headers) or "authority-id" in headers or "type" in headers:
            raise SnapRuleViolation("these declaration headers are set by the store")
        try:
            self._sign_declaration(snap, headers)
        except asserts.AssertsError as e:
            raise SnapRuleViolation(f"invalid declaration: {e}") from e
        self._audit.record(
            actor, "snap.declaration", store_id=snap.store_id, target=snap.snap_id,
            after={"headers": sorted(headers)},
        )  # fmt: skip

    # collaborators

    def collaborators(self, snap: Snap, *, include_revoked: bool = False) -> list[Collaborator]:
        """The snap's collaborators, oldest first."""
        q = select(Collaborator).where(Collaborator.snap_id == snap.snap_id)
        if not include_revoked:
            q = q.where(Collaborator.revoked_at.is_(None))
        return list(self._session.scalars(q.order_by(Collaborator.id)))

    def add_collaborator(self, actor: Actor, snap: Snap, account_id: str) -> Collaborator:
        """Let ``account_id`` upload and release this snap (idempotent)."""
        self.check(actor, snap, Permission.SNAP_COLLABORATORS)
        if self._session.get(Account, account_id) is None:
            raise SnapRuleViolation(f"no account {account_id!r}", field="account-id")
        if account_id == snap.publisher_id:
            raise SnapRuleViolation("the publisher is not its own collaborator", field="account-id")
        row = self._session.scalars(
            select(Collaborator).where(
                Collaborator.snap_id == snap.snap_id, Collaborator.account_id == account_id
            )
        ).first()
        if row is not None and row.revoked_at is None:
            return row
        if row is None:
            row = Collaborator(
                snap_id=snap.snap_id, account_id=account_id, granted_by=actor.account_id
            )
            self._session.add(row)
        else:
            row.revoked_at, row.since, row.granted_by = None, utcnow(), actor.account_id
        self._session.flush()
        self._sign_developers(snap)
        self._audit.record(
            actor, "snap.collaborator.add", store_id=snap.store_id, target=snap.snap_id,
            after={"account-id": account_id},
        )  # fmt: skip
        return row

    def remove_collaborator(self, actor: Actor, snap: Snap, account_id: str) -> None:
        """Take the collaborator role on this snap away."""
        self.check(actor, snap, Permission.SNAP_COLLABORATORS)
        row = self._session.scalars(
            select(Collaborator).where(
                Collaborator.snap_id == snap.snap_id,
                Collaborator.account_id == account_id,
                Collaborator.revoked_at.is_(None),
            )
        ).first()
        if row is None:
            raise SnapNotFound(f"{account_id!r} is not a collaborator of {snap.name!r}")
        row.revoked_at = utcnow()
        self._session.flush()
        self._sign_developers(snap)
        self._audit.record(
            actor, "snap.collaborator.remove", store_id=snap.store_id, target=snap.snap_id,
            before={"account-id": account_id},
        )  # fmt: skip

    def set_collaborators(self, actor: Actor, snap: Snap, account_ids: Iterable[str]) -> None:
        """Make the active collaborators exactly ``account_ids``."""
        wanted = set(account_ids)
        current = {c.account_id for c in self.collaborators(snap)}
        for account_id in sorted(wanted - current):
            self.add_collaborator(actor, snap, account_id)
        for account_id in sorted(current - wanted):
            self.remove_collaborator(actor, snap, account_id)
        if wanted == current:
            self.check(actor, snap, Permission.SNAP_COLLABORATORS)

    def _sign_developers(self, snap: Snap) -> None:
        # snapd: since == until revokes, and a revoked developer has no other item
        developers: list[dict[str, str]] = []
        for c in self.collaborators(snap, include_revoked=True):
            self._signer.ensure_account(c.account_id)
            since = asserts.format_time(c.since)
            item = {"developer-id": c.account_id, "since": since}
            if c.revoked_at is not None:
                item["until"] = since
            developers.append(item)
        self._signer.ensure_account(snap.publisher_id)
        key = (snap.snap_id, snap.publisher_id)
        headers: dict[str, Any] = {
            "snap-id": snap.snap_id,
            "publisher-id": snap.publisher_id,
            "developers": developers,
        }
        revision = self._signer.next_revision("snap-developer", key)
        if revision:
            headers["revision"] = str(revision)
        self._signer.sign("snap-developer", headers)

    # tracks

    def tracks(self, snap: Snap) -> list[str]:
        """``latest`` and the tracks created for the snap, by name."""
        created = self._session.scalars(
            select(Track.name).where(Track.snap_id == snap.snap_id).order_by(Track.name)
        )
        return [DEFAULT_TRACK, *(n for n in created if n != DEFAULT_TRACK)]

    def create_track(self, actor: Actor, snap: Snap, name: str) -> None:
        """Add a track (publisher or collaborator)."""
        self.check(actor, snap, Permission.SNAP_RELEASE)
        if not valid_track_name(name):
            raise SnapRuleViolation(
                "track names are 1-28 letters, digits and single '.', '_' or '-', not a risk",
                field="name",
            )
        if name in self.tracks(snap):
            return
        if len(self.tracks(snap)) >= _MAX_TRACKS:
            raise SnapRuleViolation(f"a snap has at most {_MAX_TRACKS} tracks", field="name")
        self._session.add(Track(snap_id=snap.snap_id, name=name, created_by=actor.account_id))
        self._session.flush()
        self._audit.record(
            actor, "snap.track.create", store_id=snap.store_id, target=snap.snap_id,
            after={"track": name},
        )  # fmt: skip

    def set_default_track(self, actor: Actor, snap: Snap, name: str | None) -> None:
        """Set the track devices follow when they name none (``None``: ``latest``)."""
        self.check(actor, snap, Permission.SNAP_RELEASE)
        if name is not None and name not in self.tracks(snap):
            raise SnapRuleViolation(f"{snap.name!r} has no track {name!r}", field="default-track")
        before = snap.default_track
        snap.default_track = None if name == DEFAULT_TRACK else name
        self._session.flush()
        self._audit.record(
            actor, "snap.track.default", store_id=snap.store_id, target=snap.snap_id,
            before={"default-track": before}, after={"default-track": snap.default_track},
        )  # fmt: skip


# -- uploads and revisions -----------------------------------------------------------


@dataclass(frozen=True)
class PushStatus:
    """What ``status_details_url`` reports for an upload (craft-store's poll).

    ``code``: ``being_processed``, ``ready_to_release``, ``need_manual_review``,
    ``processing_error`` (``errors`` say why), ``rejected`` (a reviewer refused it:
    ``errors`` carry the reason). ``processed`` is true once nothing will change
    without a person.
    """

    upload_id: str
    code: str
    processed: bool
    revision: int | None
    errors: list[dict[str, str]] = field(default_factory=list)
    snap_name: str | None = None

    def as_json(self) -> dict[str, Any]:
        """The craft-store poll response body."""
        return {
            "code": self.code,
            "processed": self.processed,
            "revision": self.revision,
            "errors": self.errors,
            "upload_id": self.upload_id,
            "snap_name": self.snap_name,
        }


class UploadService:
    """Blobs received by the storage endpoint, bound to their uploader."""

    def __init__(self, session: Session, audit: AuditLog) -> None:
        self._session = session
        self._audit = audit

    def record(self, actor: Actor, account_id: str, blob: BlobInfo, filename: str = "") -> Upload:
        """Bind a stored blob to ``account_id``; returns the upload (its ``id`` is the
        ``upload_id``). The blob must be written before this row commits."""
        upload = Upload(
            id=_new_id(),
            account_id=account_id,
            blob_key=blob.key,
            size=blob.size,
            sha3_384=blob.sha3_384_hex,
            filename=filename[:255],
        )
        self._session.add(upload)
        self._session.flush()
        self._audit.record(
            actor, "snap.upload", target=upload.id,
            after={"size": blob.size, "sha3-384": blob.sha3_384_hex, "filename": upload.filename},
        )  # fmt: skip
        return upload

    def get(self, upload_id: str, account_id: str | None) -> Upload:
        """The upload, if it belongs to ``account_id`` (``None``: any); else
        :class:`UploadNotFound`."""
        upload = self._session.get(Upload, upload_id) if len(upload_id) <= 32 else None
        if upload is None or (account_id is not None and upload.account_id != account_id):
            raise UploadNotFound(f"no upload {upload_id!r}")
        return upload

    def referenced_blob_keys(self) -> set[str]:
        """Every blob key a row refers to: what an orphan sweep must keep."""
        keys = set(self._session.scalars(select(Upload.blob_key)))
        keys.update(self._session.scalars(select(Revision.blob_key)))
        return keys

    def expired(self, older_than: datetime) -> list[Upload]:
        """Uploads never pushed and created before ``older_than``."""
        return list(
            self._session.scalars(
                select(Upload).where(Upload.status == "uploaded", Upload.created_at < older_than)
            )
        )

    def forget(self, upload: Upload) -> str:
        """Delete an unpushed upload's row; returns its blob key for the caller to delete
        after the commit (a revision never refers to it)."""
        if upload.status != "uploaded":
            raise NotReleasable("only uploads that were never pushed can be forgotten")
        key = upload.blob_key
        self._session.delete(upload)
        self._session.flush()
        return key

    def release_failed(self, pushed_before: datetime) -> int:
        """Let go of the blobs of uploads the automated checks refused, pushed before
        ``pushed_before``: the row keeps its errors for the publisher, its blob key is
        cleared so the orphan sweep deletes the file (unless a revision names the same
        key). Returns how many were released."""
        failed = list(
            self._session.scalars(
                select(Upload).where(
                    Upload.status == "failed",
                    Upload.blob_key != "",
                    Upload.pushed_at < pushed_before,
                )
            )
        )
        for upload in failed:
            upload.blob_key = ""
        self._session.flush()
        return len(failed)


Inspector = Callable[[BinaryIO], Any]


def _default_inspector(f: BinaryIO) -> Any:
    return inspect_snap(f)


class RevisionService:
    """Push uploads as revisions, automated checks, review, revision listing."""

    def __init__(
        self,
        session: Session,
        audit: AuditLog,
        signer: _RootSigner,
        snaps: SnapService,
        uploads: UploadService,
        blobs: BlobStore,
        stores: StoreService,
        inspector: Inspector = _default_inspector,
    ) -> None:
        self._session = session
        self._audit = audit
        self._signer = signer
        self._snaps = snaps
        self._uploads = uploads
        self._blobs = blobs
        self._stores = stores
        self._inspect = inspector
        self.releases: ReleaseService | None = None  # wired by Publishing

    # push

    def push(
        self,
        actor: Actor,
        snap: Snap,
        upload_id: str,
        *,
        channels: Sequence[str] = (),
        built_at: datetime | None = None,
    ) -> PushStatus:
        """Turn an upload of ``actor`` into the snap's next revision.

        Runs the automated checks (inspection, name, type, duplicate digest);
        a failure is recorded on the upload and reported in the returned status
        (``processing_error``), not raised. A passing upload becomes revision
        N+1: ``approved`` with its snap-revision signed, or ``pending-review``
        when the store requires manual review. ``channels`` are released at once
        when approved, else when a reviewer accepts. Raises
        :class:`UploadNotFound`, :class:`SnapAccessDenied`, :class:`ChannelError`.
        """
        self._snaps.check(actor, snap, Permission.SNAP_UPLOAD)
        upload = self._uploads.get(upload_id, actor.account_id)
        if upload.status != "uploaded":
            if upload.snap_id != snap.snap_id:
                raise UploadNotFound(f"upload {upload_id!r} was pushed already")
            return self.status(upload.id, actor.account_id)
        default_track = snap.default_track
        for c in channels:  # refuse bad channels before anything is written
            parse_channel(c, default_track)
        upload.snap_id = snap.snap_id
        upload.pushed_at = utcnow()
        errors, meta = self._check(snap, upload)
        if errors:
            upload.status = "failed"
            upload.errors = errors
            self._session.flush()
            self._audit.record(
                actor, "snap.push.refused", store_id=snap.store_id, target=snap.snap_id,
                after={"upload-id": upload.id, "errors": errors},
            )  # fmt: skip
            return self.status(upload.id, actor.account_id)
        store = self._stores.get(snap.store_id)
        # serialise revision numbering per snap (PostgreSQL row lock; SQLite has one writer)
        self._session.execute(
            select(Snap.snap_id).where(Snap.snap_id == snap.snap_id).with_for_update()
        )
        number = (
            self._session.scalar(
                select(func.max(Revision.revision)).where(Revision.snap_id == snap.snap_id)
            )
            or 0
        ) + 1
        rev = Revision(
            snap_id=snap.snap_id,
            revision=number,
            upload_id=upload.id,
            blob_key=upload.blob_key,
            size=upload.size,
            sha3_384=upload.sha3_384,
            version=meta.version,
            snap_type=meta.snap_type,
            base=meta.base,
            confinement=meta.confinement,
            grade=meta.grade,
            architectures=list(meta.architectures),
            epoch=meta.epoch.as_json(),
            provenance=meta.provenance or DEFAULT_PROVENANCE,
            snap_yaml=meta.snap_yaml,
            details={
                "summary": meta.summary,
                "title": meta.title,
                "description": meta.description,
                "license": meta.license,
            },
            status="pending-review" if store.manual_review else "approved",
            uploaded_by=actor.account_id or snap.publisher_id,
            built_at=built_at,
            release_on_accept=list(channels) or None,
        )
        self._session.add(rev)
        self._session.flush()
        upload.status = "processed"
        upload.revision_id = rev.id
        self._session.flush()
        self._audit.record(
            actor, "snap.push", store_id=snap.store_id, target=snap.snap_id,
            after=revision_dict(rev),
        )  # fmt: skip
        if rev.status == "approved":
            self._approve(actor, snap, rev)
        return self.status(upload.id, actor.account_id)

    def _check(self, snap: Snap, upload: Upload) -> tuple[list[dict[str, str]], Any]:
        """The automated checks: errors (code, message) and the metadata when none."""
        try:
            with self._blobs.open(upload.blob_key) as f:
                meta = self._inspect(f)
        except InspectionError as e:
            return [{"code": e.code, "message": e.message}], None
        errors: list[dict[str, str]] = []
        if meta.name != snap.name:
            errors.append(
                {
                    "code": "name-mismatch",
                    "message": f"the snap is named {meta.name!r} in snap.yaml, not {snap.name!r}",
                }
            )
        if meta.snap_type in BRAND_ONLY_TYPES and meta.snap_type != snap.snap_type:
            errors.append(
                {
                    "code": "type-not-allowed",
                    "message": f"{meta.snap_type} snaps need a name the brand registered as "
                    f"{meta.snap_type}; {snap.name!r} is registered as {snap.snap_type}",
                }
            )
        elif snap.snap_type in BRAND_ONLY_TYPES and meta.snap_type != snap.snap_type:
            errors.append(
                {
                    "code": "type-not-allowed",
                    "message": f"{snap.name!r} is registered as {snap.snap_type}, the upload "
                    f"is of type {meta.snap_type}",
                }
            )
        elif meta.snap_type not in SNAP_TYPES:
            errors.append(
                {"code": "type-not-allowed", "message": f"type {meta.snap_type!r} is not allowed"}
            )
        if meta.provenance not in (None, DEFAULT_PROVENANCE):
            errors.append(
                {
                    "code": "provenance-not-allowed",
                    "message": f"provenance {meta.provenance!r} is not supported by this store",
                }
            )
        duplicate = self._session.scalars(
            select(Revision).where(Revision.sha3_384 == upload.sha3_384)
        ).first()
        if duplicate is not None:
            owner = self._session.get(Snap, duplicate.snap_id)
            where = (
                f"revision {duplicate.revision} of {owner.name!r}"
                if owner is not None and owner.snap_id == snap.snap_id
                else "another snap's revision"
            )
            errors.append(
                {
                    "code": "duplicate-digest",
                    "message": f"a file with this sha3-384 was uploaded already ({where})",
                }
            )
        return errors, meta

    def _approve(self, actor: Actor, snap: Snap, rev: Revision) -> None:
        """Sign the snap-revision, then release to the channels asked for at push."""
        self._signer.ensure_account(rev.uploaded_by)
        self._signer.sign(
            "snap-revision",
            {
                "snap-sha3-384": _b64url(rev.sha3_384),
                "snap-id": snap.snap_id,
                "snap-size": str(rev.size),
                "snap-revision": str(rev.revision),
                "developer-id": rev.uploaded_by,
                "timestamp": asserts.format_time(utcnow()),
            },
        )
        if rev.release_on_accept and self.releases is not None:
            self.releases.release(actor, snap, rev.revision, rev.release_on_accept, _checked=True)

    def status(self, upload_id: str, account_id: str | None) -> PushStatus:
        """The poll answer for an upload of ``account_id`` (``None``: any account)."""
        upload = self._uploads.get(upload_id, account_id)
        snap = self._session.get(Snap, upload.snap_id) if upload.snap_id else None
        name = snap.name if snap is not None else None
        if upload.status == "uploaded":
            return PushStatus(upload.id, "being_processed", False, None, snap_name=name)
        if upload.status == "failed" or upload.revision_id is None:
            return PushStatus(
                upload.id, "processing_error", True, None, list(upload.errors or []), name
            )
        rev = self._session.get(Revision, upload.revision_id)
        assert rev is not None
        if rev.status == "approved":
            return PushStatus(upload.id, "ready_to_release", True, rev.revision, snap_name=name)
        if rev.status == "pending-review":
            return PushStatus(upload.id, "need_manual_review", True, rev.revision, snap_name=name)
        reason = rev.review_reason or "rejected by a reviewer"
        return PushStatus(
            upload.id, "rejected", True, rev.revision,
            [{"code": "rejected", "message": reason}], name,
        )  # fmt: skip

    # revisions

    def revisions(self, snap: Snap, *, after: int = 0, limit: int = 500) -> list[Revision]:
        """The snap's revisions, newest first (``after``: revisions below this number)."""
        q = select(Revision).where(Revision.snap_id == snap.snap_id)
        if after:
            q = q.where(Revision.revision < after)
        return list(self._session.scalars(q.order_by(Revision.revision.desc()).limit(limit)))

    def get(self, snap: Snap, revision: int) -> Revision:
        """One revision; raises :class:`RevisionNotFound`."""
        rev = self._session.scalars(
            select(Revision).where(Revision.snap_id == snap.snap_id, Revision.revision == revision)
        ).first()
        if rev is None:
            raise RevisionNotFound(f"{snap.name!r} has no revision {revision}")
        return rev

    # review

    def review_queue(
        self, store_id: str, limit: int = 100, *, after: int = 0
    ) -> list[tuple[Snap, Revision]]:
        """Revisions of the store's snaps waiting for a reviewer, oldest first
        (``after``: the row id the previous page ended on)."""
        rows = self._session.execute(
            select(Snap, Revision)
            .join(Revision, Revision.snap_id == Snap.snap_id)
            .where(
                Snap.store_id == store_id, Revision.status == "pending-review", Revision.id > after
            )
            .order_by(Revision.id)
            .limit(limit)
        ).all()
        return [(s, r) for s, r in rows]

    def _reviewable(self, actor: Actor, snap: Snap, revision: int) -> Revision:
        self._snaps.check(actor, snap, Permission.SNAP_REVIEW)
        rev = self.get(snap, revision)
        if rev.status != "pending-review":
            raise NotReleasable(
                f"revision {revision} of {snap.name!r} is {rev.status}, not pending"
            )
        return rev

    def accept(self, actor: Actor, snap: Snap, revision: int) -> Revision:
        """A reviewer accepts: the revision becomes releasable (snap-revision signed)."""
        rev = self._reviewable(actor, snap, revision)
        rev.status, rev.reviewed_by, rev.reviewed_at = "approved", actor.account_id, utcnow()
        self._session.flush()
        self._audit.record(
            actor, "snap.review.accept", store_id=snap.store_id, target=snap.snap_id,
            after={"revision": revision},
        )  # fmt: skip
        self._approve(actor, snap, rev)
        return rev

    def reject(self, actor: Actor, snap: Snap, revision: int, reason: str) -> Revision:
        """A reviewer rejects, with a reason the publisher sees; it can never be released."""
        reason = reason.strip()
        if not 1 <= len(reason) <= 2000:
            raise SnapRuleViolation(
                "a rejection needs a reason (1-2000 characters)", field="reason"
            )
        rev = self._reviewable(actor, snap, revision)
        rev.status, rev.review_reason = "rejected", reason
        rev.reviewed_by, rev.reviewed_at = actor.account_id, utcnow()
        self._session.flush()
        self._audit.record(
            actor, "snap.review.reject", store_id=snap.store_id, target=snap.snap_id,
            after={"revision": revision, "reason": reason},
        )  # fmt: skip
        return rev


# -- channels and releases -----------------------------------------------------------


@dataclass(frozen=True)
class ChannelMapEntry:
    """One open channel of one architecture."""

    architecture: str
    channel: Channel
    revision: int
    version: str
    progressive_percentage: float | None
    previous_revision: int | None
    expires_at: datetime | None
    released_at: datetime

    def as_json(self) -> dict[str, Any]:
        """The craft-store ``channel-map`` item."""
        return {
            "architecture": self.architecture,
            "channel": self.channel.name,
            "revision": self.revision,
            "expiration-date": _iso(self.expires_at),
            "progressive": {
                "paused": None,
                "percentage": self.progressive_percentage,
                "current-percentage": self.progressive_percentage,
            },
            "when": _iso(self.released_at),
        }


class ReleaseService:
    """Release revisions to channels, close channels, progressive releases, history."""

    def __init__(
        self, session: Session, audit: AuditLog, snaps: SnapService, revisions: RevisionService
    ) -> None:
        self._session = session
        self._audit = audit
        self._snaps = snaps
        self._revisions = revisions

    def _channel(self, snap: Snap, text: str) -> Channel:
        channel = parse_channel(text, snap.default_track)
        # "latest" always exists: no lookup for the common case
        if channel.track != DEFAULT_TRACK and channel.track not in self._snaps.tracks(snap):
            raise ChannelError(
                f"{snap.name!r} has no track {channel.track!r}; create it first",
                field="channels",
            )
        return channel

    def _row(self, snap: Snap, arch: str, channel: Channel) -> ChannelRelease | None:
        return self._session.scalars(
            select(ChannelRelease).where(
                ChannelRelease.snap_id == snap.snap_id,
                ChannelRelease.architecture == arch,
                ChannelRelease.track == channel.track,
                ChannelRelease.risk == channel.risk,
                ChannelRelease.branch == channel.branch,
            )
        ).first()

    def _history(
        self,
        actor: Actor,
        snap: Snap,
        arch: str,
        channel: Channel,
        revision: int | None,
        action: str,
        percentage: float | None = None,
        expires_at: datetime | None = None,
    ) -> None:
        self._session.add(
            ReleaseEvent(
                snap_id=snap.snap_id,
                architecture=arch,
                track=channel.track,
                risk=channel.risk,
                branch=channel.branch,
                revision=revision,
                action=action,
                progressive_percentage=percentage,
                expires_at=expires_at,
                actor_account_id=actor.account_id,
            )
        )

    def release(
        self,
        actor: Actor,
        snap: Snap,
        revision: int,
        channels: Sequence[str],
        *,
        progressive_percentage: float | None = None,
        _checked: bool = False,
    ) -> list[ChannelMapEntry]:
        """Release ``revision`` to ``channels`` for each of its architectures.

        With ``progressive_percentage`` (0 < p < 100) only that share of devices
        gets it; the others keep the channel's current revision. Pending and
        rejected revisions are refused (:class:`NotReleasable`). Returns the
        channel map entries written.
        """
        if not _checked:
            self._snaps.check(actor, snap, Permission.SNAP_RELEASE)
        if not channels:
            raise ChannelError("name at least one channel", field="channels")
        if progressive_percentage is not None and not 0 < progressive_percentage < 100:
            raise SnapRuleViolation(
                "a progressive percentage is above 0 and below 100", field="progressive"
            )
        rev = self._revisions.get(snap, revision)
        if rev.status != "approved":
            why = f": {rev.review_reason}" if rev.review_reason else ""
            raise NotReleasable(
                f"revision {revision} of {snap.name!r} is {rev.status} and cannot be released{why}"
            )
        parsed = sorted({self._channel(snap, c) for c in channels})
        now = utcnow()
        written: list[ChannelMapEntry] = []
        for channel in parsed:
            expires = now + BRANCH_LIFETIME if channel.branch else None
            for arch in rev.architectures:
                row = self._row(snap, arch, channel)
                previous = row.revision_id if row is not None else None
                if row is None:
                    row = ChannelRelease(
                        snap_id=snap.snap_id,
                        architecture=arch,
                        track=channel.track,
                        risk=channel.risk,
                        branch=channel.branch,
                        revision_id=rev.id,
                    )
                    self._session.add(row)
                if progressive_percentage is not None and previous not in (None, rev.id):
                    row.previous_revision_id = previous
                    row.progressive_percentage = progressive_percentage
                elif previous != rev.id or progressive_percentage is None:
                    # a full release, or nothing to roll out from: every device gets it
                    row.previous_revision_id = None
                    row.progressive_percentage = None
                # else: re-releasing the revision being rolled out keeps the rollout
                row.revision_id = rev.id
                row.expires_at = expires
                row.released_at = now
                self._history(
                    actor, snap, arch, channel, revision, "release",
                    row.progressive_percentage, expires,
                )  # fmt: skip
                written.append(self._entry(row, rev, channel))
        self._session.flush()
        self._audit.record(
            actor, "snap.release", store_id=snap.store_id, target=snap.snap_id,
            after={
                "revision": revision,
                "channels": [c.name for c in parsed],
                "progressive-percentage": progressive_percentage,
            },
        )  # fmt: skip
        return written

    def _entry(self, row: ChannelRelease, rev: Revision, channel: Channel) -> ChannelMapEntry:
        previous = (
            self._session.get(Revision, row.previous_revision_id)
            if row.previous_revision_id is not None
            else None
        )
        return ChannelMapEntry(
            row.architecture,
            channel,
            rev.revision,
            rev.version,
            row.progressive_percentage,
            previous.revision if previous is not None else None,
            row.expires_at,
            row.released_at,
        )

    def close(
        self, actor: Actor, snap: Snap, channels: Sequence[str], architectures: Sequence[str] = ()
    ) -> list[str]:
        """Close channels (all architectures unless named): devices tracking them follow
        the next more stable risk. Returns the names of the channels closed."""
        self._snaps.check(actor, snap, Permission.SNAP_RELEASE)
        if not channels:
            raise ChannelError("name at least one channel", field="channels")
        parsed = sorted({self._channel(snap, c) for c in channels})
        closed: list[str] = []
        for channel in parsed:
            q = select(ChannelRelease).where(
                ChannelRelease.snap_id == snap.snap_id,
                ChannelRelease.track == channel.track,
                ChannelRelease.risk == channel.risk,
                ChannelRelease.branch == channel.branch,
            )
            if architectures:
                q = q.where(ChannelRelease.architecture.in_(list(architectures)))
            for row in self._session.scalars(q):
                self._history(actor, snap, row.architecture, channel, None, "close")
                self._session.delete(row)
            closed.append(channel.name)
        self._session.flush()
        self._audit.record(
            actor, "snap.close", store_id=snap.store_id, target=snap.snap_id,
            after={"channels": closed, "architectures": list(architectures) or None},
        )  # fmt: skip
        return closed

    def _progressive_rows(
        self, snap: Snap, channel_text: str
    ) -> tuple[Channel, list[ChannelRelease]]:
        channel = self._channel(snap, channel_text)
        rows = list(
            self._session.scalars(
                select(ChannelRelease).where(
                    ChannelRelease.snap_id == snap.snap_id,
                    ChannelRelease.track == channel.track,
                    ChannelRelease.risk == channel.risk,
                    ChannelRelease.branch == channel.branch,
                    ChannelRelease.progressive_percentage.is_not(None),
                )
            )
        )
        if not rows:
            raise NotReleasable(f"{channel.name} of {snap.name!r} has no progressive release")
        return channel, rows

    def _revision_number(self, revision_id: int | None) -> int | None:
        if revision_id is None:
            return None
        rev = self._session.get(Revision, revision_id)
        return rev.revision if rev is not None else None

    def set_progress(self, actor: Actor, snap: Snap, channel: str, percentage: float) -> None:
        """Change the percentage of an ongoing progressive release (raise or lower)."""
        self._snaps.check(actor, snap, Permission.SNAP_RELEASE)
        if not 0 < percentage < 100:
            raise SnapRuleViolation(
                "a progressive percentage is above 0 and below 100; complete it for 100",
                field="percentage",
            )
        parsed, rows = self._progressive_rows(snap, channel)
        for row in rows:
            row.progressive_percentage = percentage
            self._history(
                actor, snap, row.architecture, parsed, self._revision_number(row.revision_id),
                "progress", percentage, row.expires_at,
            )  # fmt: skip
        self._session.flush()
        self._audit.record(
            actor, "snap.progressive.update", store_id=snap.store_id, target=snap.snap_id,
            after={"channel": parsed.name, "percentage": percentage},
        )  # fmt: skip

    def complete(self, actor: Actor, snap: Snap, channel: str) -> None:
        """Finish a progressive release: every device gets the new revision."""
        self._snaps.check(actor, snap, Permission.SNAP_RELEASE)
        parsed, rows = self._progressive_rows(snap, channel)
        for row in rows:
            row.progressive_percentage = None
            row.previous_revision_id = None
            self._history(
                actor, snap, row.architecture, parsed, self._revision_number(row.revision_id),
                "complete", None, row.expires_at,
            )  # fmt: skip
        self._session.flush()
        self._audit.record(
            actor, "snap.progressive.complete", store_id=snap.store_id, target=snap.snap_id,
            after={"channel": parsed.name},
        )  # fmt: skip

    def abandon(self, actor: Actor, snap: Snap, channel: str) -> None:
        """Stop a progressive release: every device goes back to the previous revision."""
        self._snaps.check(actor, snap, Permission.SNAP_RELEASE)
        parsed, rows = self._progressive_rows(snap, channel)
        for row in rows:
            previous = row.previous_revision_id
            if previous is None:
                self._history(actor, snap, row.architecture, parsed, None, "abandon")
                self._session.delete(row)
                continue
            row.revision_id, row.previous_revision_id = previous, None
            row.progressive_percentage = None
            self._history(
                actor, snap, row.architecture, parsed, self._revision_number(previous),
                "abandon", None, row.expires_at,
            )  # fmt: skip
        self._session.flush()
        self._audit.record(
            actor, "snap.progressive.abandon", store_id=snap.store_id, target=snap.snap_id,
            after={"channel": parsed.name},
        )  # fmt: skip

    def channel_map(self, snap: Snap, *, now: datetime | None = None) -> list[ChannelMapEntry]:
        """Open channels, by architecture then channel (expired branches left out)."""
        now = now or utcnow()
        rows = self._session.execute(
            select(ChannelRelease, Revision)
            .join(Revision, Revision.id == ChannelRelease.revision_id)
            .where(ChannelRelease.snap_id == snap.snap_id)
        ).all()
        entries = [
            self._entry(row, rev, Channel(row.track, row.risk, row.branch))
            for row, rev in rows
            if row.expires_at is None or row.expires_at > now
        ]
        return sorted(
            entries,
            key=lambda e: (e.architecture, e.channel.track, e.channel.risk_level, e.channel.branch),
        )

    def history(self, snap: Snap, *, limit: int = 1000, before: int = 0) -> list[ReleaseEvent]:
        """Every channel change, newest first (``before``: the event id the previous page
        ended on)."""
        q = select(ReleaseEvent).where(ReleaseEvent.snap_id == snap.snap_id)
        if before:
            q = q.where(ReleaseEvent.id < before)
        return list(self._session.scalars(q.order_by(ReleaseEvent.id.desc()).limit(limit)))


# -- what devices get ---------------------------------------------------------------


@dataclass(frozen=True)
class ResolveRequest:
    """One snap a device asks about: by id, tracking ``channel`` (``None``: the snap's
    default track, stable), or pinned to ``revision``. ``key`` is echoed back.

    ``epoch`` is the installed revision's epoch (``{"read": [...], "write": [...]}``)
    on a refresh: only a revision whose ``read`` epochs meet its ``write`` epochs is
    offered (snapd's ``Epoch.CanRead``), else an older one released to the channel.
    """

    key: str
    snap_id: str
    channel: str | None = None
    revision: int | None = None
    epoch: Mapping[str, Sequence[int]] | None = None


@dataclass(frozen=True)
class ResolvedRevision:
    """What a device needs to install or refresh one snap."""

    key: str
    snap_id: str
    name: str
    store_id: str
    publisher_id: str
    private: bool
    revision: int
    version: str
    snap_type: str
    base: str | None
    confinement: str
    grade: str
    architectures: tuple[str, ...]
    epoch: dict[str, Any]
    provenance: str
    sha3_384: str  # lower-case hex
    size: int
    blob_key: str
    snap_yaml: str
    details: dict[str, Any]
    created_at: datetime
    # the channel that served it (None for a pinned revision)
    channel: Channel | None
    # set when the request named no track and the snap has a default track
    redirect_channel: str | None = None


# the columns a refresh answer needs, read as plain rows (no ORM entities: a refresh
# of 20 snaps builds no mapped objects at all)
_RESOLVED_COLUMNS = (
    Snap.snap_id,
    Snap.name,
    Snap.store_id,
    Snap.publisher_id,
    Snap.private,
    Revision.id.label("revision_id"),
    Revision.revision,
    Revision.version,
    Revision.snap_type,
    Revision.base,
    Revision.confinement,
    Revision.grade,
    Revision.architectures,
    Revision.epoch,
    Revision.provenance,
    Revision.sha3_384,
    Revision.size,
    Revision.blob_key,
    Revision.snap_yaml,
    Revision.details,
    Revision.created_at,
)

# The refresh's two statements, built once: constructing a statement costs more than
# running it on an indexed lookup. The catalogue scope is applied to the rows in
# Python (CatalogueScope.contains): as SQL, a store filter makes SQLite walk every
# snap of the store instead of the few asked for.
_CHANNELS_OF_SNAPS = (
    select(
        Snap.snap_id,
        Snap.store_id,
        Snap.default_track,
        ChannelRelease.architecture,
        ChannelRelease.track,
        ChannelRelease.risk,
        ChannelRelease.branch,
        ChannelRelease.expires_at,
        ChannelRelease.progressive_percentage,
        ChannelRelease.revision_id,
        ChannelRelease.previous_revision_id,
        Revision.revision,
    )
    .join(ChannelRelease, ChannelRelease.snap_id == Snap.snap_id)
    .join(Revision, Revision.id == ChannelRelease.revision_id)
    .where(
        Snap.snap_id.in_(bindparam("snap_ids", expanding=True)),
        ChannelRelease.architecture.in_(bindparam("architectures", expanding=True)),
        # only the risks some request falls back through (most devices track stable)
        ChannelRelease.risk.in_(bindparam("risks", expanding=True)),
    )
)
_REVISIONS_BY_ID = (
    select(*_RESOLVED_COLUMNS)
    .join(Revision, Revision.snap_id == Snap.snap_id)
    .where(Revision.id.in_(bindparam("ids", expanding=True)))
)

# run on the driver's cursor: SQLAlchemy's per-execution work cost more than these lookups
_CHANNELS_READ = PreparedRead(_CHANNELS_OF_SNAPS)
_REVISIONS_READ = PreparedRead(_REVISIONS_BY_ID)


@dataclass(frozen=True, slots=True)
class _Candidate:
    """A channel of a fallback chain and its (track, risk, branch) lookup key."""

    channel: Channel
    key: tuple[str, str, str]


@functools.lru_cache(maxsize=1024)
def _where_to_look(
    tracking: str | None, default_track: str | None
) -> tuple[tuple[_Candidate, ...], str | None] | None:
    """The channels a device tracking ``tracking`` looks in, in order, and the
    redirect-channel to answer (a snap's default track applies when no track is
    named); None for a name that is no channel. Memoised: a fleet tracks few channels."""
    # "2.0", "2.0/beta": a track is named; "beta", "beta/fix": the default applies
    named_track = tracking is not None and tracking.split("/")[0] not in RISKS
    try:
        channel = parse_channel(tracking or "stable", default_track)
    except ChannelError:
        return None
    redirect = channel.name if not named_track and default_track else None
    chain = tuple(_Candidate(c, (c.track, c.risk, c.branch)) for c in fallback_chain(channel))
    return chain, redirect


def _resolved_row(
    key: str, row: Any, channel: Channel | None, redirect: str | None = None
) -> ResolvedRevision:
    """A :class:`ResolvedRevision` from a row of :data:`_RESOLVED_COLUMNS`."""
    return ResolvedRevision(
        key=key,
        snap_id=row.snap_id,
        name=row.name,
        store_id=row.store_id,
        publisher_id=row.publisher_id,
        private=row.private,
        revision=row.revision,
        version=row.version,
        snap_type=row.snap_type,
        base=row.base,
        confinement=row.confinement,
        grade=row.grade,
        architectures=tuple(row.architectures),
        epoch=dict(row.epoch),
        provenance=row.provenance,
        sha3_384=row.sha3_384,
        size=row.size,
        blob_key=row.blob_key,
        snap_yaml=row.snap_yaml,
        details=dict(row.details or {}),
        created_at=row.created_at,
        channel=channel,
        redirect_channel=redirect,
    )


class ChannelResolver:
    """Read-only answers for the device API: which revision a device gets."""

    def __init__(self, session: Session, clock: Callable[[], datetime] = utcnow) -> None:
        self._session = session
        self._clock = clock

    def _core(self) -> Connection:
        """The session's connection, for Core execution of the column-only statements
        (plain rows, none of the ORM's result machinery); flushed first, as the ORM's
        autoflush would."""
        self._session.flush()
        return self._session.connection()

    def lookup_names(
        self, names: Iterable[str], scope: CatalogueScope | None = None
    ) -> dict[str, Snap]:
        """Snaps by name (only those in ``scope`` when given)."""
        wanted = sorted(set(names))
        if not wanted:
            return {}
        q = select(Snap).where(Snap.name.in_(wanted))
        if scope is not None:
            q = q.where(scope.sql_filter(Snap.store_id, Snap.snap_id))
        return {s.name: s for s in self._session.scalars(q)}

    def resolve(
        self,
        requests: Sequence[ResolveRequest],
        architecture: str,
        device_key: str,
        scope: CatalogueScope | None = None,
    ) -> dict[str, ResolvedRevision]:
        """For each request, the revision the device should have, by request key.

        The first query reads, as plain columns, every channel of every
        requested snap for the architecture (and ``all``); the fallback (branch
        -> risk -> more stable risks, expired branches closed) and the device's
        progressive bucket are applied here; the second query loads only the
        revisions chosen. A snap outside ``scope``, or with nothing released
        where the device looks, is absent from the result.
        """
        return self.resolve_changes(requests, architecture, device_key, scope)[0]

    def resolve_changes(
        self,
        requests: Sequence[ResolveRequest],
        architecture: str,
        device_key: str,
        scope: CatalogueScope | None = None,
        installed: Mapping[str, int] | None = None,
    ) -> tuple[dict[str, ResolvedRevision], set[str]]:
        """:meth:`resolve`, less what the device runs already.

        ``installed`` maps request keys to the revision the device has; a
        request whose answer is that same revision is not loaded (auto-refresh
        leaves it out of its answer) and comes back in the second value, the
        keys that resolved to the installed revision. Everything else is as
        :meth:`resolve` answers it.
        """
        if not requests:
            return {}, set()
        installed = installed or {}
        unchanged: set[str] = set()
        now = self._clock()
        snap_ids = sorted({r.snap_id for r in requests})
        default_tracks: dict[str, str | None] = {}
        # (snap id, track, risk, branch) -> (architecture, revision id, revision,
        # progressive percentage, previous revision id): tuples of strings hash fast
        table: dict[tuple[str, str, str, str], tuple[str, int, int, float | None, int | None]] = {}
        in_scope: dict[str, bool] = {}
        # the risks a fallback chain passes through do not depend on the snap's default
        # track (only the track does), so they are known before the snaps are read
        risks = {
            candidate.key[1]
            for request in requests
            if request.revision is None
            for candidate in (_where_to_look(request.channel, None) or ((), None))[0]
        }
        params = {
            "snap_ids": snap_ids, "architectures": [architecture, "all"], "risks": sorted(risks),
        }  # fmt: skip
        released = _CHANNELS_READ.rows(self._core(), params)
        for (snap_id, store_id, default_track, arch, track, risk, branch, expires_at,
             percentage, revision_id, previous_id, revision) in released:  # fmt: skip
            if scope is not None:
                visible = in_scope.get(snap_id)
                if visible is None:
                    visible = in_scope[snap_id] = scope.contains(store_id, snap_id)
                if not visible:
                    continue
            default_tracks[snap_id] = default_track
            if expires_at is not None and expires_at <= now:
                continue
            where = (snap_id, track, risk, branch)
            # an architecture-specific release wins over an "all" one
            if arch == architecture or where not in table:
                table[where] = (arch, revision_id, revision, percentage, previous_id)
        chosen: dict[str, tuple[int, Channel, str | None]] = {}
        for request in requests:
            if request.revision is not None or request.snap_id not in default_tracks:
                continue
            looks = _where_to_look(request.channel, default_tracks[request.snap_id])
            if looks is None:
                continue  # not a channel name: nothing is released there
            candidates, redirect = looks
            for candidate in candidates:
                found = table.get((request.snap_id, *candidate.key))
                if found is None:
                    continue
                _, revision_id, revision, percentage, previous_id = found
                served: int | None = revision_id
                if percentage is not None and (
                    progressive_bucket(request.snap_id, revision, device_key) >= percentage
                ):
                    served = previous_id  # not chosen yet: the one before
                if served is None:
                    continue
                if served == revision_id and installed.get(request.key) == revision:
                    # what the device runs: readable by it (no epoch check), nothing to load
                    unchanged.add(request.key)
                else:
                    chosen[request.key] = (served, candidate.channel, redirect)
                break
        out: dict[str, ResolvedRevision] = {}
        if chosen:
            rows = _REVISIONS_READ.rows(
                self._core(), {"ids": sorted({rid for rid, _, _ in chosen.values()})}
            )
            by_id = {row.revision_id: row for row in rows}
            epochs = {r.key: r.epoch for r in requests if r.epoch is not None}
            for key, (rid, channel, redirect) in chosen.items():
                offered = by_id[rid]
                current = epochs.get(key)
                if current is not None and not _can_read(offered.epoch, current):
                    older = self._older_readable(
                        offered.snap_id, offered.revision, architecture, channel, current
                    )
                    if older is None:
                        continue
                    offered = older
                out[key] = _resolved_row(key, offered, channel, redirect)
        pinned = [r for r in requests if r.revision is not None]
        if pinned:
            out.update(self._pinned(pinned, architecture, scope))
        return out, unchanged

    def _older_readable(
        self,
        snap_id: str,
        newest: int,
        architecture: str,
        channel: Channel,
        current: Mapping[str, Sequence[int]],
    ) -> Any:
        """The newest revision released to ``channel`` before ``newest`` that a device at
        the ``current`` epoch can read, as a row of :data:`_RESOLVED_COLUMNS` (rare: only
        when an epoch bump is released)."""
        released = select(ReleaseEvent.revision).where(
            ReleaseEvent.snap_id == snap_id,
            ReleaseEvent.architecture.in_([architecture, "all"]),
            ReleaseEvent.track == channel.track,
            ReleaseEvent.risk == channel.risk,
            ReleaseEvent.branch == channel.branch,
            ReleaseEvent.revision.is_not(None),
        )
        candidates = self._session.execute(
            select(*_RESOLVED_COLUMNS)
            .join(Revision, Revision.snap_id == Snap.snap_id)
            .where(
                Revision.snap_id == snap_id,
                Revision.revision < newest,
                Revision.status == "approved",
                Revision.revision.in_(released),
            )
            .order_by(Revision.revision.desc())
        )
        return next((r for r in candidates if _can_read(r.epoch, current)), None)

    def _pinned(
        self, requests: Sequence[ResolveRequest], architecture: str, scope: CatalogueScope | None
    ) -> dict[str, ResolvedRevision]:
        wanted = {(r.snap_id, r.revision) for r in requests if r.revision is not None}
        q = (
            select(*_RESOLVED_COLUMNS)
            .join(Revision, Revision.snap_id == Snap.snap_id)
            .where(
                Snap.snap_id.in_(sorted({s for s, _ in wanted})),
                Revision.revision.in_(sorted({n for _, n in wanted})),
                Revision.status == "approved",
            )
        )
        if scope is not None:
            q = q.where(scope.sql_filter(Snap.store_id, Snap.snap_id))
        found = {
            (r.snap_id, r.revision): r
            for r in self._session.execute(q).all()
            if architecture in r.architectures or "all" in r.architectures
        }
        out: dict[str, ResolvedRevision] = {}
        for request in requests:
            hit = found.get((request.snap_id, request.revision or 0))
            if hit is not None:
                out[request.key] = _resolved_row(request.key, hit, None)
        return out

    def revision(self, snap_id: str, revision: int) -> ResolvedRevision:
        """One approved revision (downloads, assertions); raises :class:`RevisionNotFound`."""
        row = self._session.execute(
            select(*_RESOLVED_COLUMNS)
            .join(Revision, Revision.snap_id == Snap.snap_id)
            .where(
                Snap.snap_id == snap_id,
                Revision.revision == revision,
                Revision.status == "approved",
            )
        ).first()
        if row is None:
            raise RevisionNotFound(f"no revision {revision} of snap {snap_id!r}")
        return _resolved_row("", row, None)

    def available(self, snap_id: str) -> list[tuple[str, str]]:
        """(architecture, channel name) pairs where the snap is released now, for a
        ``revision-not-found`` error's ``extra.releases``."""
        now = self._clock()
        rows = self._session.scalars(
            select(ChannelRelease).where(ChannelRelease.snap_id == snap_id)
        ).all()
        return sorted(
            (r.architecture, Channel(r.track, r.risk, r.branch).name)
            for r in rows
            if r.expires_at is None or r.expires_at > now
        )


# -- composition -------------------------------------------------------------------


class Publishing:
    """Every publishing service over one session (one unit of work).

    Built by the web edge or the CLI from the deployment's key store, root and
    blob store; nothing here commits.
    """

    def __init__(
        self,
        session: Session,
        *,
        keystore: KeyStore,
        root: RootAuthority,
        blobs: BlobStore,
        audit: AuditLog | None = None,
        stores: StoreService | None = None,
        memberships: MembershipService | None = None,
        trust: asserts.Database | None = None,
        inspector: Inspector = _default_inspector,
    ) -> None:
        self.session = session
        self.audit = audit or AuditLog(session)
        self.stores = stores or StoreService(session, self.audit)
        self.memberships = memberships or MembershipService(session, self.stores, self.audit)
        trust = trust or trust_database(session, root.trusted)
        self._signer = _RootSigner(session, keystore, root, trust)
        self.snaps = SnapService(session, self.audit, self._signer, self.stores, self.memberships)
        self.uploads = UploadService(session, self.audit)
        self.revisions = RevisionService(
            session, self.audit, self._signer, self.snaps, self.uploads, blobs, self.stores,
            inspector,
        )  # fmt: skip
        self.releases = ReleaseService(session, self.audit, self.snaps, self.revisions)
        self.revisions.releases = self.releases
        self.resolver = ChannelResolver(session)
