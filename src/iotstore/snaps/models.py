"""Tables of registered snap names and their collaborators (publishing adds revisions)."""

from __future__ import annotations

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from iotstore.db import Base, TimestampMixin

__all__ = ["Collaborator", "Snap"]


class Snap(Base, TimestampMixin):
    """A snap name registered in a store; ``snap_id`` is its 32-character id."""

    __tablename__ = "snaps"

    snap_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(40), unique=True)
    store_id: Mapped[str] = mapped_column(ForeignKey("stores.id"), index=True)
    publisher_id: Mapped[str] = mapped_column(String(32))
    snap_type: Mapped[str] = mapped_column(String(16), default="app")


class Collaborator(Base, TimestampMixin):
    """An account that may upload and release one snap, granted by its publisher."""

    __tablename__ = "collaborators"

    id: Mapped[int] = mapped_column(primary_key=True)
    snap_id: Mapped[str] = mapped_column(ForeignKey("snaps.snap_id"), index=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), index=True)

    __table_args__ = (UniqueConstraint("snap_id", "account_id"),)
