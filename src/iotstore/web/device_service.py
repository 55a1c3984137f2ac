"""The serial vault as snapd's device service calls it (at ``/serial-vault/v1/``).

snapd sends the gadget's ``device-service.headers`` (our ``api-key``) on both
calls; it reads error text only from ``application/json`` bodies, and
retries 5xx, so every refusal here is a 4xx with a message.

``request-id`` and ``serial`` are the vault's hot path, served lean: their
routes still declare their permission (``require(Permission.PUBLIC)``: the
permission matrix reads it) and document the API, but :class:`LeanRoute`
serves them with a plain Starlette handler, without FastAPI's dependency
solving and validation or the per-request context. The API key inside the
protocol is the device's credential (no account is involved), and a
registration opens its own short transactions (:func:`register_device`):
checks in a read, RSA in none, then one short write, so concurrent
registrations never queue on SQLite's write lock while a serial is signed.
On SQLite, ``POST serial`` runs the checks on the event loop (WAL reads on a
connection that never waits for a lock) and hands the serial to a signing
thread per core, which signs and records it: one thread hop per serial.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Coroutine, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Request
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.middleware.exceptions import ExceptionMiddleware
from starlette.routing import request_response
from starlette.types import ASGIApp, Receive, Scope, Send

from iotstore import asserts
from iotstore.assertdb import trust_database
from iotstore.db import DatabaseError, SqlDatabase
from iotstore.deployment import Deployment
from iotstore.devices.errors import SigningPending
from iotstore.devices.registration import (
    DeviceRegistrar,
    NeedsAssertions,
    RegistrarUnits,
    register_in_steps,
    sign_and_record,
)
from iotstore.devices.services import Registration, SerialPlan, VaultService
from iotstore.keystore import KeyStore
from iotstore.stores.permissions import Permission

from .auth import require
from .context import RequestContext

__all__ = ["PREFIX", "LeanPaths", "LeanRoute", "register_device", "router", "vault_service"]

PREFIX = "/serial-vault/v1"

Handler = Callable[[Request], Coroutine[Any, Any, Response]]
_LEAN = "_iotstore_lean_handler"


class LeanRoute(APIRoute):
    """An API route served by its endpoint's lean handler when it names one.

    The endpoint keeps its FastAPI signature for the permission it declares and
    for the OpenAPI document; requests go straight to the handler (a Starlette
    ``Request -> Response`` coroutine), which must enforce that permission itself.
    """

    def get_route_handler(self) -> Handler:
        """The endpoint's lean handler, else FastAPI's own."""
        lean: Handler | None = getattr(self.endpoint, _LEAN, None)
        return lean if lean is not None else super().get_route_handler()


def _served_by(handler: Handler) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def mark(endpoint: Callable[..., Any]) -> Callable[..., Any]:
        setattr(endpoint, _LEAN, handler)  # functools.wraps carries it onto wrappers
        return endpoint

    return mark


router = APIRouter(prefix=PREFIX, tags=["device service"], route_class=LeanRoute)

# The device service authenticates devices by API key inside the protocol.
Device = Annotated[RequestContext, Depends(require(Permission.PUBLIC))]
# No max_length here: FastAPI's validation error would answer in the admin API's
# shape, which snapd cannot read; the vault refuses over-long keys itself.
ApiKeyHeader = Annotated[str | None, Header(alias="api-key")]


def vault_service(ctx: RequestContext) -> VaultService:
    """The vault over the request's transaction."""
    return VaultService(ctx.session, ctx.deployment.keystore, ctx.brands, ctx.trust, ctx.audit)


Trust = Callable[[Session], asserts.Database]


def _trust(deployment: Deployment) -> Trust:
    trusted = deployment.root.trusted
    return lambda session: trust_database(session, trusted)


def _full_units(database: SqlDatabase, keystore: KeyStore, trust: Trust) -> RegistrarUnits:
    @contextmanager
    def unit(write: bool) -> Iterator[DeviceRegistrar]:
        with database.connection_unit(write=write) as (session, connection):
            yield DeviceRegistrar(connection, keystore, trust(session))

    return unit


def _driver_units(database: SqlDatabase, keystore: KeyStore) -> RegistrarUnits:
    @contextmanager
    def unit(write: bool) -> Iterator[DeviceRegistrar]:
        with database.driver_unit(write=write) as connection:
            yield DeviceRegistrar(connection, keystore, None)

    return unit


def _new_request_id(deployment: Deployment, api_key: str | None) -> str:
    # needs no assertions: driver units on SQLite
    database = deployment.database
    units = (
        _driver_units(database, deployment.keystore)
        if database.embedded
        else _full_units(database, deployment.keystore, _trust(deployment))
    )
    with units(True) as registrar:
        return registrar.new_request_id(api_key)


def register_device(
    database: SqlDatabase,
    trust: Trust,
    keystore: KeyStore,
    api_key: str | None,
    data: bytes,
    address: str | None,
) -> Registration:
    """One serial registration in three steps; what it commits is all or nothing.

    1. a read-only transaction runs every check (API key, stream, signature,
       request-id, allow-list, the device's row); 2. the serial is signed in
       no transaction; 3. one write transaction consumes the request-id, reads
       the device's row again and records serial, device and signing-log
       entry (:meth:`DeviceRegistrar.record_registration`). Raises the vault's
       4xx errors, and :class:`SigningPending` (committed: the request-id stays
       usable) when the key store fails for now. ``trust`` opens the assertion
       database over a transaction's session.

    On SQLite the steps first run on bare driver connections, without the
    assertion database (most registrations need none of it); a case that needs
    it rolls back and runs again with it (:class:`NeedsAssertions`).
    """
    if database.embedded:
        try:
            return register_in_steps(_driver_units(database, keystore), api_key, data, address)
        except NeedsAssertions:
            pass
    return register_in_steps(_full_units(database, keystore, trust), api_key, data, address)


