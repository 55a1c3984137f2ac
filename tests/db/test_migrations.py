"""The migrations build exactly the schema the models describe, on SQLite and PostgreSQL.

Alembic's autogenerate comparison runs against a database migrated to head:
any difference (a model changed without a migration, or the reverse) fails.
The audit log's append-only rule is checked at the database itself.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, Executable, delete, func, inspect, select, text, update

import iotstore
from iotstore.db import Base, DatabaseError, SqlDatabase, make_engine, utcnow
from iotstore.migrations import alembic_config, upgrade
from iotstore.stores.models import AuditEntry


def _import_all_models() -> list[str]:
    """Import every ``iotstore.<part>.models`` module so all tables are on the metadata."""
    # by file, not pkgutil: some domain folders are namespace packages (no __init__.py)
    root = Path(iotstore.__file__).parent
    names = sorted(
        ".".join(("iotstore", *path.relative_to(root).with_suffix("").parts))
        for path in root.rglob("models.py")
    )
    for name in names:
        importlib.import_module(name)
    return names


MODEL_MODULES = _import_all_models()


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    """An engine on a fresh database, disposed afterwards."""
    e = make_engine(database_url)
    yield e
    e.dispose()


def _differences(engine: Engine) -> list[Any]:
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, Base.metadata))


def test_every_model_module_is_found() -> None:
    # the walk must see the domains env.py registers; otherwise the comparison proves nothing
    for name in ("accounts", "assertdb", "snaps", "stores"):
        assert f"iotstore.{name}.models" in MODEL_MODULES
    assert {"accounts", "stores", "audit_log", "assertions", "snaps"} <= set(Base.metadata.tables)


def test_models_and_migrations_agree(engine: Engine) -> None:
    upgrade(engine)
    assert _differences(engine) == []
    tables = set(inspect(engine).get_table_names())
    assert set(Base.metadata.tables) <= tables


def test_upgrade_is_idempotent_and_downgrade_reverses(engine: Engine) -> None:
    upgrade(engine)
    upgrade(engine)  # a second start of the same deployment must be a no-op
    command.downgrade(alembic_config(engine), "base")
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    upgrade(engine)
    assert _differences(engine) == []


def _append(database: SqlDatabase) -> int:
    with database.unit_of_work() as session:
        entry = AuditEntry(action="test.append", target="t", store_id="s", after={"a": 1})
        session.add(entry)
        session.flush()
        return entry.id


def _refused(exc: BaseException) -> bool:
    chain: BaseException | None = exc
    while chain is not None:
        if "append-only" in str(chain):
            return True
        chain = chain.__cause__ or chain.__context__
    return False


def test_audit_log_refuses_update_and_delete_at_the_database(engine: Engine) -> None:
    upgrade(engine)
    database = SqlDatabase(engine)
    entry_id = _append(database)
    _append(database)  # inserting more keeps working

    statements: list[Executable] = [
        update(AuditEntry).where(AuditEntry.id == entry_id).values(action="test.forged"),
        update(AuditEntry).values(at=utcnow()),
        delete(AuditEntry).where(AuditEntry.id == entry_id),
        delete(AuditEntry),
        text("DELETE FROM audit_log"),
        text("UPDATE audit_log SET target = 'forged'"),
    ]
    for statement in statements:
        with pytest.raises(DatabaseError) as caught, database.unit_of_work() as session:
            session.execute(statement)
        assert _refused(caught.value), f"{statement}: {caught.value!r}"

    # through the ORM too
    with pytest.raises(DatabaseError) as caught, database.unit_of_work() as session:
        row = session.get(AuditEntry, entry_id)
        assert row is not None
        session.delete(row)
    assert _refused(caught.value)

    with database.unit_of_work(write=False) as session:
        assert session.scalar(select(func.count(AuditEntry.id))) == 2
        row = session.get(AuditEntry, entry_id)
        assert row is not None
        assert (row.action, row.target, row.after) == ("test.append", "t", {"a": 1})


def test_audit_log_refuses_truncate(engine: Engine) -> None:
    if engine.dialect.name != "postgresql":
        return  # SQLite has no TRUNCATE; its "DELETE FROM audit_log" fires the triggers above
    upgrade(engine)
    database = SqlDatabase(engine)
    _append(database)
    for statement in ("TRUNCATE audit_log", "TRUNCATE audit_log RESTART IDENTITY CASCADE"):
        with pytest.raises(DatabaseError) as caught, database.unit_of_work() as session:
            session.execute(text(statement))
        assert _refused(caught.value), statement
    with database.unit_of_work(write=False) as session:
        assert session.scalar(select(func.count(AuditEntry.id))) == 1
