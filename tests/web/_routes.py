"""The app's routes as the tests see them, and a plausible request for each.

Routes are read from ``app.routes`` (through FastAPI's route contexts, which
carry the dependencies ``include_router`` adds), so tests generated from them
cover routes added later without being edited.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

from iotstore.stores.permissions import Permission

from ._support import throwaway_app, unique

__all__ = [
    "RouteInfo",
    "Targets",
    "api_routes",
    "app_routes",
    "declared_permissions",
    "plausible_request",
]


@dataclass(frozen=True)
class RouteInfo:
    """One method of one API route and the permissions its dependencies declare."""

    method: str
    path: str
    permissions: tuple[Permission, ...]
    has_body: bool

    @property
    def id(self) -> str:
        """``METHOD /path``."""
        return f"{self.method} {self.path}"

    @property
    def permission(self) -> Permission:
        """The one permission; fails the test when there is not exactly one."""
        if len(self.permissions) != 1:
            pytest.fail(f"{self.id} declares {len(self.permissions)} permissions, not one")
        return self.permissions[0]

    @property
    def store_scoped(self) -> bool:
        """Whether the path names a store."""
        return "{store_id}" in self.path


def declared_permissions(dependant: Dependant) -> tuple[Permission, ...]:
    """Permissions of every dependency in the tree (``web.auth.require`` sets ``permission``)."""
    found: list[Permission] = []
    stack = [dependant]
    while stack:
        current = stack.pop()
        permission = getattr(current.call, "permission", None)
        if permission is not None:
            assert isinstance(permission, Permission), (current.call, permission)
            found.append(permission)
        stack.extend(current.dependencies)
    return tuple(found)


def _docs_paths(app: FastAPI) -> set[str]:
    paths = (app.openapi_url, app.docs_url, app.redoc_url, app.swagger_ui_oauth2_redirect_url)
    return {p for p in paths if p}


def api_routes(app: FastAPI) -> tuple[list[RouteInfo], list[str]]:
    """The app's API routes, and every other route that is neither FastAPI's docs nor static."""
    routes: list[RouteInfo] = []
    others: list[str] = []
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        if isinstance(route, APIRoute):
            # the effective route carries dependencies added by include_router too
            dependant = getattr(context, "dependant", None) or route.dependant
            declared = declared_permissions(dependant)
            has_body = getattr(context, "body_field", route.body_field) is not None
            path = context.path or route.path
            routes.extend(
                RouteInfo(m, path, declared, has_body) for m in sorted(context.methods or [])
            )
        elif isinstance(route, Mount) and isinstance(route.app, StaticFiles):
            continue
        elif context.path not in _docs_paths(app):
            others.append(f"{type(route).__name__} {context.path}")
    return routes, others


@functools.cache
def app_routes() -> tuple[RouteInfo, ...]:
    """The routes of a throwaway app: parametrisation needs them at collection time."""
    with throwaway_app() as app:
        return tuple(api_routes(app)[0])


@dataclass(frozen=True)
class Targets:
    """What a plausible request acts on: path parameters by name and a few body values."""

    store_id: str
    account_id: str = "0" * 32
    snap_id: str = "0" * 32
    email: str = "nobody@example.com"
    password: str = "not the password"
    extra: dict[str, str] = field(default_factory=dict)

    def path_values(self) -> dict[str, str]:
        """Values of path parameters by name; unknown names get a harmless word."""
        return {
            "store_id": self.store_id,
            "account_id": self.account_id,
            "role": "viewer",
            "snap_id": self.snap_id,
            "token_id": "0" * 32,
            "name": "no-such-key",
            **self.extra,
        }


BodyMaker = Callable[[Targets], Any]

# Bodies an allowed caller's request could succeed with; every other route gets {}.
BODIES: dict[tuple[str, str], BodyMaker] = {
    ("POST", "/api/v1/accounts"): lambda t: {
        "email": f"{unique('new')}@example.com",
        "display-name": "New account",
    },
    ("POST", "/api/v1/brands"): lambda t: {
        "username": unique("nb"),
        "display-name": "New brand",
        "store-id": unique("ns"),
    },
    ("POST", "/api/v1/tokens/password"): lambda t: {"email": t.email, "password": t.password},
    # empty restrictions are narrower than any caller's token: nobody is refused for
    # asking for a wider token than the one it calls with
    ("POST", "/api/v1/tokens"): lambda t: {"description": "t", "stores": [], "permissions": []},
    ("PATCH", "/api/v1/stores/{store_id}"): lambda t: {"name": "Renamed store"},
    ("POST", "/api/v1/stores/{store_id}/substores"): lambda t: {
        "id": unique("sub"),
        "name": "A sub-store",
        "kind": "ecosystem",
    },
    ("POST", "/api/v1/stores/{store_id}/includes"): lambda t: {"snap-id": t.snap_id},
    ("POST", "/api/v1/stores/{store_id}/excludes"): lambda t: {"snap-id": t.snap_id},
    ("POST", "/api/v1/stores/{store_id}/members/{account_id}/role-change"): lambda t: {
        "from": "viewer",
        "to": "reviewer",
    },
    ("POST", "/api/v1/stores/{store_id}/brand/keys"): lambda t: {"name": "probe", "bits": 2048},
    ("POST", "/api/v1/stores/{store_id}/brand/keys/register"): lambda t: b"not an assertion",
    ("POST", "/api/v1/stores/{store_id}/brand/keys/{name}/disable"): lambda t: {"confirm": "x"},
    ("POST", "/api/v1/stores/{store_id}/brand/keys/{name}/revoke"): lambda t: {"confirm": "x"},
    ("POST", "/api/v1/stores/{store_id}/snaps"): lambda t: {"name": unique("matrix")},
}


def plausible_request(
    client: httpx.Client, route: RouteInfo, targets: Targets, headers: dict[str, str]
) -> httpx.Response:
    """Call ``route`` on ``targets`` with ``headers`` and a plausible body."""
    values = targets.path_values()
    url = re.sub(r"\{(\w+)(?::\w+)?\}", lambda g: values.get(g.group(1), "probe-x"), route.path)
    make = BODIES.get((route.method, route.path))
    body = make(targets) if make else ({} if route.method in {"POST", "PUT", "PATCH"} else None)
    if isinstance(body, bytes):
        return client.request(
            route.method, url, headers={**headers, "content-type": "text/plain"}, content=body
        )
    return client.request(route.method, url, headers=headers, json=body)
