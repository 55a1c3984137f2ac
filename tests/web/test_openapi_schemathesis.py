"""Schemathesis against the app's own OpenAPI document: no input makes the server fail (5xx).

Every operation gets generated requests (valid and invalid bodies, parameters
at their boundaries, odd strings) sent by an operator who administers a real
brand store, so requests reach the handlers instead of stopping at a 404 for
an unknown store.

PostgreSQL only: it is the stricter backend (it refuses NUL characters in
text and values over a column's size, where SQLite stores them), so it finds
every failure SQLite would and more; the handlers' behaviour on SQLite is
covered by the rest of the suite, and running the slowest test twice would
double its cost for little gain.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from tests._pg import PostgresServer

from ._routes import app_routes
from ._support import Person, World, in_process_world, throwaway_app


def _document() -> dict[str, Any]:
    with throwaway_app() as app:
        return app.openapi()


SCHEMA = schemathesis.openapi.from_dict(_document())


class Target:
    """What the generated requests act on."""

    def __init__(self, world: World, operator: Person, store_id: str) -> None:
        self.world = world
        self.operator = operator
        self.store_id = store_id


@pytest.fixture(scope="module")
def target(
    postgres_server: PostgresServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Target]:
    base = tmp_path_factory.mktemp("schemathesis")
    url = postgres_server.create_database()
    world = in_process_world("postgresql", base / "data", url)
    f = world.factory
    _, store_id = f.brand()
    f.substore(store_id)
    operator = f.person({store_id: "admin"}, operator=True)
    f.snap(store_id)
    yield Target(world, operator, store_id)
    world.close()
    postgres_server.drop_database(url)


def _send(client: httpx.Client, kwargs: dict[str, Any]) -> httpx.Response:
    """Send requests-style keyword arguments (what schemathesis serialises) through httpx."""
    body: dict[str, Any] = {}
    if "json" in kwargs:
        body["json"] = kwargs["json"]
    data = kwargs.get("data")
    if isinstance(data, (bytes, str)):
        body["content"] = data
    elif data is not None:
        body["data"] = data
    if kwargs.get("files"):
        body["files"] = kwargs["files"]
    headers = dict(kwargs.get("headers") or {})
    cookies = kwargs.get("cookies") or {}
    if cookies:  # httpx deprecates per-request cookies; send the header itself
        headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in cookies.items())
    return client.request(
        kwargs["method"], kwargs["url"], headers=headers, params=kwargs.get("params"), **body
    )


@SCHEMA.parametrize()
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    database=None,
)
def test_no_server_errors(case: schemathesis.Case[Any], target: Target) -> None:
    if "store_id" in (case.path_parameters or {}):
        # a real store, so generated bodies reach the handlers behind the permission check
        assert case.path_parameters is not None
        case.path_parameters["store_id"] = target.store_id
    if isinstance(case.body, dict) and "bits" in case.body:
        # valid sizes go up to 8192 bits, which take seconds each to generate
        case.body["bits"] = 2048
    kwargs = case.as_transport_kwargs(base_url="http://testserver", headers=target.operator.headers)
    response = _send(target.world.client, kwargs)
    case.validate_response(response, checks=[not_a_server_error])


def test_document_lists_every_route() -> None:
    # schemathesis only tests what the document lists: a route left out of it escapes
    document = _document()
    operations = {(m.upper(), p) for p, item in document["paths"].items() for m in item}
    # OpenAPI writes a path parameter without its converter: {key:path} is {key}
    routes = {(r.method, re.sub(r"\{(\w+):\w+\}", r"{\1}", r.path)) for r in app_routes()}
    assert routes - operations == set()
    assert "/api/v1/stores/{store_id}/members/{account_id}/roles/{role}" in document["paths"]
