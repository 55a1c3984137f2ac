"""Authentication (tokens, dashboard sessions) and the permission check every endpoint names.

Deny by default: an endpoint gets a :class:`RequestContext` only through
:func:`require`, which authenticates the caller and checks the one
permission the endpoint declares. ``tests/web/test_permission_matrix.py``
fails for any route that does not declare one.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Annotated, Any

from fastapi import Depends, Request

from iotstore.accounts.sessions import SessionService
from iotstore.errors import Forbidden, InvalidInput, NotFound, Unauthenticated
from iotstore.stores.permissions import ACCOUNT_PERMISSIONS, Permission

from .context import Principal, RequestContext, request_context
from .publisher_api import _macaroons as u1_macaroons

__all__ = ["CSRF_HEADER", "SESSION_COOKIE", "authenticate", "authorize", "require", "store_chain"]

SESSION_COOKIE = "iotstore_session"
CSRF_HEADER = "x-csrf-token"
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def _macaroon_from_header(value: str, secret: bytes) -> str:
    scheme, _, rest = value.strip().partition(" ")
    rest = rest.strip()
    if scheme.lower() == "bearer" and rest:
        return rest
    if scheme.lower() == "macaroon":
        # snapcraft style: Macaroon root="...", possibly with discharges
        parts: dict[str, str] = {}
        for part in rest.split(","):
            name, _, raw = part.strip().partition("=")
            parts.setdefault(name, raw.strip('"'))
        if parts.get("root") and parts.get("discharge"):
            # a login through the publisher API's SSO: it stands for one of our tokens
            return u1_macaroons.unwrap(secret, parts["root"], parts["discharge"])
        if parts.get("root"):
            return parts["root"]
    raise Unauthenticated("unsupported Authorization header: use 'Bearer <token>'")


def sessions(ctx: RequestContext) -> SessionService:
    """Dashboard sessions in the request's transaction."""
    return SessionService(ctx.session, timedelta(hours=ctx.deployment.settings.session_hours))


def authenticate(ctx: RequestContext) -> Principal:
    """Who is calling: a token in ``Authorization``, else a session cookie, else nobody."""
    request = ctx.request
    header = request.headers.get("authorization")
    if header:
        verified = ctx.tokens.verify(_macaroon_from_header(header, ctx.deployment.secret))
        if request.method not in _SAFE_METHODS:
            ctx.tokens.mark_used(verified.token)
        return Principal(account=verified.account, token=verified)
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        row = sessions(ctx).find(cookie)
        if row is not None:
            if request.method not in _SAFE_METHODS:
                sent = request.headers.get(CSRF_HEADER, "")
                if not hmac.compare_digest(sent.encode(), row.csrf_token.encode()):
                    raise Forbidden("missing or wrong CSRF token")
            account = ctx.accounts.get(row.account_id)
            if not account.disabled:
                return Principal(account=account, via_session=True)
    return Principal()


def store_chain(ctx: RequestContext, store_id: str) -> Iterator[str]:
    """``store_id``, then its ancestors' ids: what a token's store caveat may name.

    Lazy, so a token naming the store itself costs no lookup of its parents.
    """
    yield store_id
    yield from ctx.stores.ancestor_ids(store_id)


def authorize(ctx: RequestContext, permission: Permission, store_id: str | None) -> None:
    """Raise unless the principal holds ``permission`` (in ``store_id`` when store-scoped)."""
    if permission is Permission.PUBLIC:
        return
    principal = ctx.principal
    account = principal.account
    if account is None:
        raise Unauthenticated("sign in or send a token")
    token = principal.token
    if token is not None and not token.carries(permission):
        raise Forbidden(f"this token does not carry the {permission.value} permission")
    if permission in ACCOUNT_PERMISSIONS:
        return
    if permission is Permission.BRANDS_CREATE:
        if not account.is_operator:
            raise Forbidden("only deployment operators create brands")
        return
    if store_id is None:
        raise InvalidInput(f"{permission.value} needs a store")
    store = ctx.stores.get(store_id)  # 404 for unknown stores
    granted = ctx.memberships.permissions(account.id, store.id)
    if not granted:
        # no role at all: do not reveal that the store exists
        raise NotFound(f"no store {store_id!r}")
    if token is not None and not token.reaches(store_chain(ctx, store.id)):
        raise Forbidden("this token is restricted to other stores")
    if permission not in granted:
        raise Forbidden(f"your roles in {store_id!r} do not include {permission.value}")


def require(permission: Permission, store_param: str = "store_id") -> Callable[..., Any]:
    """The dependency an endpoint uses to get its context, with ``permission`` enforced."""

    # the context's transaction ends before the response is sent (see context.py)
    def dependency(
        request: Request, ctx: Annotated[RequestContext, Depends(request_context, scope="function")]
    ) -> RequestContext:
        ctx.principal = authenticate(ctx)
        authorize(ctx, permission, request.path_params.get(store_param))
        return ctx

    dependency.permission = permission  # type: ignore[attr-defined]  # read by the matrix test
    return dependency
