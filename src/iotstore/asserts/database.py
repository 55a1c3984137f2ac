"""A trust database like snapd's: trusted roots, full checks on add, lookup by primary key."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Protocol

from ._base import Assertion, GenericAssertion
from ._checks import format_time
from ._codec import verify_signature
from ._quote import go_v, q
from .account import AccountKey
from .errors import CheckError, NotFoundError, RevisionError, SignatureError, UnsupportedFormatError

__all__ = ["Backstore", "Database", "MemoryBackstore"]


class Backstore(Protocol):
    """Where a database keeps accepted assertions (memory here; SQL in ``iotstore.assertdb``).

    Implementations keep every revision they accept and return the exact
    assertion objects (or bytes) they were given.
    """

    def put(self, assertion: Assertion) -> None:
        """Store a new revision; raise :class:`RevisionError` unless newer than the current."""
        ...

    def get(
        self, type_name: str, primary_key: tuple[str, ...], max_format: int | None = None
    ) -> Assertion:
        """Newest revision (whose format is at most ``max_format``); raise NotFoundError."""
        ...

    def search(
        self, type_name: str, headers: dict[str, str], max_format: int | None = None
    ) -> list[Assertion]:
        """Newest revision of every assertion of the type whose string headers match."""
        ...


def revision_error(used: int, current: int) -> RevisionError:
    """snapd's wording for a refused revision."""
    if used == current:
        message = f"revision {used} is already the current revision"
    else:
        message = f"revision {used} is older than current revision {current}"
    return RevisionError(message, used=used, current=current)


