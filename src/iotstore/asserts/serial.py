"""The device identity family: ``serial``, ``serial-request``, ``device-session-request``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, ClassVar

from . import _checks
from ._base import Assertion, AssertionType, register
from ._quote import q
from .errors import CheckError, DecodeError, InvalidKeyError, NotFoundError
from .keys import PublicKey

if TYPE_CHECKING:
    from ._dbview import DatabaseView
    from .account import AccountKey

__all__ = ["DeviceSessionRequest", "Serial", "SerialRequest", "check_model_name"]


def check_model_name(headers: _checks.M, name: str = "model") -> str:
    """Model names: alphanumerics with single inner hyphens, no upper case."""
    model = _checks.string_matches(headers, name, _checks.MODEL_NAME_RE)
    if model != model.lower():
        raise DecodeError(f'"{name}" header cannot contain uppercase letters', name)
    return model


def _device_key(headers: _checks.M) -> PublicKey:
    encoded = _checks.not_empty_string(headers, "device-key")
    try:
        return PublicKey.decode(encoded)
    except InvalidKeyError as e:
        raise DecodeError(str(e), "device-key") from e


@register
@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class Serial(Assertion):
    """A device's identity: brand, model, serial and its device key, signed by a vault."""

    TYPE: ClassVar[AssertionType] = AssertionType(
        "serial", ("brand-id", "model", "serial"), timestamped=True
    )

    brand_id: str
    model: str
    serial: str
    device_key: PublicKey
    signed_on: datetime

    @classmethod
    def _fields_from_headers(cls, headers: _checks.M, body: bytes) -> dict[str, object]:
        brand_id = _checks.string_matches(headers, "brand-id", _checks.ACCOUNT_ID_RE)
        model = check_model_name(headers)
        key = _device_key(headers)
        key_id = _checks.not_empty_string(headers, "device-key-sha3-384")
        if key.id != key_id:
            raise DecodeError("device key does not match provided key id", "device-key-sha3-384")
        return {
            "brand_id": brand_id,
            "model": model,
            "serial": _checks.not_empty_string(headers, "serial"),
            "device_key": key,
            "signed_on": _checks.rfc3339(headers, "timestamp"),
        }

    @property
    def timestamp(self) -> datetime:
        """The ``timestamp`` header."""
        return self.signed_on

    def check_consistency(self, db: DatabaseView, signing_key: AccountKey | None) -> None:
        """A serial signed by someone else than the brand needs the model's ``serial-authority``."""
        if self.authority_id == self.brand_id:
            return
        allowed: tuple[str, ...] = ()
        try:
            model = db.find("model", ("16", self.brand_id, self.model))
            value = model.header("serial-authority")
            if isinstance(value, tuple):
                allowed = tuple(v for v in value if isinstance(v, str))
        except NotFoundError:
            pass
        if self.authority_id not in allowed:
            raise CheckError(
                f"serial with authority {q(self.authority_id)} different from brand "
                # snapd's text, doubled "to" included (serial_asserts.go)
                f"{q(self.brand_id)} without model assertion with serial-authority set to to "
                "allow for them"
            )


@register
@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class SerialRequest(Assertion):
    """What a device sends its serial vault at first boot, signed by its new device key."""

    TYPE: ClassVar[AssertionType] = AssertionType("serial-request", (), no_authority=True)

    brand_id: str
    model: str
    request_id: str
    serial: str | None
    device_key: PublicKey

    @classmethod
    def _fields_from_headers(cls, headers: _checks.M, body: bytes) -> dict[str, object]:
        brand_id = _checks.not_empty_string(headers, "brand-id")
        model = check_model_name(headers)
        request_id = _checks.not_empty_string(headers, "request-id")
        serial = _checks.optional_string(headers, "serial")
        key = _device_key(headers)
        # snapd checks this while decoding: the request must be signed by the key it carries.
        if key.id != headers.get("sign-key-sha3-384"):
            raise DecodeError(
                "device key does not match included signing key id", "sign-key-sha3-384"
            )
        return {
            "brand_id": brand_id,
            "model": model,
            "request_id": request_id,
            "serial": serial or None,
            "device_key": key,
        }

    def self_signing_key(self) -> PublicKey:
        """The device key in the request made the signature."""
        return self.device_key


@register
@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class DeviceSessionRequest(Assertion):
    """A device's request for a store session, signed by its device key."""

    TYPE: ClassVar[AssertionType] = AssertionType(
        "device-session-request", ("brand-id", "model", "serial"), no_authority=True
    )

    brand_id: str
    model: str
    serial: str
    nonce: str
    signed_on: datetime

    @classmethod
    def _fields_from_headers(cls, headers: _checks.M, body: bytes) -> dict[str, object]:
        return {
            "brand_id": _checks.not_empty_string(headers, "brand-id"),
            "model": check_model_name(headers),
            "serial": _checks.not_empty_string(headers, "serial"),
            "nonce": _checks.not_empty_string(headers, "nonce"),
            "signed_on": _checks.rfc3339(headers, "timestamp"),
        }

    @property
    def timestamp(self) -> datetime:
        """The device's clock when it signed."""
        return self.signed_on
