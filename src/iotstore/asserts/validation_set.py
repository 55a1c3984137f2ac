"""The ``validation-set`` assertion: a brand's pinned or forbidden snaps (sequence-forming)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar

from . import _checks
from ._base import Assertion, AssertionType, register
from ._names import NameRule
from ._quote import q
from .errors import DecodeError
from .model import is_valid_snap_name

__all__ = ["ValidationSet", "ValidationSetSnap"]

_NAME_RE = NameRule("[a-z0-9](?:-?[a-z0-9])*", "[a-z0-9][-a-z0-9]*")  # validValidationSetName
PRESENCES = ("required", "optional", "invalid")


@dataclass(frozen=True, slots=True)
class ValidationSetSnap:
    """One snap constraint of a validation set."""

    name: str
    snap_id: str
    presence: str
    revision: int | None


def _snap(entry: _checks.M) -> ValidationSetSnap:
    """snapd's checkValidationSetSnap (errors name no header: the caller sets "snaps")."""
    name = _checks.not_empty_string(entry, "name", "of snap")
    if not is_valid_snap_name(name):
        raise DecodeError(f"invalid snap name {q(name)}")
    what = f"of snap {q(name)}"
    snap_id = _checks.string_matches(entry, "id", _checks.SNAP_ID_RE, what)
    presence = _checks.optional_string(entry, "presence", what) or ""
    if presence and presence not in PRESENCES:
        raise DecodeError(f"presence {what} must be one of {'|'.join(PRESENCES)}")
    revision = None
    if "revision" in entry:
        revision = _checks.mandatory_int(entry, "revision", what)
        if revision < 1:
            raise DecodeError(f'"revision" {what} must be >=1: {revision}')
    if revision is not None and presence == "invalid":
        raise DecodeError(
            f"cannot specify revision {what} at the same time as stating its presence is invalid"
        )
    return ValidationSetSnap(name, snap_id, presence or "required", revision)


def _snaps(headers: _checks.M) -> list[ValidationSetSnap]:
    """snapd's checkValidationSetSnaps: each entry, then unique names and ids."""
    snaps: list[ValidationSetSnap] = []
    names: set[str] = set()
    ids: dict[str, str] = {}
    for entry in _checks.list_of_maps(headers, "snaps"):
        snap = _snap(entry)
        if snap.name in names:
            raise DecodeError(f"cannot list the same snap {q(snap.name)} multiple times")
        names.add(snap.name)
        if snap.snap_id in ids:
            raise DecodeError(
                f"cannot specify the same snap id {q(snap.snap_id)} multiple times, "
                f"specified for snaps {q(ids[snap.snap_id])} and {q(snap.name)}"
            )
        ids[snap.snap_id] = snap.name
        snaps.append(snap)
    return snaps


@register
@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class ValidationSet(Assertion):
    """A numbered set of snap constraints, signed by the account that owns it."""

    TYPE: ClassVar[AssertionType] = AssertionType(
        "validation-set", ("series", "account-id", "name", "sequence"), sequence_forming=True
    )

    series: str
    account_id: str
    name: str
    sequence: int
    snaps: tuple[ValidationSetSnap, ...]
    signed_on: datetime

    @classmethod
    def _fields_from_headers(cls, headers: _checks.M, body: bytes) -> dict[str, object]:
        authority, account = headers.get("authority-id"), headers.get("account-id")
        if authority != account:
            raise DecodeError(
                "authority-id and account-id must match, validation-set assertions are expected "
                f"to be signed by the issuer account: {q(authority)} != {q(account)}",
                "account-id",
            )
        name = _checks.string_matches(headers, "name", _NAME_RE)
        sequence = _checks.mandatory_int(headers, "sequence")
        if sequence < 1:
            raise DecodeError(f'"sequence" must be >=1: {sequence}', "sequence")
        if "snaps" not in headers:
            raise DecodeError('"snaps" header is mandatory', "snaps")
        wrong = '"snaps" header must be a list of maps'
        if not isinstance(headers["snaps"], tuple):
            raise DecodeError(wrong, "snaps")
        with _checks.within("snaps"):
            snaps = _snaps(headers)
        assert isinstance(account, str)
        return {
            "series": _checks.not_empty_string(headers, "series"),
            "account_id": account,
            "name": name,
            "sequence": sequence,
            "snaps": tuple(snaps),
            "signed_on": _checks.rfc3339(headers, "timestamp"),
        }

    @property
    def timestamp(self) -> datetime:
        """The ``timestamp`` header."""
        return self.signed_on

    @property
    def sequence_key(self) -> tuple[str, str, str]:
        """(series, account-id, name): the sequence this assertion is a member of."""
        return (self.series, self.account_id, self.name)
