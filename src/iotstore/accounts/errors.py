"""Errors of the accounts domain."""

from __future__ import annotations

from iotstore.errors import Conflict, InvalidInput, NotFound, Refused, Unauthenticated

__all__ = [
    "AccountExists",
    "AccountNotFound",
    "AccountRuleViolation",
    "BadCredentials",
    "BrandNotFound",
    "KeyInUse",
]


class AccountNotFound(NotFound):
    """No such account."""


class AccountExists(Conflict):
    """The email, username or id is taken."""


class AccountRuleViolation(InvalidInput):
    """A value breaks an account, brand or key rule."""


class BadCredentials(Unauthenticated):
    """Wrong password, or a token that is malformed, expired, revoked or forged."""


class BrandNotFound(NotFound):
    """No such brand, or no such brand key."""


class KeyInUse(Refused):
    """A brand key still signs models that devices rely on."""
