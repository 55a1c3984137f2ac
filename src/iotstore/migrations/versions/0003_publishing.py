"""snaps domain (names, uploads, revisions, review, channels, releases)

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27 08:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import iotstore.db.base

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_UTC = iotstore.db.base.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "snap_uploads",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("account_id", sa.String(length=32), nullable=False),
        sa.Column("blob_key", sa.String(length=255), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha3_384", sa.String(length=96), nullable=False),
        sa.Column("filename", sa.String(length=255), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("snap_id", sa.String(length=32), nullable=True),
        sa.Column("revision_id", sa.Integer(), nullable=True),
        sa.Column("errors", sa.JSON(), nullable=True),
        sa.Column("pushed_at", _UTC, nullable=True),
        sa.Column("created_at", _UTC, nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_snap_uploads_account_id_accounts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_snap_uploads")),
    )
    with op.batch_alter_table("snap_uploads", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_snap_uploads_account_id"), ["account_id"])

    op.create_table(
        "snap_release_history",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("snap_id", sa.String(length=32), nullable=False),
        sa.Column("architecture", sa.String(length=16), nullable=False),
        sa.Column("track", sa.String(length=28), nullable=False),
        sa.Column("risk", sa.String(length=16), nullable=False),
        sa.Column("branch", sa.String(length=128), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=True),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("progressive_percentage", sa.Float(), nullable=True),
        sa.Column("expires_at", _UTC, nullable=True),
        sa.Column("at", _UTC, nullable=False),
        sa.Column("actor_account_id", sa.String(length=32), nullable=True),
        sa.ForeignKeyConstraint(
            ["snap_id"], ["snaps.snap_id"], name=op.f("fk_snap_release_history_snap_id_snaps")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_snap_release_history")),
    )
    with op.batch_alter_table("snap_release_history", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_snap_release_history_snap_id"), ["snap_id"])

    op.create_table(
        "snap_revisions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("snap_id", sa.String(length=32), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("upload_id", sa.String(length=32), nullable=True),
        sa.Column("blob_key", sa.String(length=255), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha3_384", sa.String(length=96), nullable=False),
        sa.Column("version", sa.String(length=64), nullable=False),
        sa.Column("snap_type", sa.String(length=16), nullable=False),
        sa.Column("base", sa.String(length=64), nullable=True),
        sa.Column("confinement", sa.String(length=16), nullable=False),
        sa.Column("grade", sa.String(length=16), nullable=False),
        sa.Column("architectures", sa.JSON(), nullable=False),
        sa.Column("epoch", sa.JSON(), nullable=False),
        sa.Column("provenance", sa.String(length=64), nullable=False),
        sa.Column("snap_yaml", sa.Text(), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("uploaded_by", sa.String(length=32), nullable=False),
        sa.Column("built_at", _UTC, nullable=True),
        sa.Column("review_reason", sa.Text(), nullable=True),
        sa.Column("reviewed_by", sa.String(length=32), nullable=True),
        sa.Column("reviewed_at", _UTC, nullable=True),
        sa.Column("release_on_accept", sa.JSON(), nullable=True),
        sa.Column("created_at", _UTC, nullable=False),
        sa.ForeignKeyConstraint(
            ["snap_id"], ["snaps.snap_id"], name=op.f("fk_snap_revisions_snap_id_snaps")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_snap_revisions")),
        sa.UniqueConstraint("sha3_384", name=op.f("uq_snap_revisions_sha3_384")),
        sa.UniqueConstraint("snap_id", "revision", name=op.f("uq_snap_revisions_snap_id_revision")),
    )
    with op.batch_alter_table("snap_revisions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_snap_revisions_snap_id"), ["snap_id"])

    op.create_table(
        "snap_tracks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("snap_id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=28), nullable=False),
        sa.Column("created_by", sa.String(length=32), nullable=True),
        sa.Column("created_at", _UTC, nullable=False),
        sa.ForeignKeyConstraint(
            ["snap_id"], ["snaps.snap_id"], name=op.f("fk_snap_tracks_snap_id_snaps")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_snap_tracks")),
        sa.UniqueConstraint("snap_id", "name", name=op.f("uq_snap_tracks_snap_id_name")),
    )
    with op.batch_alter_table("snap_tracks", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_snap_tracks_snap_id"), ["snap_id"])

    op.create_table(
        "snap_channels",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("snap_id", sa.String(length=32), nullable=False),
        sa.Column("architecture", sa.String(length=16), nullable=False),
        sa.Column("track", sa.String(length=28), nullable=False),
        sa.Column("risk", sa.String(length=16), nullable=False),
        sa.Column("branch", sa.String(length=128), nullable=False),
        sa.Column("revision_id", sa.Integer(), nullable=False),
        sa.Column("previous_revision_id", sa.Integer(), nullable=True),
        sa.Column("progressive_percentage", sa.Float(), nullable=True),
        sa.Column("expires_at", _UTC, nullable=True),
        sa.Column("released_at", _UTC, nullable=False),
        sa.ForeignKeyConstraint(
            ["previous_revision_id"],
            ["snap_revisions.id"],
            name=op.f("fk_snap_channels_previous_revision_id_snap_revisions"),
        ),
        sa.ForeignKeyConstraint(
            ["revision_id"],
            ["snap_revisions.id"],
            name=op.f("fk_snap_channels_revision_id_snap_revisions"),
        ),
        sa.ForeignKeyConstraint(
            ["snap_id"], ["snaps.snap_id"], name=op.f("fk_snap_channels_snap_id_snaps")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_snap_channels")),
        sa.UniqueConstraint(
            "snap_id",
            "architecture",
            "track",
            "risk",
            "branch",
            name=op.f("uq_snap_channels_snap_id_architecture_track_risk_branch"),
        ),
    )
    with op.batch_alter_table("snap_channels", schema=None) as batch_op:
        batch_op.create_index("ix_snap_channels_lookup", ["snap_id", "architecture"])

    # existing rows get defaults; the models fill these in for new rows
    with op.batch_alter_table("collaborators", schema=None) as batch_op:
        batch_op.add_column(sa.Column("granted_by", sa.String(length=32), nullable=True))
        batch_op.add_column(
            sa.Column("since", _UTC, nullable=False, server_default=sa.text("CURRENT_TIMESTAMP"))
        )
        batch_op.add_column(sa.Column("revoked_at", _UTC, nullable=True))

    with op.batch_alter_table("snaps", schema=None) as batch_op:
        batch_op.add_column(sa.Column("registered_by", sa.String(length=32), nullable=True))
        batch_op.add_column(
            sa.Column("private", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.add_column(sa.Column("default_track", sa.String(length=28), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("snaps", schema=None) as batch_op:
        batch_op.drop_column("default_track")
        batch_op.drop_column("private")
        batch_op.drop_column("registered_by")

    with op.batch_alter_table("collaborators", schema=None) as batch_op:
        batch_op.drop_column("revoked_at")
        batch_op.drop_column("since")
        batch_op.drop_column("granted_by")

    with op.batch_alter_table("snap_channels", schema=None) as batch_op:
        batch_op.drop_index("ix_snap_channels_lookup")
    op.drop_table("snap_channels")
    with op.batch_alter_table("snap_tracks", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_snap_tracks_snap_id"))
    op.drop_table("snap_tracks")
    with op.batch_alter_table("snap_revisions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_snap_revisions_snap_id"))
    op.drop_table("snap_revisions")
    with op.batch_alter_table("snap_release_history", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_snap_release_history_snap_id"))
    op.drop_table("snap_release_history")
    with op.batch_alter_table("snap_uploads", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_snap_uploads_account_id"))
    op.drop_table("snap_uploads")
