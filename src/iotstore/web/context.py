"""The per-request unit of work: one transaction, the caller's identity, the services.

``RequestContext`` is what every endpoint receives. It is opened by
:func:`request_context` (a dependency), committed when the endpoint returns
normally and rolled back when it raises, so a failed request leaves nothing.

:func:`end_transactions_before_serialisation` makes the commit happen as the
endpoint returns, in the endpoint's own thread, before FastAPI validates and
serialises what it returned: FastAPI does that for sync endpoints in another
thread-pool hop, and with the transaction still open a burst of writers
(each holding a pool thread while it waits for SQLite's write lock or a
pooled connection) left the lock holder no thread to finish in.
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from typing import Annotated, Any

import anyio
from fastapi import Depends, FastAPI, Request
from fastapi.routing import APIRoute
from sqlalchemy import event
from sqlalchemy.orm import Session
from starlette.responses import StreamingResponse
from starlette.routing import BaseRoute

from iotstore import asserts
from iotstore.accounts.brands import BrandService
from iotstore.accounts.models import Account
from iotstore.accounts.services import AccountService
from iotstore.accounts.tokens import TokenService, VerifiedToken
from iotstore.assertdb import trust_database
from iotstore.db import translated_errors
from iotstore.deployment import Deployment
from iotstore.keystore import KeyStoreError, TransactionKeys
from iotstore.stores.audit import Actor, AuditLog
from iotstore.stores.services import MembershipService, StoreService

__all__ = [
    "ContextDep",
    "Principal",
    "RequestContext",
    "api_routes",
    "end_transactions_before_serialisation",
    "request_context",
    "routes_not_ending_transactions",
]

log = logging.getLogger("iotstore.web")

_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass
class Principal:
    """Who is calling: nobody, an account with a dashboard session, or an account's token."""

    account: Account | None = None
    token: VerifiedToken | None = None
    via_session: bool = False


@dataclass
class RequestContext:
    """Transaction, identity and services of one request."""

    session: Session
    deployment: Deployment
    request: Request
    principal: Principal = field(default_factory=Principal)

    @property
    def actor(self) -> Actor:
        """The principal as the audit log names it."""
        account = self.principal.account
        token = self.principal.token
        client = self.request.client
        return Actor(
            account_id=account.id if account else None,
            token_id=token.token.id if token else None,
            address=client.host if client else None,
        )

    @cached_property
    def audit(self) -> AuditLog:
        """The audit log in this transaction."""
        return AuditLog(self.session)

    @cached_property
    def stores(self) -> StoreService:
        """Stores service."""
        return StoreService(self.session, self.audit)

    @cached_property
    def memberships(self) -> MembershipService:
        """Roles service."""
        return MembershipService(self.session, self.stores, self.audit)

    @cached_property
    def accounts(self) -> AccountService:
        """Accounts service."""
        return AccountService(self.session)

    @cached_property
    def tokens(self) -> TokenService:
        """API tokens service."""
        return TokenService(self.session, self.deployment.secret, self.deployment.settings.base_url)

    @cached_property
    def trust(self) -> asserts.Database:
        """The assertion trust database over this transaction."""
        return trust_database(self.session, self.deployment.root.trusted)

    @cached_property
    def keystore(self) -> TransactionKeys:
        """The key store, its writes tied to this transaction.

        Keys generated in a request that then fails are deleted again; a
        disable takes effect when the transaction commits (see TransactionKeys).
        """
        keys = TransactionKeys(self.deployment.keystore)
        event.listen(self.session, "after_commit", lambda _: _keystore_step(keys.committed))
        event.listen(self.session, "after_rollback", lambda _: _keystore_step(keys.rolled_back))
        return keys

    @cached_property
    def brands(self) -> BrandService:
        """Brands service."""
        return BrandService(self.session, self.keystore, self.deployment.root, self.trust)

    def finish(self) -> None:
        """Commit the request's transaction now (the dependency's exit then only closes).

        Raises what :meth:`SqlDatabase.unit_of_work` raises for a failed commit,
        so the request answers with that error, never with a 2xx.
        """
        if not self.session.in_transaction():
            return
        with translated_errors():
            self.session.commit()


