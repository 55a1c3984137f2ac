"""Tenant isolation: nothing of brand A's stores is visible to, or changeable by, brand B.

Brand A has a root store, a product sub-store and an ecosystem store below
that, with members, a brand key, snaps, curation and audit entries. Brand B
has the same shape. Every store-scoped route is called by B's members and
tokens on each of A's stores: the answer is the one a store that does not
exist gets (404, same body but the id), nothing of A appears in it, and A's
rows are unchanged afterwards. Each side's lists (stores, roles, tokens,
audit, catalogue) show only its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import select

from iotstore.accounts.models import ApiToken, Brand, BrandKey
from iotstore.stores.models import Membership, Store, StoreExclude, StoreInclude
from iotstore.stores.permissions import ACCOUNT_PERMISSIONS, Permission

from ._routes import RouteInfo, Targets, app_routes, plausible_request
from ._support import Person, World, bearer, error_of, row_counts, unique

STORE_ROUTES = [
    r
    for r in app_routes()
    if r.store_scoped
    and len(r.permissions) == 1
    and r.permission not in {Permission.PUBLIC, Permission.BRANDS_CREATE, *ACCOUNT_PERMISSIONS}
]


@dataclass
class Tenant:
    """One brand's tree, people, and what must never leak from it."""

    brand_id: str
    username: str
    root: str
    product: str
    ecosystem: str  # below product
    admin: Person
    publisher: Person  # in product
    viewer: Person  # in ecosystem
    sub_admin: Person  # administers product (and so ecosystem)
    snap_ids: list[str]
    snap_names: list[str]
    key_id: str
    token_id: str

    @property
    def stores(self) -> list[str]:
        return [self.root, self.product, self.ecosystem]

    @property
    def secrets(self) -> list[str]:
        """Strings only this tenant's responses may contain."""
        people = [self.admin, self.publisher, self.viewer, self.sub_admin]
        return [
            self.brand_id,
            self.username,
            *self.stores,
            *self.snap_ids,
            *self.snap_names,
            self.key_id,
            self.token_id,
            *(p.account_id for p in people),
            *(p.email for p in people),
        ]


def _tenant(world: World, label: str) -> Tenant:
    f = world.factory
    username = unique(label)
    brand_id, root = f.brand(username, unique(f"{label}-root"))
    product = f.substore(root, unique(f"{label}-product"), "product")
    ecosystem = f.substore(product, unique(f"{label}-eco"), "ecosystem")
    admin = f.person({root: "admin"})
    publisher = f.person({product: "publisher"})
    viewer = f.person({ecosystem: "viewer"})
    sub_admin = f.person({product: "admin"})
    names = [unique(f"{label}-snap") for _ in range(3)]
    snaps = [f.snap(s, n) for s, n in zip((root, product, ecosystem), names, strict=True)]
    client = world.client
    # changes through the API, so the audit log has entries made by people
    r = client.patch(
        f"/api/v1/stores/{root}", json={"name": f"{label} secret store"}, headers=admin.headers
    )
    assert r.status_code == 200, r.text
    r = client.post(
        f"/api/v1/stores/{root}/brand/keys",
        json={"name": "main", "bits": 2048},
        headers=admin.headers,
    )
    assert r.status_code == 201, r.text
    key_id = r.json()["key-id"]
    r = client.post(
        f"/api/v1/stores/{product}/excludes", json={"snap-id": snaps[0]}, headers=admin.headers
    )
    assert r.status_code == 201, r.text
    token_id, _ = f.token(admin, stores=[root], description=f"{label} token")
    return Tenant(
        brand_id, username, root, product, ecosystem, admin, publisher, viewer, sub_admin,
        snaps, names, key_id, token_id,
    )  # fmt: skip


@dataclass
class Tenants:
    world: World
    a: Tenant
    b: Tenant
    # B's callers: name -> Authorization header
    intruders: dict[str, dict[str, str]]


@pytest.fixture(scope="module")
def tenants(module_world: World) -> Tenants:
    a = _tenant(module_world, "a")
    b = _tenant(module_world, "b")
    f = module_world.factory
    intruders = {
        "b-admin": b.admin.headers,
        "b-publisher": b.publisher.headers,
        "b-viewer": b.viewer.headers,
        "b-sub-admin": b.sub_admin.headers,
        "b-admin-token-for-b": bearer(f.token(b.admin, stores=[b.root])[1]),
        # a token naming A's store does not make B's admin a member of it
        "b-admin-token-naming-a": bearer(f.token(b.admin, stores=[a.root, b.root])[1]),
    }
    return Tenants(module_world, a, b, intruders)


def _snapshot(world: World) -> dict[str, Any]:
    """Every row a request could add or change, as plain values."""
    columns: dict[str, tuple[Any, ...]] = {
        "stores": (
            Store.id, Store.name, Store.parent_id, Store.private, Store.manual_review,
            Store.allow_inclusion, Store.offer_parent_catalogue,
        ),
        "memberships": (Membership.store_id, Membership.account_id, Membership.role),
        "includes": (StoreInclude.store_id, StoreInclude.snap_id),
        "excludes": (StoreExclude.store_id, StoreExclude.snap_id),
        "brands": (Brand.account_id, Brand.username, Brand.display_name),
        "keys": (BrandKey.key_id, BrandKey.state, BrandKey.until),
        "tokens": (ApiToken.id, ApiToken.revoked_at),
    }  # fmt: skip
    with world.deployment.database.unit_of_work(write=False) as s:
        snapshot: dict[str, Any] = {
            name: [tuple(r) for r in s.execute(select(*cols).order_by(*cols)).all()]
            for name, cols in columns.items()
        }
    return snapshot | row_counts(world.deployment)


