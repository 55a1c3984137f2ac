"""Invitations by email: invite, list, revoke, accept, expire. Services flush; the caller commits.

An invitation offers one store role to one email address. The email carries a
random token (256 bits) in an accept link; the table keeps only its SHA-256,
so a database reader cannot accept anything. The token is shown nowhere else:
not in the API's answers, not in the audit log, not in logs. Whoever accepts
therefore proves they read that mailbox, which is why acceptance may create an
account with the address marked verified.

Rules (each one audited):

* one pending invitation per store and address: inviting again revokes the
  pending one and sends a new token;
* the email is sent after the row is flushed; if sending fails the service
  raises :class:`InvitationMailFailed` and the caller's transaction rolls the
  row back, so no invitation exists whose email never left;
* an invitation is accepted once, before it expires and unless revoked; each
  refusal has its own error (and code) and none names the store;
* a signed-in caller accepts for their own account, whose email must be the
  invited address. Without a sign-in, acceptance creates a local account for
  the address (a password is required) when none exists; when one exists the
  caller must sign in to it first, so nobody binds roles to an account they
  cannot use, and a password sent with the request never overwrites one.
"""

from __future__ import annotations

import builtins
import hashlib
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from iotstore.asserts import format_time
from iotstore.db import utcnow
from iotstore.errors import (
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    Refused,
    Unauthenticated,
    Unavailable,
)
from iotstore.mail import InvalidMail, Mailer, MailError, OutgoingMail

from .audit import Actor, AuditLog
from .errors import StoreNotFound, StoreRuleViolation
from .models import Invitation, Store
from .permissions import STORE_ROLES, Role
from .services import MembershipService

__all__ = [
    "MAX_TOKEN_LENGTH",
    "Acceptance",
    "AccountDirectory",
    "AlreadyMember",
    "InvitationExpired",
    "InvitationMailFailed",
    "InvitationNotFound",
    "InvitationRevoked",
    "InvitationRuleViolation",
    "InvitationService",
    "InvitationUnknown",
    "InvitationUsed",
    "InvitedAccount",
    "SignInRequired",
    "WrongInvitee",
    "invitation_dict",
    "invitation_status",
    "token_hash",
]

log = logging.getLogger("iotstore.invitations")

MAX_TOKEN_LENGTH = 128  # tokens are 43 characters; anything much longer is not one


# -- errors (codes are stable for clients) ----------------------------------------------


class InvitationRuleViolation(InvalidInput):
    """The invitation or the acceptance breaks a rule (``field`` names the value)."""


class AlreadyMember(Conflict):
    """The invited address's account already holds the role in the store."""

    code = "already-member"


class InvitationNotFound(NotFound):
    """No such invitation in this store."""


class InvitationUnknown(NotFound):
    """No invitation has this token (mistyped, truncated, or never issued)."""

    code = "invitation-unknown"


class InvitationUsed(Refused):
    """The invitation was accepted already; a token works once."""

    code = "invitation-used"


class InvitationRevoked(Refused):
    """An administrator revoked the invitation, or a newer one replaced it."""

    code = "invitation-revoked"


class InvitationExpired(Refused):
    """The invitation's lifetime is over."""

    code = "invitation-expired"


class WrongInvitee(Forbidden):
    """The signed-in account's email is not the invited address."""

    code = "invitation-other-email"


class SignInRequired(Unauthenticated):
    """An account exists for the invited address: sign in to it to accept."""

    code = "sign-in-required"


class InvitationMailFailed(Unavailable):
    """The invitation email could not be handed to the mail relay; nothing was saved.

    Not the caller's fault and worth retrying: the HTTP layer answers 503.
    """

    code = "mail-failed"


# -- collaborators -------------------------------------------------------------------------


class InvitedAccount(Protocol):
    """What invitations read from an account (``iotstore.accounts.models.Account``)."""

    @property
    def id(self) -> str: ...

    @property
    def email(self) -> str: ...

    @property
    def display_name(self) -> str: ...

    @property
    def disabled(self) -> bool: ...

    # set on acceptance: the token proves the mailbox
    email_verified: bool


class AccountDirectory(Protocol):
    """The accounts invitations find and create (``iotstore.accounts.AccountService``).

    ``stores`` and ``accounts`` sit side by side in the layering and do not
    import each other; the composition root hands the service over.
    """

    def get(self, account_id: str) -> InvitedAccount:
        """The account; raises a :class:`~iotstore.errors.NotFound`."""
        ...

    def find_by_email(self, email: str) -> InvitedAccount | None:
        """The account with this address, if any."""
        ...

    def create(
        self,
        email: str,
        display_name: str,
        *,
        password: str | None = None,
        email_verified: bool = False,
    ) -> InvitedAccount:
        """A new local account; raises :class:`~iotstore.errors.InvalidInput` on bad values."""
        ...


