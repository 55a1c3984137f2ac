"""The ``store`` assertion: a store's identity, operator and friendly stores."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, ClassVar

from . import _checks, _golang
from ._base import Assertion, AssertionType, Ref, register
from ._quote import q
from .errors import CheckError, DecodeError, NotFoundError

if TYPE_CHECKING:
    from ._dbview import DatabaseView
    from .account import AccountKey

__all__ = ["Store"]


def _check_url(headers: _checks.M) -> str | None:
    """snapd's checkStoreURL: empty means none; else an http(s) URL with a host, by url.Parse."""
    value = _checks.optional_string(headers, "url")
    if not value:
        return None
    what = '"url" header'
    try:
        url = _golang.parse_url(value)
    except _golang.GoError as e:
        raise DecodeError(f"{what} must be a valid URL: {value}", "url") from e
    if url.scheme not in ("http", "https"):
        raise DecodeError(f'{what} scheme must be "https" or "http": {value}', "url")
    if not url.host:
        raise DecodeError(f"{what} must have a host: {value}", "url")
    if url.raw_query:
        raise DecodeError(f"{what} must not have a query: {value}", "url")
    if url.fragment:
        raise DecodeError(f"{what} must not have a fragment: {value}", "url")
    return value


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
        # in snapd's order (assembleStore), which decides the message when several fail
        operator_id = _checks.not_empty_string(headers, "operator-id")
        url = _check_url(headers)
        return {
            "store": _checks.not_empty_string(headers, "store"),
            "operator_id": operator_id,
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
