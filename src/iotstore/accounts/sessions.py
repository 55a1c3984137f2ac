"""Dashboard sessions: a random id in an HttpOnly cookie, its hash and a CSRF token in the table."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from sqlalchemy import delete
from sqlalchemy.orm import Session

from iotstore.db import utcnow

from .models import Account, WebSession

__all__ = ["SessionService"]


def _hash(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


class SessionService:
    """Start, find and end dashboard sessions."""

    def __init__(self, session: Session, lifetime: timedelta) -> None:
        self._session = session
        self._lifetime = lifetime

    def start(self, account: Account) -> tuple[str, WebSession]:
        """A new session: the cookie value (shown once) and its row (with the CSRF token)."""
        session_id = secrets.token_urlsafe(32)
        row = WebSession(
            id_hash=_hash(session_id),
            account_id=account.id,
            csrf_token=secrets.token_urlsafe(32),
            expires_at=utcnow() + self._lifetime,
        )
        self._session.add(row)
        self._session.flush()
        return session_id, row

    def find(self, session_id: str, now: datetime | None = None) -> WebSession | None:
        """The live session behind a cookie value, if any."""
        if not session_id or len(session_id) > 128:
            return None
        row = self._session.get(WebSession, _hash(session_id))
        if row is None or row.expires_at <= (now or utcnow()):
            return None
        return row

    def end(self, session_id: str) -> None:
        """Log out: the session is gone."""
        self._session.execute(delete(WebSession).where(WebSession.id_hash == _hash(session_id)))
