"""store paths: materialised ancestry on stores, for index range scans of subtrees

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-27 09:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    bind = op.get_bind()
    postgresql = bind.dialect.name == "postgresql"
    # Byte order on PostgreSQL (the model's PATH_TYPE): subtree queries are ranges.
    path_type = sa.Text(collation="C") if postgresql else sa.Text()
    # NOT NULL with a temporary default: SQLite can add such a column without
    # rebuilding the table (which other tables' foreign keys point at).
    op.add_column("stores", sa.Column("path", path_type, nullable=False, server_default=""))
    # Backfill one tree level per statement, roots first: portable SQL, and
    # the tree's depth is small.
    bind.execute(sa.text("UPDATE stores SET path = id || '/' WHERE parent_id IS NULL"))
    while True:
        done = bind.execute(
            sa.text(
                "UPDATE stores SET path = (SELECT p.path FROM stores p "
                "WHERE p.id = stores.parent_id) || id || '/' "
                "WHERE path = '' AND parent_id IN (SELECT id FROM stores WHERE path <> '')"
            )
        )
        if done.rowcount == 0:
            break
    # A row still empty could only sit on a parent cycle, which the service
    # never creates; it becomes a root rather than vanish from every subtree.
    bind.execute(sa.text("UPDATE stores SET path = id || '/' WHERE path = ''"))
    if postgresql:
        op.alter_column("stores", "path", server_default=None)
    op.create_index(op.f("ix_stores_path"), "stores", ["path"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_stores_path"), table_name="stores")
    # Plain DROP COLUMN (SQLite >= 3.35), not a batch rebuild: dropping a
    # table that holds rows other tables' foreign keys point at fails on SQLite.
    op.execute("ALTER TABLE stores DROP COLUMN path")
