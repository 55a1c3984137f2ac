"""Tables of stores, memberships, curation, invitations and the audit log."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from iotstore.db import Base, TimestampMixin, utcnow

__all__ = ["AuditEntry", "Invitation", "Membership", "Store", "StoreExclude", "StoreInclude"]

# Byte order on both backends: a subtree is the range [path, path || '~') (see
# ``StoreService.subtree_ids``), which only holds when "/" and the id characters
# sort as bytes; PostgreSQL's default collation (en_US...) does not.
PATH_TYPE = Text().with_variant(Text(collation="C"), "postgresql")


class Store(Base, TimestampMixin):
    """A brand's store or a sub-store of one (``kind`` product or ecosystem)."""

    __tablename__ = "stores"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    brand_id: Mapped[str] = mapped_column(ForeignKey("brands.account_id"), index=True)
    parent_id: Mapped[str | None] = mapped_column(ForeignKey("stores.id"), index=True)
    # Materialised ancestry, root first, each id followed by "/": "brand/product/".
    # Set once at creation: stores never move (parent_id is no setting), so the
    # subtree of a store is one index range scan instead of a recursive query.
    path: Mapped[str] = mapped_column(PATH_TYPE, index=True)
    kind: Mapped[str] = mapped_column(String(16))
    private: Mapped[bool] = mapped_column(default=True)
    manual_review: Mapped[bool] = mapped_column(default=False)
    allow_inclusion: Mapped[bool] = mapped_column(default=False)
    offer_parent_catalogue: Mapped[bool] = mapped_column(default=True)


class Membership(Base, TimestampMixin):
    """One role of one account in one store."""

    __tablename__ = "memberships"

    id: Mapped[int] = mapped_column(primary_key=True)
    store_id: Mapped[str] = mapped_column(ForeignKey("stores.id"), index=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), index=True)
    role: Mapped[str] = mapped_column(String(16))

    __table_args__ = (UniqueConstraint("store_id", "account_id", "role"),)


class StoreInclude(Base, TimestampMixin):
    """A snap of another store that this store's catalogue includes."""

    __tablename__ = "store_includes"

    id: Mapped[int] = mapped_column(primary_key=True)
    store_id: Mapped[str] = mapped_column(ForeignKey("stores.id"), index=True)
    snap_id: Mapped[str] = mapped_column(String(32))
    source_store_id: Mapped[str] = mapped_column(ForeignKey("stores.id"))

    __table_args__ = (UniqueConstraint("store_id", "snap_id"),)


class StoreExclude(Base, TimestampMixin):
    """A snap this store hides although its parent offers it."""

    __tablename__ = "store_excludes"

    id: Mapped[int] = mapped_column(primary_key=True)
    store_id: Mapped[str] = mapped_column(ForeignKey("stores.id"), index=True)
    snap_id: Mapped[str] = mapped_column(String(32))

    __table_args__ = (UniqueConstraint("store_id", "snap_id"),)


class Invitation(Base, TimestampMixin):
    """An emailed offer of a role; the email carries the token, the table its hash."""

    __tablename__ = "invitations"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    store_id: Mapped[str] = mapped_column(ForeignKey("stores.id"), index=True)
    email: Mapped[str] = mapped_column(String(254))
    role: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    invited_by: Mapped[str] = mapped_column(ForeignKey("accounts.id"))
    expires_at: Mapped[datetime]
    accepted_at: Mapped[datetime | None] = mapped_column(default=None)
    accepted_by: Mapped[str | None] = mapped_column(ForeignKey("accounts.id"), default=None)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)


class AuditEntry(Base):
    """One change made by an account or token: append-only (triggers refuse UPDATE/DELETE)."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    actor_account_id: Mapped[str | None] = mapped_column(String(32))
    actor_token_id: Mapped[str | None] = mapped_column(String(32))
    store_id: Mapped[str | None] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(255), default="")
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    address: Mapped[str | None] = mapped_column(String(64))

    __table_args__ = (Index("ix_audit_log_store_at", "store_id", "at"),)
