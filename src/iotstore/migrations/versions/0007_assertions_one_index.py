"""assertions: drop ix_assertions_lookup, a prefix of the unique (type, key, revision) index

Every lookup by (type_name, primary_key) is served by the unique constraint's
index, which also answers max(revision) from its last entry; the second index
only cost every stored assertion (a serial per registration) another page written.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-27 18:30:00
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_assertions_lookup", table_name="assertions")


def downgrade() -> None:
    op.create_index("ix_assertions_lookup", "assertions", ["type_name", "primary_key"])
