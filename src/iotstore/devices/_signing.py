"""The vault's hot path: one query per registration and a per-process cache of what signs.

A registration needs the model's policy, its newest model assertion, the
active serial key, that key's ``account-key`` and the brand's ``account``.
:func:`enrolment` reads the policy, the active key and the *revisions* of
the three assertions in one statement; :class:`SigningCache` keeps the decoded
assertions and the key store's signer keyed by exactly those values. Any
change that matters (a new model revision, a rotated or disabled key, a
revoked key's new ``account-key`` revision, a new ``account`` revision) changes
the key, so another process or replica that made it is never served stale:
the next registration anywhere misses and reloads. A disabled key stops
signing at once anyway: the key stores check that on every signature.
"""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, ScalarSelect, and_, bindparam, func, literal_column, select
from sqlalchemy.engine import Connection
from sqlalchemy.orm import InstrumentedAttribute

from iotstore import asserts
from iotstore.accounts.models import BrandKey
from iotstore.assertdb.models import StoredAssertion
from iotstore.db.prepared import DriverConnection, PreparedRead
from iotstore.keystore import KeyStore

from .models import ApiKey, DeviceModel, SerialKey

__all__ = ["Enrolment", "Signing", "SigningCache", "enrolment", "signing_cache"]

CACHE_SIZE = 256  # models per process; an entry is a few KiB


@dataclass(frozen=True, slots=True)
class Enrolment:
    """What one API key enrols: its model's policy, active serial key and assertion revisions."""

    model_id: int
    brand_id: str
    model: str
    store_id: str
    open_enrolment: bool
    require_key_allowlist: bool
    allow_reregistration: bool
    key_id: str | None  # the active serial key (None: the model has none)
    keystore_name: str | None
    model_revision: int | None
    key_revision: int | None
    account_revision: int | None

    @property
    def cache_key(self) -> tuple[object, ...]:
        """Everything the cached assertions and signer depend on."""
        return (
            self.model_id, self.key_id, self.keystore_name,
            self.model_revision, self.key_revision, self.account_revision,
        )  # fmt: skip


def _newest_revision(
    type_name: str, primary_key: ColumnElement[str] | InstrumentedAttribute[str]
) -> ScalarSelect[int]:
    return (
        select(func.max(StoredAssertion.revision))
        .where(
            StoredAssertion.type_name == literal_column(f"'{type_name}'"),
            StoredAssertion.primary_key == primary_key,
        )
        .scalar_subquery()
    )


# Built once, with bound parameters: SQLAlchemy memoises a statement object's
# cache key, so executing the same object skips rebuilding and re-keying it
# (that was a third of the registration's Python time).
_ENROLMENT = (
    select(
        ApiKey.revoked_at,
        DeviceModel.id,
        DeviceModel.brand_id,
        DeviceModel.name,
        DeviceModel.store_id,
        DeviceModel.open_enrolment,
        DeviceModel.require_key_allowlist,
        DeviceModel.allow_reregistration,
        BrandKey.key_id,
        BrandKey.keystore_name,
        # the assertions table keys a model as "16/<brand>/<model>" (assertdb._key)
        _newest_revision(
            "model",
            literal_column("'16/'")
            + DeviceModel.brand_id
            + literal_column("'/'")
            + DeviceModel.name,
        ).label("model_revision"),
        _newest_revision("account-key", BrandKey.key_id).label("key_revision"),
        _newest_revision("account", DeviceModel.brand_id).label("account_revision"),
    )
    .join(DeviceModel, DeviceModel.id == ApiKey.model_id)
    .outerjoin(SerialKey, and_(SerialKey.model_id == DeviceModel.id, SerialKey.active))
    .outerjoin(
        BrandKey,
        and_(
            BrandKey.id == SerialKey.brand_key_id,
            BrandKey.state == literal_column("'active'"),
            BrandKey.keystore_name.is_not(None),
        ),
    )
    .where(ApiKey.key_hash == bindparam("key_hash"))
    # the newest active serial key whose brand key is active and held, as before
    .order_by(BrandKey.id.is_(None), SerialKey.id.desc())
    # constants inline, not bound, and no LIMIT (its value is bound): the only
    # parameter is key_hash, so PreparedRead runs it; the first row is the one
)


