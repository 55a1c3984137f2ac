"""Hot statements run on the driver's cursor: compiled once, no per-call machinery.

SQLAlchemy's execution path (compiled-cache lookup, parameter processing,
result metadata) costs a few times what an indexed SQLite statement does; the
device refresh and the serial vault run a handful of such statements per
request. A :class:`PreparedStatement` compiles its statement once per dialect
(per list length of its expanding ``IN`` parameters, and per column set of an
INSERT), runs it on a DBAPI cursor and applies the column types' own bind and
result processors, so it writes and reads the same values as
``Connection.execute``. It runs on a SQLAlchemy ``Connection`` (inside that
connection's transaction) or on a :class:`DriverConnection` (a bare DBAPI
connection, see :meth:`~iotstore.db.SqlDatabase.driver_unit`). A statement
this cannot run exactly so (a paramstyle other than ``qmark`` or
``pyformat``) falls back to ``Connection.execute``; an INSERT or UPDATE that
would need a column's Python-side default is refused when compiled: give
every such value.
"""

from __future__ import annotations

import threading
from collections import namedtuple
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Insert, Select
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql.base import Executable
from sqlalchemy.sql.elements import ClauseElement

__all__ = ["DriverConnection", "PreparedRead", "PreparedStatement", "driver_of"]

Processor = Callable[[Any], Any]


def _row_type(names: list[str]) -> Any:
    return namedtuple("Row", names, rename=True)


@dataclass(frozen=True, slots=True)
class DriverConnection:
    """A DBAPI connection and the dialect that speaks to it, in a transaction its owner ends."""

    dialect: Dialect
    dbapi: Any


def driver_of(connection: Connection | DriverConnection) -> DriverConnection:
    """The DBAPI connection under ``connection`` (its transaction included)."""
    if isinstance(connection, DriverConnection):
        return connection
    dbapi = connection.connection.dbapi_connection
    assert dbapi is not None
    return DriverConnection(connection.dialect, dbapi)


class _Compiled:
    """One statement compiled for one dialect (and one INSERT column set)."""

    def __init__(
        self, statement: Executable, dialect: Dialect, column_keys: list[str] | None
    ) -> None:
        assert isinstance(statement, ClauseElement)
        compiled: Any = statement.compile(dialect=dialect, column_keys=column_keys)
        if compiled.insert_prefetch or compiled.update_prefetch:
            names = [c.name for c in (*compiled.insert_prefetch, *compiled.update_prefetch)]
            raise ValueError(f"a prepared statement needs explicit values for {names}")
        self.sql: str = compiled.string
        self.positional = dialect.paramstyle == "qmark"
        binds = compiled.binds
        # sorted once: the cache key of the rendered SQL is their lengths, in this order
        self.expanding = tuple(sorted(n for n, bind in binds.items() if bind.expanding))
        self.usable = dialect.paramstyle in ("qmark", "pyformat")
        # values fixed in the statement itself (a comparison with a Python constant)
        self.fixed: dict[str, Any] = {
            name: bind.effective_value for name, bind in binds.items() if not bind.required
        }
        # (name, bind processor, expanding) in the order the driver takes the values
        self.plan: list[tuple[str, Processor | None, bool]] = [
            (name, binds[name].type._cached_bind_processor(dialect), binds[name].expanding)
            for name in (compiled.positiontup or [] if self.positional else binds)
        ]
        self.result_columns: list[Any] = compiled._result_columns
        self.types = [col[3] for col in self.result_columns]
        # (column index, result processor) of the columns that need one; set on first use
        self.conversions: list[tuple[int, Processor]] | None = None
        self.by_lengths: dict[tuple[int, ...], str] = {}

    def sql_for(self, params: Mapping[str, Any]) -> str:
        if not self.expanding:
            return self.sql
        lengths = tuple(len(params[name]) for name in self.expanding)
        sql = self.by_lengths.get(lengths)
        if sql is None:
            sql = self.sql
            for name, n in zip(self.expanding, lengths, strict=True):
                if self.positional:
                    marks = ", ".join("?" * n)
                else:
                    marks = ", ".join(f"%({name}_{i})s" for i in range(n))
                # an empty list matches nothing, as SQLAlchemy renders it
                sql = sql.replace(f"__[POSTCOMPILE_{name}]", marks or "NULL) AND (1 != 1")
            if len(self.by_lengths) < 256:  # a fleet sends a few sizes; bound the rest
                self.by_lengths[lengths] = sql
        return sql

    def arguments(self, params: Mapping[str, Any]) -> Sequence[Any] | dict[str, Any]:
        positional: list[Any] = []
        named: dict[str, Any] = {}
        by_position, fixed = self.positional, self.fixed
        for name, processor, expanding in self.plan:
            value = params[name] if name in params else fixed[name]
            if processor is not None:
                value = [processor(v) for v in value] if expanding else processor(value)
            if by_position:
                if expanding:
                    positional.extend(value)
                else:
                    positional.append(value)
            elif expanding:
                named.update({f"{name}_{i}": v for i, v in enumerate(value)})
            else:
                named[name] = value
        return positional if by_position else named