# Signs (RSA releases the GIL: one thread per core keeps every core signing) and
# records the serials checked on the event loop; threads start on first use.
_signing_pool = ThreadPoolExecutor(max(2, os.cpu_count() or 2), thread_name_prefix="iotstore-sign")


def _checked_on_loop(deployment: Deployment, api_key: str | None, data: bytes) -> SerialPlan | None:
    """The registration's checks, run by the event loop itself when they cannot block.

    On SQLite they are reads under WAL, which take no lock, on a connection that
    would not wait for one anyway; the signing material is cached. None: run
    the whole registration in a thread instead (the material to load from the
    assertions, the database busy, or PostgreSQL, where every read is a round
    trip). The vault's 4xx errors are raised here.
    """
    database = deployment.database
    if not database.embedded:
        return None
    try:
        with database.driver_unit(write=False, wait=False) as connection:
            registrar = DeviceRegistrar(connection, deployment.keystore, None)
            return registrar.check_registration(api_key, data)
    except (NeedsAssertions, DatabaseError):
        return None


def _finish(
    deployment: Deployment, plan: SerialPlan, api_key: str | None, data: bytes, address: str | None
) -> Registration:
    """Sign and record a plan checked on the event loop (in a signing thread)."""
    database = deployment.database
    try:
        return sign_and_record(_driver_units(database, deployment.keystore), plan, data, address)
    except NeedsAssertions:
        # rolled back (a retry's stored serial to serve, say): the whole registration again
        units = _full_units(database, deployment.keystore, _trust(deployment))
        return register_in_steps(units, api_key, data, address)


async def _request_id(request: Request) -> Response:
    deployment: Deployment = request.app.state.deployment
    # A blocking transaction (SQLite's write lock): in the thread pool, whole.
    value = await run_in_threadpool(_new_request_id, deployment, request.headers.get("api-key"))
    return JSONResponse({"success": True, "message": "", "request-id": value})


async def _serial(request: Request) -> Response:
    deployment: Deployment = request.app.state.deployment
    body = await request.body()  # BodyLimit caps it; the vault refuses large streams
    client = request.client
    address = client.host if client else None
    api_key = request.headers.get("api-key")
    try:
        plan = _checked_on_loop(deployment, api_key, body)
        # Signing and writing block: in a thread, so the event loop keeps serving.
        if plan is not None:
            loop = asyncio.get_running_loop()
            registration = await loop.run_in_executor(
                _signing_pool, _finish, deployment, plan, api_key, body, address
            )
        else:
            registration = await run_in_threadpool(
                register_device,
                deployment.database,
                _trust(deployment),
                deployment.keystore,
                api_key,
                body,
                address,
            )
    except SigningPending as e:
        # 202: snapd keeps this serial-request and posts it again after 60 s, for as
        # long as it gets 202 (a 5xx would cost it a fresh request-id and one of its
        # counted retries). The vault committed only the request-id's new expiry.
        return JSONResponse(
            {"success": False, "error_code": e.code, "message": e.message}, status_code=202
        )
    return Response(registration.stream(), media_type=asserts.MEDIA_TYPE)


@router.post("/request-id", response_class=JSONResponse)
@_served_by(_request_id)
def request_id(ctx: Device, api_key: ApiKeyHeader = None) -> JSONResponse:
    """A fresh single-use request-id for the device's serial-request."""
    raise AssertionError("served by _request_id (LeanRoute)")  # pragma: no cover


@router.post("/serial")
@_served_by(_serial)
def serial(ctx: Device, api_key: ApiKeyHeader = None) -> Response:
    """Sign a serial for a serial-request (+ model) stream; answer serial, account-key, account."""
    raise AssertionError("served by _serial (LeanRoute)")  # pragma: no cover


class LeanPaths:
    """ASGI middleware: the lean routes' requests go to their handlers without routing.

    The app's router tries its routes one by one (each included router twice:
    match, then handle), which cost the vault's hot path more than its SQL. A
    request whose method and exact path are a :class:`LeanRoute` of
    :data:`router` is served here by that route's handler, with the app's
    exception handlers (the same error shapes); anything else passes on.
    Install it inside the app's body limit.
    """

    def __init__(self, app: ASGIApp, exception_handlers: Mapping[Any, Any]) -> None:
        self.app = app
        # as Starlette splits them: 500 and Exception belong to the outer ServerErrorMiddleware
        handlers = {k: v for k, v in exception_handlers.items() if k not in (500, Exception)}
        self._served: dict[tuple[str, str], ASGIApp] = {}
        for route in router.routes:
            lean: Handler | None = getattr(getattr(route, "endpoint", None), _LEAN, None)
            if isinstance(route, APIRoute) and lean is not None:
                served = ExceptionMiddleware(request_response(lean), handlers=handlers)
                for method in route.methods or ():
                    self._served[method, route.path] = served

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve a lean route's request, or pass it on."""
        if scope["type"] == "http":
            served = self._served.get((scope["method"], scope["path"]))
            if served is not None:
                await served(scope, receive, send)
                return
        await self.app(scope, receive, send)


@router.get("/version")
def version(ctx: Device) -> dict[str, object]:
    """What this vault is."""
    del ctx
    return {"version": "1", "service": "iotstore serial vault"}
