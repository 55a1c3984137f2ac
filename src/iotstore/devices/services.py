"""The serial vault's rules: models, serial keys, API keys and first-boot registration.

Registration follows snapd's device-service protocol (request-id, then a
serial-request + model stream) and answers with the serial plus the signing
key's account-key and account, so a device without a store session can
verify it. Everything a registration writes happens in the caller's
transaction, after signing: a killed process leaves no half-recorded serial.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import re
import secrets
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    Table,
    and_,
    bindparam,
    delete,
    exists,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.engine import Connection
from sqlalchemy.orm import InstrumentedAttribute, Session

from iotstore import asserts
from iotstore.accounts.brands import BrandService
from iotstore.accounts.errors import AccountRuleViolation
from iotstore.accounts.models import BrandKey
from iotstore.assertdb.models import StoredAssertion
from iotstore.db import Base, utcnow
from iotstore.keystore import HSMError, KeyStorageError, KeyStore
from iotstore.stores.audit import Actor, AuditLog
from iotstore.stores.models import Store

from ._signing import Enrolment, Signing, enrolment, signing_cache
from .errors import (
    DeviceBlocked,
    InvalidApiKey,
    InvalidNonce,
    InvalidSerialRequest,
    KeyGuard,
    ModelNotFound,
    NotPreauthorised,
    SerialInUse,
    SigningPending,
    VaultRuleViolation,
)
from .models import (
    AllowedDevice,
    ApiKey,
    Device,
    DeviceModel,
    RequestId,
    SerialKey,
    SigningLogEntry,
)

__all__ = [
    "NONCE_LIFETIME",
    "Registration",
    "SerialPlan",
    "VaultService",
    "model_dict",
    "sign_serial",
]

NONCE_LIFETIME = timedelta(minutes=10)
RELEASED = "released"  # device-key id of a serial freed for re-provisioning
MIN_DEVICE_KEY_BITS = 2048
MAX_SERIAL_STREAM = 256 * 1024
_SERIAL_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:+-]{0,127}")
_BODY_SERIAL_RE = re.compile(r"^serial:\s*['\"]?([^'\"\s]+)['\"]?\s*$", re.MULTILINE)


# The registration path's statements, built once with bound parameters and run
# on the session's connection (Core tables, no ORM unit of work): see _signing.py.
def _table(model: type[Base]) -> Table:
    return cast(Table, model.__table__)


_requests = RequestId.__table__.c
_SWEEP_REQUEST_IDS = delete(_table(RequestId)).where(_requests.expires_at < bindparam("now"))
_INSERT_REQUEST_ID = insert(_table(RequestId))
_CONSUME_REQUEST_ID = (
    update(_table(RequestId))
    .where(
        _requests.id == bindparam("request_id"),
        _requests.used_at.is_(None),
        _requests.expires_at > bindparam("now"),
    )
    .values(used_at=bindparam("now"))
)
# Un-consume and extend a request-id whose signing was postponed (202: snapd retries it).
_POSTPONE_REQUEST_ID = (
    update(_table(RequestId))
    .where(_requests.id == bindparam("request_id"))
    .values(used_at=None, expires_at=bindparam("expires_at"))
)
# Key-store faults that may pass (token unplugged, key database locked): a device
# should retry the same request, not fail its registration.
_TRANSIENT_KEYSTORE_ERRORS = (HSMError, KeyStorageError)
_devices = Device.__table__.c
_THE_DEVICE = and_(
    _devices.brand_id == bindparam("brand_id"),
    _devices.model == bindparam("model"),
    _devices.serial == bindparam("serial"),
)
# The read-only twin of _CONSUME_REQUEST_ID (a spent nonce is refused before a
# signature is spent on it) and the device row, in one statement: scalar
# subqueries on unique indexes; ``id`` is NULL for a new device.
_REGISTRATION_STATE = select(
    exists()
    .where(
        _requests.id == bindparam("request_id"),
        _requests.used_at.is_(None),
        _requests.expires_at > bindparam("now"),
    )
    .label("usable"),
    *(
        select(column).where(_THE_DEVICE).scalar_subquery().label(column.name)
        for column in (_devices.id, _devices.device_key_id, _devices.serial_revision,
                       _devices.blocked)
    ),
)  # fmt: skip
_api_keys = ApiKey.__table__.c
_models = DeviceModel.__table__.c
_allowed = AllowedDevice.__table__.c
_THE_ALLOWED = and_(
    _allowed.model_id == bindparam("model_id"), _allowed.serial == bindparam("serial")
)
# The writing transaction's first statement: consume the request-id (no row: it
# was spent meanwhile) and return what it re-reads, the device row, whether the
# API key is still unrevoked, the model's policy now and the serial's allow-list
# entry now (RETURNING with scalar subqueries: SQLite >= 3.35 and PostgreSQL).
# An administrator's change committed while the serial was signed (outside any
# transaction) is then seen as if the whole registration had run in this one.
_CONSUME_AND_RECHECK = _CONSUME_REQUEST_ID.returning(
    *(
        select(column).where(_THE_DEVICE).scalar_subquery().label(column.name)
        for column in (_devices.id, _devices.device_key_id, _devices.serial_revision,
                       _devices.blocked)
    ),
    exists()
    .where(
        _api_keys.key_hash == bindparam("key_hash"),
        _api_keys.model_id == bindparam("model_id"),
        _api_keys.revoked_at.is_(None),
    )
    .label("key_usable"),
    *(
        select(column).where(_models.id == bindparam("model_id")).scalar_subquery()
        .label(column.name)
        for column in (_models.open_enrolment, _models.require_key_allowlist,
                       _models.allow_reregistration)
    ),
    exists().where(_THE_ALLOWED).label("allow_listed"),
    select(_allowed.device_key_id).where(_THE_ALLOWED).scalar_subquery().label("allowed_key"),
)  # fmt: skip
_INSERT_DEVICE = insert(_table(Device))
_REBIND_DEVICE = (
    update(_table(Device))
    .where(_devices.id == bindparam("device_id"))
    .values(device_key_id=bindparam("new_key_id"), serial_revision=bindparam("new_revision"))
)
_INSERT_ASSERTION = insert(_table(StoredAssertion))
_INSERT_LOG_ENTRY = insert(_table(SigningLogEntry))
_ALLOWED_KEY = select(_allowed.device_key_id).where(_THE_ALLOWED)


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def model_dict(model: DeviceModel) -> dict[str, Any]:
    """A vault model as JSON-ready values."""
    return {
        "id": model.id,
        "brand-id": model.brand_id,
        "model": model.name,
        "store-id": model.store_id,
        "open-enrolment": model.open_enrolment,
        "require-key-allowlist": model.require_key_allowlist,
        "allow-reregistration": model.allow_reregistration,
    }


@dataclass(frozen=True)
class Registration:
    """What the vault answers a device: the serial and the chain it needs."""

    serial: asserts.Serial
    chain: list[asserts.Assertion]

    def stream(self) -> bytes:
        """Serial, then the signer's account-key and account."""
        return asserts.encode_stream([self.serial, *self.chain])


