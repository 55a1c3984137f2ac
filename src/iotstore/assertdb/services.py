"""An :class:`~iotstore.asserts.Backstore` over the ``assertions`` table.

It stores the bytes it was given and decodes them again on the way out, so a
device is served exactly what the signer produced, never a re-encoding.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from iotstore import asserts

from .models import StoredAssertion

__all__ = ["SqlBackstore", "trust_database"]


def _key(primary_key: tuple[str, ...]) -> str:
    # primary-key values never contain '/', so the join is unambiguous
    return "/".join(primary_key)


class SqlBackstore:
    """Assertion revisions in the database; the caller's session owns the transaction."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def put(self, assertion: asserts.Assertion) -> None:
        """Store a strictly newer revision (flush only)."""
        current = self._newest(assertion.type_name, assertion.primary_key, None)
        if current is not None and current.revision >= assertion.revision:
            raise asserts.revision_error(assertion.revision, current.revision)
        self._session.add(
            StoredAssertion(
                type_name=assertion.type_name,
                primary_key=_key(assertion.primary_key),
                revision=assertion.revision,
                format=assertion.format,
                data=assertion.to_bytes(),
                string_headers={k: v for k, v in assertion.headers.items() if isinstance(v, str)},
            )
        )
        self._session.flush()

    def _newest(
        self, type_name: str, primary_key: tuple[str, ...], max_format: int | None
    ) -> StoredAssertion | None:
        query = select(StoredAssertion).where(
            StoredAssertion.type_name == type_name,
            StoredAssertion.primary_key == _key(primary_key),
        )
        if max_format is not None:
            query = query.where(StoredAssertion.format <= max_format)
        return self._session.scalars(
            query.order_by(StoredAssertion.revision.desc()).limit(1)
        ).first()

    def get(
        self, type_name: str, primary_key: tuple[str, ...], max_format: int | None = None
    ) -> asserts.Assertion:
        """Newest revision with format at most ``max_format``."""
        row = self._newest(type_name, primary_key, max_format)
        if row is None:
            raise asserts.NotFoundError(type_name, primary_key)
        return asserts.decode(row.data)

    def search(
        self, type_name: str, headers: dict[str, str], max_format: int | None = None
    ) -> list[asserts.Assertion]:
        """Newest revision of each matching assertion."""
        query = select(StoredAssertion).where(StoredAssertion.type_name == type_name)
        if max_format is not None:
            query = query.where(StoredAssertion.format <= max_format)
        newest: dict[str, StoredAssertion] = {}
        for row in self._session.scalars(query):
            if all(row.string_headers.get(k) == v for k, v in headers.items()):
                seen = newest.get(row.primary_key)
                if seen is None or seen.revision < row.revision:
                    newest[row.primary_key] = row
        return [asserts.decode(row.data) for row in newest.values()]

    def revisions(self, type_name: str, primary_key: tuple[str, ...]) -> Iterable[int]:
        """Every stored revision number, ascending."""
        return self._session.scalars(
            select(StoredAssertion.revision)
            .where(
                StoredAssertion.type_name == type_name,
                StoredAssertion.primary_key == _key(primary_key),
            )
            .order_by(StoredAssertion.revision)
        ).all()


def trust_database(
    session: Session,
    trusted: list[asserts.Assertion],
    clock: Callable[[], datetime] | None = None,
) -> asserts.Database:
    """A trust database over the session's assertions table."""
    if clock is None:
        return asserts.Database(trusted, SqlBackstore(session))
    return asserts.Database(trusted, SqlBackstore(session), clock=clock)
