"""Engines and sessions: SQLite (WAL) by default, PostgreSQL at scale.

The edge owns the transaction: :meth:`Database.unit_of_work` opens one,
services only flush, and the caller's block commits or rolls back as a whole.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.exc import DataError, IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import ConnectionPoolEntry

from .prepared import DriverConnection

__all__ = [
    "ConflictError",
    "DatabaseError",
    "InvalidDataError",
    "SqlDatabase",
    "make_engine",
    "sqlite_url",
    "translated_errors",
]


class DatabaseError(Exception):
    """The database could not be reached or refused a statement for a non-input reason."""


class ConflictError(DatabaseError):
    """A uniqueness or reference rule refused the commit (a concurrent change won)."""


class InvalidDataError(DatabaseError):
    """The database refused a value itself: bad input, not an outage.

    PostgreSQL refuses NUL characters in text (SQLite stores them) and values
    over a column's size; validation above should catch these first.
    """


def sqlite_url(path: Path) -> str:
    """SQLAlchemy URL of a SQLite file."""
    return f"sqlite+pysqlite:///{path}"


def _sqlite_pragmas(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
    # WAL lets readers run beside the single writer; foreign keys are off by
    # default in SQLite; the busy timeout queues writers instead of failing.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


_READ_ONLY = "iotstore_read_only"


def _sqlite_begin(conn: Any) -> None:
    # A unit of work that may write takes SQLite's write lock up front (BEGIN
    # IMMEDIATE): two read-then-write transactions would otherwise fail on the
    # lock upgrade. Read-only units start deferred so readers run side by side.
    read_only = conn.get_execution_options().get(_READ_ONLY, False)
    conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


def make_engine(url: str, *, echo: bool = False) -> Engine:
    """An engine for ``url`` with the settings each backend needs."""
    if url.startswith("sqlite"):
        engine = create_engine(
            url,
            echo=echo,
            connect_args={"check_same_thread": False, "isolation_level": None},
            pool_size=8,
            max_overflow=8,
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    return create_engine(url, echo=echo, pool_pre_ping=True, pool_size=10, max_overflow=20)


@contextmanager
def translated_errors() -> Iterator[None]:
    """Turn SQLAlchemy's errors raised in the block into this layer's errors.

    Raises :class:`ConflictError` (integrity), :class:`InvalidDataError` (a value
    the database refused) or :class:`DatabaseError` (anything else).
    """
    try:
        yield
    except IntegrityError as e:
        raise ConflictError("the change conflicts with the current state; retry") from e
    except DataError as e:
        raise InvalidDataError(f"the database refused a value: {type(e.orig).__name__}") from e
    except SQLAlchemyError as e:
        raise DatabaseError(f"database error: {type(e).__name__}") from e


# Idle DBAPI connections a database keeps for driver units; more are closed on return.
_DRIVER_IDLE = 16


class SqlDatabase:
    """An engine and its session factory."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False, autoflush=True)
        # DBAPI connections of driver units, detached from the pool; by whether they wait for locks
        self._idle: dict[bool, list[Any]] = {True: [], False: []}
        self._idle_lock = threading.Lock()

    @property
    def embedded(self) -> bool:
        """SQLite, the embedded default: a local file, read without a network round trip,
        whose WAL readers never wait for a lock (an event loop may run reads itself).
        :meth:`driver_unit` serves only this backend."""
        return self.engine.dialect.name == "sqlite"

    @classmethod
    def from_url(cls, url: str) -> SqlDatabase:
        """Open the database at ``url``."""
        return cls(make_engine(url))

    @contextmanager
    def unit_of_work(self, *, write: bool = True) -> Iterator[Session]:
        """One transaction: committed when the block ends, rolled back if it raises.

        ``write=False`` promises a read-only unit (on SQLite it then does not
        take the write lock).
        """
        session = self._sessions()
        try:
            with translated_errors(), session.begin():
                if not write:
                    # procure the connection now so the begin hook sees the option
                    session.connection(execution_options={_READ_ONLY: True})
                yield session
        finally:
            session.close()

    @contextmanager
    def connection_unit(self, *, write: bool = True) -> Iterator[tuple[Session, Connection]]:
        """One Core transaction, and an ORM session that joins it only if it is used.

        :meth:`unit_of_work` without the session's begin/connection/commit work,
        for hot paths whose statements run on the connection (the serial vault):
        the session serves their rare paths. Same commit/rollback, read-only
        promise and error translation as :meth:`unit_of_work`.
        """
        with translated_errors(), self.engine.connect() as connection:
            if not write:
                connection.execution_options(**{_READ_ONLY: True})
            with connection.begin():
                # joins the connection's transaction: its close() leaves that alone
                session = Session(
                    bind=connection, join_transaction_mode="rollback_only",
                    expire_on_commit=False,
                )  # fmt: skip
                try:
                    yield session, connection
                finally:
                    session.close()

    @contextmanager
    def driver_unit(self, *, write: bool = True, wait: bool = True) -> Iterator[DriverConnection]:
        """One transaction on a bare DBAPI connection, for prepared statements only.

        What :meth:`connection_unit` costs beyond SQLite's own BEGIN and COMMIT
        (the pool's checkout and reset, SQLAlchemy's connection and transaction
        objects: about 0.15 ms) is more than a serial registration's statements
        cost. Same commit/rollback, read-only promise and error translation.
        SQLite only (:attr:`embedded`): a PostgreSQL connection can go
        stale between uses, and the pool's pre-ping is what notices.

        ``wait=False`` never waits for a lock (no busy timeout): a locked
        database raises :class:`DatabaseError` at once, so an event loop can
        run a unit itself and hand it to a thread only when it would block.
        """
        assert self.embedded
        dbapi: Any = None
        with self._idle_lock:
            idle = self._idle[wait]
            if idle:
                dbapi = idle.pop()
        if dbapi is None:
            # made by the engine (its connect hooks set the pragmas), then owned here
            fairy = self.engine.raw_connection()
            dbapi = fairy.driver_connection
            fairy.detach()
            if not wait:
                dbapi.execute("PRAGMA busy_timeout=0")
        healthy = False
        try:
            with translated_errors():
                self._driver_sql(dbapi, "BEGIN IMMEDIATE" if write else "BEGIN")
                try:
                    yield DriverConnection(self.engine.dialect, dbapi)
                except BaseException:
                    with suppress(self.engine.dialect.loaded_dbapi.Error):
                        dbapi.rollback()
                        healthy = True
                    raise
                self._driver_sql(dbapi, "COMMIT")
                healthy = True
        finally:
            self._release(dbapi, healthy, wait)

    def _driver_sql(self, dbapi: Any, sql: str) -> None:
        # BEGIN (IMMEDIATE waits out the busy timeout for the write lock) or COMMIT
        try:
            dbapi.execute(sql)
        except self.engine.dialect.loaded_dbapi.Error as e:
            raise DatabaseError(f"database error: {type(e).__name__}") from e

    def _release(self, dbapi: Any, healthy: bool, wait: bool) -> None:
        if healthy and not dbapi.in_transaction:
            with self._idle_lock:
                idle = self._idle[wait]
                if len(idle) < _DRIVER_IDLE:
                    idle.append(dbapi)
                    return
        dbapi.close()

    def dispose(self) -> None:
        """Close every pooled connection."""
        with self._idle_lock:
            idle = [*self._idle[True], *self._idle[False]]
            self._idle = {True: [], False: []}
        for dbapi in idle:
            dbapi.close()
        self.engine.dispose()
