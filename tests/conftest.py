"""Repo-wide fixtures: the database backends every database test runs on.

``database_url`` gives each test a fresh, empty database, once on SQLite and
once on PostgreSQL (see ``tests/_pg.py`` for the server the run starts). A
PostgreSQL that cannot start fails those tests with the reason: never a skip.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests._pg import (
    BACKENDS,
    ENV_URL,
    PostgresServer,
    PostgresUnavailable,
    fresh_database,
    server_from_url,
    start_server,
)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """The run's PostgreSQL server: ``$IOTSTORE_TEST_POSTGRES_URL``, else one started here."""
    url = os.environ.get(ENV_URL)
    try:
        server = server_from_url(url) if url else start_server()
    except PostgresUnavailable as e:
        pytest.fail(f"PostgreSQL is required by the suite and is not available: {e}", False)
    yield server
    server.stop()


def _database(request: pytest.FixtureRequest, directory: Path) -> Iterator[str]:
    def server() -> PostgresServer:
        found: PostgresServer = request.getfixturevalue("postgres_server")
        return found

    with fresh_database(request.param, directory, server) as url:
        yield url


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh empty database for one test: SQLite file, or a new PostgreSQL database."""
    yield from _database(request, tmp_path)


@pytest.fixture(scope="module", params=BACKENDS)
def module_database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """Like ``database_url``, shared by the tests of one module (read-mostly fixtures)."""
    yield from _database(request, tmp_path_factory.mktemp("db"))
