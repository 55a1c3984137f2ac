"""PreparedRead answers exactly what ``Connection.execute`` answers, on both backends."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Engine,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    bindparam,
    select,
)
from sqlalchemy.exc import DBAPIError

from iotstore.db import make_engine
from iotstore.db.base import UTCDateTime
from iotstore.db.prepared import PreparedRead, PreparedStatement

_meta = MetaData()
_things = Table(
    "prepared_things",
    _meta,
    Column("id", Integer, primary_key=True),
    Column("name", String(40)),
    Column("kind", String(10)),
    Column("share", Float, nullable=True),
    Column("flag", Boolean),
    Column("doc", JSON),
    Column("at", UTCDateTime, nullable=True),
)
_BY_NAME = select(_things).where(
    _things.c.name.in_(bindparam("names", expanding=True)),
    _things.c.kind.in_(bindparam("kinds", expanding=True)),
    _things.c.id > bindparam("after"),
)


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    _meta.create_all(engine)
    with engine.begin() as conn:
        conn.execute(
            _things.insert(),
            [
                {"id": i, "name": f"n{i}", "kind": "ab"[i % 2], "share": i / 3 if i % 3 else None,
                 "flag": i % 2 == 0, "doc": {"i": i, "l": [i, "x"]},
                 "at": datetime(2024, 1, i + 1, 12, tzinfo=UTC) if i % 4 else None}
                for i in range(12)
            ],
        )  # fmt: skip
    yield engine
    _meta.drop_all(engine)
    engine.dispose()


@pytest.mark.parametrize(
    "params",
    [
        {"names": ["n1", "n2", "n3", "n8"], "kinds": ["a", "b"], "after": 0},
        {"names": ["n4"], "kinds": ["a"], "after": 1},
        {"names": [f"n{i}" for i in range(12)], "kinds": ["b"], "after": 2},
        {"names": [], "kinds": ["a"], "after": 0},
    ],
)
def test_rows_equal_sqlalchemy(engine: Engine, params: dict[str, object]) -> None:
    prepared = PreparedRead(_BY_NAME)
    with engine.connect() as conn:
        expected = [tuple(r) for r in conn.execute(_BY_NAME, params)]
        for _ in range(2):  # compiled, then from its caches
            got = prepared.rows(conn, params)
            # no ORDER BY: compared by primary key (the first column)
            assert sorted(got) == sorted(expected)
        if params["names"]:
            assert got
            first = sorted(got)[0]
            assert first.name == first[1]  # rows read by column key too
            assert isinstance(first.doc, dict)


def test_driver_errors_are_sqlalchemy_errors(engine: Engine) -> None:
    missing = Table("prepared_missing", MetaData(), Column("id", Integer, primary_key=True))
    prepared = PreparedRead(select(missing).where(missing.c.id == bindparam("id")))
    with engine.connect() as conn, pytest.raises(DBAPIError):
        prepared.rows(conn, {"id": 1})


_INSERT = PreparedStatement(_things.insert())
_RENAME = PreparedStatement(
    _things.update()
    .where(_things.c.id == bindparam("thing"))
    .values(name=bindparam("new_name"), at=bindparam("new_at"))
    .returning(_things.c.id, _things.c.flag, _things.c.doc)
)
_TOUCH = PreparedStatement(
    _things.update().where(_things.c.kind == bindparam("of_kind")).values(share=bindparam("to"))
)


def test_writes_store_what_sqlalchemy_stores(engine: Engine) -> None:
    at = datetime(2025, 6, 1, 8, 30, tzinfo=UTC)
    with engine.begin() as conn:
        written = {"id": 100, "name": "p", "kind": "a", "share": 0.5, "flag": True,
                   "doc": {"k": [1, "v"]}, "at": at}  # fmt: skip
        assert _INSERT.execute(conn, written) == 1
        assert _INSERT.rows(conn, {**written, "id": 101}) == []  # no RETURNING asked for
        renamed = _RENAME.rows(conn, {"thing": 100, "new_name": "q", "new_at": at})
        assert [tuple(r) for r in renamed] == [(100, True, {"k": [1, "v"]})]
        assert renamed[0].flag is True  # converted as SQLAlchemy converts it
        assert _RENAME.rows(conn, {"thing": 999, "new_name": "x", "new_at": None}) == []
        assert _TOUCH.execute(conn, {"of_kind": "b", "to": 2.5}) == 6
    with engine.connect() as conn:
        row = conn.execute(select(_things).where(_things.c.id == 100)).one()
    assert (row.name, row.doc, row.at, row.flag) == ("q", {"k": [1, "v"]}, at, True)


def test_an_insert_needing_a_python_default_is_refused(engine: Engine) -> None:
    table = Table(
        "prepared_defaults", MetaData(), Column("id", Integer, primary_key=True),
        Column("label", String(10), default="x"),
    )  # fmt: skip
    with engine.begin() as conn, pytest.raises(ValueError, match="label"):
        PreparedStatement(table.insert()).execute(conn, {"id": 1})