def _keystore_step(step: Callable[[], None]) -> None:
    # After the database has decided: the request's answer stands, so a key-store
    # failure here is logged for the operator rather than turned into an error.
    try:
        step()
    except KeyStoreError:
        log.exception("key store left out of step with the database")


def request_context(request: Request) -> Iterator[RequestContext]:
    """Open the request's transaction; commit on success, roll back on error."""
    deployment: Deployment = request.app.state.deployment
    write = request.method not in _SAFE_METHODS
    with deployment.database.unit_of_work(write=write) as session:
        yield RequestContext(session=session, deployment=deployment, request=request)


# scope="function": the transaction ends (commit or rollback) before the response
# is sent, so a failed commit answers with an error, never with a 2xx.
ContextDep = Annotated[RequestContext, Depends(request_context, scope="function")]


_ENDS_TRANSACTION = "_iotstore_ends_transaction"


def _finish_contexts(values: dict[str, Any], result: object) -> None:
    if isinstance(result, StreamingResponse):
        return  # its body may still read in the transaction: the dependency's exit commits
    for value in values.values():
        if isinstance(value, RequestContext):
            value.finish()  # a second parameter holding the same context finds nothing to commit


def _ending_transaction(call: Callable[..., Any]) -> Callable[..., Any]:
    """``call`` made to commit its request's transaction as it returns."""
    if inspect.iscoroutinefunction(call):

        @functools.wraps(call)
        async def ending_async(**values: Any) -> Any:
            result = await call(**values)
            if not any(isinstance(v, RequestContext) for v in values.values()):
                return result  # nothing to commit: no thread hop (the snap action's case)
            # A commit blocks: not on the event loop. Its own limiter, as FastAPI
            # does for a dependency's exit: the transaction holds SQLite's write
            # lock (or a pooled connection), and the shared thread pool may be full
            # of requests waiting for exactly that; they would wait for ever.
            await anyio.to_thread.run_sync(
                _finish_contexts, values, result, limiter=anyio.CapacityLimiter(1)
            )
            return result

        setattr(ending_async, _ENDS_TRANSACTION, True)
        return ending_async

    @functools.wraps(call)
    def ending(**values: Any) -> Any:
        result = call(**values)
        _finish_contexts(values, result)  # same thread-pool hop as the endpoint
        return result

    setattr(ending, _ENDS_TRANSACTION, True)
    return ending


def _api_routes(routes: Iterable[BaseRoute]) -> Iterator[APIRoute]:
    """Every APIRoute object as built by its router, through included routers."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        # FastAPI keeps an included router's own routes and builds what serves them
        # lazily, from each route's endpoint, at the first request
        original = getattr(route, "original_router", None)
        if original is not None:
            yield from _api_routes(original.routes)


def api_routes(app: FastAPI) -> list[APIRoute]:
    """Every endpoint route of ``app``, through included routers."""
    return list(_api_routes(app.router.routes))


def end_transactions_before_serialisation(app: FastAPI) -> None:
    """Make every endpoint of ``app`` commit as it returns, before its result is serialised.

    Call it once all routes are added and before the first request (FastAPI
    builds the handlers of included routers then, from the route's endpoint);
    calling it again only wraps new routes. The wrapper keeps the endpoint's
    signature (``__wrapped__``), so parameters, dependencies and the OpenAPI
    document stay as they were.
    """
    for route in _api_routes(app.router.routes):
        if not getattr(route.endpoint, _ENDS_TRANSACTION, False):
            route.endpoint = _ending_transaction(route.endpoint)
        # a route served directly (not through an included router) built its handler
        # already: it calls dependant.call
        call = route.dependant.call
        if call is not None and not getattr(call, _ENDS_TRANSACTION, False):
            route.dependant.call = _ending_transaction(call)


def routes_not_ending_transactions(app: FastAPI) -> list[str]:
    """Paths of routes that do not commit before serialisation (for a test over every route)."""
    return [
        route.path
        for route in _api_routes(app.router.routes)
        if not getattr(route.endpoint, _ENDS_TRANSACTION, False)
    ]
