"""API tokens as macaroons: caveats restrict stores, permissions and expiry.

Each token's root key is derived from the deployment secret and the token id,
so the database never holds a key that could mint tokens. A holder may add
more first-party caveats to narrow a token before handing it on; every caveat
must hold, so restrictions only ever intersect.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pymacaroons import Macaroon, Verifier
from sqlalchemy import select
from sqlalchemy.orm import Session

from iotstore.asserts import format_time, parse_time
from iotstore.asserts.errors import DecodeError
from iotstore.db import utcnow

from .errors import AccountNotFound, AccountRuleViolation, BadCredentials
from .models import Account, ApiToken

__all__ = ["TokenService", "VerifiedToken", "token_dict"]

_STORES = "iotstore-stores = "
_PERMISSIONS = "iotstore-permissions = "
_EXPIRES = "iotstore-expires = "
MAX_TOKEN_LENGTH = 8192
_TOKEN_ID_RE = re.compile(r"[0-9a-f]{32}")


@dataclass(frozen=True)
class VerifiedToken:
    """A token that verified: its owner and the restrictions every caveat adds up to."""

    token: ApiToken
    account: Account
    stores: frozenset[str] | None
    permissions: frozenset[str] | None
    expires_at: datetime | None

    def carries(self, permission: str) -> bool:
        """Whether the permission caveats leave ``permission`` to this token."""
        return self.permissions is None or permission in self.permissions

    def reaches(self, store_chain: Iterable[str]) -> bool:
        """Whether the store caveats name a store of ``store_chain`` (a store and its ancestors)."""
        return self.stores is None or any(s in self.stores for s in store_chain)


def token_dict(token: ApiToken) -> dict[str, Any]:
    """A token's public description (never the macaroon itself)."""

    def t(when: datetime | None) -> str | None:
        return format_time(when) if when else None

    return {
        "id": token.id,
        "description": token.description,
        "stores": token.stores,
        "permissions": token.permissions,
        "created-at": t(token.created_at),
        "expires-at": t(token.expires_at),
        "revoked-at": t(token.revoked_at),
        "last-used-at": t(token.last_used_at),
    }


class TokenService:
    """Issue, verify, list and revoke tokens."""

    def __init__(self, session: Session, secret: bytes, location: str) -> None:
        self._session = session
        self._secret = secret
        self._location = location

    def _root_key(self, token_id: str) -> bytes:
        return hmac.new(self._secret, b"api-token:" + token_id.encode(), hashlib.sha256).digest()

    def issue(
        self,
        account: Account,
        *,
        description: str = "",
        stores: list[str] | None = None,
        permissions: list[str] | None = None,
        expires_at: datetime | None = None,
    ) -> tuple[ApiToken, str]:
        """A new token and its serialized macaroon (shown once)."""
        if len(description) > 200:
            raise AccountRuleViolation("description is at most 200 characters", field="description")
        if expires_at is not None and expires_at <= utcnow():
            raise AccountRuleViolation("expiry must be in the future", field="expires-at")
        token = ApiToken(
            id=secrets.token_hex(16),
            account_id=account.id,
            description=description,
            stores=sorted(set(stores)) if stores is not None else None,
            permissions=sorted(set(permissions)) if permissions is not None else None,
            expires_at=expires_at.replace(microsecond=0) if expires_at else None,
        )
        self._session.add(token)
        self._session.flush()
        macaroon = Macaroon(
            location=self._location, identifier=token.id, key=self._root_key(token.id)
        )
        if token.stores is not None:
            macaroon.add_first_party_caveat(_STORES + ",".join(token.stores))
        if token.permissions is not None:
            macaroon.add_first_party_caveat(_PERMISSIONS + ",".join(token.permissions))
        if token.expires_at is not None:
            macaroon.add_first_party_caveat(_EXPIRES + format_time(token.expires_at))
        return token, macaroon.serialize()

    def verify(self, serialized: str, now: datetime | None = None) -> VerifiedToken:
        """Check signature, revocation and every caveat; raise :class:`BadCredentials`."""
        now = now or utcnow()
        if not serialized or len(serialized) > MAX_TOKEN_LENGTH:
            raise BadCredentials("malformed token")
        try:
            macaroon = Macaroon.deserialize(serialized)
            token_id = macaroon.identifier
            if isinstance(token_id, bytes):
                token_id = token_id.decode("ascii")
        except Exception as e:
            # pymacaroons reads untrusted bytes and fails with whatever its parser hits
            # (IndexError, struct.error, even bare Exception): all of it is a malformed token
            raise BadCredentials("malformed token") from e
        # ids are issued as 32 hex digits; anything else is unknown without asking the
        # database (which may refuse odd characters such as NUL)
        known_shape = _TOKEN_ID_RE.fullmatch(token_id) is not None
        token = self._session.get(ApiToken, token_id) if known_shape else None
        if token is None:
            raise BadCredentials("unknown token")
        stores: list[frozenset[str]] = []
        permissions: list[frozenset[str]] = []
        expiries: list[datetime] = []

        def satisfy(caveat: str) -> bool:
            try:
                if caveat.startswith(_STORES):
                    stores.append(frozenset(filter(None, caveat[len(_STORES) :].split(","))))
                elif caveat.startswith(_PERMISSIONS):
                    values = caveat[len(_PERMISSIONS) :].split(",")
                    permissions.append(frozenset(filter(None, values)))
                elif caveat.startswith(_EXPIRES):
                    expiries.append(parse_time(caveat[len(_EXPIRES) :], "expires"))
                else:
                    return False  # unknown caveats deny
            except DecodeError:
                return False
            return True

        verifier = Verifier()
        verifier.satisfy_general(satisfy)
        try:
            verifier.verify(macaroon, self._root_key(token.id))
        except Exception as e:  # untrusted input to pymacaroons, as above
            raise BadCredentials("token signature or caveats do not verify") from e
        if token.revoked_at is not None:
            raise BadCredentials("token has been revoked")
        expires = min(expiries) if expiries else None
        if expires is not None and now >= expires:
            raise BadCredentials("token has expired")
        account = self._session.get(Account, token.account_id)
        if account is None or account.disabled:
            raise BadCredentials("the token's account is disabled")
        return VerifiedToken(
            token=token,
            account=account,
            stores=frozenset.intersection(*stores) if stores else None,
            permissions=frozenset.intersection(*permissions) if permissions else None,
            expires_at=expires,
        )

    def mark_used(self, token: ApiToken, now: datetime | None = None) -> None:
        """Record use, at most every few minutes (a write; call it in writing requests)."""
        now = now or utcnow()
        if token.last_used_at is None or (now - token.last_used_at).total_seconds() > 300:
            token.last_used_at = now
            self._session.flush()

    def list(self, account_id: str, after: str = "", limit: int = 100) -> list[ApiToken]:
        """The account's tokens, revoked ones included, by id."""
        return list(
            self._session.scalars(
                select(ApiToken)
                .where(ApiToken.account_id == account_id, ApiToken.id > after)
                .order_by(ApiToken.id)
                .limit(limit)
            )
        )

    def revoke(self, account_id: str, token_id: str) -> ApiToken:
        """Revoke one of the account's tokens (idempotent)."""
        token = self._session.get(ApiToken, token_id)
        if token is None or token.account_id != account_id:
            raise AccountNotFound(f"no token {token_id!r}")
        if token.revoked_at is None:
            token.revoked_at = utcnow()
            self._session.flush()
        return token