def _targets(a: Tenant, store_id: str) -> Targets:
    # every path parameter names something of A's
    return Targets(
        store_id,
        account_id=a.admin.account_id,
        snap_id=a.snap_ids[0],
        extra={"name": "main", "token_id": a.token_id},
    )


PHANTOM = "no-such-store-0000"


@pytest.mark.parametrize("route", STORE_ROUTES, ids=lambda r: r.id)
def test_b_cannot_see_or_change_anything_of_a(tenants: Tenants, route: RouteInfo) -> None:
    world, a = tenants.world, tenants.a
    before = _snapshot(world)
    for who, headers in tenants.intruders.items():
        phantom = plausible_request(world.client, route, _targets(a, PHANTOM), headers)
        phantom_error = error_of(phantom, 404)
        for store_id in a.stores:
            response = plausible_request(world.client, route, _targets(a, store_id), headers)
            what = f"{route.id} on {store_id} as {who}"
            error = error_of(response, 404)
            # exactly what a store that does not exist gets: A's existence is not revealed
            assert error == {k: v.replace(PHANTOM, store_id) for k, v in phantom_error.items()}, (
                what
            )
            leaked = [s for s in a.secrets if s != store_id and s in response.text]
            assert leaked == [], f"{what} leaked {leaked}"
    assert _snapshot(world) == before, f"{route.id}: B's requests changed something"


def _ids(items: list[dict[str, Any]], key: str = "id") -> set[str]:
    return {i[key] for i in items}


def test_store_lists_show_only_own_stores(tenants: Tenants) -> None:
    client = tenants.world.client
    for t in (tenants.a, tenants.b):
        expected = {
            t.admin: set(t.stores),
            t.sub_admin: {t.product, t.ecosystem},
            t.publisher: {t.product},
            t.viewer: {t.ecosystem},
        }
        for person, stores in expected.items():
            r = client.get("/api/v1/stores", headers=person.headers, params={"limit": 500})
            assert r.status_code == 200, r.text
            assert _ids(r.json()["items"]) == stores
            me = client.get("/api/v1/account", headers=person.headers).json()
            assert {x["store-id"] for x in me["roles"]} <= stores


def test_trees_audit_and_catalogues_stay_inside_their_brand(tenants: Tenants) -> None:
    client = tenants.world.client
    for mine, theirs in ((tenants.a, tenants.b), (tenants.b, tenants.a)):
        h = mine.admin.headers
        tree = client.get(f"/api/v1/stores/{mine.root}/tree", headers=h).json()["items"]
        assert _ids(tree) == {mine.product, mine.ecosystem}
        audit = client.get(f"/api/v1/stores/{mine.root}/audit", params={"limit": 500}, headers=h)
        assert audit.status_code == 200
        entries = audit.json()["items"]
        assert entries and {e["store-id"] for e in entries} <= set(mine.stores)
        csv_text = client.get(
            f"/api/v1/stores/{mine.root}/audit", params={"format": "csv", "limit": 500}, headers=h
        ).text
        for text in (audit.text, csv_text):
            assert [s for s in theirs.secrets if s in text] == []
        for store in mine.stores:
            cat = client.get(f"/api/v1/stores/{store}/catalogue", headers=h).json()["items"]
            assert _ids(cat, "snap-id") <= set(mine.snap_ids)
        brand = client.get(f"/api/v1/stores/{mine.root}/brand", headers=h).json()
        assert brand["account-id"] == mine.brand_id
        keys = client.get(f"/api/v1/stores/{mine.root}/brand/keys", headers=h).json()["items"]
        assert _ids(keys, "key-id") == {mine.key_id}
        tokens = client.get("/api/v1/tokens", headers=h).json()["items"]
        assert theirs.token_id not in _ids(tokens)
        assert mine.token_id in _ids(tokens)


def test_b_cannot_revoke_a_token_of_a(tenants: Tenants) -> None:
    client, a = tenants.world.client, tenants.a
    r = client.delete(f"/api/v1/tokens/{a.token_id}", headers=tenants.b.admin.headers)
    error_of(r, 404)
    unknown = client.delete(f"/api/v1/tokens/{'f' * 32}", headers=tenants.b.admin.headers)
    assert (
        r.json()["error"]["message"].replace(a.token_id, "f" * 32)
        == unknown.json()["error"]["message"]
    )


def test_including_a_snap_of_a_store_that_does_not_allow_it(tenants: Tenants) -> None:
    client, a, b = tenants.world.client, tenants.a, tenants.b
    h = b.admin.headers
    refused = client.post(
        f"/api/v1/stores/{b.root}/includes", json={"snap-id": a.snap_ids[1]}, headers=h
    )
    unknown = client.post(
        f"/api/v1/stores/{b.root}/includes", json={"snap-id": "f" * 32}, headers=h
    )
    error = error_of(refused, 404)
    # the refusal looks like a snap that does not exist: nothing says where it lives
    masked = {k: v.replace(a.snap_ids[1], "f" * 32) for k, v in error.items()}
    assert masked == error_of(unknown, 404)
    assert [s for s in a.secrets if s != a.snap_ids[1] and s in refused.text] == []
    cat = client.get(f"/api/v1/stores/{b.root}/catalogue", headers=h).json()["items"]
    assert a.snap_ids[1] not in _ids(cat, "snap-id")
