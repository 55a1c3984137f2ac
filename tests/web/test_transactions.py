"""A request's transaction ends when its endpoint returns, before FastAPI serialises the result.

FastAPI validates a sync endpoint's returned dict in another thread-pool hop;
with the transaction still open there, a burst of writers could leave the
lock holder no thread to finish in. The proof here is direct: while FastAPI
validates the result, a second writer on its own connection changes the row
the endpoint wrote. That works only if the endpoint's write is committed and
its lock (SQLite's write lock, a PostgreSQL row) released. The same routes
without the wrapper show what the test detects. Both backends.
"""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI
from pydantic import AfterValidator
from sqlalchemy import create_engine, insert, text
from sqlalchemy.exc import OperationalError

from iotstore.db import utcnow
from iotstore.devices.models import RequestId
from iotstore.stores.permissions import Permission
from iotstore.web.auth import require
from iotstore.web.context import (
    RequestContext,
    api_routes,
    end_transactions_before_serialisation,
    routes_not_ending_transactions,
)
from iotstore.web.errors import install_error_handlers

from ._support import World, asgi_client

# What the probe saw, per request-id row: True when the second writer changed it.
_SEEN: dict[str, bool] = {}
_PROBE_URL: list[str] = []


def _second_writer(value: dict[str, Any]) -> dict[str, Any]:
    """Runs inside FastAPI's response validation: change the row on another connection."""
    url = _PROBE_URL[0]
    sqlite = url.startswith("sqlite")
    # Bounded waits (1 s): an open transaction holding the lock makes this fail, not hang.
    engine = create_engine(url, connect_args={"timeout": 1} if sqlite else {})
    try:
        with engine.begin() as connection:
            if not sqlite:
                connection.execute(text("SET LOCAL lock_timeout = '1s'"))
            changed = connection.execute(
                text("UPDATE request_ids SET used_at = :now WHERE id = :id"),
                {"now": utcnow(), "id": value["id"]},
            ).rowcount
        _SEEN[value["id"]] = changed == 1
    except OperationalError:  # SQLite: "database is locked"; PostgreSQL: lock timeout
        _SEEN[value["id"]] = False
    finally:
        engine.dispose()
    return value


Probed = Annotated[dict[str, Any], AfterValidator(_second_writer)]
Writer = Annotated[RequestContext, Depends(require(Permission.PUBLIC))]


def _write(ctx: RequestContext) -> dict[str, Any]:
    row_id = secrets.token_hex(16)
    ctx.session.execute(
        insert(RequestId).values(id=row_id, expires_at=utcnow() + timedelta(minutes=1))
    )
    return {"id": row_id}


def _probe_app(world: World, wrapped: bool) -> FastAPI:
    """A bare app over the test's deployment with two writers (sync and async endpoints)."""
    app = FastAPI()
    app.state.deployment = world.deployment
    install_error_handlers(app)
    router = APIRouter(prefix="/test-probe")  # a fresh router: its routes are this app's only

    @router.post("/sync")
    def sync_writer(ctx: Writer) -> Probed:
        return _write(ctx)

    @router.post("/async")
    async def async_writer(ctx: Writer) -> Probed:
        return _write(ctx)

    app.include_router(router)
    if wrapped:
        end_transactions_before_serialisation(app)
    return app


def _second_writer_saw(app: FastAPI) -> list[bool]:
    seen = []
    with asgi_client(app) as c:
        for path in ("/test-probe/sync", "/test-probe/async") * 2:
            answer = c.post(path)
            assert answer.status_code == 200, answer.text
            seen.append(_SEEN[answer.json()["id"]])
    return seen


def test_the_transaction_ends_before_the_result_is_validated(world: World) -> None:
    _PROBE_URL[:] = [world.deployment.settings.resolved_database_url]
    # without the wrapper the second writer cannot see (PostgreSQL) or lock (SQLite) the row
    assert _second_writer_saw(_probe_app(world, wrapped=False)) == [False] * 4
    assert _second_writer_saw(_probe_app(world, wrapped=True)) == [True] * 4


def test_every_route_of_the_app_ends_its_transaction_before_serialising(world: World) -> None:
    assert len(api_routes(world.app)) > 50
    assert routes_not_ending_transactions(world.app) == []
