"""Errors of the serial vault. ``code`` values are what devices and their operators see."""

from __future__ import annotations

from iotstore.errors import Conflict, Forbidden, InvalidInput, NotFound, Refused, Unavailable

__all__ = [
    "DeviceBlocked",
    "InvalidApiKey",
    "InvalidNonce",
    "InvalidSerialRequest",
    "ModelNotFound",
    "NotPreauthorised",
    "SerialInUse",
    "SigningPending",
    "VaultRuleViolation",
]


class InvalidApiKey(InvalidInput):
    """Missing, unknown or revoked API key, or one of another model."""

    code = "invalid-api-key"


class InvalidNonce(InvalidInput):
    """The request-id is unknown, expired or already used."""

    code = "invalid-nonce"


class InvalidSerialRequest(InvalidInput):
    """The posted stream is not a well-formed, correctly signed serial-request (+ model)."""

    code = "invalid-serial-request"


class ModelNotFound(NotFound):
    """No such model registered in the vault."""

    code = "unknown-model"


class SerialInUse(Conflict):
    """The serial is bound to another device key and the model does not allow re-registration."""

    code = "serial-in-use"


class DeviceBlocked(Forbidden):
    """An administrator blocked this device."""

    code = "device-blocked"


class NotPreauthorised(Forbidden):
    """The model only admits pre-authorised serials (or device keys) and this one is not."""

    code = "not-preauthorised"


class VaultRuleViolation(InvalidInput):
    """An administrator's request breaks a vault rule."""


class KeyGuard(Refused):
    """A key cannot be disabled while it is the model's only active serial key."""


class SigningPending(Unavailable):
    """The serial key's store (an HSM, the key database) failed for now; the request was kept.

    The device-service answers 202: snapd then posts the same serial-request
    again after 60 s, for as long as it gets 202, and the vault keeps its
    request-id valid meanwhile.
    """

    code = "signing-pending"
