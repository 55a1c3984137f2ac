"""Device sessions: how a registered device proves itself to the store.

snapd (``store/auth.go``) asks for a nonce, signs a ``device-session-request``
with its device key and posts it with its serial and model. The store checks
the whole chain against the deployment's root and answers with an opaque
session, here a macaroon bound to the serial, the device key and the model's
store, with an expiry. Verifying a session needs no database row (any app
process of a scale-out deployment can do it); blocking a device takes effect
on the next request because the web layer checks the device's state there.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta
from threading import Lock
from typing import Any

from pymacaroons import Macaroon, Verifier
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from iotstore import asserts
from iotstore.db import utcnow
from iotstore.errors import Forbidden, InvalidInput, Unauthenticated
from iotstore.stores.models import Store

from .errors import DeviceBlocked
from .models import Device, DeviceSessionNonce

__all__ = [
    "NONCE_LIFETIME",
    "SESSION_LIFETIME",
    "DeviceIdentity",
    "DeviceSessionService",
    "InvalidSessionRequest",
    "SessionNeedsRefresh",
    "SessionRefused",
    "SessionVerifier",
]

NONCE_LIFETIME = timedelta(minutes=5)
SESSION_LIFETIME = timedelta(hours=24)
# the device signs with its own clock; allow for drift both ways
CLOCK_SKEW = timedelta(minutes=10)
MAX_SESSION_REQUEST = 64 * 1024
MAX_SESSION_LENGTH = 4096
_RELEASED = "released"  # the vault's marker for a serial freed for re-provisioning

_DEVICE = "iotstore-device = "
_KEY = "iotstore-device-key = "
_STORE = "iotstore-store = "
_EXPIRES = "iotstore-expires = "


class InvalidSessionRequest(InvalidInput):
    """The session request is malformed or does not verify."""

    code = "invalid-session-request"


class SessionRefused(Forbidden):
    """The request verifies but this store does not serve the device."""

    code = "device-refused"


class SessionNeedsRefresh(Unauthenticated):
    """The device session is expired, unknown or for another store: snapd gets a new one."""

    code = "device-authorization-needs-refresh"


@dataclass(frozen=True)
class DeviceIdentity:
    """Who a verified device session speaks for."""

    brand_id: str
    model: str
    serial: str
    device_key_id: str
    store_id: str
    expires_at: datetime

    @property
    def key(self) -> str:
        """``brand/model/serial``: the stable key of the device (progressive buckets use it)."""
        return f"{self.brand_id}/{self.model}/{self.serial}"


def _root_key(secret: bytes, identifier: str) -> bytes:
    return hmac.new(secret, b"device-session:" + identifier.encode(), hashlib.sha256).digest()


class SessionVerifier:
    """Checks device-session macaroons; no database needed, results cached per process.

    The cache only remembers verifications (keyed by the exact session text,
    bounded, and honouring expiry), so it never answers differently from a
    fresh check.
    """

    def __init__(self, secret: bytes, *, cache_size: int = 4096) -> None:
        self._secret = secret
        self._cache: OrderedDict[str, DeviceIdentity] = OrderedDict()
        self._cache_size = cache_size
        self._lock = Lock()

    def issue(
        self,
        *,
        brand_id: str,
        model: str,
        serial: str,
        device_key_id: str,
        store_id: str,
        location: str,
        now: datetime | None = None,
        lifetime: timedelta = SESSION_LIFETIME,
    ) -> str:
        """A new session for the device (macaroon, URL-safe base64: never contains ``"``)."""
        identifier = secrets.token_hex(16)
        expires = (now or utcnow()) + lifetime
        macaroon = Macaroon(
            location=location, identifier=identifier, key=_root_key(self._secret, identifier)
        )
        macaroon.add_first_party_caveat(_DEVICE + json.dumps([brand_id, model, serial]))
        macaroon.add_first_party_caveat(_KEY + device_key_id)
        macaroon.add_first_party_caveat(_STORE + store_id)
        macaroon.add_first_party_caveat(_EXPIRES + asserts.format_time(expires))
        serialized: str = macaroon.serialize()
        return serialized

    def verify(self, session: str, now: datetime | None = None) -> DeviceIdentity:
        """The identity a session speaks for; raise :class:`SessionNeedsRefresh` otherwise."""
        now = now or utcnow()
        with self._lock:
            cached = self._cache.get(session)
            if cached is not None:
                self._cache.move_to_end(session)
        if cached is None:
            cached = self._verify(session)
            with self._lock:
                self._cache[session] = cached
                if len(self._cache) > self._cache_size:
                    self._cache.popitem(last=False)
        if now >= cached.expires_at:
            raise SessionNeedsRefresh("the device session has expired")
        return cached

    def _verify(self, session: str) -> DeviceIdentity:
        if not session or len(session) > MAX_SESSION_LENGTH:
            raise SessionNeedsRefresh("malformed device session")
        try:
            macaroon = Macaroon.deserialize(session)
            identifier = macaroon.identifier
            if isinstance(identifier, bytes):
                identifier = identifier.decode("ascii")
        except Exception as e:
            # pymacaroons parses untrusted bytes and fails with whatever its parser hits
            raise SessionNeedsRefresh("malformed device session") from e
        values: dict[str, str] = {}

        def satisfy(caveat: str) -> bool:
            for prefix in (_DEVICE, _KEY, _STORE, _EXPIRES):
                if caveat.startswith(prefix) and prefix not in values:
                    values[prefix] = caveat[len(prefix) :]
                    return True
            return False  # unknown or repeated caveats deny

        verifier = Verifier()
        verifier.satisfy_general(satisfy)
        try:
            verifier.verify(macaroon, _root_key(self._secret, identifier))
            brand_id, model, serial = json.loads(values[_DEVICE])
            expires = asserts.parse_time(values[_EXPIRES], "expires")
            return DeviceIdentity(
                brand_id=str(brand_id),
                model=str(model),
                serial=str(serial),
                device_key_id=values[_KEY],
                store_id=values[_STORE],
                expires_at=expires,
            )
        except Exception as e:  # untrusted input to pymacaroons and json, as above
            raise SessionNeedsRefresh("the device session does not verify") from e


def _decode(value: Any, kind: type[asserts.Assertion], name: str) -> Any:
    if not isinstance(value, str) or not value:
        raise InvalidSessionRequest(f"{name} is missing", field=name)
    try:
        decoded = asserts.decode(value.encode("utf-8"))
    except (asserts.DecodeError, UnicodeError) as e:
        raise InvalidSessionRequest(f"cannot decode {name}: {e}", field=name) from e
    if not isinstance(decoded, kind):
        raise InvalidSessionRequest(
            f"{name} is a {decoded.type_name!r} assertion, not {kind.TYPE.name!r}", field=name
        )
    return decoded


class DeviceSessionService:
    """Nonces and sessions over the caller's transaction (flushes; the caller commits)."""

    def __init__(
        self,
        session: Session,
        trust: asserts.Database,
        verifier: SessionVerifier,
        location: str,
        *,
        lifetime: timedelta = SESSION_LIFETIME,
    ) -> None:
        self._session = session
        self._trust = trust
        self._verifier = verifier
        self._location = location
        self._lifetime = lifetime

    def new_nonce(self, now: datetime | None = None) -> str:
        """A fresh single-use nonce; expired ones are cleared on the way."""
        now = now or utcnow()
        self._session.execute(
            delete(DeviceSessionNonce).where(DeviceSessionNonce.expires_at < now - NONCE_LIFETIME)
        )
        nonce = secrets.token_urlsafe(32)
        self._session.add(DeviceSessionNonce(id=nonce, expires_at=now + NONCE_LIFETIME))
        self._session.flush()
        return nonce

    def _consume_nonce(self, nonce: str, now: datetime) -> None:
        # one UPDATE decides: two requests racing for one nonce cannot both win
        if len(nonce) > 64:
            raise InvalidSessionRequest("unknown nonce", field="nonce")
        used = self._session.execute(
            update(DeviceSessionNonce)
            .where(
                DeviceSessionNonce.id == nonce,
                DeviceSessionNonce.used_at.is_(None),
                DeviceSessionNonce.expires_at > now,
            )
            .values(used_at=now)
        )
        if getattr(used, "rowcount", 0) != 1:
            raise InvalidSessionRequest("unknown, expired or already used nonce", field="nonce")

    def open(self, body: bytes, now: datetime | None = None) -> tuple[str, DeviceIdentity]:
        """Check a session request (snapd's JSON body) and issue the device's session.

        Raises :class:`InvalidSessionRequest` for a malformed or unverifiable
        request, :class:`SessionRefused` when this store does not serve the
        model, :class:`~iotstore.devices.errors.DeviceBlocked` for a blocked
        device.
        """
        now = now or utcnow()
        if len(body) > MAX_SESSION_REQUEST:
            raise InvalidSessionRequest("the session request is too large")
        try:
            data = json.loads(body)
        except (ValueError, UnicodeError) as e:
            raise InvalidSessionRequest("the body must be a JSON object") from e
        if not isinstance(data, dict):
            raise InvalidSessionRequest("the body must be a JSON object")
        request: asserts.DeviceSessionRequest = _decode(
            data.get("device-session-request"), asserts.DeviceSessionRequest,
            "device-session-request",
        )  # fmt: skip
        serial: asserts.Serial = _decode(
            data.get("serial-assertion"), asserts.Serial, "serial-assertion"
        )
        model: asserts.Model = _decode(
            data.get("model-assertion"), asserts.Model, "model-assertion"
        )
        self._check_chain(request, serial, model, now)
        store_id = self._check_device(serial, model)
        self._consume_nonce(request.nonce, now)
        identity = DeviceIdentity(
            brand_id=serial.brand_id,
            model=serial.model,
            serial=serial.serial,
            device_key_id=serial.device_key.id,
            store_id=store_id,
            expires_at=now + self._lifetime,
        )
        token = self._verifier.issue(
            brand_id=identity.brand_id, model=identity.model, serial=identity.serial,
            device_key_id=identity.device_key_id, store_id=store_id, location=self._location,
            now=now, lifetime=self._lifetime,
        )  # fmt: skip
        return token, identity

    def _check_chain(
        self,
        request: asserts.DeviceSessionRequest,
        serial: asserts.Serial,
        model: asserts.Model,
        now: datetime,
    ) -> None:
        if (serial.brand_id, serial.model) != (model.brand_id, model.model):
            raise InvalidSessionRequest("the serial is not of the model sent", field="serial")
        if (request.brand_id, request.model, request.serial) != (
            serial.brand_id,
            serial.model,
            serial.serial,
        ):
            raise InvalidSessionRequest(
                "the device-session-request does not match the serial", field="serial"
            )
        try:
            # the model and the serial must chain to the deployment's root through
            # registered brand keys (the trust database holds them)
            self._trust.check(model)
            self._trust.check(serial)
        except asserts.AssertsError as e:
            raise InvalidSessionRequest(f"the device's assertions do not verify: {e}") from e
        try:
            asserts.verify_signature(request, serial.device_key)
        except asserts.AssertsError as e:
            raise InvalidSessionRequest(
                "the device-session-request is not signed by the serial's device key"
            ) from e
        if abs(request.signed_on - now) > CLOCK_SKEW:
            raise InvalidSessionRequest(
                "the device-session-request timestamp is too far from the store's time",
                field="timestamp",
            )

    def _check_device(self, serial: asserts.Serial, model: asserts.Model) -> str:
        store_header = model.store
        if not store_header:
            raise SessionRefused("models without a store header are not served by this store")
        store = self._session.get(Store, store_header)
        if store is None or store.brand_id != model.brand_id:
            raise SessionRefused(f"store {store_header!r} is not a store of this brand here")
        device = self._session.scalars(
            select(Device).where(
                Device.brand_id == serial.brand_id,
                Device.model == serial.model,
                Device.serial == serial.serial,
            )
        ).first()
        if device is not None:
            if device.blocked:
                raise DeviceBlocked(f"device {serial.serial!r} is blocked")
            if device.device_key_id != serial.device_key.id:
                # the vault re-issued (or released) this serial: this copy is superseded
                what = "released" if device.device_key_id == _RELEASED else "re-issued"
                raise SessionRefused(f"serial {serial.serial!r} has been {what}")
        return store.id

    def verify(self, session: str) -> DeviceIdentity:
        """The identity of a session; raises :class:`SessionNeedsRefresh`."""
        return self._verifier.verify(session)

    def check_not_blocked(self, identity: DeviceIdentity) -> None:
        """Raise :class:`~iotstore.devices.errors.DeviceBlocked` when the vault blocked it."""
        blocked = self._session.scalar(
            select(Device.blocked).where(
                Device.brand_id == identity.brand_id,
                Device.model == identity.model,
                Device.serial == identity.serial,
                Device.blocked.is_(True),
            )
        )
        if blocked:
            raise DeviceBlocked(f"device {identity.serial!r} is blocked")
