"""First-boot registration: snapd's device-service protocol, the vault's hot path.

A device asks for a request-id, then posts a serial-request + model stream;
the vault answers with the serial plus the signing key's account-key and
account, so a device without a store session can verify it. Everything a
registration writes happens in one transaction, after signing: a killed
process leaves no half-recorded serial.

:class:`DeviceRegistrar` runs the protocol's statements as
:class:`~iotstore.db.prepared.PreparedStatement` on any connection. Built
without the assertion database (``trust=None``, over a
:meth:`~iotstore.db.SqlDatabase.driver_unit`) it serves the common case on
statements alone and raises :class:`NeedsAssertions` where the database is
needed (a model not yet cached, a retry's stored serial, a model sent that is
not the current one); the caller then runs the registration again in full.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import re
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, NoReturn, cast

from sqlalchemy import Connection, Table, and_, bindparam, delete, exists, insert, select, update

from iotstore import asserts
from iotstore.assertdb.models import StoredAssertion
from iotstore.db import Base, utcnow
from iotstore.db.prepared import DriverConnection, PreparedStatement
from iotstore.keystore import HSMError, KeyStorageError, KeyStore

from ._signing import Enrolment, Signing, enrolment, signing_cache
from .errors import (
    DeviceBlocked,
    InvalidApiKey,
    InvalidNonce,
    InvalidSerialRequest,
    ModelNotFound,
    NotPreauthorised,
    SerialInUse,
    SigningPending,
)
from .models import AllowedDevice, ApiKey, Device, DeviceModel, RequestId, SigningLogEntry

__all__ = [
    "MAX_SERIAL_STREAM",
    "MIN_DEVICE_KEY_BITS",
    "NONCE_LIFETIME",
    "RELEASED",
    "DeviceRegistrar",
    "NeedsAssertions",
    "RegistrarUnits",
    "Registration",
    "SerialPlan",
    "api_key_hash",
    "check_serial",
    "register_in_steps",
    "sign_and_record",
    "sign_serial",
]

NONCE_LIFETIME = timedelta(minutes=10)
RELEASED = "released"  # device-key id of a serial freed for re-provisioning
MIN_DEVICE_KEY_BITS = 2048
MAX_SERIAL_STREAM = 256 * 1024
_SERIAL_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:+-]{0,127}")
_BODY_SERIAL_RE = re.compile(r"^serial:\s*['\"]?([^'\"\s]+)['\"]?\s*$", re.MULTILINE)


# The registration path's statements, built once with bound parameters and run
# on the driver's cursor (db.prepared: compiled once per dialect).
def _table(model: type[Base]) -> Table:
    return cast(Table, model.__table__)


_requests = RequestId.__table__.c
_SWEEP_REQUEST_IDS = PreparedStatement(
    delete(_table(RequestId)).where(_requests.expires_at < bindparam("now"))
)
_INSERT_REQUEST_ID = PreparedStatement(insert(_table(RequestId)))
_consume_request_id = (
    update(_table(RequestId))
    .where(
        _requests.id == bindparam("request_id"),
        _requests.used_at.is_(None),
        _requests.expires_at > bindparam("now"),
    )
    .values(used_at=bindparam("now"))
)
_CONSUME_REQUEST_ID = PreparedStatement(_consume_request_id)
# Un-consume and extend a request-id whose signing was postponed (202: snapd retries it).
_POSTPONE_REQUEST_ID = PreparedStatement(
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
_REGISTRATION_STATE = PreparedStatement(select(
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
))  # fmt: skip
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
_CONSUME_AND_RECHECK = PreparedStatement(_consume_request_id.returning(
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
))  # fmt: skip
_INSERT_DEVICE = PreparedStatement(insert(_table(Device)))
_REBIND_DEVICE = PreparedStatement(
    update(_table(Device))
    .where(_devices.id == bindparam("device_id"))
    .values(device_key_id=bindparam("new_key_id"), serial_revision=bindparam("new_revision"))
)
_INSERT_ASSERTION = PreparedStatement(insert(_table(StoredAssertion)))
_INSERT_LOG_ENTRY = PreparedStatement(insert(_table(SigningLogEntry)))
_ALLOWED_KEY = PreparedStatement(select(_allowed.device_key_id).where(_THE_ALLOWED))


def api_key_hash(secret: str) -> str:
    """How an API key is stored: its SHA-256, hex."""
    return hashlib.sha256(secret.encode()).hexdigest()


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
    no database lock); recorded by :meth:`DeviceRegistrar.record_registration`.
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
    assert signing.signer is not None  # checked by DeviceRegistrar._decide
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


class NeedsAssertions(Exception):
    """A registrar without the assertion database met a case that needs it: run it in full."""


class DeviceRegistrar:
    """The device-service protocol over one transaction. Writes; the caller commits."""

    def __init__(
        self,
        connection: Connection | DriverConnection,
        keystore: KeyStore,
        trust: asserts.Database | None,
    ) -> None:
        self._connection = connection
        self._keystore = keystore
        self._trust_db = trust

    @property
    def _trust(self) -> asserts.Database:
        if self._trust_db is None:
            raise NeedsAssertions
        return self._trust_db

    def new_request_id(self, api_key: str | None) -> str:
        """A fresh single-use request-id (the API key must be valid)."""
        connection = self._connection
        self._enrolment(api_key)
        now = utcnow()
        # expired ids go on each call (as Canonical's vault does): one indexed DELETE
        _SWEEP_REQUEST_IDS.execute(connection, {"now": now})
        value = secrets.token_urlsafe(32)
        _INSERT_REQUEST_ID.execute(
            connection, {"id": value, "created_at": now, "expires_at": now + NONCE_LIFETIME}
        )
        return value

    def _enrolment(self, api_key: str | None) -> Enrolment:
        # One statement: the key, its model's policy, the active serial key and the
        # revisions the signing cache is keyed by (see _signing.py).
        if not api_key:
            raise InvalidApiKey("missing api-key header")
        if len(api_key) > 200:
            raise InvalidApiKey("unknown or revoked API key")
        found = enrolment(self._connection, api_key_hash(api_key))
        if found is None or found[0]:
            raise InvalidApiKey("unknown or revoked API key")
        return found[1]

    def _consume_request_id(self, request_id: str) -> None:
        # One conditional UPDATE, not read-then-write: two registrations racing on
        # one request-id must not both see it unused (PostgreSQL, read committed).
        consumed = 0
        if len(request_id) <= 64:
            consumed = _CONSUME_REQUEST_ID.execute(
                self._connection, {"request_id": request_id, "now": utcnow()}
            )
        if consumed != 1:
            raise InvalidNonce("request-id is invalid, expired or already used")

    def register(self, api_key: str | None, data: bytes, address: str | None) -> Registration:
        """Turn a device's serial-request (+ model) stream into a signed serial, in one transaction.

        The web edge runs the same steps (:func:`register_in_steps`) in
        transactions of their own, so no write lock is held while RSA runs.
        """
        return register_in_steps(
            lambda _write: contextlib.nullcontext(self), api_key, data, address
        )

    def check_registration(self, api_key: str | None, data: bytes) -> SerialPlan:
        """Every check of a registration that needs no write; raises the 4xx a device gets.

        Raises the key store's transient errors (HSMError, KeyStorageError) when the
        serial key cannot be loaded: the caller answers with :meth:`postpone_request`.
        """
        connection = self._connection
        enrolled = self._enrolment(api_key)
        if len(data) > MAX_SERIAL_STREAM:
            raise InvalidSerialRequest("the request is too large")
        cache = signing_cache(self._keystore)
        cached = cache.peek(enrolled)
        if cached is None and self._trust_db is None:
            raise NeedsAssertions  # loading the signing material reads assertions
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
        signing = cached if cached is not None else cache.get(enrolled, self._trust, self._keystore)
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
        (state,) = _REGISTRATION_STATE.rows(
            connection,
            {"request_id": rid if len(rid) <= 64 else "", "now": utcnow(),
             "brand_id": enrolled.brand_id, "model": enrolled.model, "serial": serial},
        )  # fmt: skip
        if not state.usable:
            raise InvalidNonce("request-id is invalid, expired or already used")
        check_serial(serial)
        if not (enrolled.open_enrolment and not enrolled.require_key_allowlist):
            entries = _ALLOWED_KEY.rows(
                connection, {"model_id": enrolled.model_id, "serial": serial}
            )
            entry = entries[0] if entries else None
            _check_allowed(enrolled, serial, request.device_key.id, entry)
        plan = SerialPlan(
            enrolled, signing, request, serial, None, 0, key_hash=api_key_hash(api_key or "")
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
        connection = self._connection
        enrolled, request_id = plan.enrolled, plan.request.request_id
        rows = _CONSUME_AND_RECHECK.rows(
            connection,
            {"request_id": request_id if len(request_id) <= 64 else "", "now": utcnow(),
             "brand_id": enrolled.brand_id, "model": enrolled.model, "serial": plan.serial,
             "key_hash": plan.key_hash, "model_id": enrolled.model_id},
        )  # fmt: skip
        if not rows:
            raise InvalidNonce("request-id is invalid, expired or already used")
        state = rows[0]
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
        connection: Connection | DriverConnection,
    ) -> Registration:
        model, serial, signing = plan.enrolled, plan.serial, plan.signing
        assert signing.account_key is not None
        now = utcnow()
        # Stored without Database.add's re-check: the serial was signed a moment ago
        # by the active key, whose account-key (cached, revision-checked) is valid
        # now, and the authority is the brand. The revision follows the device row;
        # the table's unique (type, key, revision) refuses a concurrent duplicate.
        _INSERT_ASSERTION.execute(
            connection,
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
            _INSERT_DEVICE.execute(
                connection,
                {
                    "brand_id": model.brand_id, "model": model.model, "serial": serial,
                    "device_key_id": key_id, "serial_revision": revision, "blocked": False,
                    "created_at": now,
                },
            )  # fmt: skip
        else:
            _REBIND_DEVICE.execute(
                connection,
                {"device_id": device_id, "new_key_id": key_id, "new_revision": revision},
            )
        _INSERT_LOG_ENTRY.execute(
            connection,
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
        _POSTPONE_REQUEST_ID.execute(
            self._connection,
            {"request_id": request_id, "expires_at": utcnow() + NONCE_LIFETIME},
        )
        return SigningPending(f"the serial signing key is unavailable for now ({cause})")

    def _chain(self, serial: asserts.Serial) -> list[asserts.Assertion]:
        key = self._trust.find("account-key", (serial.sign_key_id,))
        account = self._trust.find("account", (serial.authority_id,))
        return [key, account]


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


def check_serial(serial: str) -> None:
    """Refuse a serial snapd or the signing log could not carry."""
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


# A registrar over a transaction of its own per call (write=True: one that may write);
# or the same registrar every time, for one transaction throughout.
RegistrarUnits = Callable[[bool], contextlib.AbstractContextManager[DeviceRegistrar]]


def register_in_steps(
    units: RegistrarUnits, api_key: str | None, data: bytes, address: str | None
) -> Registration:
    """One registration: check (a read unit), sign (in none), record (a write unit).

    What the write unit commits is all or nothing. Raises the vault's 4xx errors,
    and :class:`SigningPending` when the key store fails for now: the request-id's
    new expiry is then all a write unit committed, so snapd's retry can use it.
    """
    try:
        with units(False) as registrar:
            plan = registrar.check_registration(api_key, data)
    except _TRANSIENT_KEYSTORE_ERRORS as e:
        _postpone(units, data, e)
    return sign_and_record(units, plan, data, address)


def sign_and_record(
    units: RegistrarUnits, plan: SerialPlan, data: bytes, address: str | None
) -> Registration:
    """The last two steps of :func:`register_in_steps`, for a checked ``plan``."""
    try:
        signed = sign_serial(plan)
    except _TRANSIENT_KEYSTORE_ERRORS as e:
        _postpone(units, data, e)
    postponed: SigningPending | None = None
    with units(True) as registrar:
        try:
            return registrar.record_registration(plan, signed, address)
        except SigningPending as e:
            postponed = e  # raised once the unit has committed the request-id's new expiry
    assert postponed is not None
    raise postponed


def _postpone(units: RegistrarUnits, data: bytes, cause: Exception) -> NoReturn:
    with units(True) as registrar:
        pending = registrar.postpone_request(data, cause)
    raise pending from cause
