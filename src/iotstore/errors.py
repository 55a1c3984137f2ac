"""The error kinds every domain package raises; each transport renders them in its own shape.

Domain packages subclass these (``stores.errors``, ``accounts.errors``...);
``web/errors.py`` maps a kind to an HTTP status once for all of them.
"""

from __future__ import annotations

__all__ = [
    "Conflict",
    "Forbidden",
    "InvalidInput",
    "IotstoreError",
    "NotFound",
    "Refused",
    "Unauthenticated",
    "Unavailable",
]


class IotstoreError(Exception):
    """Root of the errors a user can act on; ``code`` is stable for clients."""

    code = "error"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class InvalidInput(IotstoreError):
    """The request is malformed or a value breaks a rule (``field`` names it)."""

    code = "invalid-input"


class NotFound(IotstoreError):
    """The thing asked for does not exist, or is not visible to the caller."""

    code = "not-found"


class Conflict(IotstoreError):
    """A name or id is taken, or the change races another one."""

    code = "conflict"


class Refused(IotstoreError):
    """The change is valid in form but refused in the current state (last admin, key in use)."""

    code = "refused"


class Unauthenticated(IotstoreError):
    """No valid credentials: missing, malformed, expired or revoked."""

    code = "unauthorized"


class Forbidden(IotstoreError):
    """Valid credentials without the permission the action needs."""

    code = "forbidden"


class Unavailable(IotstoreError):
    """A service the request needs (mail relay, HSM) failed; retrying later may work."""

    code = "unavailable"
