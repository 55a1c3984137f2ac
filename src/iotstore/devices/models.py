"""Tables of the serial vault: models, their keys and API keys, request ids, devices, the log."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from iotstore.db import Base, TimestampMixin, utcnow

__all__ = [
    "AllowedDevice",
    "ApiKey",
    "Device",
    "DeviceModel",
    "DeviceSessionNonce",
    "InventoryEntry",
    "RefreshHistoryEntry",
    "RequestId",
    "SerialKey",
    "SigningLogEntry",
]


class DeviceModel(Base, TimestampMixin):
    """A registered model of a brand (its assertion lives in the assertions table)."""

    __tablename__ = "device_models"

    id: Mapped[int] = mapped_column(primary_key=True)
    brand_id: Mapped[str] = mapped_column(ForeignKey("brands.account_id"), index=True)
    name: Mapped[str] = mapped_column(String(64))
    store_id: Mapped[str] = mapped_column(ForeignKey("stores.id"), index=True)
    # enrolment policy
    open_enrolment: Mapped[bool] = mapped_column(default=True)
    require_key_allowlist: Mapped[bool] = mapped_column(default=False)
    allow_reregistration: Mapped[bool] = mapped_column(default=False)

    __table_args__ = (UniqueConstraint("brand_id", "name"),)


class SerialKey(Base, TimestampMixin):
    """A brand key that signs a model's serials; one is active, older ones keep verifying."""

    __tablename__ = "serial_keys"

    id: Mapped[int] = mapped_column(primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("device_models.id"), index=True)
    brand_key_id: Mapped[int] = mapped_column(ForeignKey("brand_keys.id"))
    active: Mapped[bool] = mapped_column(default=True)


class ApiKey(Base, TimestampMixin):
    """What a gadget's prepare-device hook sends (``api-key`` header); only its hash is kept."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("device_models.id"), index=True)
    label: Mapped[str] = mapped_column(String(120), default="")
    prefix: Mapped[str] = mapped_column(String(12))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)


class RequestId(Base):
    """A request-id nonce: single use, short-lived."""

    __tablename__ = "request_ids"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(index=True)
    used_at: Mapped[datetime | None] = mapped_column(default=None)


class AllowedDevice(Base, TimestampMixin):
    """A pre-authorised serial (optionally bound to a device-key fingerprint)."""

    __tablename__ = "allowed_devices"

    id: Mapped[int] = mapped_column(primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("device_models.id"), index=True)
    serial: Mapped[str] = mapped_column(String(128))
    device_key_id: Mapped[str | None] = mapped_column(String(64), default=None)

    __table_args__ = (UniqueConstraint("model_id", "serial"),)


class Device(Base, TimestampMixin):
    """The current identity of one serial: its device key, state and store."""

    __tablename__ = "devices"

    id: Mapped[int] = mapped_column(primary_key=True)
    brand_id: Mapped[str] = mapped_column(String(32))
    model: Mapped[str] = mapped_column(String(64))
    serial: Mapped[str] = mapped_column(String(128))
    device_key_id: Mapped[str] = mapped_column(String(64), index=True)
    serial_revision: Mapped[int] = mapped_column(default=0)
    blocked: Mapped[bool] = mapped_column(default=False)
    last_seen_at: Mapped[datetime | None] = mapped_column(default=None)

    __table_args__ = (UniqueConstraint("brand_id", "model", "serial"),)


class SigningLogEntry(Base):
    """Every serial assertion issued: append-only."""

    __tablename__ = "signing_log"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    brand_id: Mapped[str] = mapped_column(String(32))
    model: Mapped[str] = mapped_column(String(64))
    serial: Mapped[str] = mapped_column(String(128))
    device_key_id: Mapped[str] = mapped_column(String(64))
    revision: Mapped[int]
    sign_key_id: Mapped[str] = mapped_column(String(64))
    address: Mapped[str | None] = mapped_column(String(64))

    __table_args__ = (Index("ix_signing_log_lookup", "brand_id", "model", "serial"),)


# -- the device-facing store (device sessions, inventory) ---------------------------------


class DeviceSessionNonce(Base):
    """A nonce for a device-session-request: single use, short-lived."""

    __tablename__ = "device_session_nonces"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(index=True)
    used_at: Mapped[datetime | None] = mapped_column(default=None)


class InventoryEntry(Base):
    """What the store last heard from one serial: model, store and installed snaps."""

    __tablename__ = "device_inventory"

    id: Mapped[int] = mapped_column(primary_key=True)
    brand_id: Mapped[str] = mapped_column(String(32))
    model: Mapped[str] = mapped_column(String(64))
    serial: Mapped[str] = mapped_column(String(128))
    store_id: Mapped[str] = mapped_column(String(64), index=True)
    first_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    # [{"snap-id", "revision", "channel"}] from the last refresh context, sorted by snap-id
    snaps: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)

    __table_args__ = (UniqueConstraint("brand_id", "model", "serial"),)


class RefreshHistoryEntry(Base):
    """One revision change seen for a device: offered by the store, or installed (context)."""

    __tablename__ = "refresh_history"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    brand_id: Mapped[str] = mapped_column(String(32))
    model: Mapped[str] = mapped_column(String(64))
    serial: Mapped[str] = mapped_column(String(128))
    store_id: Mapped[str] = mapped_column(String(64))
    snap_id: Mapped[str] = mapped_column(String(32))
    event: Mapped[str] = mapped_column(String(16))  # "offered" | "installed"
    from_revision: Mapped[int | None] = mapped_column(default=None)
    to_revision: Mapped[int]
    channel: Mapped[str] = mapped_column(String(128), default="")

    __table_args__ = (
        Index("ix_refresh_history_snap", "snap_id", "to_revision"),
        Index("ix_refresh_history_device", "brand_id", "model", "serial"),
    )
