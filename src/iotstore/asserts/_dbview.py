"""What a family's consistency check may ask of the database."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from ._base import Assertion


class DatabaseView(Protocol):
    """Read-only view of a trust database, passed to ``Assertion.check_consistency``."""

    def find(self, type_name: str, primary_key: tuple[str, ...]) -> Assertion:
        """The stored (or trusted) assertion; raises :class:`NotFoundError`."""
        ...

    def is_trusted_account(self, account_id: str) -> bool:
        """Whether ``account_id`` is an account of the trusted set."""
        ...

    def find_many(self, type_name: str, headers: dict[str, str]) -> list[Assertion]:
        """Every stored or trusted assertion of the type whose string headers match."""
        ...