@dataclass(frozen=True, slots=True)
class SerialPlan:
    """A registration that passed every check: what to sign, and for which device row.

    Made in a read-only transaction; signed outside any transaction (RSA holds
    no database lock); recorded by :meth:`VaultService.record_registration`.
    """

    enrolled: Enrolment
    signing: Signing
    request: asserts.SerialRequest
    serial: str
    device_id: int | None  # the device row seen (None: a new device)
    revision: int  # the serial's revision for that row
    retry: Registration | None = None  # the same key asked again: its stored serial
    key_hash: str = ""  # the API key's hash: the write checks it is still unrevoked


def sign_serial(plan: SerialPlan) -> asserts.Serial | None:
    """The serial ``plan`` asks for, signed now (None for a retry, which signs nothing).

    Touches no database: call it outside any transaction. Raises the key store's
    errors (HSMError, KeyStorageError: transient; KeyDisabled).
    """
    if plan.retry is not None:
        return None
    enrolled, signing, request = plan.enrolled, plan.signing, plan.request
    assert signing.signer is not None  # checked by VaultService._decide
    headers: dict[str, object] = {
        "authority-id": enrolled.brand_id,
        "brand-id": enrolled.brand_id,
        "model": enrolled.model,
        "serial": plan.serial,
        "device-key": request.device_key.encoded,
        "device-key-sha3-384": request.device_key.id,
        "timestamp": asserts.format_time(utcnow()),
    }
    if plan.revision:
        headers["revision"] = str(plan.revision)
    signed = asserts.sign("serial", headers, signing.signer)
    assert isinstance(signed, asserts.Serial)
    return signed


