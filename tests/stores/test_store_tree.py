"""The store tree's materialised paths: subtrees, ancestors, visible stores, audit scope.

Every query that reads ``stores.path`` is compared with the same answer computed
in Python by walking ``parent_id`` over a random tree whose ids prefix each other
("ab", "ab-c", "ab1"...), the case a careless prefix test gets wrong. The
migration's backfill is proven by dropping the column (downgrade to 0005) and
adding it again. SQLite and PostgreSQL both.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from alembic import command
from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session

from iotstore.accounts.models import Account, Brand
from iotstore.accounts.root_authority import new_account_id
from iotstore.accounts.services import AccountService
from iotstore.db import SqlDatabase
from iotstore.migrations import alembic_config, upgrade
from iotstore.stores.audit import Actor, AuditLog
from iotstore.stores.models import Store
from iotstore.stores.services import MembershipService, StoreService

from ._support import rolled_back_session, seeded_database

SYSTEM = Actor(account_id=None, address="seed")
ROOTS = ("acme-store", "acme")  # "acme" is a prefix of the other root's id


def _build_tree(session: Session) -> None:
    """Two brand roots and 60 sub-stores placed at random, ids prefixing each other."""
    brand = Brand(account_id=new_account_id(), username="acme", display_name="Acme")
    session.add(brand)
    session.flush()
    stores = StoreService(session, AuditLog(session))
    for root in ROOTS:
        stores.create_brand_store(SYSTEM, brand.account_id, root, root)
    rng = random.Random(9)
    ids = list(ROOTS)
    for i in range(60):
        parent = rng.choice(ids)
        # children named after their parent or a sibling: "ab" next to "ab-1", "ab1"
        stem = rng.choice([parent, rng.choice(ids)])[:20]
        store_id = f"{stem}{rng.choice(['', '-'])}{i}"
        if store_id in ids:  # "ab1" + "2" against "ab" + "12"
            continue
        stores.create_substore(SYSTEM, parent, store_id, store_id, "product")
        ids.append(store_id)


@dataclass
class Tree:
    """The session, the services and the parent of every store, read back."""

    session: Session
    stores: StoreService
    memberships: MembershipService
    parents: dict[str, str | None]

    def below(self, store_id: str) -> set[str]:
        """Reference subtree (without the root) from parent_id alone."""
        out: set[str] = set()
        frontier = {store_id}
        while frontier:
            frontier = {s for s, p in self.parents.items() if p in frontier}
            out |= frontier
        return out

    def up(self, store_id: str) -> list[str]:
        chain = []
        parent = self.parents[store_id]
        while parent is not None:
            chain.append(parent)
            parent = self.parents[parent]
        return chain

    def ids(self, query: object) -> list[str]:
        return list(self.session.scalars(query))  # type: ignore[call-overload]


@pytest.fixture(scope="module")
def database(module_database_url: str) -> Iterator[SqlDatabase]:
    """The module's database with the tree (tests roll their changes back)."""
    with seeded_database(module_database_url, _build_tree) as db:
        yield db


@pytest.fixture
def tree(database: SqlDatabase) -> Iterator[Tree]:
    """The test's unit of work, rolled back at the end."""
    with rolled_back_session(database) as session:
        audit = AuditLog(session)
        stores = StoreService(session, audit)
        parents = dict(session.execute(select(Store.id, Store.parent_id)).all())
        yield Tree(session, stores, MembershipService(session, stores, audit), parents)


def test_paths_are_the_ancestry_root_first(tree: Tree) -> None:
    for store_id in tree.parents:
        path = tree.stores.get(store_id).path
        assert path == "".join(f"{s}/" for s in [*reversed(tree.up(store_id)), store_id])


def test_subtree_of_every_store_matches_the_parent_walk(tree: Tree) -> None:
    for store_id in tree.parents:
        expected = tree.below(store_id)
        below = tree.ids(tree.stores.subtree_ids(store_id, include_roots=False))
        assert sorted(below) == sorted(expected), store_id
        assert sorted(tree.ids(tree.stores.subtree_ids(store_id))) == sorted(expected | {store_id})
        assert [s.id for s in tree.stores.descendants(store_id)] == sorted(expected)


def test_nested_and_unknown_roots_give_each_store_once(tree: Tree) -> None:
    inner = next(s for s, p in tree.parents.items() if p == "acme" and tree.below(s))
    ids = tree.ids(tree.stores.subtree_ids("acme", inner, "no-such-store"))
    assert sorted(ids) == sorted(tree.below("acme") | {"acme"})
    assert tree.ids(tree.stores.subtree_ids("no-such-store")) == []


def test_ancestors_nearest_first(tree: Tree) -> None:
    for store_id in tree.parents:
        assert tree.stores.ancestor_ids(store_id) == tree.up(store_id)
        assert [s.id for s in tree.stores.ancestors(store_id)] == tree.up(store_id)


def test_visible_stores_and_inherited_admin(tree: Tree) -> None:
    person = AccountService(tree.session).create("v@acme.example.com", "V", password=None)
    administered = next(s for s, p in tree.parents.items() if p == "acme" and tree.below(s))
    viewed = next(s for s in tree.below("acme-store") if tree.below(s))
    tree.memberships.grant(SYSTEM, administered, person.id, "admin")
    tree.memberships.grant(SYSTEM, viewed, person.id, "viewer")
    expected = tree.below(administered) | {administered, viewed}
    visible = tree.ids(tree.memberships.visible_store_ids(person.id))
    assert sorted(visible) == sorted(expected)
    listed = tree.stores.list_stores(tree.memberships.visible_store_ids(person.id), "", 1000)
    assert [s.id for s in listed] == sorted(expected)
    for store_id in tree.parents:
        roles = {r.value for r in tree.memberships.roles(person.id, store_id)}
        if store_id in tree.below(administered) | {administered}:
            assert "admin" in roles, store_id
        elif store_id == viewed:
            assert roles == {"viewer"}
        else:  # the viewer role is not inherited
            assert roles == set(), store_id


def test_audit_of_a_store_covers_its_subtree_only(tree: Tree) -> None:
    audit = AuditLog(tree.session)
    for store_id in tree.parents:
        audit.record(SYSTEM, "test.mark", store_id=store_id, target=store_id)
    tree.session.flush()
    for store_id in ("acme", *[s for s in tree.parents if tree.below(s)][:5]):
        entries = audit.query(
            store_ids=tree.stores.subtree_ids(store_id), action="test.mark", limit=1000
        )
        assert sorted(e.store_id or "" for e in entries) == sorted(
            tree.below(store_id) | {store_id}
        )


def _paths(engine: Engine) -> dict[str, str]:
    with engine.connect() as connection:
        return dict(connection.execute(text("SELECT id, path FROM stores")).all())


def test_migration_backfills_the_paths(database_url: str) -> None:
    db = SqlDatabase.from_url(database_url)
    try:
        upgrade(db.engine)
        with db.unit_of_work() as session:
            _build_tree(session)
        before = _paths(db.engine)
        command.downgrade(alembic_config(db.engine), "0005")
        with db.engine.connect() as connection:
            columns = connection.execute(select(text("*")).select_from(text("stores"))).keys()
        assert "path" not in columns
        upgrade(db.engine)
        assert _paths(db.engine) == before
        with db.unit_of_work() as session:
            assert session.scalars(select(Account)).all() == []  # nothing else touched
            assert len(session.scalars(select(Store)).all()) == len(before)
    finally:
        db.dispose()
