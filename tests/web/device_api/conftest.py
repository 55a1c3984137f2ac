"""Fixtures shared by the device API tests: one in-process world and fleet per module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.web._support import World, in_process_world

from ._device import Fleet


@pytest.fixture(scope="module")
def world(module_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    backend = "postgresql" if module_database_url.startswith("postgresql") else "sqlite"
    w = in_process_world(backend, tmp_path_factory.mktemp("dev") / "data", module_database_url)
    yield w
    w.close()


@pytest.fixture(scope="module")
def fleet(world: World) -> Fleet:
    return Fleet(world.deployment, world.client)