class VaultService:
    """Vault administration and the device-service protocol. Flushes; the caller commits."""

    def __init__(
        self,
        session: Session,
        keystore: KeyStore,
        brands: BrandService,
        trust: asserts.Database,
        audit: AuditLog,
        connection: Connection | None = None,
    ) -> None:
        self._session = session
        # The registration path's statements run on this connection when given (a
        # Core transaction: no ORM session machinery), else on the session's.
        self._connection = connection
        self._keystore = keystore
        self._brands = brands
        self._trust = trust
        self._audit = audit

    def _conn(self) -> Connection:
        return self._connection if self._connection is not None else self._session.connection()

    # -- models ----------------------------------------------------------------------

    def model(self, brand_id: str, name: str) -> DeviceModel:
        """A registered model; raises :class:`ModelNotFound`."""
        row = self._session.scalars(
            select(DeviceModel).where(DeviceModel.brand_id == brand_id, DeviceModel.name == name)
        ).first()
        if row is None:
            raise ModelNotFound(f"model {brand_id}/{name} is not registered in this vault")
        return row

    def models(self, store_ids: Iterable[str] | None = None) -> list[DeviceModel]:
        """Models (of the given stores), by brand and name."""
        q = select(DeviceModel)
        if store_ids is not None:
            q = q.where(DeviceModel.store_id.in_(list(store_ids)))
        return list(self._session.scalars(q.order_by(DeviceModel.brand_id, DeviceModel.name)))

    def model_assertion(self, model: DeviceModel) -> asserts.Model:
        """The newest accepted model assertion."""
        a = self._trust.find("model", ("16", model.brand_id, model.name))
        assert isinstance(a, asserts.Model)
        return a

    def register_model(self, actor: Actor, brand_id: str, data: bytes) -> DeviceModel:
        """Accept a model assertion signed by a registered brand key (e.g. with ``snap sign``)."""
        try:
            model = asserts.decode(data)
        except asserts.DecodeError as e:
            raise VaultRuleViolation(f"not a model assertion: {e}", field="assertion") from e
        if not isinstance(model, asserts.Model):
            raise VaultRuleViolation(f"expected a model, got {model.type_name}", field="assertion")
        return self._accept_model(actor, brand_id, model)

    def sign_model(
        self, actor: Actor, brand_id: str, key_name: str, headers: dict[str, Any]
    ) -> DeviceModel:
        """Sign a model from JSON headers with a brand key held by the key store."""
        signer = self._held_signer(brand_id, key_name)
        statement = {"series": "16", **headers, "authority-id": brand_id, "brand-id": brand_id}
        statement.setdefault("timestamp", asserts.format_time(utcnow()))
        try:
            model = asserts.sign("model", statement, signer)
        except asserts.SigningError as e:
            raise VaultRuleViolation(str(e), field="headers") from e
        assert isinstance(model, asserts.Model)
        return self._accept_model(actor, brand_id, model)

    def _held_signer(self, brand_id: str, key_name: str) -> asserts.PrivateKey:
        try:
            return self._brands.signer(brand_id, key_name)
        except AccountRuleViolation as e:
            raise VaultRuleViolation(e.message, field="key") from e

    def _accept_model(self, actor: Actor, brand_id: str, model: asserts.Model) -> DeviceModel:
        if model.brand_id != brand_id:
            raise VaultRuleViolation(
                f"the model's brand is {model.brand_id!r}, not {brand_id!r}", field="brand-id"
            )
        if model.classic and not model.snaps:
            raise VaultRuleViolation("classic models without snaps are not managed here")
        if not model.store:
            raise VaultRuleViolation(
                "the model must name its store (the store header)", field="store"
            )
        store = self._session.get(Store, model.store)
        if store is None or store.brand_id != brand_id:
            raise VaultRuleViolation(
                f"store {model.store!r} is not a store of this brand", field="store"
            )
        try:
            self._trust.add(model)  # key registered, valid at the timestamp, newer revision
        except asserts.AssertsError as e:
            raise VaultRuleViolation(f"model refused: {e}", field="assertion") from e
        row = self._session.scalars(
            select(DeviceModel).where(
                DeviceModel.brand_id == brand_id, DeviceModel.name == model.model
            )
        ).first()
        action = "model.update"
        if row is None:
            row = DeviceModel(brand_id=brand_id, name=model.model, store_id=store.id)
            self._session.add(row)
            action = "model.register"
        row.store_id = store.id
        self._session.flush()
        self._audit.record(
            actor, action, store_id=store.id, target=f"{brand_id}/{model.model}",
            after={**model_dict(row), "revision": model.revision},
        )  # fmt: skip
        return row

    def update_policy(self, actor: Actor, model: DeviceModel, changes: dict[str, bool]) -> None:
        """Change enrolment policy flags."""
        before = model_dict(model)
        for name, value in changes.items():
            if name not in ("open_enrolment", "require_key_allowlist", "allow_reregistration"):
                raise VaultRuleViolation(f"unknown policy {name!r}", field=name)
            setattr(model, name, value)
        self._session.flush()
        self._audit.record(
            actor, "model.policy", store_id=model.store_id,
            target=f"{model.brand_id}/{model.name}", before=before, after=model_dict(model),
        )  # fmt: skip

    # -- serial signing keys ---------------------------------------------------------------

    def serial_keys(self, model: DeviceModel) -> list[tuple[SerialKey, BrandKey]]:
        """The model's serial keys, newest first, with their brand keys."""
        rows = self._session.execute(
            select(SerialKey, BrandKey)
            .join(BrandKey, BrandKey.id == SerialKey.brand_key_id)
            .where(SerialKey.model_id == model.id)
            .order_by(SerialKey.id.desc())
        ).all()
        return [(s, b) for s, b in rows]

    def rotate_serial_key(self, actor: Actor, model: DeviceModel, bits: int = 4096) -> BrandKey:
        """Generate and certify a new serial key, then make it the active one.

        The previous key stays certified, so serials it signed keep verifying:
        rotation needs no downtime.
        """
        count = self._session.scalar(
            select(func.count(SerialKey.id)).where(SerialKey.model_id == model.id)
        )
        name = f"serial-{model.name}-{int(count or 0) + 1}"[:64]
        key = self._brands.generate_key(model.brand_id, name, bits)
        for old, _ in self.serial_keys(model):
            old.active = False
        self._session.add(SerialKey(model_id=model.id, brand_key_id=key.id, active=True))
        self._session.flush()
        self._audit.record(
            actor, "serial-key.rotate", store_id=model.store_id, target=key.key_id,
            after={"model": model.name, "key-name": key.name},
        )  # fmt: skip
        return key

    def active_serial_key(self, model: DeviceModel) -> BrandKey:
        """The key that signs the model's serials now."""
        for serial_key, brand_key in self.serial_keys(model):
            if serial_key.active and brand_key.state == "active":
                return brand_key
        raise ModelNotFound(f"model {model.brand_id}/{model.name} has no active serial signing key")

    def disable_serial_key(
        self, actor: Actor, model: DeviceModel, key_name: str, confirm: str
    ) -> BrandKey:
        """Disable one serial key (typed-name confirmation); never the only active one."""
        keys = self.serial_keys(model)
        match = [(s, b) for s, b in keys if b.name == key_name]
        if not match:
            raise ModelNotFound(f"{key_name!r} is not a serial key of {model.name!r}")
        serial_key, brand_key = match[0]
        others = [b for s, b in keys if s.active and b.state == "active" and b.id != brand_key.id]
        if serial_key.active and not others:
            raise KeyGuard(
                f"{key_name!r} is the model's only active serial key: rotate to a new key first"
            )
        # serials already signed stay valid: disabling stops new signatures only
        self._brands.disable_key(model.brand_id, key_name, confirm, force=True)
        serial_key.active = False
        self._session.flush()
        self._audit.record(
            actor, "serial-key.disable", store_id=model.store_id, target=brand_key.key_id,
            after={"model": model.name, "key-name": key_name},
        )  # fmt: skip
        return brand_key

    # -- API keys -----------------------------------------------------------------------

    def create_api_key(
        self, actor: Actor, model: DeviceModel, label: str = ""
    ) -> tuple[ApiKey, str]:
        """A new API key for the gadget's prepare-device hook: the secret is shown once."""
        secret = "iotk_" + secrets.token_urlsafe(30)
        row = ApiKey(
            model_id=model.id, label=label[:120], prefix=secret[:12], key_hash=_hash(secret)
        )
        self._session.add(row)
        self._session.flush()
        self._audit.record(
            actor, "api-key.create", store_id=model.store_id, target=row.prefix,
            after={"model": model.name, "label": row.label},
        )  # fmt: skip
        return row, secret

    def api_keys(self, model: DeviceModel) -> list[ApiKey]:
        """The model's API keys (hashes only)."""
        return list(
            self._session.scalars(
                select(ApiKey).where(ApiKey.model_id == model.id).order_by(ApiKey.id)
            )
        )

    def revoke_api_key(self, actor: Actor, model: DeviceModel, key_id: int) -> ApiKey:
        """Revoke an API key: devices using it can no longer register."""
        row = self._session.get(ApiKey, key_id)
        if row is None or row.model_id != model.id:
            raise ModelNotFound(f"no API key {key_id} for this model")
        if row.revoked_at is None:
            row.revoked_at = utcnow()
            self._session.flush()
            self._audit.record(actor, "api-key.revoke", store_id=model.store_id, target=row.prefix)
        return row

    # -- pre-authorisation ------------------------------------------------------------------

    def allow(
        self, actor: Actor, model: DeviceModel, entries: Iterable[tuple[str, str | None]]
    ) -> int:
        """Add (serial, device-key id or None) pairs to the allow-list; return how many are new."""
        wanted: dict[str, str | None] = {}
        for serial, key_id in entries:
            _check_serial(serial)
            if key_id is not None and not re.fullmatch(r"[A-Za-z0-9_-]{64}", key_id):
                raise VaultRuleViolation(f"not a device-key id: {key_id!r}", field="device-key")
            wanted[serial] = key_id  # a later line for the same serial wins, as before
        # existing rows in batches, not one SELECT per line of a large CSV
        serials = list(wanted)
        existing: dict[str, AllowedDevice] = {}
        for start in range(0, len(serials), 500):
            for row in self._session.scalars(
                select(AllowedDevice).where(
                    AllowedDevice.model_id == model.id,
                    AllowedDevice.serial.in_(serials[start : start + 500]),
                )
            ):
                existing[row.serial] = row
        added = 0
        for serial, key_id in wanted.items():
            if serial in existing:
                existing[serial].device_key_id = key_id
            else:
                self._session.add(
                    AllowedDevice(model_id=model.id, serial=serial, device_key_id=key_id)
                )
                added += 1
        self._session.flush()
        self._audit.record(
            actor, "allowlist.add", store_id=model.store_id, target=model.name,
            after={"added": added},
        )  # fmt: skip
        return added

    def import_allowlist_csv(self, actor: Actor, model: DeviceModel, text: str) -> int:
        """CSV with a ``serial`` column and an optional ``device-key`` column (header row)."""
        reader = csv.DictReader(io.StringIO(text))
        if reader.fieldnames is None or "serial" not in reader.fieldnames:
            raise VaultRuleViolation("the CSV needs a header row with a 'serial' column")
        entries: list[tuple[str, str | None]] = []
        for line, row in enumerate(reader, start=2):
            serial = (row.get("serial") or "").strip()
            if not serial:
                raise VaultRuleViolation(f"line {line}: empty serial")
            key = (row.get("device-key") or "").strip() or None
            entries.append((serial, key))
        return self.allow(actor, model, entries)

    def allowlist(self, model: DeviceModel) -> list[AllowedDevice]:
        """The model's allow-list."""
        return list(
            self._session.scalars(
                select(AllowedDevice)
                .where(AllowedDevice.model_id == model.id)
                .order_by(AllowedDevice.serial)
            )
        )

    # -- the device-service protocol ----------------------------------------------------------

    def new_request_id(self, api_key: str | None) -> str:
        """A fresh single-use request-id (the API key must be valid)."""
        connection = self._conn()
        self._enrolment(api_key, connection)
        now = utcnow()
        # expired ids go on each call (as Canonical's vault does): one indexed DELETE
        connection.execute(_SWEEP_REQUEST_IDS, {"now": now})
        value = secrets.token_urlsafe(32)
        connection.execute(
            _INSERT_REQUEST_ID, {"id": value, "created_at": now, "expires_at": now + NONCE_LIFETIME}
        )
        return value

    def _enrolment(self, api_key: str | None, connection: Connection | None = None) -> Enrolment:
        # One statement: the key, its model's policy, the active serial key and the
        # revisions the signing cache is keyed by (see _signing.py).
        if not api_key:
            raise InvalidApiKey("missing api-key header")
        if len(api_key) > 200:
            raise InvalidApiKey("unknown or revoked API key")
        found = enrolment(connection or self._conn(), _hash(api_key))
        if found is None or found[0]:
            raise InvalidApiKey("unknown or revoked API key")
        return found[1]

    def _consume_request_id(self, request_id: str, connection: Connection | None = None) -> None:
        # One conditional UPDATE, not read-then-write: two registrations racing on
        # one request-id must not both see it unused (PostgreSQL, read committed).
        consumed = 0
        if len(request_id) <= 64:
            result = (connection or self._conn()).execute(
                _CONSUME_REQUEST_ID, {"request_id": request_id, "now": utcnow()}
            )
            consumed = result.rowcount
        if consumed != 1:
            raise InvalidNonce("request-id is invalid, expired or already used")

    def register(self, api_key: str | None, data: bytes, address: str | None) -> Registration:
        """Turn a device's serial-request (+ model) stream into a signed serial, in one transaction.

        The web edge runs the same three steps in three transactions instead
        (:meth:`check_registration` reading, :func:`sign_serial` in none,
        :meth:`record_registration` writing), so no write lock is held while RSA runs.
        """
        try:
            plan = self.check_registration(api_key, data)
            signed = sign_serial(plan)
        except _TRANSIENT_KEYSTORE_ERRORS as e:
            raise self.postpone_request(data, e) from e
        return self.record_registration(plan, signed, address)

    def check_registration(self, api_key: str | None, data: bytes) -> SerialPlan:
        """Every check of a registration that needs no write; raises the 4xx a device gets.

        Raises the key store's transient errors (HSMError, KeyStorageError) when the
        serial key cannot be loaded: the caller answers with :meth:`postpone_request`.
        """
        connection = self._conn()
        enrolled = self._enrolment(api_key, connection)
        if len(data) > MAX_SERIAL_STREAM:
            raise InvalidSerialRequest("the request is too large")
        cached = signing_cache(self._keystore).peek(enrolled)
        request, sent = _decode_serial_request(data, cached.model if cached else None)
        try:
            asserts.verify_signature(request, request.device_key)
        except asserts.SignatureError as e:
            raise InvalidSerialRequest(f"serial-request signature: {e}") from e
        if request.device_key.bits < MIN_DEVICE_KEY_BITS:
            raise InvalidSerialRequest(f"device keys must have at least {MIN_DEVICE_KEY_BITS} bits")
        if (request.brand_id, request.model) != (enrolled.brand_id, enrolled.model):
            raise InvalidApiKey(
                f"this API key is for {enrolled.brand_id}/{enrolled.model}, not "
                f"{request.brand_id}/{request.model}"
            )
        signing = signing_cache(self._keystore).get(enrolled, self._trust, self._keystore)
        model = signing.model
        if sent is not None and sent is not model:
            if not isinstance(sent, asserts.Model) or (sent.brand_id, sent.model) != (
                model.brand_id,
                model.model,
            ):
                raise InvalidSerialRequest("the model in the stream is not the request's model")
            if sent != model:
                try:
                    self._trust.check(sent)
                except asserts.AssertsError as e:
                    raise InvalidSerialRequest(f"the model does not verify: {e}") from e
        serial = request.serial or _serial_from_body(request.body) or str(uuid.uuid4())
        # one statement: is the request-id usable, and the serial's device row (if any)
        rid = request.request_id
        state = connection.execute(
            _REGISTRATION_STATE,
            {"request_id": rid if len(rid) <= 64 else "", "now": utcnow(),
             "brand_id": enrolled.brand_id, "model": enrolled.model, "serial": serial},
        ).one()  # fmt: skip
        if not state.usable:
            raise InvalidNonce("request-id is invalid, expired or already used")
        _check_serial(serial)
        if not (enrolled.open_enrolment and not enrolled.require_key_allowlist):
            entry = connection.execute(
                _ALLOWED_KEY, {"model_id": enrolled.model_id, "serial": serial}
            ).first()
            _check_allowed(enrolled, serial, request.device_key.id, entry)
        plan = SerialPlan(
            enrolled, signing, request, serial, None, 0, key_hash=_hash(api_key or "")
        )
        decided = self._decide(plan, state if state.id is not None else None)
        if isinstance(decided, Registration):
            return dataclasses.replace(plan, retry=decided)
        revision, device_id = decided
        return dataclasses.replace(plan, device_id=device_id, revision=revision)

    def record_registration(
        self, plan: SerialPlan, signed: asserts.Serial | None, address: str | None
    ) -> Registration:
        """Consume the request-id and record ``signed`` (signed from ``plan``), or refuse.

        The device's row is read again here, in the writing transaction: when a
        concurrent registration changed it since :meth:`check_registration`, the
        decision is taken again on what is there now and a signature made for
        the old state is not used (the device gets the same answer as if it had
        come second in one transaction).
        """
        connection = self._conn()
        enrolled, request_id = plan.enrolled, plan.request.request_id
        state = connection.execute(
            _CONSUME_AND_RECHECK,
            {"request_id": request_id if len(request_id) <= 64 else "", "now": utcnow(),
             "brand_id": enrolled.brand_id, "model": enrolled.model, "serial": plan.serial,
             "key_hash": plan.key_hash, "model_id": enrolled.model_id},
        ).first()  # fmt: skip
        if state is None:
            raise InvalidNonce("request-id is invalid, expired or already used")
        if not state.key_usable:
            raise InvalidApiKey("unknown or revoked API key")
        if (state.open_enrolment, state.require_key_allowlist, state.allow_reregistration) != (
            enrolled.open_enrolment,
            enrolled.require_key_allowlist,
            enrolled.allow_reregistration,
        ):
            enrolled = dataclasses.replace(
                enrolled, open_enrolment=state.open_enrolment,
                require_key_allowlist=state.require_key_allowlist,
                allow_reregistration=state.allow_reregistration,
            )  # fmt: skip
            plan = dataclasses.replace(plan, enrolled=enrolled)
        _check_allowed(
            enrolled, plan.serial, plan.request.device_key.id,
            (state.allowed_key,) if state.allow_listed else None,
        )  # fmt: skip
        decided = self._decide(plan, state if state.id is not None else None)
        if isinstance(decided, Registration):
            return decided
        revision, device_id = decided
        if signed is None or revision != plan.revision or device_id != plan.device_id:
            # the row changed under us (released, or bound meanwhile): sign for what is there
            try:
                signed = sign_serial(dataclasses.replace(plan, revision=revision, retry=None))
            except _TRANSIENT_KEYSTORE_ERRORS as e:
                raise self._postpone(plan.request.request_id, e) from e
            assert signed is not None  # retry=None: sign_serial signs
        return self._issue(plan, signed, device_id, address, connection)

    def postpone_request(self, data: bytes, cause: Exception) -> SigningPending:
        """Keep the stream's request-id usable for snapd's 202 retry (see :meth:`_postpone`).

        Consumes it first, so an unknown or spent request-id is refused (InvalidNonce)
        rather than revived.
        """
        request, _ = _decode_serial_request(data)
        self._consume_request_id(request.request_id)
        return self._postpone(request.request_id, cause)

    def _decide(self, plan: SerialPlan, device: Any) -> Registration | tuple[int, int | None]:
        """What the device's row says: a retry's stored serial, or (revision, row id) to sign."""
        model, serial = plan.enrolled, plan.serial
        revision = 0
        if device is not None:
            if device.blocked:
                raise DeviceBlocked(f"device {serial!r} is blocked")
            if device.device_key_id == plan.request.device_key.id:
                # a device retrying after a lost answer: same serial, same bytes
                existing = self._trust.find("serial", (model.brand_id, model.model, serial))
                assert isinstance(existing, asserts.Serial)
                return Registration(existing, self._chain(existing))
            if device.device_key_id != RELEASED and not model.allow_reregistration:
                raise SerialInUse(
                    f"serial {serial!r} is registered to another device key; an administrator "
                    "can release it"
                )
            revision = device.serial_revision + 1
        signing = plan.signing
        if signing.signer is None or signing.account_key is None:
            raise ModelNotFound(
                f"model {model.brand_id}/{model.model} has no active serial signing key"
            )
        if not signing.account_key.validity.contains(utcnow()):
            raise ModelNotFound(
                f"the serial key of {model.brand_id}/{model.model} is not valid now"
            )
        return revision, None if device is None else int(device.id)

    def _issue(
        self,
        plan: SerialPlan,
        signed: asserts.Serial,
        device_id: int | None,
        address: str | None,
        connection: Connection,
    ) -> Registration:
        model, serial, signing = plan.enrolled, plan.serial, plan.signing
        assert signing.account_key is not None
        now = utcnow()
        # Stored without Database.add's re-check: the serial was signed a moment ago
        # by the active key, whose account-key (cached, revision-checked) is valid
        # now, and the authority is the brand. The revision follows the device row;
        # the table's unique (type, key, revision) refuses a concurrent duplicate.
        connection.execute(
            _INSERT_ASSERTION,
            {
                "type_name": "serial",
                "primary_key": "/".join(signed.primary_key),
                "revision": signed.revision,
                "format": signed.format,
                "data": signed.to_bytes(),
                "string_headers": {k: v for k, v in signed.headers.items() if isinstance(v, str)},
                "created_at": now,
            },
        )
        key_id = plan.request.device_key.id
        revision = signed.revision
        if device_id is None:
            connection.execute(
                _INSERT_DEVICE,
                {
                    "brand_id": model.brand_id, "model": model.model, "serial": serial,
                    "device_key_id": key_id, "serial_revision": revision, "blocked": False,
                    "created_at": now,
                },
            )  # fmt: skip
        else:
            connection.execute(
                _REBIND_DEVICE,
                {"device_id": device_id, "new_key_id": key_id, "new_revision": revision},
            )
        connection.execute(
            _INSERT_LOG_ENTRY,
            {
                "at": now, "brand_id": model.brand_id, "model": model.model, "serial": serial,
                "device_key_id": key_id, "revision": revision,
                "sign_key_id": signing.account_key.key_id, "address": address,
            },
        )  # fmt: skip
        return Registration(signed, signing.chain)

    def _postpone(self, request_id: str, cause: Exception) -> SigningPending:
        """Keep the request-id usable (this transaction consumed it) for snapd's 202 retry.

        Nothing else was written yet: the caller commits this one change and
        answers 202; the device posts the same serial-request after 60 s.
        """
        self._conn().execute(
            _POSTPONE_REQUEST_ID,
            {"request_id": request_id, "expires_at": utcnow() + NONCE_LIFETIME},
        )
        return SigningPending(f"the serial signing key is unavailable for now ({cause})")

    def _chain(self, serial: asserts.Serial) -> list[asserts.Assertion]:
        key = self._trust.find("account-key", (serial.sign_key_id,))
        account = self._trust.find("account", (serial.authority_id,))
        return [key, account]

    # -- system users -----------------------------------------------------------------------

    def create_system_user(
        self,
        actor: Actor,
        brand_id: str,
        key_name: str,
        *,
        email: str,
        username: str,
        models: list[str],
        until: datetime,
        name: str | None = None,
        password_hash: str | None = None,
        ssh_keys: list[str] | None = None,
        store_id: str | None = None,
    ) -> asserts.SystemUser:
        """A system-user assertion for the brand's models, signed by a held brand key."""
        for model in models:
            self.model(brand_id, model)  # only this brand's registered models
        signer = self._held_signer(brand_id, key_name)
        now = utcnow().replace(microsecond=0)
        headers: dict[str, object] = {
            "authority-id": brand_id,
            "brand-id": brand_id,
            "email": email,
            "username": username,
            "models": models,
            "series": ["16"],
            "since": asserts.format_time(now),
            "until": asserts.format_time(until),
        }
        if name:
            headers["name"] = name
        if password_hash:
            headers["password"] = password_hash
        if ssh_keys:
            headers["ssh-keys"] = ssh_keys
        try:
            current = self._trust.find("system-user", (brand_id, email))
            headers["revision"] = str(current.revision + 1)
        except asserts.NotFoundError:
            pass
        try:
            user = asserts.sign("system-user", headers, signer)
        except asserts.SigningError as e:
            raise VaultRuleViolation(str(e)) from e
        self._trust.add(user)
        assert isinstance(user, asserts.SystemUser)
        self._audit.record(
            actor, "system-user.create", store_id=store_id, target=email,
            after={"username": username, "models": models, "until": headers["until"],
                   "revision": user.revision},
        )  # fmt: skip
        return user

    def system_users(self, brand_id: str) -> list[asserts.SystemUser]:
        """The brand's current system-user assertions."""
        found = self._trust.find_many("system-user", {"brand-id": brand_id})
        return [u for u in found if isinstance(u, asserts.SystemUser)]

    # -- devices and the signing log --------------------------------------------------------

    def device(self, brand_id: str, model: str, serial: str) -> Device:
        """One device by serial."""
        row = self._session.scalars(
            select(Device).where(
                Device.brand_id == brand_id, Device.model == model, Device.serial == serial
            )
        ).first()
        if row is None:
            raise ModelNotFound(f"no device {serial!r} of {brand_id}/{model}")
        return row

    def set_blocked(self, actor: Actor, model: DeviceModel, serial: str, blocked: bool) -> Device:
        """Block (or unblock) a device: its requests and store sessions are refused."""
        device = self.device(model.brand_id, model.name, serial)
        before = {"blocked": device.blocked}
        device.blocked = blocked
        self._session.flush()
        self._audit.record(
            actor, "device.block" if blocked else "device.unblock", store_id=model.store_id,
            target=f"{model.brand_id}/{model.name}/{serial}", before=before,
            after={"blocked": blocked},
        )  # fmt: skip
        return device

    def release(self, actor: Actor, model: DeviceModel, serial: str) -> None:
        """Free a serial for re-provisioning: the next device key that asks gets it (revision+1)."""
        device = self.device(model.brand_id, model.name, serial)
        before = {"device-key": device.device_key_id, "revision": device.serial_revision}
        device.device_key_id = RELEASED
        self._session.flush()
        self._audit.record(
            actor, "device.release", store_id=model.store_id,
            target=f"{model.brand_id}/{model.name}/{serial}", before=before,
        )  # fmt: skip

    def signing_log(
        self,
        model_ids: Iterable[int],
        *,
        search: str | None = None,
        after_id: int = 0,
        limit: int = 100,
        since: datetime | None = None,
    ) -> list[SigningLogEntry]:
        """Issued serials of the given models, oldest first, searchable by serial or key id."""
        models = list(
            self._session.scalars(select(DeviceModel).where(DeviceModel.id.in_(list(model_ids))))
        )
        if not models:
            return []
        q = select(SigningLogEntry).where(
            SigningLogEntry.id > after_id,
            _of_models(SigningLogEntry.brand_id, SigningLogEntry.model, models),
        )
        if search:
            pattern = f"%{search}%"
            q = q.where(
                SigningLogEntry.serial.like(pattern) | SigningLogEntry.device_key_id.like(pattern)
            )
        if since:
            q = q.where(SigningLogEntry.at >= since)
        return list(self._session.scalars(q.order_by(SigningLogEntry.id).limit(limit)))

    def devices(
        self,
        models: Iterable[DeviceModel],
        *,
        search: str | None = None,
        after_id: int = 0,
        limit: int = 100,
    ) -> list[Device]:
        """Registered devices of the given models, by id, searchable by serial."""
        models = list(models)
        if not models:
            return []
        q = select(Device).where(
            Device.id > after_id, _of_models(Device.brand_id, Device.model, models)
        )
        if search:
            q = q.where(Device.serial.like(f"%{search}%"))
        return list(self._session.scalars(q.order_by(Device.id).limit(limit)))


