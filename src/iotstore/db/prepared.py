"""Hot read statements run on the driver's cursor: compiled once, no per-call machinery.

SQLAlchemy's execution path (compiled-cache lookup, expanding-parameter
rendering, result metadata) costs a few times what an indexed SQLite lookup
does; the device refresh runs a handful of such lookups per request. A
:class:`PreparedRead` compiles its SELECT once per dialect (and per list
length of its expanding ``IN`` parameters), runs it on the DBAPI cursor of
the unit of work's connection (same transaction), and applies the column
types' own result processors, so rows hold the same values as
``Connection.execute`` gives. A statement this cannot run exactly so (a bind
parameter needing a processor, a paramstyle other than ``qmark`` or
``pyformat``) falls back to ``Connection.execute``.
"""

from __future__ import annotations

import threading
from collections import namedtuple
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, Select
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError

__all__ = ["PreparedRead"]


class _Compiled:
    """One statement compiled for one dialect."""

    def __init__(self, statement: Select[*tuple[Any, ...]], dialect: Dialect) -> None:
        compiled = statement.compile(dialect=dialect)
        self.sql = compiled.string
        self.positional = dialect.paramstyle == "qmark"
        self.names: list[str] = list(compiled.positiontup or []) if self.positional else []
        # sorted once: the cache key of the rendered SQL is their lengths, in this order
        self.expanding = tuple(sorted(n for n, bind in compiled.binds.items() if bind.expanding))
        self.usable = dialect.paramstyle in ("qmark", "pyformat") and all(
            bind.type._cached_bind_processor(dialect) is None for bind in compiled.binds.values()
        )
        self.types = [col[3] for col in compiled._result_columns]
        # (column index, result processor) of the columns that need one; set on first use
        self.conversions: list[tuple[int, Callable[[Any], Any]]] | None = None
        self.by_lengths: dict[tuple[int, ...], str] = {}

    def sql_for(self, params: Mapping[str, Any]) -> str:
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
        if self.positional:
            out: list[Any] = []
            for name in self.names:
                if name in self.expanding:
                    out.extend(params[name])
                else:
                    out.append(params[name])
            return out
        named: dict[str, Any] = {}
        for name, value in params.items():
            if name in self.expanding:
                named.update({f"{name}_{i}": v for i, v in enumerate(value)})
            else:
                named[name] = value
        return named


class PreparedRead:
    """A SELECT of plain columns, run as tuples straight on the driver's cursor."""

    def __init__(self, statement: Select[*tuple[Any, ...]]) -> None:
        self._statement = statement
        # rows read like SQLAlchemy's (by position or by column key), at a tuple's cost
        self._row: Any = namedtuple("Row", statement.selected_columns.keys(), rename=True)  # type: ignore[misc]
        self._compiled: dict[str, _Compiled] = {}
        self._lock = threading.Lock()

    def _for(self, dialect: Dialect) -> _Compiled:
        key = f"{dialect.name}+{dialect.driver}"
        compiled = self._compiled.get(key)
        if compiled is None:
            with self._lock:
                compiled = self._compiled.setdefault(key, _Compiled(self._statement, dialect))
        return compiled

    def rows(self, connection: Connection, params: Mapping[str, Any]) -> list[Any]:
        """Every row for ``params``, as tuples in the statement's column order.

        ``connection`` is the unit of work's (its transaction is used);
        expanding parameters take sequences. Driver errors are raised as
        SQLAlchemy's, as ``Connection.execute`` raises them.
        """
        dialect = connection.dialect
        compiled = self._for(dialect)
        if not compiled.usable:
            return [self._row(*r) for r in connection.execute(self._statement, dict(params))]
        sql = compiled.sql_for(params)
        arguments = compiled.arguments(params)
        dbapi = connection.connection.dbapi_connection
        assert dbapi is not None
        cursor = dbapi.cursor()
        try:
            try:
                cursor.execute(sql, arguments)
                fetched = cursor.fetchall()
            except dialect.loaded_dbapi.Error as e:
                raise DBAPIError.instance(
                    sql, arguments, e, dialect.loaded_dbapi.Error, dialect=dialect
                ) from e
            convert = compiled.conversions
            if convert is None:
                description = cursor.description or []
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
            return [make(r) for r in fetched]
        out = []
        for row in fetched:
            values = list(row)
            for i, p in convert:
                values[i] = p(values[i])
            out.append(make(values))
        return out
