"""The permission matrix, generated from the app's routes and the permission table.

1. Every API route declares exactly one permission: one dependency in its
   dependency tree whose callable carries ``permission`` (only
   ``web.auth.require`` makes those). A route without one fails here, by path.
2. Every route x every kind of caller gets exactly the answer the permission
   table (``ROLE_PERMISSIONS``, ``ACCOUNT_PERMISSIONS``, operators for
   ``BRANDS_CREATE``, ``PUBLIC``) predicts. Denied: 401 for anonymous callers,
   404 for accounts without any role in the store (its existence is not
   revealed), 403 otherwise, each with the error body. Allowed: anything but
   401/403 and never a 5xx (a plausible body may still be refused with a 4xx).

The target store T is a product sub-store of brand A's root store R, so the
matrix also proves that administrators of a parent store administer T and
that a token scoped to a parent store reaches T while one scoped to a sibling
store does not. Routes are read from the app at collection time, so routes
added later are in the matrix without editing this file.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

import pytest

from iotstore.stores.permissions import ACCOUNT_PERMISSIONS, ROLE_PERMISSIONS, Permission, Role

from ._routes import RouteInfo, Targets, api_routes, app_routes, plausible_request
from ._support import PASSWORD, World, bearer, error_of, row_counts

ROUTES = app_routes()


def test_routes_were_found() -> None:
    paths = {r.path for r in ROUTES}
    assert "/api/v1/stores/{store_id}" in paths
    assert len(ROUTES) > 20


@pytest.mark.parametrize("route", ROUTES, ids=lambda r: r.id)
def test_route_declares_exactly_one_permission(route: RouteInfo) -> None:
    assert len(route.permissions) == 1, (
        f"{route.id} must declare exactly one permission through web.auth.require(); "
        f"found {[p.value for p in route.permissions]}"
    )


def test_no_route_escapes_the_permission_check(module_world: World) -> None:
    routes, others = api_routes(module_world.app)
    assert others == [], f"routes outside the permission check: {others}"
    missing = [r.id for r in routes if len(r.permissions) != 1]
    assert missing == [], f"routes without exactly one declared permission: {missing}"


# -- the callers -----------------------------------------------------------------------

TokenScope = Literal["parent", "sibling"]


@dataclass(frozen=True)
class Caller:
    """A kind of caller and the facts the permission table decides from."""

    name: str
    roles: frozenset[Role] = frozenset()  # roles in T, inherited admin included
    operator: bool = False
    anonymous: bool = False
    token_scope: TokenScope | None = None  # the token's stores caveat
    token_permissions: frozenset[str] | None = None  # the token's permissions caveat


CALLERS = [
    Caller("anonymous", anonymous=True),
    Caller("no-role"),
    Caller("operator", operator=True),
    Caller("admin", frozenset({Role.ADMIN})),
    Caller("publisher", frozenset({Role.PUBLISHER})),
    Caller("reviewer", frozenset({Role.REVIEWER})),
    Caller("viewer", frozenset({Role.VIEWER})),
    Caller("parent-store-admin", frozenset({Role.ADMIN})),
    Caller("other-brand-admin"),
    Caller("token-for-sibling-store", frozenset({Role.ADMIN}), token_scope="sibling"),
    Caller("token-for-parent-store", frozenset({Role.ADMIN}), token_scope="parent"),
    Caller(
        "token-store-view-only",
        frozenset({Role.ADMIN}),
        token_permissions=frozenset({Permission.STORE_VIEW.value}),
    ),
]


def expected_denial(caller: Caller, permission: Permission) -> int | None:
    """The status the table says ``caller`` gets for ``permission`` in T; None if allowed."""
    if permission is Permission.PUBLIC:
        return None
    if caller.anonymous:
        return 401
    if caller.token_permissions is not None and permission.value not in caller.token_permissions:
        return 403
    if permission in ACCOUNT_PERMISSIONS:
        return None
    if permission is Permission.BRANDS_CREATE:
        return None if caller.operator else 403
    if not caller.roles:
        return 404
    if caller.token_scope == "sibling":
        return 403
    granted = frozenset().union(*(ROLE_PERMISSIONS[r] for r in caller.roles))
    return None if permission in granted else 403


@dataclass
class Matrix:
    """The shared deployment, what the requests act on, and every caller's credentials."""

    world: World
    target: str  # T, a product store under brand A's root store R
    # a viewer of T the member endpoints act on; a snap of brand B's store (which allows
    # inclusion) the curation endpoints act on
    targets: Targets
    headers: dict[str, dict[str, str]]


@pytest.fixture(scope="module")
def matrix(module_world: World) -> Matrix:
    f = module_world.factory
    _, root = f.brand()
    target = f.substore(root, kind="product")
    sibling = f.substore(root, kind="ecosystem")
    _, other_root = f.brand()
    f.settings(other_root, allow_inclusion=True)
    snap_id = f.snap(other_root)
    member = f.person({target: "viewer"}, password=PASSWORD)
    admin = f.person({target: "admin"})
    parent_admin = f.person({root: "admin"})
    tokens = {
        "token-for-sibling-store": f.token(parent_admin, stores=[sibling])[1],
        "token-for-parent-store": f.token(parent_admin, stores=[root])[1],
        "token-store-view-only": f.token(admin, permissions=[Permission.STORE_VIEW.value])[1],
    }
    people = {
        "no-role": f.person(),
        "operator": f.person(operator=True),
        "admin": admin,
        "publisher": f.person({target: "publisher"}),
        "reviewer": f.person({target: "reviewer"}),
        "viewer": f.person({target: "viewer"}),
        "parent-store-admin": parent_admin,
        "other-brand-admin": f.person({other_root: "admin"}),
    }
    headers = {name: p.headers for name, p in people.items()}
    headers |= {name: bearer(t) for name, t in tokens.items()}
    headers["anonymous"] = {}
    assert set(headers) == {c.name for c in CALLERS}
    targets = Targets(target, member.account_id, snap_id, member.email, PASSWORD)
    return Matrix(module_world, target, targets, headers)


_CODES = {401: "unauthorized", 403: "forbidden", 404: "not-found"}


def _cases() -> Iterator[Any]:
    for route in ROUTES:
        for caller in CALLERS:
            yield pytest.param(route, caller, id=f"{route.id} as {caller.name}")


@pytest.mark.parametrize(("route", "caller"), list(_cases()))
def test_permission_matrix(matrix: Matrix, route: RouteInfo, caller: Caller) -> None:
    denial = expected_denial(caller, route.permission)
    writes = route.method not in {"GET", "HEAD", "OPTIONS"}
    before = row_counts(matrix.world.deployment) if denial is not None and writes else None
    response = plausible_request(
        matrix.world.client, route, matrix.targets, matrix.headers[caller.name]
    )
    what = f"{route.id} as {caller.name} ({route.permission.value})"
    assert response.status_code < 500, f"{what}: {response.status_code} {response.text[:300]}"
    if denial is not None:
        error = error_of(response, denial)
        assert error["code"] == _CODES[denial], f"{what}: {error}"
        if before is not None:
            assert row_counts(matrix.world.deployment) == before, f"{what}: denied, yet wrote"
        return
    if route.permission is Permission.PUBLIC:
        # a public endpoint may refuse bad credentials in its body (401), never a permission
        assert response.status_code != 403, f"{what}: {response.text[:300]}"
        return
    assert response.status_code not in (401, 403), f"{what}: {response.text[:300]}"
    if response.status_code == 404:
        # allowed callers may meet unknown objects, never an unknown store
        assert f"no store {matrix.target!r}" not in error_of(response, 404)["message"], what
