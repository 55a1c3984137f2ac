"""device-facing store (device sessions, inventory)

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27 08:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import iotstore.db.base

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "device_session_nonces",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("expires_at", iotstore.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("used_at", iotstore.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_device_session_nonces")),
    )
    with op.batch_alter_table("device_session_nonces", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_device_session_nonces_expires_at"), ["expires_at"], unique=False
        )

    op.create_table(
        "device_inventory",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("brand_id", sa.String(length=32), nullable=False),
        sa.Column("model", sa.String(length=64), nullable=False),
        sa.Column("serial", sa.String(length=128), nullable=False),
        sa.Column("store_id", sa.String(length=64), nullable=False),
        sa.Column("first_seen_at", iotstore.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", iotstore.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("snaps", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_device_inventory")),
        sa.UniqueConstraint(
            "brand_id", "model", "serial", name=op.f("uq_device_inventory_brand_id_model_serial")
        ),
    )
    with op.batch_alter_table("device_inventory", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_device_inventory_last_seen_at"), ["last_seen_at"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_device_inventory_store_id"), ["store_id"], unique=False
        )

    op.create_table(
        "refresh_history",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", iotstore.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("brand_id", sa.String(length=32), nullable=False),
        sa.Column("model", sa.String(length=64), nullable=False),
        sa.Column("serial", sa.String(length=128), nullable=False),
        sa.Column("store_id", sa.String(length=64), nullable=False),
        sa.Column("snap_id", sa.String(length=32), nullable=False),
        sa.Column("event", sa.String(length=16), nullable=False),
        sa.Column("from_revision", sa.Integer(), nullable=True),
        sa.Column("to_revision", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(length=128), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_refresh_history")),
    )
    with op.batch_alter_table("refresh_history", schema=None) as batch_op:
        batch_op.create_index(
            "ix_refresh_history_device", ["brand_id", "model", "serial"], unique=False
        )
        batch_op.create_index("ix_refresh_history_snap", ["snap_id", "to_revision"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("refresh_history", schema=None) as batch_op:
        batch_op.drop_index("ix_refresh_history_snap")
        batch_op.drop_index("ix_refresh_history_device")
    op.drop_table("refresh_history")
    with op.batch_alter_table("device_inventory", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_device_inventory_store_id"))
        batch_op.drop_index(batch_op.f("ix_device_inventory_last_seen_at"))
    op.drop_table("device_inventory")
    with op.batch_alter_table("device_session_nonces", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_device_session_nonces_expires_at"))
    op.drop_table("device_session_nonces")
