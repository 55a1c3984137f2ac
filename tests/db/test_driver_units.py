"""SqlDatabase.driver_unit: one transaction on a bare SQLite connection, by the same rules."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, bindparam, select

from iotstore.db import ConflictError, DatabaseError, SqlDatabase, sqlite_url
from iotstore.db.prepared import PreparedStatement

_meta = MetaData()
_notes = Table(
    "driver_notes", _meta, Column("id", Integer, primary_key=True), Column("text", String(20))
)
_ADD = PreparedStatement(_notes.insert())
_ALL = PreparedStatement(select(_notes.c.id, _notes.c.text).where(_notes.c.id > bindparam("after")))


@pytest.fixture
def database(tmp_path: Path) -> Iterator[SqlDatabase]:
    database = SqlDatabase.from_url(sqlite_url(tmp_path / "units.sqlite"))
    _meta.create_all(database.engine)
    yield database
    database.dispose()


def _texts(database: SqlDatabase) -> list[str]:
    with database.driver_unit(write=False) as connection:
        return [row.text for row in _ALL.rows(connection, {"after": 0})]


def test_a_unit_commits_and_its_connection_serves_the_next(database: SqlDatabase) -> None:
    with database.driver_unit() as first:
        _ADD.execute(first, {"id": 1, "text": "one"})
    with database.driver_unit() as second:
        assert second.dbapi is first.dbapi  # reused, not reopened
        assert second.dbapi.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    assert _texts(database) == ["one"]


def test_an_error_rolls_everything_back(database: SqlDatabase) -> None:
    with pytest.raises(RuntimeError), database.driver_unit() as connection:
        _ADD.execute(connection, {"id": 1, "text": "lost"})
        raise RuntimeError("half-way")
    with pytest.raises(ConflictError), database.driver_unit() as connection:
        _ADD.execute(connection, {"id": 2, "text": "also lost"})
        _ADD.execute(connection, {"id": 2, "text": "duplicate"})  # IntegrityError, translated
    assert _texts(database) == []
    with database.driver_unit() as connection:  # the connection went back clean
        _ADD.execute(connection, {"id": 3, "text": "kept"})
    assert _texts(database) == ["kept"]


def test_a_unit_that_must_not_wait_refuses_a_locked_database_at_once(
    database: SqlDatabase, tmp_path: Path
) -> None:
    holder = sqlite3.connect(tmp_path / "units.sqlite", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another writer holds the lock
    try:
        started = time.monotonic()
        with pytest.raises(DatabaseError), database.driver_unit(wait=False):
            pass
        assert time.monotonic() - started < 5  # the engine's busy timeout is 30 s
        with database.driver_unit(write=False, wait=False) as connection:
            assert _ALL.rows(connection, {"after": 0}) == []  # WAL readers take no lock
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    with database.driver_unit(wait=False) as connection:
        _ADD.execute(connection, {"id": 1, "text": "later"})
    assert _texts(database) == ["later"]


def test_dispose_closes_idle_connections(database: SqlDatabase) -> None:
    with database.driver_unit() as connection:
        pass
    database.dispose()
    with pytest.raises(sqlite3.ProgrammingError):
        connection.dbapi.execute("SELECT 1")