def _of_models(
    brand_column: InstrumentedAttribute[str],
    model_column: InstrumentedAttribute[str],
    models: list[DeviceModel],
) -> ColumnElement[bool]:
    """Rows (devices, log entries) that belong to one of ``models``."""
    return or_(*(and_(brand_column == m.brand_id, model_column == m.name) for m in models))


def _check_allowed(model: Enrolment, serial: str, key_id: str, entry: Any) -> None:
    """Refuse ``serial`` unless the model's policy and its allow-list ``entry`` admit ``key_id``.

    ``entry`` is the allow-list row's (device_key_id,) or None when the serial has none.
    """
    if model.open_enrolment and not model.require_key_allowlist:
        return
    if entry is None:
        raise NotPreauthorised(f"serial {serial!r} is not pre-authorised for this model")
    allowed_key = entry[0]
    if (model.require_key_allowlist or allowed_key) and allowed_key != key_id:
        raise NotPreauthorised("this device key is not pre-authorised for that serial")


def _check_serial(serial: str) -> None:
    if not _SERIAL_RE.fullmatch(serial):
        raise InvalidSerialRequest(
            "serials are 1-128 letters, digits and . _ : + - (starting with a letter or digit)"
        )


def _serial_from_body(body: bytes) -> str | None:
    # Canonical's vault convention: the gadget puts "serial: X" in registration.body
    match = _BODY_SERIAL_RE.search(body.decode("utf-8", "replace"))
    return match.group(1) if match else None


def _decode_serial_request(
    data: bytes, expected_model: asserts.Model | None = None
) -> tuple[asserts.SerialRequest, asserts.Assertion | None]:
    """The stream's serial-request and the model sent after it (None: none sent).

    snapd sends the serial-request then the model, written by the encoder whose
    bytes :func:`asserts.encode_stream` reproduces: when the stream is exactly
    that with ``expected_model`` (the cached current model), the model is not
    decoded again. Any other stream is decoded in full.
    """
    try:
        if expected_model is not None:
            first = next(asserts.decode_stream(data), None)
            if isinstance(first, asserts.SerialRequest) and data == asserts.encode_stream(
                [first, expected_model]
            ):
                return first, expected_model
        members = list(asserts.decode_stream(data))
    except asserts.DecodeError as e:
        raise InvalidSerialRequest(f"cannot decode the request: {e}") from e
    if not members or not isinstance(members[0], asserts.SerialRequest):
        raise InvalidSerialRequest("the stream must start with a serial-request")
    if len(members) > 2:
        raise InvalidSerialRequest("re-registration (remodelling) is not supported yet")
    return members[0], members[1] if len(members) == 2 else None