_ENROLMENT_READ = PreparedRead(_ENROLMENT)


def enrolment(
    connection: Connection | DriverConnection, key_hash: str
) -> tuple[bool, Enrolment] | None:
    """(revoked, enrolment) of the API key with ``key_hash``, or None when there is none."""
    # on the driver's cursor (compiled once): every serial and request-id runs it
    rows = _ENROLMENT_READ.rows(connection, {"key_hash": key_hash})
    if not rows:
        return None
    values: tuple[Any, ...] = tuple(rows[0])
    return values[0] is not None, Enrolment(*values[1:])


@dataclass(frozen=True, slots=True)
class Signing:
    """The decoded assertions a registration serves, and the signer of new serials."""

    model: asserts.Model
    account_key: asserts.AccountKey | None
    account: asserts.Account
    signer: asserts.PrivateKey | None

    @property
    def chain(self) -> list[asserts.Assertion]:
        """account-key then account: what the device needs to verify a new serial."""
        assert self.account_key is not None
        return [self.account_key, self.account]


class SigningCache:
    """Signing material per enrolment cache key, least recently used dropped first."""

    def __init__(self, size: int = CACHE_SIZE) -> None:
        self._size = size
        self._entries: OrderedDict[tuple[object, ...], Signing] = OrderedDict()
        self._lock = threading.Lock()

    def peek(self, enrolled: Enrolment) -> Signing | None:
        """The cached material for ``enrolled`` if there is some (marked recent); never loads."""
        key = enrolled.cache_key
        with self._lock:
            found = self._entries.get(key)
            if found is not None:
                self._entries.move_to_end(key)
            return found

    def get(self, enrolled: Enrolment, trust: asserts.Database, keystore: KeyStore) -> Signing:
        """The cached material for ``enrolled``, loaded through ``trust`` on a miss."""
        key = enrolled.cache_key
        with self._lock:
            found = self._entries.get(key)
            if found is not None:
                self._entries.move_to_end(key)
                return found
        loaded = _load(enrolled, trust, keystore)
        if (
            loaded.model.revision != enrolled.model_revision
            or loaded.account.revision != enrolled.account_revision
            or (
                loaded.account_key is not None
                and loaded.account_key.revision != enrolled.key_revision
            )
        ):
            # a writer committed between the two reads: serve what was read, keep nothing
            return loaded
        with self._lock:
            self._entries[key] = loaded
            self._entries.move_to_end(key)
            while len(self._entries) > self._size:
                self._entries.popitem(last=False)
        return loaded


def _load(enrolled: Enrolment, trust: asserts.Database, keystore: KeyStore) -> Signing:
    model = trust.find("model", ("16", enrolled.brand_id, enrolled.model))
    account = trust.find("account", (enrolled.brand_id,))
    assert isinstance(model, asserts.Model) and isinstance(account, asserts.Account)
    if enrolled.key_id is None or enrolled.keystore_name is None:
        return Signing(model, None, account, None)
    account_key = trust.find("account-key", (enrolled.key_id,))
    assert isinstance(account_key, asserts.AccountKey)
    return Signing(model, account_key, account, keystore.signer(enrolled.keystore_name))


# One cache per key store: a key store belongs to one deployment, so two
# deployments in one process (tests) never share entries.
_CACHES: weakref.WeakKeyDictionary[KeyStore, SigningCache] = weakref.WeakKeyDictionary()
_CACHES_LOCK = threading.Lock()


def signing_cache(keystore: KeyStore) -> SigningCache:
    """The process's cache for ``keystore``."""
    with _CACHES_LOCK:
        cache = _CACHES.get(keystore)
        if cache is None:
            cache = _CACHES[keystore] = SigningCache()
        return cache
