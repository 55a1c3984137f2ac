"""The assertions table: every accepted revision, kept as the exact bytes received."""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from iotstore.db import Base, TimestampMixin

__all__ = ["StoredAssertion"]


class StoredAssertion(Base, TimestampMixin):
    """One revision of one assertion."""

    __tablename__ = "assertions"

    id: Mapped[int] = mapped_column(primary_key=True)
    type_name: Mapped[str] = mapped_column(String(64))
    primary_key: Mapped[str] = mapped_column(String(1024))
    revision: Mapped[int]
    format: Mapped[int]
    data: Mapped[bytes] = mapped_column(LargeBinary)
    # top-level string headers, for find_many (e.g. account-keys of one account)
    string_headers: Mapped[dict[str, Any]] = mapped_column(JSON)

    # lookups by (type_name, primary_key) use this unique index's prefix
    __table_args__ = (UniqueConstraint("type_name", "primary_key", "revision"),)
