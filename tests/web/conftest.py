"""Fixtures of the web tests: a real deployment per backend, its app, clients, a live server.

* ``world``: a fresh deployment on a fresh database (per test, both backends).
* ``module_world``: one deployment per backend shared by a module's tests;
  tests that change state make their own brands and stores (``unique`` names).
* ``live_world``: like ``module_world``, but its client talks to the real
  production server (granian) over loopback HTTP.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from iotstore.deployment import Deployment

from ._support import Factory, LiveServer, World, in_process_world


def _backend(url: str) -> str:
    return "postgresql" if url.startswith("postgresql") else "sqlite"


@pytest.fixture
def world(database_url: str, tmp_path: Path) -> Iterator[World]:
    """A fresh deployment, app and client for one test."""
    w = in_process_world(_backend(database_url), tmp_path / "data", database_url)
    yield w
    w.close()


@pytest.fixture
def deployment(world: World) -> Deployment:
    """The test's deployment."""
    return world.deployment


@pytest.fixture
def app(world: World) -> FastAPI:
    """The test's application."""
    return world.app


@pytest.fixture
def client(world: World) -> httpx.Client:
    """A client of the test's application (in-process)."""
    return world.client


@pytest.fixture
def factory(world: World) -> Factory:
    """Accounts, roles, brands, stores and tokens for the test's deployment."""
    return world.factory


@pytest.fixture(scope="module")
def module_world(
    module_database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    """One deployment per backend for the whole module."""
    data_dir = tmp_path_factory.mktemp("deployment") / "data"
    w = in_process_world(_backend(module_database_url), data_dir, module_database_url)
    yield w
    w.close()


@pytest.fixture(scope="module")
def live_world(
    module_database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    """A deployment served by granian on 127.0.0.1; the client speaks real HTTP to it."""
    base = tmp_path_factory.mktemp("live")
    w = in_process_world(_backend(module_database_url), base / "data", module_database_url)
    w.client.close()
    server = LiveServer(base / "data", module_database_url, base / "server.log")
    w.client = httpx.Client(base_url=server.url, timeout=60)
    try:
        yield w
    finally:
        w.close()
        server.stop()
