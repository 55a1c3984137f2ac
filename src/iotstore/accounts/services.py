"""People and their credentials: local passwords, OIDC identities, API tokens."""

from __future__ import annotations

import re
import secrets
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from .errors import AccountExists, AccountNotFound, AccountRuleViolation, BadCredentials
from .models import Account
from .root_authority import new_account_id

__all__ = ["AccountService", "account_dict", "normalise_email"]

_EMAIL_RE = re.compile(r"[^@\s]{1,64}@[^@\s]{1,253}\.[^@\s.]{2,63}")
_HASHER = PasswordHasher()
MIN_PASSWORD = 10


def normalise_email(email: str) -> str:
    """Trimmed, lower-cased address; raises :class:`AccountRuleViolation` if it is not one."""
    cleaned = email.strip().lower()
    if len(cleaned) > 254 or not _EMAIL_RE.fullmatch(cleaned):
        raise AccountRuleViolation("not a valid email address", field="email")
    return cleaned


def _check_display_name(name: str) -> str:
    cleaned = name.strip()
    if not 1 <= len(cleaned) <= 120 or any(ord(c) < 32 for c in cleaned):
        raise AccountRuleViolation(
            "display name must be 1-120 printable characters", field="display-name"
        )
    return cleaned


def account_dict(account: Account) -> dict[str, Any]:
    """An account as JSON-ready values: never its password hash."""
    return {
        "id": account.id,
        "email": account.email,
        "email-verified": account.email_verified,
        "display-name": account.display_name,
        "operator": account.is_operator,
        "disabled": account.disabled,
        "sso": account.oidc_issuer is not None,
    }


class AccountService:
    """Create, find and authenticate accounts. Flushes; the caller commits."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def get(self, account_id: str) -> Account:
        """The account; raises :class:`AccountNotFound`."""
        account = self._session.get(Account, account_id)
        if account is None:
            raise AccountNotFound(f"no account {account_id!r}")
        return account

    def find_by_email(self, email: str) -> Account | None:
        """The account with this address, if any."""
        return self._session.scalars(
            select(Account).where(Account.email == normalise_email(email))
        ).first()

    def create(
        self,
        email: str,
        display_name: str,
        *,
        password: str | None = None,
        email_verified: bool = False,
        is_operator: bool = False,
        oidc: tuple[str, str] | None = None,
    ) -> Account:
        """A new account; the email must be unused."""
        address = normalise_email(email)
        if self.find_by_email(address) is not None:
            raise AccountExists("an account with this email exists already", field="email")
        account = Account(
            id=new_account_id(),
            email=address,
            email_verified=email_verified,
            display_name=_check_display_name(display_name),
            password_hash=self.hash_password(password) if password is not None else None,
            is_operator=is_operator,
            oidc_issuer=oidc[0] if oidc else None,
            oidc_subject=oidc[1] if oidc else None,
        )
        self._session.add(account)
        self._session.flush()
        return account

    @staticmethod
    def hash_password(password: str) -> str:
        """argon2id hash; refuses passwords shorter than :data:`MIN_PASSWORD`."""
        if len(password) < MIN_PASSWORD or len(password) > 1024:
            raise AccountRuleViolation(
                f"passwords are {MIN_PASSWORD} to 1024 characters", field="password"
            )
        return _HASHER.hash(password)

    def authenticate(self, email: str, password: str) -> Account:
        """The account whose local password this is; one error for every failure."""
        failure = BadCredentials("wrong email or password")
        try:
            account = self.find_by_email(email)
        except AccountRuleViolation as e:
            raise failure from e
        if account is None or account.password_hash is None or account.disabled:
            # spend the same time as a real check so timing does not reveal accounts
            _HASHER.hash(secrets.token_hex(8))
            raise failure
        try:
            _HASHER.verify(account.password_hash, password)
        except (VerificationError, InvalidHashError) as e:
            raise failure from e
        return account

    def from_oidc(
        self, issuer: str, subject: str, email: str, email_verified: bool, display_name: str
    ) -> Account:
        """The account of an SSO identity: found by (issuer, subject), linked by verified
        email, or created."""
        account = self._session.scalars(
            select(Account).where(Account.oidc_issuer == issuer, Account.oidc_subject == subject)
        ).first()
        if account is not None:
            return account
        if not email_verified:
            raise BadCredentials("the identity provider did not verify this email address")
        account = self.find_by_email(email)
        if account is not None:
            account.oidc_issuer, account.oidc_subject = issuer, subject
            account.email_verified = True
            self._session.flush()
            return account
        return self.create(
            email, display_name or email, email_verified=True, oidc=(issuer, subject)
        )

    def count(self) -> int:
        """Number of accounts."""
        return int(self._session.scalar(select(func.count(Account.id))) or 0)
