"""Errors of the publishing domain; each is one of the kinds in :mod:`iotstore.errors`."""

from __future__ import annotations

from iotstore.errors import Conflict, Forbidden, InvalidInput, NotFound, Refused

__all__ = [
    "ChannelError",
    "NotReleasable",
    "RevisionNotFound",
    "SnapAccessDenied",
    "SnapNameTaken",
    "SnapNotFound",
    "SnapRuleViolation",
    "UploadNotFound",
]


class SnapNotFound(NotFound):
    """No such snap (or not in the store asked about)."""


class SnapNameTaken(Conflict):
    """The name is registered already (names are unique per deployment)."""


class SnapRuleViolation(InvalidInput):
    """A name, type, track or collaborator rule refuses the input."""


class SnapAccessDenied(Forbidden):
    """The account's roles do not allow this action on this snap."""


class UploadNotFound(NotFound):
    """No such upload for this account (uploads of other accounts are not revealed)."""


class RevisionNotFound(NotFound):
    """The snap has no such revision."""


class ChannelError(InvalidInput):
    """A channel name is malformed or names a track the snap does not have."""


class NotReleasable(Refused):
    """The revision cannot be released now (pending review, rejected, wrong state)."""
