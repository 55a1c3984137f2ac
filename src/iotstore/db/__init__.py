"""SQLAlchemy base, engines and the unit of work shared by every domain package."""

from .base import Base, TimestampMixin, utcnow
from .engine import ConflictError, DatabaseError, SqlDatabase, make_engine, sqlite_url

__all__ = [
    "Base",
    "ConflictError",
    "DatabaseError",
    "SqlDatabase",
    "TimestampMixin",
    "make_engine",
    "sqlite_url",
    "utcnow",
]
