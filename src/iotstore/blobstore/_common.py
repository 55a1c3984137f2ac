"""Rules every blob store shares: keys, times, the orphan sweep."""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta

from .errors import InvalidBlobKey
from .interfaces import BlobEntry, Referenced

DEFAULT_PART_SIZE = 8 << 20  # S3 multipart part size, also the S3 ingest batch

_KEY = re.compile(r"[0-9a-f]{32}")
_PREFIX = re.compile(r"[0-9a-f]{0,32}")


def new_key() -> str:
    """A fresh key: 128 random bits as 32 lower-case hex digits."""
    return secrets.token_hex(16)


def is_key(value: str) -> bool:
    """Whether ``value`` is shaped like a key this package hands out."""
    return _KEY.fullmatch(value) is not None


def check_key(key: object) -> str:
    """Return ``key`` if it is a well-formed blob key; raise :class:`InvalidBlobKey`.

    Keys become file names and object names, so nothing else gets that far.
    """
    if not isinstance(key, str) or _KEY.fullmatch(key) is None:
        raise InvalidBlobKey(key)
    return key


def check_prefix(prefix: object) -> str:
    """Return ``prefix`` if some key could start with it; raise :class:`InvalidBlobKey`."""
    if not isinstance(prefix, str) or _PREFIX.fullmatch(prefix) is None:
        raise InvalidBlobKey(prefix)
    return prefix


def check_read(start: int, length: int) -> None:
    """Raise ValueError for a negative offset or length (a caller's bug)."""
    if start < 0 or length < 0:
        raise ValueError("start and length must not be negative")


def check_max_size(max_size: int) -> None:
    """Raise ValueError for a negative size limit (a caller's bug)."""
    if max_size < 0:
        raise ValueError("max_size must not be negative")


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


def predicate(referenced: Referenced) -> Callable[[str], bool]:
    """``referenced`` as a function of the key."""
    if callable(referenced):
        return referenced
    return referenced.__contains__


def sweep(
    entries: Iterable[BlobEntry],
    delete: Callable[[str], None],
    referenced: Referenced,
    older_than: timedelta,
) -> int:
    """Delete every entry created before now - ``older_than`` that is not referenced.

    The cutoff is taken before listing, so a blob written during the sweep is
    never old enough. Returns the number deleted.
    """
    if older_than < timedelta(0):
        raise ValueError("older_than must not be negative")
    cutoff = utcnow() - older_than
    in_use = predicate(referenced)
    removed = 0
    for entry in entries:
        if entry.created < cutoff and not in_use(entry.key):
            delete(entry.key)
            removed += 1
    return removed
