"""Shared fixtures of the store service tests: a seeded module database, a rolled-back unit."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

from sqlalchemy.orm import Session

from iotstore.db import SqlDatabase
from iotstore.migrations import upgrade

__all__ = ["rolled_back_session", "seeded_database"]


@contextlib.contextmanager
def seeded_database(url: str, seed: Callable[[Session], object]) -> Iterator[SqlDatabase]:
    """The database at ``url``, migrated and seeded once by ``seed`` (tests roll back)."""
    db = SqlDatabase.from_url(url)
    upgrade(db.engine)
    with db.unit_of_work() as session:
        seed(session)
    yield db
    db.dispose()


@contextlib.contextmanager
def rolled_back_session(database: SqlDatabase) -> Iterator[Session]:
    """A unit of work whose commits are savepoints, all rolled back at the end."""
    connection = database.engine.connect()
    outer = connection.begin()
    session = Session(connection, join_transaction_mode="create_savepoint")
    try:
        yield session
    finally:
        session.close()
        outer.rollback()
        connection.close()
