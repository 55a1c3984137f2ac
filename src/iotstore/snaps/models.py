"""Tables of the publishing domain: names, collaborators, uploads, revisions, tracks,
the current channel map and its append-only history."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Float,
    ForeignKey,
    Index,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from iotstore.db import Base, TimestampMixin, utcnow

__all__ = [
    "ChannelRelease",
    "Collaborator",
    "ReleaseEvent",
    "Revision",
    "Snap",
    "Track",
    "Upload",
]


class Snap(Base, TimestampMixin):
    """A snap name registered in a store; ``snap_id`` is its 32-character id.

    ``publisher_id`` is the account named as ``publisher-id`` in the snap's
    declaration: the registering account, or the brand for kernel and gadget
    snaps (snapd only accepts those from the model's brand).
    """

    __tablename__ = "snaps"

    snap_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(40), unique=True)
    store_id: Mapped[str] = mapped_column(ForeignKey("stores.id"), index=True)
    publisher_id: Mapped[str] = mapped_column(String(32))
    snap_type: Mapped[str] = mapped_column(String(16), default="app")
    # who registered it (for brand-owned snaps publisher_id is the brand)
    registered_by: Mapped[str | None] = mapped_column(String(32), default=None)
    private: Mapped[bool] = mapped_column(default=False)
    # the track devices follow when they name none ("latest" when null)
    default_track: Mapped[str | None] = mapped_column(String(28), default=None)


class Collaborator(Base, TimestampMixin):
    """An account that may upload and release one snap, granted by its publisher.

    Revoked rows stay (``revoked_at`` set) so the ``snap-developer`` assertion
    keeps listing the developer's closed range, as snapd expects.
    """

    __tablename__ = "collaborators"

    id: Mapped[int] = mapped_column(primary_key=True)
    snap_id: Mapped[str] = mapped_column(ForeignKey("snaps.snap_id"), index=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), index=True)
    granted_by: Mapped[str | None] = mapped_column(String(32), default=None)
    since: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)

    __table_args__ = (UniqueConstraint("snap_id", "account_id"),)


class Upload(Base, TimestampMixin):
    """A blob received by the storage endpoint, bound to the account that sent it.

    ``status``: ``uploaded`` (not pushed yet), ``processed`` (a revision was
    made: ``revision_id``), ``failed`` (automated checks refused it: ``errors``).
    """

    __tablename__ = "snap_uploads"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), index=True)
    blob_key: Mapped[str] = mapped_column(String(255))
    size: Mapped[int] = mapped_column(BigInteger)
    sha3_384: Mapped[str] = mapped_column(String(96))
    filename: Mapped[str] = mapped_column(String(255), default="")
    status: Mapped[str] = mapped_column(String(16), default="uploaded")
    snap_id: Mapped[str | None] = mapped_column(String(32), default=None)
    revision_id: Mapped[int | None] = mapped_column(default=None)
    errors: Mapped[list[dict[str, str]] | None] = mapped_column(JSON, default=None)
    pushed_at: Mapped[datetime | None] = mapped_column(default=None)


class Revision(Base, TimestampMixin):
    """One accepted upload of a snap, numbered per snap from 1.

    ``status``: ``pending-review``, ``approved`` (releasable; its snap-revision
    assertion is signed), ``rejected`` (``review_reason`` tells the publisher why).
    ``sha3_384`` is lower-case hex and unique: a digest is one revision, ever.
    """

    __tablename__ = "snap_revisions"

    id: Mapped[int] = mapped_column(primary_key=True)
    snap_id: Mapped[str] = mapped_column(ForeignKey("snaps.snap_id"), index=True)
    revision: Mapped[int]
    upload_id: Mapped[str | None] = mapped_column(String(32), default=None)
    blob_key: Mapped[str] = mapped_column(String(255))
    size: Mapped[int] = mapped_column(BigInteger)
    sha3_384: Mapped[str] = mapped_column(String(96), unique=True)
    version: Mapped[str] = mapped_column(String(64))
    snap_type: Mapped[str] = mapped_column(String(16))
    base: Mapped[str | None] = mapped_column(String(64), default=None)
    confinement: Mapped[str] = mapped_column(String(16))
    grade: Mapped[str] = mapped_column(String(16))
    architectures: Mapped[list[str]] = mapped_column(JSON)
    epoch: Mapped[dict[str, Any]] = mapped_column(JSON)
    provenance: Mapped[str] = mapped_column(String(64))
    snap_yaml: Mapped[str] = mapped_column(Text, default="")
    # summary, title, description, license (what the device API shows)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(16))
    uploaded_by: Mapped[str] = mapped_column(String(32))
    built_at: Mapped[datetime | None] = mapped_column(default=None)
    review_reason: Mapped[str | None] = mapped_column(Text, default=None)
    reviewed_by: Mapped[str | None] = mapped_column(String(32), default=None)
    reviewed_at: Mapped[datetime | None] = mapped_column(default=None)
    # channels the publisher asked for at push time, released once the review accepts it
    release_on_accept: Mapped[list[str] | None] = mapped_column(JSON, default=None)

    __table_args__ = (UniqueConstraint("snap_id", "revision"),)


class Track(Base, TimestampMixin):
    """A track a publisher created (``latest`` always exists and has no row)."""

    __tablename__ = "snap_tracks"

    id: Mapped[int] = mapped_column(primary_key=True)
    snap_id: Mapped[str] = mapped_column(ForeignKey("snaps.snap_id"), index=True)
    name: Mapped[str] = mapped_column(String(28))
    created_by: Mapped[str | None] = mapped_column(String(32), default=None)

    __table_args__ = (UniqueConstraint("snap_id", "name"),)


class ChannelRelease(Base):
    """What one channel of one architecture holds now (no row: the channel is closed).

    A progressive release serves ``revision_id`` to ``progressive_percentage``
    percent of devices (chosen by a hash of the device key) and
    ``previous_revision_id`` (or nothing) to the others.
    """

    __tablename__ = "snap_channels"

    id: Mapped[int] = mapped_column(primary_key=True)
    snap_id: Mapped[str] = mapped_column(ForeignKey("snaps.snap_id"))
    architecture: Mapped[str] = mapped_column(String(16))
    track: Mapped[str] = mapped_column(String(28))
    risk: Mapped[str] = mapped_column(String(16))
    branch: Mapped[str] = mapped_column(String(128), default="")
    revision_id: Mapped[int] = mapped_column(ForeignKey("snap_revisions.id"))
    previous_revision_id: Mapped[int | None] = mapped_column(
        ForeignKey("snap_revisions.id"), default=None
    )
    progressive_percentage: Mapped[float | None] = mapped_column(Float, default=None)
    expires_at: Mapped[datetime | None] = mapped_column(default=None)
    released_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        UniqueConstraint("snap_id", "architecture", "track", "risk", "branch"),
        # the refresh lookup: every channel of a set of snaps for one architecture
        Index("ix_snap_channels_lookup", "snap_id", "architecture"),
    )


class ReleaseEvent(Base):
    """One change of one channel, append-only: the complete release history."""

    __tablename__ = "snap_release_history"

    id: Mapped[int] = mapped_column(primary_key=True)
    snap_id: Mapped[str] = mapped_column(ForeignKey("snaps.snap_id"), index=True)
    architecture: Mapped[str] = mapped_column(String(16))
    track: Mapped[str] = mapped_column(String(28))
    risk: Mapped[str] = mapped_column(String(16))
    branch: Mapped[str] = mapped_column(String(128), default="")
    # null: the channel was closed
    revision: Mapped[int | None] = mapped_column(default=None)
    action: Mapped[str] = mapped_column(String(16))
    progressive_percentage: Mapped[float | None] = mapped_column(Float, default=None)
    expires_at: Mapped[datetime | None] = mapped_column(default=None)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    actor_account_id: Mapped[str | None] = mapped_column(String(32), default=None)
