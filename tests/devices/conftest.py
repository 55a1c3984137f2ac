"""Fixtures of the serial vault's service tests: a brand, its store and a vault, per backend.

A module shares one migrated database per backend (SQLite and PostgreSQL, from
the repo-wide ``module_database_url``), one key store and the fixed test root
(:class:`Backend`); each test gets a brand of its own with a held ``models``
key and its store (``vault_world``; ``encrypted_world`` keeps the keys in the
encrypted key store, the default deployment's). Each :meth:`VaultWorld.unit`
is one committed transaction, as one HTTP request would be. Keys are 2048
bits to keep the tests fast; the conformance tests use snapd's 4096.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy.orm import Session

from iotstore import asserts
from iotstore.accounts import RootAuthority, adopt_root
from iotstore.accounts.brands import BrandService
from iotstore.assertdb import trust_database
from iotstore.db import SqlDatabase
from iotstore.devices.models import DeviceModel
from iotstore.devices.services import VaultService
from iotstore.keystore import (
    EncryptedKeyStore,
    KeyStore,
    MasterKey,
    MemoryKeyStore,
    SqliteKeyRecords,
)
from iotstore.migrations import upgrade
from iotstore.stores.audit import Actor, AuditLog
from iotstore.stores.services import StoreService

from ._live import ROOT_ID, DeviceKey, DeviceKeys, root_key_pem, serial_request_stream

KEY_BITS = 2048
ADMIN = Actor(account_id=None, address="test")
SNAPS = [
    {"name": "pc-kernel", "id": "pYVQrBcKmBa0mZ4CCN7ExT6jH8rY1hza", "type": "kernel",
     "default-channel": "22/stable"},
    {"name": "pc", "id": "UqFziVZDHLSyO3TqSWgNBoAdHbLI4dAH", "type": "gadget",
     "default-channel": "22/stable"},
    {"name": "core22", "id": "amcUKQILKXHHTlmSa7NMdnXSx02dNeeT", "type": "base",
     "default-channel": "latest/stable"},
    {"name": "snapd", "id": "PMrrV4ml8uWuEUDBT8dSGnKUYbevVhc4", "type": "snapd",
     "default-channel": "latest/stable"},
]  # fmt: skip


def now() -> str:
    """The current time as an assertion timestamp."""
    return asserts.format_time(datetime.now(UTC))


def model_headers(brand_id: str, name: str, store: str, **extra: Any) -> dict[str, Any]:
    """Headers of a core22-style amd64 model (without authority and signature)."""
    return {
        "series": "16", "authority-id": brand_id, "brand-id": brand_id, "model": name,
        "architecture": "amd64", "base": "core22", "grade": "signed", "store": store,
        "snaps": SNAPS, "timestamp": now(), **extra,
    }  # fmt: skip


@dataclass(frozen=True)
class OwnKey:
    """A brand key the brand holds itself (as with ``snap create-key``), registered."""

    name: str
    signer: asserts.RSAPrivateKey


@dataclass
class VaultWorld:
    """A database, key store and root with one brand and its store."""

    database: SqlDatabase
    keystore: KeyStore
    root: RootAuthority
    brand_id: str
    store_id: str

    @contextlib.contextmanager
    def unit(self) -> Iterator[tuple[Session, VaultService, BrandService]]:
        """One committed transaction with the vault and brand services over it."""
        with self.database.unit_of_work() as session:
            trust = trust_database(session, self.root.trusted)
            brands = BrandService(session, self.keystore, self.root, trust)
            yield (
                session,
                VaultService(session, self.keystore, brands, trust, AuditLog(session)),
                brands,
            )

    @contextlib.contextmanager
    def vault(self) -> Iterator[VaultService]:
        """Just the vault, in one committed transaction."""
        with self.unit() as (_, vault, _brands):
            yield vault

    def trust(self, session: Session) -> asserts.Database:
        """The trust database over ``session``."""
        return trust_database(session, self.root.trusted)

    def new_brand(self, username: str | None = None) -> tuple[str, str]:
        """Another brand with its store: (brand id, store id)."""
        username = username or f"b{uuid.uuid4().hex[:10]}"
        store_id = f"s-{uuid.uuid4().hex[:10]}"
        with self.unit() as (session, _, brands):
            brand = brands.create(username, f"Brand {username}")
            StoreService(session, AuditLog(session)).create_brand_store(
                ADMIN, brand.account_id, store_id, f"Store {username}"
            )
            return brand.account_id, store_id

    def substore(self, parent: str) -> str:
        """A product sub-store of ``parent``."""
        store_id = f"s-{uuid.uuid4().hex[:10]}"
        with self.unit() as (session, _, _brands):
            StoreService(session, AuditLog(session)).create_substore(
                ADMIN, parent, store_id, "Product", "product"
            )
        return store_id

    def own_key(self, name: str, brand_id: str | None = None, since: str | None = None) -> OwnKey:
        """A key made outside iotstore and registered from its account-key-request."""
        brand_id = brand_id or self.brand_id
        signer = asserts.generate_rsa(KEY_BITS)
        request = asserts.sign(
            "account-key-request",
            {"account-id": brand_id, "name": name, "public-key-sha3-384": signer.public_key.id,
             "since": since or now()},
            signer, signer.public_key.encoded,
        )  # fmt: skip
        with self.unit() as (_, _vault, brands):
            brands.register_key(brand_id, request.to_bytes())
        return OwnKey(name, signer)

    def model(
        self, name: str | None = None, *, serial_key: bool = True, **policy: bool
    ) -> tuple[DeviceModel, str]:
        """A model signed with the held ``models`` key, its serial key and an API key.

        Returns the model row and the API key's secret.
        """
        name = name or f"m-{uuid.uuid4().hex[:10]}"
        with self.vault() as vault:
            headers = model_headers(self.brand_id, name, self.store_id)
            del headers["authority-id"], headers["brand-id"]
            row = vault.sign_model(ADMIN, self.brand_id, "models", headers)
            if serial_key:
                vault.rotate_serial_key(ADMIN, row, KEY_BITS)
            if policy:
                vault.update_policy(ADMIN, row, policy)
            _, secret = vault.create_api_key(ADMIN, row, "test")
            return row, secret

    def model_assertion(self, row: DeviceModel) -> asserts.Model:
        """The model's current assertion."""
        with self.vault() as vault:
            return vault.model_assertion(row)

    def request_id(self, api_key: str) -> str:
        """A fresh request-id (committed, as the HTTP call does)."""
        with self.vault() as vault:
            return vault.new_request_id(api_key)

    def register(
        self,
        api_key: str,
        row: DeviceModel,
        key: DeviceKey | asserts.RSAPrivateKey,
        *,
        serial: str | None = None,
        body: str = "",
        request_id: str | None = None,
        address: str | None = "192.0.2.1",
    ) -> asserts.Serial:
        """A whole device registration (request-id, then serial), each in its own transaction."""
        model = self.model_assertion(row)
        rid = request_id or self.request_id(api_key)
        data = serial_request_stream(key, model, rid, serial=serial, body=body)
        with self.vault() as vault:
            return vault.register(api_key, data, address).serial


