"""The catalogue over a deep tree: own + included + inherited, less what is excluded.

A chain of six stores (a brand store and five sub-stores below each other)
with snaps of their own, includes from a store of another brand that allows
inclusion, excludes at middle levels, and ``offer-parent-catalogue`` set in
each of its 32 combinations. For every store and every snap,
``CatalogueScope.contains``, its SQL filter and an independent recursive
definition agree; the ``/catalogue`` endpoint serves exactly the SQL result.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import pytest
from sqlalchemy import select

from iotstore.snaps.models import Snap
from iotstore.stores.audit import AuditLog
from iotstore.stores.services import StoreService

from ._support import Person, World, error_of, unique

DEPTH = 6


@dataclass
class Chain:
    """The tree and what each level holds."""

    stores: list[str]  # stores[0] is the brand store, stores[k] the parent of stores[k + 1]
    own: list[list[str]]  # own[k]: snaps registered in stores[k]
    includes: list[set[str]]
    excludes: list[set[str]]
    every_snap: dict[str, str]  # snap id -> store id, every snap in the database
    admin: Person


def _expected(chain: Chain, offers: list[bool], level: int) -> set[str]:
    """The catalogue by its definition, recursively (not through CatalogueScope)."""
    mine = set(chain.own[level]) | chain.includes[level]
    if level == 0 or not offers[level]:
        return mine
    return mine | (_expected(chain, offers, level - 1) - chain.excludes[level])


def _scoped(world: World, store_id: str) -> tuple[set[str], set[str]]:
    """(snaps ``contains`` admits, snaps the SQL filter selects) for one store."""
    with world.deployment.database.unit_of_work(write=False) as session:
        scope = StoreService(session, AuditLog(session)).catalogue(store_id)
        rows = session.execute(select(Snap.snap_id, Snap.store_id)).all()
        by_contains = {snap_id for snap_id, store in rows if scope.contains(store, snap_id)}
        by_sql = set(
            session.scalars(
                select(Snap.snap_id).where(scope.sql_filter(Snap.store_id, Snap.snap_id))
            )
        )
    return by_contains, by_sql


def _served(world: World, store_id: str, who: Person) -> list[str]:
    """Every snap the endpoint lists, page by page (pages of 2 to cross many pages)."""
    ids: list[str] = []
    cursor = ""
    while True:
        r = world.client.get(
            f"/api/v1/stores/{store_id}/catalogue",
            params={"after": cursor, "limit": 2},
            headers=who.headers,
        )
        assert r.status_code == 200, r.text
        page = r.json()
        ids += [item["snap-id"] for item in page["items"]]
        if page["next"] is None:
            return ids
        cursor = page["next"]


@pytest.fixture(scope="module")
def chain(module_world: World) -> Chain:
    f, c = module_world.factory, module_world.client
    _, root = f.brand()
    stores = [root]
    for level in range(1, DEPTH):
        stores.append(f.substore(stores[-1], kind="product" if level % 2 else "ecosystem"))
    admin = f.person({root: "admin"})
    own = [[f.snap(s) for _ in range(2)] for s in stores]
    _, offering = f.brand()
    f.settings(offering, allow_inclusion=True)
    offered = [f.snap(offering) for _ in range(3)]
    _, closed = f.brand()
    not_offered = f.snap(closed)
    every = {s: store for store, snaps in zip(stores, own, strict=True) for s in snaps}
    every |= dict.fromkeys(offered, offering) | {not_offered: closed}

    includes: list[set[str]] = [set() for _ in stores]
    excludes: list[set[str]] = [set() for _ in stores]
    for level, snap in ((1, offered[0]), (3, offered[1]), (5, offered[2])):
        r = c.post(
            f"/api/v1/stores/{stores[level]}/includes",
            json={"snap-id": snap},
            headers=admin.headers,
        )
        assert r.status_code == 201, r.text
        assert r.json()["source-store-id"] == offering
        includes[level].add(snap)
    # a store that does not allow inclusion: another brand's is refused like an unknown
    # snap; the brand's own root store (the admin sees it) is refused with the reason
    refused = c.post(
        f"/api/v1/stores/{stores[2]}/includes", json={"snap-id": not_offered}, headers=admin.headers
    )
    error_of(refused, 404)
    own_refused = c.post(
        f"/api/v1/stores/{stores[4]}/includes", json={"snap-id": own[0][0]}, headers=admin.headers
    )
    assert "does not allow" in error_of(own_refused, 400)["message"]
    # excludes at middle levels: the root's first snap and level 1's include at level 2,
    # level 3's second snap and include at level 4
    for level, snap in (
        (2, own[0][0]), (2, offered[0]), (4, own[3][1]), (4, offered[1]),
    ):  # fmt: skip
        r = c.post(
            f"/api/v1/stores/{stores[level]}/excludes",
            json={"snap-id": snap},
            headers=admin.headers,
        )
        assert r.status_code == 201, r.text
        excludes[level].add(snap)
    return Chain(stores, own, includes, excludes, every, admin)


def _set_offers(world: World, chain: Chain, offers: list[bool]) -> None:
    for store, offer in zip(chain.stores[1:], offers[1:], strict=True):
        world.factory.settings(store, offer_parent_catalogue=offer)


def test_known_catalogues(module_world: World, chain: Chain) -> None:
    own, offered = chain.own, sorted(chain.includes[1] | chain.includes[3] | chain.includes[5])
    _set_offers(module_world, chain, [True] * DEPTH)
    deepest = set(_served(module_world, chain.stores[5], chain.admin))
    hidden = {own[0][0], own[3][1], *chain.includes[1], *chain.includes[3]}
    assert deepest == ({*itertools.chain(*own), *chain.includes[5]} - hidden)
    assert chain.includes[1] <= set(_served(module_world, chain.stores[1], chain.admin))
    assert not set(offered) & set(_served(module_world, chain.stores[0], chain.admin))
    # level 3 stops offering its parent's catalogue: level 5 sees levels 3 to 5 only
    _set_offers(module_world, chain, [True, True, True, False, True, True])
    assert set(_served(module_world, chain.stores[5], chain.admin)) == {
        *own[5], *own[4], own[3][0], *chain.includes[5],
    }  # fmt: skip


@pytest.mark.parametrize("mask", range(2 ** (DEPTH - 1)), ids=lambda m: f"offers-{m:05b}")
def test_scope_sql_and_definition_agree(module_world: World, chain: Chain, mask: int) -> None:
    offers = [False] + [bool(mask >> (DEPTH - 2 - i) & 1) for i in range(DEPTH - 1)]
    _set_offers(module_world, chain, offers)
    for level, store in enumerate(chain.stores):
        expected = _expected(chain, offers, level)
        by_contains, by_sql = _scoped(module_world, store)
        assert by_contains == expected, (store, offers)
        assert by_sql == expected, (store, offers)
    # the endpoint serves the SQL result, in name order, across pages
    deepest = chain.stores[-1]
    served = _served(module_world, deepest, chain.admin)
    assert len(served) == len(set(served))
    assert set(served) == _expected(chain, offers, DEPTH - 1)


def test_unrelated_snaps_stay_out(module_world: World, chain: Chain) -> None:
    _set_offers(module_world, chain, [True] * DEPTH)
    everything = set().union(*(_scoped(module_world, s)[1] for s in chain.stores))
    outsiders = {s for s, store in chain.every_snap.items() if store not in chain.stores}
    assert everything & outsiders == set().union(*chain.includes)
    # a snap registered after the fact in another store appears nowhere
    stranger = module_world.factory.snap(module_world.factory.brand()[1], unique("stranger"))
    assert all(stranger not in _scoped(module_world, s)[1] for s in chain.stores)


def test_a_stale_path_memo_is_not_trusted(module_world: World, chain: Chain) -> None:
    # the catalogue remembers each store's path per process and checks it against the
    # parent links it reads: a memo naming another tree (another database, same ids) is
    # read afresh, never answered from
    from iotstore.stores import services  # noqa: PLC0415

    offers = [False] + [True] * (DEPTH - 1)
    _set_offers(module_world, chain, offers)
    deepest = chain.stores[-1]
    for wrong in ((deepest, chain.stores[0]), (deepest, *chain.stores[-2:0:-1]), (deepest,)):
        services._chain_memo[deepest] = wrong
        by_contains, by_sql = _scoped(module_world, deepest)
        assert by_contains == by_sql == _expected(chain, offers, DEPTH - 1), wrong
        assert services._chain_memo[deepest] == tuple(reversed(chain.stores))