@dataclass(frozen=True)
class Acceptance:
    """What accepting granted, and whether it created the account."""

    invitation: Invitation
    account_id: str
    account_created: bool

    @property
    def store_id(self) -> str:
        return self.invitation.store_id

    @property
    def role(self) -> str:
        return self.invitation.role


# -- helpers -------------------------------------------------------------------------------


def token_hash(token: str) -> str:
    """The hex SHA-256 the table keeps instead of the token."""
    return hashlib.sha256(token.encode()).hexdigest()


def _new_id(now: datetime) -> str:
    # 12 hex digits of milliseconds, then 80 random bits: ids sort by creation,
    # so the id cursor pages through a store's invitations oldest first.
    return f"{int(now.timestamp() * 1000):012x}{secrets.token_hex(10)}"


def invitation_status(invitation: Invitation, now: datetime) -> str:
    """``accepted``, ``revoked``, ``expired`` or ``pending``."""
    if invitation.accepted_at is not None:
        return "accepted"
    if invitation.revoked_at is not None:
        return "revoked"
    if invitation.expires_at <= now:
        return "expired"
    return "pending"


def invitation_dict(invitation: Invitation, now: datetime | None = None) -> dict[str, Any]:
    """An invitation as JSON-ready values (also the audit log's before/after): never the
    token or its hash."""

    def t(when: datetime | None) -> str | None:
        return format_time(when) if when else None

    return {
        "id": invitation.id,
        "store-id": invitation.store_id,
        "email": invitation.email,
        "role": invitation.role,
        "status": invitation_status(invitation, now or utcnow()),
        "invited-by": invitation.invited_by,
        "created-at": t(invitation.created_at),
        "expires-at": t(invitation.expires_at),
        "accepted-at": t(invitation.accepted_at),
        "accepted-by": invitation.accepted_by,
        "revoked-at": t(invitation.revoked_at),
    }


def _one_line(text: str) -> str:
    # store and display names go into a Subject header: no line breaks, ever
    return " ".join("".join(c if c.isprintable() else " " for c in text).split())


# -- the service ---------------------------------------------------------------------------


