"""Errors of the stores domain."""

from __future__ import annotations

from iotstore.errors import Conflict, InvalidInput, NotFound, Refused

__all__ = ["LastAdministrator", "StoreExists", "StoreNotFound", "StoreRuleViolation"]


class StoreNotFound(NotFound):
    """No such store (or not visible to the caller)."""


class StoreExists(Conflict):
    """A store with that id exists already."""


class StoreRuleViolation(InvalidInput):
    """A store, role or curation rule refuses the input."""


class LastAdministrator(Refused):
    """A store must keep at least one administrator."""
