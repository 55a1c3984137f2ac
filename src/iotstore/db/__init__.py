"""SQLAlchemy base, engines and the unit of work shared by every domain package."""

from .base import Base, TimestampMixin, utcnow
from .engine import (
    ConflictError,
    DatabaseError,
    InvalidDataError,
    SqlDatabase,
    make_engine,
    sqlite_url,
    translated_errors,
)

__all__ = [
    "Base",
    "ConflictError",
    "DatabaseError",
    "InvalidDataError",
    "SqlDatabase",
    "TimestampMixin",
    "make_engine",
    "sqlite_url",
    "translated_errors",
    "utcnow",
]
