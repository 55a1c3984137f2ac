"""The serial vault's rules: models, serial keys, API keys, devices and system users.

Registration itself (snapd's device-service protocol) lives in
:mod:`.registration`; :class:`VaultService` runs it over its own transaction.
"""

from __future__ import annotations

import csv
import io
import re
import secrets
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, func, or_, select
from sqlalchemy.engine import Connection
from sqlalchemy.orm import InstrumentedAttribute, Session

from iotstore import asserts
from iotstore.accounts.brands import BrandService
from iotstore.accounts.errors import AccountRuleViolation
from iotstore.accounts.models import BrandKey
from iotstore.db import utcnow
from iotstore.keystore import KeyStore
from iotstore.stores.audit import Actor, AuditLog
from iotstore.stores.models import Store

from .errors import KeyGuard, ModelNotFound, SigningPending, VaultRuleViolation
from .models import AllowedDevice, ApiKey, Device, DeviceModel, SerialKey, SigningLogEntry
from .registration import (
    NONCE_LIFETIME,
    RELEASED,
    DeviceRegistrar,
    Registration,
    SerialPlan,
    api_key_hash,
    check_serial,
    sign_serial,
)

__all__ = [
    "NONCE_LIFETIME",
    "Registration",
    "SerialPlan",
    "VaultService",
    "model_dict",
    "sign_serial",
]


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
            model_id=model.id, label=label[:120], prefix=secret[:12], key_hash=api_key_hash(secret)
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
            check_serial(serial)
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

    # -- the device-service protocol (see .registration) -------------------------------------

    def registrar(self) -> DeviceRegistrar:
        """The device-service protocol over this service's transaction."""
        return DeviceRegistrar(self._conn(), self._keystore, self._trust)

    def new_request_id(self, api_key: str | None) -> str:
        """A fresh single-use request-id (the API key must be valid)."""
        return self.registrar().new_request_id(api_key)

    def register(self, api_key: str | None, data: bytes, address: str | None) -> Registration:
        """A serial for a serial-request (+ model) stream, in this transaction."""
        return self.registrar().register(api_key, data, address)

    def check_registration(self, api_key: str | None, data: bytes) -> SerialPlan:
        """Every check of a registration that needs no write (:class:`DeviceRegistrar`)."""
        return self.registrar().check_registration(api_key, data)

    def record_registration(
        self, plan: SerialPlan, signed: asserts.Serial | None, address: str | None
    ) -> Registration:
        """Consume the request-id and record ``signed``, or refuse (:class:`DeviceRegistrar`)."""
        return self.registrar().record_registration(plan, signed, address)

    def postpone_request(self, data: bytes, cause: Exception) -> SigningPending:
        """Keep the stream's request-id usable for snapd's 202 retry."""
        return self.registrar().postpone_request(data, cause)

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
