"""Fixtures of the publishing domain's tests: a brand, its store and people, per backend.

A module shares one migrated database per backend (SQLite and PostgreSQL, from
the repo-wide ``module_database_url``), an in-memory key store holding the
fixed test root and a blob store of files on disk (:class:`PubBackend`). Each
test gets a brand and store of its own (``pub``), with a publisher, a second
publisher, an administrator who also publishes (acting for the brand), a
reviewer and an account without any role. Each :meth:`PubWorld.unit` is one
committed transaction, as one HTTP request would be. Snap files are real
squashfs images made by ``mksquashfs`` and read by the real inspector.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from iotstore.accounts import RootAuthority, adopt_root
from iotstore.accounts.brands import BrandService
from iotstore.accounts.services import AccountService
from iotstore.assertdb import trust_database
from iotstore.blobstore import BlobStore, FileBlobStore
from iotstore.db import SqlDatabase
from iotstore.keystore import KeyStore, MemoryKeyStore
from iotstore.migrations import upgrade
from iotstore.snaps.services import Publishing
from iotstore.snaps.testing import build_snap
from iotstore.stores.audit import Actor, AuditLog
from iotstore.stores.services import MembershipService, StoreService

ROOT_ID = "test-root"
SYSTEM = Actor(account_id=None, address="test")


def root_key_pem() -> bytes:
    """The library's fixed (published, worthless) test root key."""
    return resources.files("iotstore.asserts.testing").joinpath("keys", "root.pem").read_bytes()


@dataclass
class PubBackend:
    """A migrated database, a key store with the root and a blob store."""

    database: SqlDatabase
    keystore: KeyStore
    root: RootAuthority
    blobs: BlobStore
    files: Path

    def close(self) -> None:
        """Release the connections."""
        self.database.dispose()


@dataclass
class PubWorld:
    """One brand and store with its people, on a shared backend."""

    backend: PubBackend
    brand_id: str = ""
    store_id: str = ""
    people: dict[str, str] = field(default_factory=dict)

    @contextlib.contextmanager
    def unit(self) -> Iterator[Publishing]:
        """One committed transaction with the publishing services over it."""
        b = self.backend
        with b.database.unit_of_work() as session:
            yield Publishing(session, keystore=b.keystore, root=b.root, blobs=b.blobs)

    def actor(self, who: str) -> Actor:
        """The audit actor of one of the world's people (by role name)."""
        return Actor(account_id=self.people[who], address="192.0.2.7")

    def person(self, roles: dict[str, str] | None = None) -> str:
        """A new account with ``{store: role}`` roles; returns its id."""
        with self.backend.database.unit_of_work() as session:
            audit = AuditLog(session)
            stores = StoreService(session, audit)
            memberships = MembershipService(session, stores, audit)
            tag = uuid.uuid4().hex[:10]
            account = AccountService(session).create(f"p-{tag}@example.com", f"Person {tag}")
            for store_id, role in (roles or {}).items():
                memberships.grant(SYSTEM, store_id, account.id, role)
            return account.id

    def snap_file(self, name: str, version: str = "1.0", **kw: Any) -> Path:
        """A real snap file (``kw`` as :func:`iotstore.snaps.testing.build_snap`)."""
        return build_snap(self.backend.files, name, version, **kw)

    def upload(self, who: str, path: Path) -> str:
        """Store ``path`` as a blob and bind it to ``who``; returns the upload id."""
        info = self.backend.blobs.put_file(path)
        with self.unit() as pub:
            return pub.uploads.record(self.actor(who), self.people[who], info, path.name).id

    def register(self, name: str | None = None, who: str = "publisher", **kw: Any) -> str:
        """Register a name in the store; returns the name."""
        name = name or f"s{uuid.uuid4().hex[:12]}"
        with self.unit() as pub:
            pub.snaps.register(self.actor(who), self.store_id, name, **kw)
        return name

    def publish(
        self, name: str, version: str = "1.0", who: str = "publisher", **kw: Any
    ) -> dict[str, Any]:
        """Build, upload and push a snap; returns the push status as JSON."""
        channels = kw.pop("channels", ())
        upload_id = self.upload(who, self.snap_file(name, version, **kw))
        with self.unit() as pub:
            snap = pub.snaps.by_name(name)
            return pub.revisions.push(self.actor(who), snap, upload_id, channels=channels).as_json()


def _backend(database_url: str, files: Path) -> PubBackend:
    database = SqlDatabase.from_url(database_url)
    upgrade(database.engine)
    keystore = MemoryKeyStore()
    root = adopt_root(keystore, ROOT_ID, root_key_pem())
    return PubBackend(database, keystore, root, FileBlobStore(files / "blobs"), files)


@pytest.fixture(scope="module")
def pub_backend(
    module_database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PubBackend]:
    """Both database backends, with the fixed root and files on disk."""
    backend = _backend(module_database_url, tmp_path_factory.mktemp("pub"))
    yield backend
    backend.close()


def new_world(backend: PubBackend, *, manual_review: bool = False) -> PubWorld:
    """A brand with its store and people."""
    world = PubWorld(backend)
    username = f"b{uuid.uuid4().hex[:12]}"
    with backend.database.unit_of_work() as session:
        trust = trust_database(session, backend.root.trusted)
        brand = BrandService(session, backend.keystore, backend.root, trust).create(
            username, f"Brand {username}"
        )
        store = StoreService(session, AuditLog(session)).create_brand_store(
            SYSTEM, brand.account_id, f"s-{username}", "Brand Store"
        )
        if manual_review:
            StoreService(session, AuditLog(session)).update(
                SYSTEM, store.id, {"manual_review": True}
            )
    world.brand_id, world.store_id = brand.account_id, store.id
    s = store.id
    world.people = {
        "publisher": world.person({s: "publisher"}),
        "publisher2": world.person({s: "publisher"}),
        "admin": world.person({s: "admin"}),
        "brand-admin": world.person({s: "admin"}),
        "reviewer": world.person({s: "reviewer"}),
        "viewer": world.person({s: "viewer"}),
        "outsider": world.person(),
    }
    # an administrator who also publishes: the one who may register kernel/gadget names
    with backend.database.unit_of_work() as session:
        audit = AuditLog(session)
        MembershipService(session, StoreService(session, audit), audit).grant(
            SYSTEM, s, world.people["brand-admin"], "publisher"
        )
    return world


@pytest.fixture
def pub(pub_backend: PubBackend) -> PubWorld:
    """A fresh brand and store (no manual review)."""
    return new_world(pub_backend)


@pytest.fixture
def reviewed(pub_backend: PubBackend) -> PubWorld:
    """A fresh brand and store that requires manual review."""
    return new_world(pub_backend, manual_review=True)