class MemoryBackstore:
    """An in-process :class:`Backstore`, safe for use from several threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._revisions: dict[tuple[str, tuple[str, ...]], list[Assertion]] = {}

    def put(self, assertion: Assertion) -> None:
        """Append a strictly newer revision."""
        key = (assertion.type_name, assertion.primary_key)
        with self._lock:
            revisions = self._revisions.setdefault(key, [])
            if revisions and revisions[-1].revision >= assertion.revision:
                raise revision_error(assertion.revision, revisions[-1].revision)
            revisions.append(assertion)

    def get(
        self, type_name: str, primary_key: tuple[str, ...], max_format: int | None = None
    ) -> Assertion:
        """Newest acceptable revision."""
        with self._lock:
            revisions = list(self._revisions.get((type_name, primary_key), ()))
        for a in reversed(revisions):
            if max_format is None or a.format <= max_format:
                return a
        raise NotFoundError(type_name, primary_key)

    def search(
        self, type_name: str, headers: dict[str, str], max_format: int | None = None
    ) -> list[Assertion]:
        """Linear scan: fine for tests and the CLI."""
        with self._lock:
            keys = [k for k in self._revisions if k[0] == type_name]
        found: list[Assertion] = []
        for _, pk in keys:
            try:
                a = self.get(type_name, pk, max_format)
            except NotFoundError:
                continue
            if all(a.headers.get(n) == v for n, v in headers.items()):
                found.append(a)
        return found


def _utcnow() -> datetime:
    return datetime.now(UTC)


class Database:
    """Assertions checked against a trusted set, as snapd's ``asserts.Database`` does.

    ``trusted`` holds the root ``account`` and ``account-key`` assertions; they
    are accepted without checks and can never be replaced. Every other
    assertion is checked in full by :meth:`check` before :meth:`add` stores it.
    """

    def __init__(
        self,
        trusted: Iterable[Assertion],
        backstore: Backstore | None = None,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self._trusted: dict[tuple[str, tuple[str, ...]], Assertion] = {}
        for a in trusted:
            if a.type_name not in ("account", "account-key"):
                raise CheckError(f"trusted set may hold only accounts and account-keys: {a.ref}")
            self._trusted[(a.type_name, a.primary_key)] = a
        self._trusted_accounts = frozenset(pk[0] for (t, pk) in self._trusted if t == "account")
        self._store: Backstore = backstore if backstore is not None else MemoryBackstore()
        self._clock = clock

    # -- lookups ------------------------------------------------------------------

    @property
    def trusted(self) -> list[Assertion]:
        """The trusted set, accounts first (the order devices want them in)."""
        return sorted(self._trusted.values(), key=lambda a: a.type_name != "account")

    def is_trusted_account(self, account_id: str) -> bool:
        """Whether ``account_id`` is an account of the trusted set."""
        return account_id in self._trusted_accounts

    def find(
        self, type_name: str, primary_key: tuple[str, ...], max_format: int | None = None
    ) -> Assertion:
        """The trusted or stored assertion; raises :class:`NotFoundError`."""
        trusted = self._trusted.get((type_name, primary_key))
        if trusted is not None:
            return trusted
        return self._store.get(type_name, primary_key, max_format)

    def find_many(self, type_name: str, headers: dict[str, str]) -> list[Assertion]:
        """Every trusted or stored assertion of the type with matching string headers."""
        found = [
            a
            for (t, _), a in self._trusted.items()
            if t == type_name and all(a.headers.get(n) == v for n, v in headers.items())
        ]
        return found + self._store.search(type_name, headers)

    def find_account_key(self, authority_id: str, key_id: str) -> AccountKey:
        """The account-key with id ``key_id``, which must belong to ``authority_id``."""
        try:
            key = self.find("account-key", (key_id,))
        except NotFoundError as e:
            raise CheckError(
                f"no matching public key {q(key_id)} for signature by {q(authority_id)}"
            ) from e
        assert isinstance(key, AccountKey)
        if key.account_id != authority_id:
            raise CheckError(
                "error finding matching public key for signature: found public key "
                f"{q(key_id)} from {q(key.account_id)} but expected it from: {authority_id}"
            )
        return key

    # -- checking and adding --------------------------------------------------------

    def check(self, assertion: Assertion) -> None:
        """Run every check snapd runs before accepting an assertion.

        Raises :class:`CheckError` (or its subclasses), :class:`SignatureError`.
        """
        t = assertion.TYPE
        if isinstance(assertion, GenericAssertion):
            raise CheckError(f"unsupported assertion type: {q(assertion.type_name)}")
        if assertion.format > t.max_format:
            raise UnsupportedFormatError(
                f"proposed {q(t.name)} assertion has format {assertion.format} but "
                f"{t.max_format} is latest supported"
            )
        now = self._clock()
        signing_key: AccountKey | None = None
        if t.no_authority:
            key = assertion.self_signing_key()
            if key is None:
                raise CheckError(
                    f"cannot check no-authority assertion type {q(t.name)} without its device key"
                )
            verify_signature(assertion, key)
        else:
            signing_key = self.find_account_key(assertion.authority_id, assertion.sign_key_id)
            if not signing_key.validity.contains(now):
                raise CheckError(
                    f"assertion is signed with expired public key {q(signing_key.key_id)} "
                    f"from {q(assertion.authority_id)}: {_time_mismatch(now, signing_key)}"
                )
            verify_signature(assertion, signing_key.public_key)
            when = assertion.timestamp
            if when is not None and not signing_key.validity.contains(when):
                raise CheckError(_outside_validity(assertion, when, signing_key))
        assertion.check_consistency(self, signing_key)

    def add(self, assertion: Assertion) -> None:
        """Check and store an assertion (a new revision replaces the current one).

        Raises :class:`CheckError`, :class:`SignatureError` or :class:`RevisionError`
        for an equal or older revision.
        """
        if not assertion.primary_key:
            raise CheckError(f"{q(assertion.type_name)} assertions cannot be stored")
        self.check(assertion)
        if (assertion.type_name, assertion.primary_key) in self._trusted:
            raise CheckError(
                f"cannot add {q(assertion.type_name)} assertion with primary key clashing with a "
                f"trusted assertion: {go_v(assertion.primary_key)}"
            )
        self._store.put(assertion)

    def add_many(self, assertions: Iterable[Assertion]) -> dict[Assertion, Exception]:
        """Add in any order, retrying until no progress; return what stayed refused and why.

        Members already present with the same revision count as added.
        """
        pending = list(assertions)
        errors: dict[Assertion, Exception] = {}
        progress = True
        while pending and progress:
            progress = False
            errors = {}
            retry: list[Assertion] = []
            for a in pending:
                try:
                    self.add(a)
                    progress = True
                except RevisionError as e:
                    if e.used != e.current or self.find(a.type_name, a.primary_key) != a:
                        errors[a] = e
                except (CheckError, SignatureError) as e:
                    errors[a] = e
                    retry.append(a)
            pending = retry
        return errors


def _time_mismatch(now: datetime, key: AccountKey) -> str:
    """snapd's timeMismatchMsg for a single current time (no earliest/latest range).

    Times are printed in UTC with Go's RFC 3339 layout, which is what snapd
    prints for keys and clocks in UTC.
    """
    reason = f"current time is {format_time(now)}"
    since = format_time(key.validity.since)
    if key.validity.until is not None:
        return f"{reason} but key is valid during [{since}, {format_time(key.validity.until)})"
    return f"{reason} but key is valid from {since}"


def _outside_validity(assertion: Assertion, when: datetime, key: AccountKey) -> str:
    def go(t: datetime) -> str:
        return t.strftime("%Y-%m-%d %H:%M:%S +0000 UTC")

    validity = f'key valid since "{go(key.validity.since)}"'
    if key.validity.until is not None:
        validity += f' until "{go(key.validity.until)}"'
    return (
        f'{assertion.type_name} assertion timestamp "{go(when)}" outside of signing key '
        f"validity ({validity})"
    )
