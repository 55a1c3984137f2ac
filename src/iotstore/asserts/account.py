"""The account family: ``account``, ``account-key`` and ``account-key-request``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, ClassVar

from . import _checks
from ._base import Assertion, AssertionType, Ref, register
from ._quote import q
from .errors import CheckError, DecodeError, InvalidKeyError, NotFoundError
from .keys import PublicKey

if TYPE_CHECKING:
    from ._dbview import DatabaseView

__all__ = ["Account", "AccountKey", "AccountKeyRequest"]


def _require_account(db: DatabaseView, account_id: str, what: str) -> None:
    try:
        db.find("account", (account_id,))
    except NotFoundError as e:
        raise CheckError(
            f"{what} for {q(account_id)} does not have a matching account assertion"
        ) from e


def _require_trusted_authority(db: DatabaseView, a: Assertion, what: str) -> None:
    if not db.is_trusted_account(a.authority_id):
        raise CheckError(f"{what} is not signed by a directly trusted authority: {a.authority_id}")


@register
@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class Account(Assertion):
    """An account (a brand, a publisher, the root): issued by a trusted authority."""

    TYPE: ClassVar[AssertionType] = AssertionType("account", ("account-id",), timestamped=True)

    account_id: str
    display_name: str
    validation: str
    username: str | None
    signed_on: datetime

    @classmethod
    def _fields_from_headers(cls, headers: _checks.M, body: bytes) -> dict[str, object]:
        # in snapd's order (assembleAccount), which decides the message when several fail
        display_name = _checks.not_empty_string(headers, "display-name")
        validation = _checks.not_empty_string(headers, "validation")
        signed_on = _checks.rfc3339(headers, "timestamp")
        return {
            "account_id": _checks.not_empty_string(headers, "account-id"),
            "display_name": display_name,
            # snapd reads the legacy "certified" as "verified"
            "validation": "verified" if validation == "certified" else validation,
            "username": _checks.optional_string(headers, "username"),
            "signed_on": signed_on,
        }

    @property
    def timestamp(self) -> datetime:
        """The ``timestamp`` header."""
        return self.signed_on

    def check_consistency(self, db: DatabaseView, signing_key: AccountKey | None) -> None:
        """Accounts are issued only by a trusted authority."""
        _require_trusted_authority(db, self, f"account assertion for {q(self.account_id)}")


@dataclass(frozen=True, slots=True)
class Validity:
    """A key's ``since``/``until`` window; ``until`` None means open-ended."""

    since: datetime
    until: datetime | None

    def contains(self, when: datetime) -> bool:
        """``since <= when < until``, as snapd checks it."""
        return self.since <= when and (self.until is None or when < self.until)


def _validity(headers: _checks.M) -> Validity:
    since = _checks.rfc3339(headers, "since")
    until = _checks.optional_rfc3339(headers, "until")
    if until is not None and until < since:
        raise DecodeError("'until' time cannot be before 'since' time", "until")
    return Validity(since, until)


def _public_key(headers: _checks.M, body: bytes, id_header: str) -> PublicKey:
    key_id = _checks.not_empty_string(headers, id_header)
    try:
        key = PublicKey.decode(body)
    except InvalidKeyError as e:
        raise DecodeError(str(e)) from e
    if key.id != key_id:
        raise DecodeError("public key does not match provided key id", id_header)
    return key


@register
@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class AccountKey(Assertion):
    """A public key of an account, certified by a trusted authority."""

    TYPE: ClassVar[AssertionType] = AssertionType("account-key", ("public-key-sha3-384",))

    account_id: str
    name: str | None
    validity: Validity
    public_key: PublicKey

    @classmethod
    def _fields_from_headers(cls, headers: _checks.M, body: bytes) -> dict[str, object]:
        account_id = _checks.not_empty_string(headers, "account-id")
        name = None
        if "name" in headers:
            name = _checks.string_matches(headers, "name", _checks.KEY_NAME_RE)
        return {
            "account_id": account_id,
            "name": name,
            "validity": _validity(headers),
            "public_key": _public_key(headers, body, "public-key-sha3-384"),
        }

    @property
    def key_id(self) -> str:
        """The ``public-key-sha3-384`` header."""
        return self.public_key.id

    def prerequisites(self) -> tuple[Ref, ...]:
        """The account the key belongs to."""
        return (Ref("account", (self.account_id,)),)

    def check_consistency(self, db: DatabaseView, signing_key: AccountKey | None) -> None:
        """Trusted issuer, known account, and one id per key name within an account."""
        what = f"account-key assertion for {q(self.account_id)}"
        _require_trusted_authority(db, self, what)
        _require_account(db, self.account_id, "account-key assertion")
        if self.name is None:
            return
        for other in db.find_many("account-key", {"account-id": self.account_id}):
            assert isinstance(other, AccountKey)
            if other.name == self.name and other.key_id != self.key_id:
                raise CheckError(
                    f"{what} with ID {q(self.key_id)} has the same name {q(self.name)} "
                    f"as existing ID {q(other.key_id)}"
                )


@register
@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class AccountKeyRequest(Assertion):
    """A request to register a key, signed by that key (``snap export-key --account``)."""

    TYPE: ClassVar[AssertionType] = AssertionType(
        "account-key-request", ("public-key-sha3-384",), no_authority=True
    )

    account_id: str
    name: str
    validity: Validity
    public_key: PublicKey

    @classmethod
    def _fields_from_headers(cls, headers: _checks.M, body: bytes) -> dict[str, object]:
        return {
            "account_id": _checks.not_empty_string(headers, "account-id"),
            "name": _checks.string_matches(headers, "name", _checks.KEY_NAME_RE),
            "validity": _validity(headers),
            "public_key": _public_key(headers, body, "public-key-sha3-384"),
        }

    @property
    def key_id(self) -> str:
        """The ``public-key-sha3-384`` header."""
        return self.public_key.id

    def self_signing_key(self) -> PublicKey:
        """The key in the body must have signed the request."""
        return self.public_key

    def prerequisites(self) -> tuple[Ref, ...]:
        """The account the key is for."""
        return (Ref("account", (self.account_id,)),)

    def check_consistency(self, db: DatabaseView, signing_key: AccountKey | None) -> None:
        """The account must be known."""
        _require_account(db, self.account_id, "account-key-request assertion")