@pytest.fixture(scope="session")
def device_keys() -> DeviceKeys:
    """A maker of small device keys (2048 bits, the vault's minimum)."""
    return DeviceKeys(KEY_BITS)


@dataclass
class Backend:
    """A migrated database, a key store and the root: shared by a module's tests."""

    database: SqlDatabase
    keystore: KeyStore
    root: RootAuthority

    def world(self) -> VaultWorld:
        """A new brand (with a held ``models`` key) and its store on this backend."""
        world = VaultWorld(self.database, self.keystore, self.root, "", "")
        username = f"b{uuid.uuid4().hex[:12]}"
        with world.unit() as (session, _, brands):
            brand = brands.create(username, f"Brand {username}")
            brands.generate_key(brand.account_id, "models", KEY_BITS)
            StoreService(session, AuditLog(session)).create_brand_store(
                ADMIN, brand.account_id, f"s-{username}", "Brand Store"
            )
        world.brand_id, world.store_id = brand.account_id, f"s-{username}"
        return world

    def close(self) -> None:
        """Release the key store and the connections."""
        self.keystore.close()
        self.database.dispose()


def make_backend(database_url: str, keystore: KeyStore) -> Backend:
    """A migrated database at ``database_url`` with ``keystore`` and the fixed test root."""
    database = SqlDatabase.from_url(database_url)
    upgrade(database.engine)
    return Backend(database, keystore, adopt_root(keystore, ROOT_ID, root_key_pem()))


@pytest.fixture(scope="module")
def memory_backend(module_database_url: str) -> Iterator[Backend]:
    """Both database backends, with an in-memory key store."""
    backend = make_backend(module_database_url, MemoryKeyStore())
    yield backend
    backend.close()


@pytest.fixture(scope="module")
def encrypted_backend(
    module_database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Backend]:
    """Both database backends, with the encrypted key store (the default deployment's)."""
    records = SqliteKeyRecords(tmp_path_factory.mktemp("keys") / "keys.sqlite")
    backend = make_backend(module_database_url, EncryptedKeyStore(records, MasterKey.generate()))
    yield backend
    backend.close()
    records.close()


@pytest.fixture
def vault_world(memory_backend: Backend) -> VaultWorld:
    """A fresh brand and store (a vault of its own) with an in-memory key store."""
    return memory_backend.world()


@pytest.fixture
def encrypted_world(encrypted_backend: Backend) -> VaultWorld:
    """A fresh brand and store whose keys live in the encrypted key store."""
    return encrypted_backend.world()