class PreparedStatement:
    """A statement run straight on the driver's cursor; rows come back as named tuples."""

    def __init__(self, statement: Executable) -> None:
        self._statement = statement
        self._insert = isinstance(statement, Insert)
        # rows read like SQLAlchemy's (by position or by column key), at a tuple's cost; a
        # DML statement's RETURNING labels are known once it is compiled (see _for)
        self._row: Any = (
            _row_type(list(statement.selected_columns.keys()))
            if isinstance(statement, Select)
            else None
        )
        self._compiled: dict[tuple[str, tuple[str, ...]], _Compiled] = {}
        self._lock = threading.Lock()

    def _for(self, dialect: Dialect, params: Mapping[str, Any]) -> _Compiled:
        # an INSERT names the columns it is given (the rest take their server defaults)
        columns = tuple(params) if self._insert else ()
        key = (f"{dialect.name}+{dialect.driver}", columns)
        compiled = self._compiled.get(key)
        if compiled is None:
            with self._lock:
                compiled = self._compiled.get(key)
                if compiled is None:
                    compiled = _Compiled(
                        self._statement, dialect, list(columns) if self._insert else None
                    )
                    if self._row is None:  # the same labels on every dialect
                        self._row = _row_type([column[0] for column in compiled.result_columns])
                    if len(self._compiled) < 64:
                        self._compiled[key] = compiled
        return compiled

    def rows(
        self, connection: Connection | DriverConnection, params: Mapping[str, Any]
    ) -> list[Any]:
        """Every row the statement returns for ``params`` (none for DML without RETURNING).

        Runs in ``connection``'s transaction; expanding parameters take
        sequences. Driver errors are raised as SQLAlchemy's, as
        ``Connection.execute`` raises them.
        """
        return self._run(connection, params)[0]

    def execute(self, connection: Connection | DriverConnection, params: Mapping[str, Any]) -> int:
        """Run the statement for ``params``; the number of rows it matched."""
        return self._run(connection, params)[1]

    def _run(
        self, connection: Connection | DriverConnection, params: Mapping[str, Any]
    ) -> tuple[list[Any], int]:
        driver = driver_of(connection)
        dialect = driver.dialect
        compiled = self._for(dialect, params)
        if not compiled.usable:
            if not isinstance(connection, Connection):
                raise TypeError(f"{dialect.paramstyle!r} parameters need a SQLAlchemy Connection")
            result = connection.execute(self._statement, dict(params))
            if not result.returns_rows:
                return [], result.rowcount
            return [self._row(*r) for r in result], result.rowcount
        sql = compiled.sql_for(params)
        arguments = compiled.arguments(params)
        cursor = driver.dbapi.cursor()
        try:
            try:
                cursor.execute(sql, arguments)
                # (a PostgreSQL INSERT compiles with an implicit RETURNING of its key: unread)
                description = cursor.description if self._row._fields else None
                fetched = cursor.fetchall() if description is not None else []
                count = cursor.rowcount
            except dialect.loaded_dbapi.Error as e:
                raise DBAPIError.instance(
                    sql, arguments, e, dialect.loaded_dbapi.Error, dialect=dialect
                ) from e
            convert = compiled.conversions
            if convert is None and description is not None:
                processors = [
                    type_._cached_result_processor(dialect, column[1])
                    for type_, column in zip(compiled.types, description, strict=True)
                ]
                # most columns need no conversion: touch only those that do
                convert = [(i, p) for i, p in enumerate(processors) if p is not None]
                compiled.conversions = convert
        finally:
            cursor.close()
        make = self._row._make
        if not convert:
            return [make(r) for r in fetched], count
        out = []
        for row in fetched:
            values = list(row)
            for i, p in convert:
                values[i] = p(values[i])
            out.append(make(values))
        return out, count


# the name the read paths know it by
PreparedRead = PreparedStatement
