"""Tables of people, brands, brand keys, API tokens and dashboard sessions."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from iotstore.db import Base, TimestampMixin

__all__ = ["Account", "ApiToken", "Brand", "BrandKey", "WebSession"]


class Account(Base, TimestampMixin):
    """A person. ``id`` is a 32-character account id, usable in assertions (developer-id)."""

    __tablename__ = "accounts"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    email_verified: Mapped[bool] = mapped_column(default=False)
    display_name: Mapped[str] = mapped_column(String(120))
    password_hash: Mapped[str | None] = mapped_column(String(255), default=None)
    oidc_issuer: Mapped[str | None] = mapped_column(String(255), default=None)
    oidc_subject: Mapped[str | None] = mapped_column(String(255), default=None)
    # Deployment operators create brands; everything else is granted per store.
    is_operator: Mapped[bool] = mapped_column(default=False)
    disabled: Mapped[bool] = mapped_column(default=False)

    __table_args__ = (UniqueConstraint("oidc_issuer", "oidc_subject"),)


class Brand(Base, TimestampMixin):
    """A brand account: the company's root identity, with its ``account`` assertion."""

    __tablename__ = "brands"

    account_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    username: Mapped[str] = mapped_column(String(28), unique=True)
    display_name: Mapped[str] = mapped_column(String(120))
    validation: Mapped[str] = mapped_column(String(16), default="verified")


class BrandKey(Base, TimestampMixin):
    """A brand signing key: held in the key store, or registered from an account-key-request."""

    __tablename__ = "brand_keys"

    id: Mapped[int] = mapped_column(primary_key=True)
    brand_id: Mapped[str] = mapped_column(ForeignKey("brands.account_id"), index=True)
    name: Mapped[str] = mapped_column(String(64))
    key_id: Mapped[str] = mapped_column(String(64), unique=True)
    keystore_name: Mapped[str | None] = mapped_column(String(64), default=None)
    since: Mapped[datetime]
    until: Mapped[datetime | None] = mapped_column(default=None)
    state: Mapped[str] = mapped_column(String(16), default="active")

    __table_args__ = (UniqueConstraint("brand_id", "name"),)


class ApiToken(Base, TimestampMixin):
    """An issued macaroon: its id, owner, caveats and revocation state (never its secret)."""

    __tablename__ = "api_tokens"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), index=True)
    description: Mapped[str] = mapped_column(String(200), default="")
    stores: Mapped[list[str] | None] = mapped_column(JSON, default=None)
    permissions: Mapped[list[str] | None] = mapped_column(JSON, default=None)
    expires_at: Mapped[datetime | None] = mapped_column(default=None)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)
    last_used_at: Mapped[datetime | None] = mapped_column(default=None)
    extra: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)


class WebSession(Base, TimestampMixin):
    """A dashboard session: the cookie carries the id, the table only its hash."""

    __tablename__ = "web_sessions"

    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[datetime]
