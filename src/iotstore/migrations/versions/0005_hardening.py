"""hardening (audit log truncate guard and later fixes)

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27 08:00:00
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # PostgreSQL's row triggers (0001) do not fire on TRUNCATE: a statement
    # trigger refuses it with the same function. SQLite has no TRUNCATE; its
    # "DELETE FROM" already fires the row triggers.
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log "
            "FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only()"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER audit_log_no_truncate ON audit_log")