class InvitationService:
    """Invite by email, list, revoke and accept. Flushes; the caller commits.

    ``base_url`` is the deployment's public URL (the accept link points there),
    ``lifetime`` how long an invitation stays valid, ``normalise_email`` the
    accounts' address rule (so invitations and accounts compare addresses the
    same way), ``now`` the clock (tests move it).
    """

    def __init__(
        self,
        session: Session,
        memberships: MembershipService,
        accounts: AccountDirectory,
        audit: AuditLog,
        mailer: Mailer,
        base_url: str,
        lifetime: timedelta,
        *,
        normalise_email: Callable[[str], str],
        now: Callable[[], datetime] = utcnow,
    ) -> None:
        if lifetime <= timedelta(0):
            raise ValueError("an invitation lifetime must be positive")
        self._session = session
        self._memberships = memberships
        self._accounts = accounts
        self._audit = audit
        self._mailer = mailer
        self._base_url = base_url.rstrip("/")
        self._lifetime = lifetime
        self._normalise = normalise_email
        self._now = now

    # -- invite --------------------------------------------------------------------------

    def invite(self, actor: Actor, store_id: str, email: str, role: str) -> Invitation:
        """Create an invitation and email its token; return the (flushed) row.

        Replaces the address's pending invitation to the store, if any. Raises
        :class:`StoreNotFound`, :class:`StoreRuleViolation` (role),
        ``InvalidInput`` (email), :class:`AlreadyMember`, or
        :class:`InvitationMailFailed` after which the caller must roll back
        (the web layer does: the exception ends the request's transaction).
        """
        if actor.account_id is None:
            raise Refused("invitations are sent by a person's account")
        store = self._store(store_id)
        address = self._normalise(email)
        checked = self._check_role(role)
        existing = self._accounts.find_by_email(address)
        if existing is not None and checked in self._memberships.roles(existing.id, store.id):
            raise AlreadyMember(
                f"{address} already holds the {checked.value} role in {store.id!r}", field="email"
            )
        now = self._now()
        token = secrets.token_urlsafe(32)
        invitation = Invitation(
            id=_new_id(now),
            store_id=store.id,
            email=address,
            role=checked.value,
            token_hash=token_hash(token),
            invited_by=actor.account_id,
            expires_at=now + self._lifetime,
            created_at=now,
        )
        # built (and so validated) before anything is written
        mail = self._mail(invitation, token, store, self._accounts.get(actor.account_id))
        for old in self._pending(store.id, address, now):
            before = invitation_dict(old, now)
            old.revoked_at = now
            self._audit.record(
                actor, "invitation.revoke", store_id=store.id, target=old.id, before=before,
                after={**invitation_dict(old, now), "replaced-by": invitation.id},
            )  # fmt: skip
        self._session.add(invitation)
        self._session.flush()
        self._audit.record(
            actor, "invitation.create", store_id=store.id, target=invitation.id,
            after=invitation_dict(invitation, now),
        )  # fmt: skip
        try:
            self._mailer.send(mail)
        except MailError as e:
            # the operator needs the relay's answer; the inviter gets a retryable error
            log.warning("invitation %s to store %s not sent: %s", invitation.id, store.id, e)
            raise InvitationMailFailed(
                "the invitation email could not be sent, so no invitation was made; "
                "retry later (the deployment's mail relay did not accept it)"
            ) from e
        return invitation

    def _mail(
        self, invitation: Invitation, token: str, store: Store, inviter: InvitedAccount
    ) -> OutgoingMail:
        link = f"{self._base_url}/invitations/accept?token={token}"
        store_name = _one_line(store.name) or store.id
        who = _one_line(inviter.display_name) or "An administrator"
        expires = invitation.expires_at.strftime("%Y-%m-%d %H:%M UTC")
        text = (
            f'{who} invited you to the store "{store_name}" ({store.id}) as {invitation.role}.\n'
            "\n"
            "To accept, open this link:\n"
            "\n"
            f"  {link}\n"
            "\n"
            "Or accept through the API:\n"
            "\n"
            f"  POST {self._base_url}/api/v1/invitations/accept\n"
            f'  {{"token": "{token}"}}\n'
            "\n"
            'Add "password" (and "display-name") to create your account if you have none;\n'
            "if you have one, send the request signed in to it.\n"
            "\n"
            f"The invitation expires on {expires}. It works once. If you did not\n"
            "expect it, ignore this email.\n"
        )
        subject = f"Invitation to {store_name} as {invitation.role}"[:200]
        try:
            return OutgoingMail(to=invitation.email, subject=subject, text=text)
        except InvalidMail as e:
            raise InvitationRuleViolation(
                "this address cannot receive email from the store", field="email"
            ) from e

    # -- list and revoke -----------------------------------------------------------------

    def list(
        self, store_id: str, *, include_closed: bool = False, after: str = "", limit: int = 100
    ) -> builtins.list[Invitation]:
        """The store's invitations, oldest first, paginated by id (``after``).

        Only pending ones unless ``include_closed`` (then also accepted,
        revoked and expired ones). Raises :class:`StoreNotFound`.
        """
        self._store(store_id)
        q = select(Invitation).where(Invitation.store_id == store_id, Invitation.id > after)
        if not include_closed:
            q = q.where(
                Invitation.accepted_at.is_(None),
                Invitation.revoked_at.is_(None),
                Invitation.expires_at > self._now(),
            )
        return builtins.list(self._session.scalars(q.order_by(Invitation.id).limit(limit)))

    def get(self, store_id: str, invitation_id: str) -> Invitation:
        """One invitation of the store; raises :class:`InvitationNotFound` (also for an id
        of another store, which this store's administrators must not learn about)."""
        row = self._session.get(Invitation, invitation_id)
        if row is None or row.store_id != store_id:
            raise InvitationNotFound(f"no invitation {invitation_id!r} in {store_id!r}")
        return row

    def revoke(self, actor: Actor, store_id: str, invitation_id: str) -> Invitation:
        """Withdraw an invitation so its token no longer works; revoking twice is harmless.

        Raises :class:`InvitationNotFound`, or :class:`InvitationUsed` once
        accepted (remove the role instead).
        """
        row = self.get(store_id, invitation_id)
        if row.revoked_at is not None:
            return row
        now = self._now()
        before = invitation_dict(row, now)
        # conditional, so a concurrent acceptance and a revocation cannot both win
        won = self._session.execute(
            update(Invitation)
            .where(
                Invitation.id == row.id,
                Invitation.accepted_at.is_(None),
                Invitation.revoked_at.is_(None),
            )
            .values(revoked_at=now)
            .returning(Invitation.id)
        ).scalar_one_or_none()
        self._session.refresh(row)
        if won is None:
            if row.accepted_at is not None:
                raise InvitationUsed(
                    "the invitation was accepted already; remove the member's role instead"
                )
            return row
        self._audit.record(
            actor, "invitation.revoke", store_id=store_id, target=row.id, before=before,
            after=invitation_dict(row, now),
        )  # fmt: skip
        return row

    # -- accept --------------------------------------------------------------------------

    def accept(
        self,
        actor: Actor,
        token: str,
        *,
        account: InvitedAccount | None = None,
        display_name: str | None = None,
        password: str | None = None,
    ) -> Acceptance:
        """Accept the invitation ``token`` belongs to and grant its role.

        ``account`` is the signed-in caller, if any: its email must be the
        invited address (:class:`WrongInvitee`), and ``display_name`` and
        ``password`` must then be omitted. Without it, a local account is
        created for the address with ``password`` (required) and
        ``display_name`` (default: the address's local part); if the address
        has an account already, :class:`SignInRequired`. Raises
        :class:`InvitationUnknown`, :class:`InvitationUsed`,
        :class:`InvitationRevoked`, :class:`InvitationExpired`; never reveals
        which store an unusable token was for.
        """
        row = self._by_token(token)
        now = self._now()
        self._check_usable(row, now)
        created = False
        if account is not None:
            if password is not None or display_name is not None:
                raise InvitationRuleViolation(
                    "you are signed in: accept without a password or display name, or sign "
                    "out to create a new account",
                    field="password" if password is not None else "display-name",
                )
            if account.disabled:
                raise Forbidden("this account is disabled")
            if account.email != row.email:
                raise WrongInvitee(
                    "this invitation was sent to another email address: sign in to the "
                    "account with that address, or ask for an invitation to yours"
                )
        else:
            if self._accounts.find_by_email(row.email) is not None:
                raise SignInRequired(
                    "an account with the invited email address exists: sign in to it (or "
                    "send one of its tokens) and accept again"
                )
            if password is None:
                raise InvitationRuleViolation(
                    "choose a password for your new account", field="password"
                )
            account = self._accounts.create(
                row.email,
                display_name if display_name is not None else row.email.partition("@")[0],
                password=password,
                email_verified=True,
            )
            created = True
        actor = replace(actor, account_id=account.id)
        if created:
            self._audit.record(
                actor, "account.create", target=account.id,
                after={"id": account.id, "email": account.email, "via": "invitation"},
            )  # fmt: skip
        before = invitation_dict(row, now)
        # conditional, so one token is accepted once even by two racing requests
        won = self._session.execute(
            update(Invitation)
            .where(
                Invitation.id == row.id,
                Invitation.accepted_at.is_(None),
                Invitation.revoked_at.is_(None),
            )
            .values(accepted_at=now, accepted_by=account.id)
            .returning(Invitation.id)
        ).scalar_one_or_none()
        self._session.refresh(row)
        if won is None:
            self._check_usable(row, now)  # raises the reason it lost
            raise InvitationUsed("the invitation was accepted already")
        if not account.email_verified:
            account.email_verified = True  # the token came through that mailbox
        self._memberships.grant(actor, row.store_id, account.id, row.role)
        self._session.flush()
        self._audit.record(
            actor, "invitation.accept", store_id=row.store_id, target=row.id, before=before,
            after=invitation_dict(row, now),
        )  # fmt: skip
        return Acceptance(invitation=row, account_id=account.id, account_created=created)

    # -- internals -----------------------------------------------------------------------

    def _by_token(self, token: str) -> Invitation:
        unknown = InvitationUnknown(
            "no invitation has this token: check that the whole token was copied"
        )
        if not token or len(token) > MAX_TOKEN_LENGTH:
            raise unknown
        row = self._session.scalars(
            select(Invitation).where(Invitation.token_hash == token_hash(token))
        ).first()
        if row is None:
            raise unknown
        return row

    @staticmethod
    def _check_usable(row: Invitation, now: datetime) -> None:
        # the order matters for the message: a used token says so even once expired
        if row.accepted_at is not None:
            raise InvitationUsed("this invitation was accepted already; a token works once")
        if row.revoked_at is not None:
            raise InvitationRevoked(
                "this invitation was withdrawn or replaced by a newer one; use the newest "
                "email, or ask the store's administrators to invite you again"
            )
        if row.expires_at <= now:
            raise InvitationExpired(
                "this invitation has expired; ask the store's administrators to invite you again"
            )

    def _pending(self, store_id: str, address: str, now: datetime) -> builtins.list[Invitation]:
        return builtins.list(
            self._session.scalars(
                select(Invitation).where(
                    Invitation.store_id == store_id,
                    Invitation.email == address,
                    Invitation.accepted_at.is_(None),
                    Invitation.revoked_at.is_(None),
                    Invitation.expires_at > now,
                )
            )
        )

    def _store(self, store_id: str) -> Store:
        store = self._session.get(Store, store_id)
        if store is None:
            raise StoreNotFound(f"no store {store_id!r}")
        return store

    @staticmethod
    def _check_role(role: str) -> Role:
        if role not in {r.value for r in STORE_ROLES}:
            raise StoreRuleViolation(
                "role must be one of admin, publisher, reviewer, viewer", field="role"
            )
        return Role(role)
