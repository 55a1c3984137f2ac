"""The ``store`` assertion: a store's identity, operator and friendly stores."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, ClassVar
from urllib.parse import urlsplit

from . import _checks
from ._base import Assertion, AssertionType, Ref, register
from ._quote import q
from .errors import CheckError, DecodeError, NotFoundError

if TYPE_CHECKING:
    from ._dbview import DatabaseView
    from .account import AccountKey

__all__ = ["Store"]


def _check_url(value: str) -> None:
    what = '"url" header'
    try:
        parts = urlsplit(value)
    except ValueError as e:
        raise DecodeError(f"{what} must be a valid URL: {value}", "url") from e
    if parts.scheme not in ("http", "https"):
        raise DecodeError(f'{what} scheme must be "https" or "http": {value}', "url")
    if not parts.netloc:
        raise DecodeError(f"{what} must have a host: {value}", "url")
    if parts.query:
        raise DecodeError(f"{what} must not have a query: {value}", "url")
    if parts.fragment:
        raise DecodeError(f"{what} must not have a fragment: {value}", "url")


@register
@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class Store(Assertion):
    """A store known to devices: its id, operator and the stores it befriends."""

    TYPE: ClassVar[AssertionType] = AssertionType("store", ("store",))

    store: str
    operator_id: str
    url: str | None
    friendly_stores: tuple[str, ...]
    location: str | None
    signed_on: datetime

    @classmethod
    def _fields_from_headers(cls, headers: _checks.M, body: bytes) -> dict[str, object]:
        url = _checks.optional_string(headers, "url") or None
        if url is not None:
            _check_url(url)
        return {
            "store": _checks.not_empty_string(headers, "store"),
            "operator_id": _checks.not_empty_string(headers, "operator-id"),
            "url": url,
            "friendly_stores": _checks.string_list(headers, "friendly-stores"),
            "location": _checks.optional_string(headers, "location"),
            "signed_on": _checks.rfc3339(headers, "timestamp"),
        }

    @property
    def timestamp(self) -> datetime:
        """The ``timestamp`` header."""
        return self.signed_on

    def prerequisites(self) -> tuple[Ref, ...]:
        """The operator's account."""
        return (Ref("account", (self.operator_id,)),)

    def check_consistency(self, db: DatabaseView, signing_key: AccountKey | None) -> None:
        """Issued by a trusted authority, for a known operator."""
        if not db.is_trusted_account(self.authority_id):
            raise CheckError(
                f"store assertion {q(self.store)} is not signed by a directly trusted authority: "
                f"{self.authority_id}"
            )
        try:
            db.find("account", (self.operator_id,))
        except NotFoundError as e:
            raise CheckError(
                f"store assertion {q(self.store)} does not have a matching account assertion for "
                f"the operator {q(self.operator_id)}"
            ) from e
