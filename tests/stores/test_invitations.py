"""Invitations at the service level: invite, re-invite, list, revoke, expire, accept.

Mail goes to a :class:`MemoryMailer`; the clock is the test's. Every test runs
on SQLite and PostgreSQL (``module_database_url``) in a transaction that is
rolled back afterwards.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from iotstore.accounts.errors import AccountRuleViolation
from iotstore.accounts.models import Account, Brand
from iotstore.accounts.root_authority import new_account_id
from iotstore.accounts.services import AccountService, normalise_email
from iotstore.db import SqlDatabase
from iotstore.errors import InvalidInput, IotstoreError
from iotstore.mail import MailError, MemoryMailer
from iotstore.stores.audit import Actor, AuditLog
from iotstore.stores.errors import StoreNotFound, StoreRuleViolation
from iotstore.stores.invitations import (
    AlreadyMember,
    InvitationExpired,
    InvitationMailFailed,
    InvitationNotFound,
    InvitationRevoked,
    InvitationRuleViolation,
    InvitationService,
    InvitationUnknown,
    InvitationUsed,
    SignInRequired,
    WrongInvitee,
    invitation_dict,
)
from iotstore.stores.models import AuditEntry, Invitation, Membership
from iotstore.stores.services import MembershipService, StoreService

from ._support import rolled_back_session, seeded_database

BASE_URL = "https://store.example.com"
LIFETIME = timedelta(days=7)
STORE = "acme-store"
PASSWORD = "a long enough password"
TOKEN_RE = re.compile(r"/invitations/accept\?token=([A-Za-z0-9_-]+)")


class Clock:
    """A clock the test moves."""

    def __init__(self) -> None:
        self.now = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


@dataclass
class Env:
    """One unit of work with the services, a store, its administrator and the outbox."""

    session: Session
    clock: Clock
    mailer: MemoryMailer
    admin: Account
    audit: AuditLog = field(init=False)
    stores: StoreService = field(init=False)
    memberships: MembershipService = field(init=False)
    accounts: AccountService = field(init=False)
    invitations: InvitationService = field(init=False)

    def __post_init__(self) -> None:
        self.audit = AuditLog(self.session)
        self.stores = StoreService(self.session, self.audit)
        self.memberships = MembershipService(self.session, self.stores, self.audit)
        self.accounts = AccountService(self.session)
        self.invitations = InvitationService(
            self.session, self.memberships, self.accounts, self.audit, self.mailer,
            BASE_URL + "/", LIFETIME, normalise_email=normalise_email, now=self.clock,
        )  # fmt: skip

    @property
    def actor(self) -> Actor:
        return Actor(account_id=self.admin.id, address="192.0.2.7")

    def last_token(self) -> str:
        match = TOKEN_RE.search(self.mailer.sent[-1].text)
        assert match, self.mailer.sent[-1].text
        return match.group(1)

    def invite(self, email: str, role: str = "publisher", store: str = STORE) -> tuple[str, str]:
        """Invite; return (invitation id, token from the email)."""
        row = self.invitations.invite(self.actor, store, email, role)
        return row.id, self.last_token()

    def actions(self) -> list[str]:
        return [e.action for e in self.audit.query(limit=1000)]

    def roles_of(self, account_id: str, store: str = STORE) -> set[str]:
        return {r.value for r in self.memberships.roles(account_id, store)}


def _seed(session: Session) -> Account:
    brand = Brand(account_id=new_account_id(), username="acme", display_name="Acme")
    session.add(brand)
    session.flush()
    system = Actor(account_id=None, address="seed")
    stores = StoreService(session, AuditLog(session))
    stores.create_brand_store(system, brand.account_id, STORE, "Acme Store")
    stores.create_substore(system, STORE, "acme-kiosk", "Kiosk", "product")
    stores.create_brand_store(system, brand.account_id, "other-store", "Other")
    admin = AccountService(session).create(
        "admin@acme.example.com", "Ada Admin", password=PASSWORD, email_verified=True
    )
    MembershipService(session, stores, AuditLog(session)).grant(system, STORE, admin.id, "admin")
    return admin


@pytest.fixture(scope="module")
def database(module_database_url: str) -> Iterator[SqlDatabase]:
    """The module's database, migrated and seeded once (tests roll their changes back)."""
    with seeded_database(module_database_url, _seed) as db:
        yield db


@pytest.fixture
def env(database: SqlDatabase) -> Iterator[Env]:
    """The test's unit of work, rolled back at the end."""
    with rolled_back_session(database) as session:
        admin = session.scalars(
            select(Account).where(Account.email == "admin@acme.example.com")
        ).one()
        yield Env(session, Clock(), MemoryMailer("Acme Store <store@acme.example.com>"), admin)


def _row_values(session: Session) -> list[Any]:
    """Every value of every invitation and audit row, for secret-leak checks."""
    values: list[Any] = []
    for inv in session.scalars(select(Invitation)):
        values.extend(vars(inv).values())
    for entry in session.scalars(select(AuditEntry)):
        values.extend([entry.before, entry.after, entry.target])
    return values


# -- invite -----------------------------------------------------------------------------


def test_invite_mails_a_link_and_keeps_only_the_hash(env: Env) -> None:
    row = env.invitations.invite(env.actor, STORE, "  Bob@Example.COM ", "publisher")
    [mail] = env.mailer.sent
    token = env.last_token()
    assert mail.to == "bob@example.com"
    assert mail.subject == "Invitation to Acme Store as publisher"
    assert f"{BASE_URL}/invitations/accept?token={token}\n" in mail.text  # no double slash
    assert f'{{"token": "{token}"}}' in mail.text  # for API users
    assert "Ada Admin invited you" in mail.text
    assert "2026-03-08 12:00 UTC" in mail.text
    assert len(token) >= 43
    assert row.email == "bob@example.com"
    assert row.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert row.expires_at == env.clock.now + LIFETIME
    assert row.invited_by == env.admin.id
    # the token is in the email only: not in a row, not in the audit log
    assert not any(token in str(v) for v in _row_values(env.session))
    assert "token" not in str(invitation_dict(row)).replace("token-", "")
    [entry] = env.audit.query(action="invitation.create")
    assert entry.store_id == STORE and entry.target == row.id
    assert entry.actor_account_id == env.admin.id and entry.address == "192.0.2.7"
    assert entry.after is not None and entry.after["email"] == "bob@example.com"
    assert invitation_dict(row, env.clock.now)["status"] == "pending"


def test_reinviting_replaces_the_pending_invitation(env: Env) -> None:
    first_id, first_token = env.invite("bob@example.com", "viewer")
    second_id, second_token = env.invite("bob@example.com", "publisher")
    assert first_id != second_id and first_token != second_token
    assert [r.id for r in env.invitations.list(STORE)] == [second_id]
    first = env.invitations.get(STORE, first_id)
    assert invitation_dict(first, env.clock.now)["status"] == "revoked"
    [revoked] = env.audit.query(action="invitation.revoke")
    assert revoked.target == first_id
    assert revoked.after is not None and revoked.after["replaced-by"] == second_id
    with pytest.raises(InvitationRevoked):
        env.invitations.accept(Actor(None), first_token, password=PASSWORD)
    accepted = env.invitations.accept(Actor(None), second_token, password=PASSWORD)
    assert accepted.role == "publisher"


def test_other_stores_and_addresses_keep_their_invitations(env: Env) -> None:
    env.invite("bob@example.com", store=STORE)
    env.invite("bob@example.com", store="acme-kiosk")
    env.invite("carol@example.com", store=STORE)
    assert {r.email for r in env.invitations.list(STORE)} == {
        "bob@example.com",
        "carol@example.com",
    }
    assert [r.email for r in env.invitations.list("acme-kiosk")] == ["bob@example.com"]


@pytest.mark.parametrize(
    ("store", "email", "role", "error", "field_name"),
    [
        (STORE, "bob@example.com", "collaborator", StoreRuleViolation, "role"),
        (STORE, "bob@example.com", "owner", StoreRuleViolation, "role"),
        (STORE, "not-an-address", "viewer", InvalidInput, "email"),
        (STORE, "bob@example.com\r\nBcc: x@example.com", "viewer", InvalidInput, "email"),
        (STORE, "bøb@example.com", "viewer", InvalidInput, "email"),
        ("no-such-store", "bob@example.com", "viewer", StoreNotFound, None),
    ],
)
def test_bad_invitations_are_refused_and_nothing_is_sent(
    env: Env,
    store: str,
    email: str,
    role: str,
    error: type[IotstoreError],
    field_name: str | None,
) -> None:
    with pytest.raises(error) as caught:
        env.invitations.invite(env.actor, store, email, role)
    assert caught.value.field == field_name
    assert env.mailer.sent == []
    assert env.session.scalar(select(func.count()).select_from(Invitation)) == 0


def test_someone_holding_the_role_already_is_not_invited(env: Env) -> None:
    with pytest.raises(AlreadyMember):
        env.invitations.invite(env.actor, STORE, "admin@acme.example.com", "admin")
    # administrators of a parent store administer its sub-stores already
    with pytest.raises(AlreadyMember):
        env.invitations.invite(env.actor, "acme-kiosk", "ADMIN@acme.example.com", "admin")
    # another role is a fine invitation
    env.invitations.invite(env.actor, STORE, "admin@acme.example.com", "reviewer")
    assert len(env.mailer.sent) == 1


def test_a_store_name_cannot_inject_mail_headers(env: Env) -> None:
    env.stores.update(Actor(None), STORE, {"name": "Evil\r\nBcc: all@example.com\x7f"})
    env.invite("bob@example.com")
    assert env.mailer.sent[-1].subject == "Invitation to Evil Bcc: all@example.com as publisher"
    assert env.mailer.messages[-1]["Bcc"] is None


def test_a_mail_failure_leaves_nothing_behind(database: SqlDatabase) -> None:
    mailer = MemoryMailer()
    mailer.failure = MailError("connection refused by 192.0.2.25:25")
    with pytest.raises(InvitationMailFailed) as caught, database.unit_of_work() as session:
        admin = session.scalars(
            select(Account).where(Account.email == "admin@acme.example.com")
        ).one()
        env = Env(session, Clock(), mailer, admin)
        env.invitations.invite(env.actor, STORE, "bob@example.com", "viewer")
    assert caught.value.code == "mail-failed"
    assert "192.0.2.25" not in caught.value.message  # relay details go to the log only
    assert isinstance(caught.value.__cause__, MailError)
    with database.unit_of_work(write=False) as session:
        assert session.scalar(select(func.count()).select_from(Invitation)) == 0
        assert (
            session.scalar(
                select(func.count())
                .select_from(AuditEntry)
                .where(AuditEntry.action.like("invitation.%"))
            )
            == 0
        )


# -- list, revoke, expire -------------------------------------------------------------------


def test_list_pages_oldest_first_and_hides_closed_ones_by_default(env: Env) -> None:
    ids = []
    for n in range(5):
        ids.append(env.invite(f"user{n}@example.com")[0])
        env.clock.advance(timedelta(seconds=1))
    env.invitations.revoke(env.actor, STORE, ids[1])
    env.invitations.accept(Actor(None), _token_of(env, 2), password=PASSWORD)
    assert [r.id for r in env.invitations.list(STORE)] == [ids[0], ids[3], ids[4]]
    first = env.invitations.list(STORE, include_closed=True, limit=2)
    rest = env.invitations.list(STORE, include_closed=True, after=first[-1].id, limit=10)
    assert [r.id for r in first + rest] == ids
    statuses = [invitation_dict(r, env.clock.now)["status"] for r in first + rest]
    assert statuses == ["pending", "revoked", "accepted", "pending", "pending"]
    with pytest.raises(StoreNotFound):
        env.invitations.list("no-such-store")


def _token_of(env: Env, n: int) -> str:
    match = TOKEN_RE.search(env.mailer.sent[n].text)
    assert match
    return match.group(1)


def test_revoke_withdraws_once_and_is_idempotent(env: Env) -> None:
    invitation_id, token = env.invite("bob@example.com")
    env.invitations.revoke(env.actor, STORE, invitation_id)
    env.invitations.revoke(env.actor, STORE, invitation_id)
    assert env.actions().count("invitation.revoke") == 1
    assert env.invitations.list(STORE) == []
    with pytest.raises(InvitationRevoked) as caught:
        env.invitations.accept(Actor(None), token, password=PASSWORD)
    assert caught.value.code == "invitation-revoked"
    assert env.accounts.find_by_email("bob@example.com") is None


def test_an_accepted_invitation_cannot_be_revoked(env: Env) -> None:
    invitation_id, token = env.invite("bob@example.com")
    env.invitations.accept(Actor(None), token, password=PASSWORD)
    with pytest.raises(InvitationUsed):
        env.invitations.revoke(env.actor, STORE, invitation_id)


def test_invitations_of_another_store_are_not_found(env: Env) -> None:
    invitation_id, _ = env.invite("bob@example.com", store="acme-kiosk")
    with pytest.raises(InvitationNotFound):
        env.invitations.revoke(env.actor, "other-store", invitation_id)
    with pytest.raises(InvitationNotFound):
        env.invitations.revoke(env.actor, STORE, "0" * 32)
    assert env.invitations.get("acme-kiosk", invitation_id).revoked_at is None


def test_an_invitation_expires(env: Env) -> None:
    invitation_id, token = env.invite("bob@example.com")
    env.clock.advance(LIFETIME - timedelta(seconds=1))
    assert [r.id for r in env.invitations.list(STORE)] == [invitation_id]
    env.clock.advance(timedelta(seconds=1))
    assert env.invitations.list(STORE) == []
    [row] = env.invitations.list(STORE, include_closed=True)
    assert invitation_dict(row, env.clock.now)["status"] == "expired"
    with pytest.raises(InvitationExpired) as caught:
        env.invitations.accept(Actor(None), token, password=PASSWORD)
    assert caught.value.code == "invitation-expired"
    # an expired invitation is not pending: inviting again leaves it as it is
    new_id, new_token = env.invite("bob@example.com")
    assert env.invitations.get(STORE, invitation_id).revoked_at is None
    assert env.invitations.accept(Actor(None), new_token, password=PASSWORD).invitation.id == new_id


# -- accept ---------------------------------------------------------------------------------


def test_accepting_creates_a_verified_account_and_grants_the_role(env: Env) -> None:
    invitation_id, token = env.invite("bob@example.com", "reviewer")
    accepted = env.invitations.accept(
        Actor(None, address="198.51.100.4"), token, display_name="Bob", password=PASSWORD
    )
    assert accepted.account_created
    assert (accepted.store_id, accepted.role) == (STORE, "reviewer")
    bob = env.accounts.get(accepted.account_id)
    assert (bob.email, bob.display_name, bob.email_verified) == ("bob@example.com", "Bob", True)
    assert env.accounts.authenticate("bob@example.com", PASSWORD).id == bob.id
    assert env.roles_of(bob.id) == {"reviewer"}
    row = env.invitations.get(STORE, invitation_id)
    assert row.accepted_by == bob.id and row.accepted_at == env.clock.now
    # every step audited, as the new account, from the caller's address
    entries = {e.action: e for e in env.audit.query(limit=100)}
    for action in ("account.create", "role.grant", "invitation.accept"):
        assert entries[action].actor_account_id == bob.id
        assert entries[action].address == "198.51.100.4"
    assert entries["invitation.accept"].store_id == STORE
    assert entries["role.grant"].after == {"account-id": bob.id, "role": "reviewer"}


def test_the_display_name_defaults_to_the_local_part(env: Env) -> None:
    _, token = env.invite("carol.smith@example.com")
    accepted = env.invitations.accept(Actor(None), token, password=PASSWORD)
    assert env.accounts.get(accepted.account_id).display_name == "carol.smith"


def test_a_signed_in_account_with_the_invited_address_accepts(env: Env) -> None:
    bob = env.accounts.create("bob@example.com", "Bob", password=PASSWORD)
    assert not bob.email_verified
    _, token = env.invite("BOB@example.com", "viewer")
    accepted = env.invitations.accept(Actor(bob.id), token, account=bob)
    assert not accepted.account_created
    assert accepted.account_id == bob.id
    assert env.roles_of(bob.id) == {"viewer"}
    assert bob.email_verified  # the token came through the mailbox


def test_a_signed_in_account_with_another_address_is_refused(env: Env) -> None:
    mallory = env.accounts.create("mallory@example.com", "Mallory", password=PASSWORD)
    invitation_id, token = env.invite("bob@example.com")
    with pytest.raises(WrongInvitee) as caught:
        env.invitations.accept(Actor(mallory.id), token, account=mallory)
    assert caught.value.code == "invitation-other-email"
    assert "bob@example.com" not in caught.value.message
    assert env.roles_of(mallory.id) == set()
    assert env.invitations.get(STORE, invitation_id).accepted_at is None
    # bob can still accept
    env.invitations.accept(Actor(None), token, password=PASSWORD)


def test_an_existing_account_must_sign_in_to_accept(env: Env) -> None:
    bob = env.accounts.create("bob@example.com", "Bob", password=PASSWORD)
    original_hash = bob.password_hash
    _, token = env.invite("bob@example.com")
    with pytest.raises(SignInRequired) as caught:
        env.invitations.accept(Actor(None), token, password="another password entirely")
    assert caught.value.code == "sign-in-required"
    assert bob.password_hash == original_hash
    assert env.roles_of(bob.id) == set()
    env.invitations.accept(Actor(bob.id), token, account=bob)
    assert env.roles_of(bob.id) == {"publisher"}


def test_a_signed_in_caller_sends_no_password(env: Env) -> None:
    bob = env.accounts.create("bob@example.com", "Bob", password=PASSWORD)
    _, token = env.invite("bob@example.com")
    with pytest.raises(InvitationRuleViolation) as caught:
        env.invitations.accept(Actor(bob.id), token, account=bob, password=PASSWORD)
    assert caught.value.field == "password"


def test_a_new_account_needs_a_good_password(env: Env) -> None:
    _, token = env.invite("bob@example.com")
    with pytest.raises(InvitationRuleViolation) as missing:
        env.invitations.accept(Actor(None), token)
    assert missing.value.field == "password"
    with pytest.raises(AccountRuleViolation) as short:
        env.invitations.accept(Actor(None), token, password="short")
    assert short.value.field == "password"


def test_a_token_works_once(env: Env) -> None:
    _, token = env.invite("bob@example.com")
    accepted = env.invitations.accept(Actor(None), token, password=PASSWORD)
    bob = env.accounts.get(accepted.account_id)
    for account in (None, bob):
        with pytest.raises(InvitationUsed) as caught:
            env.invitations.accept(Actor(None), token, account=account)
        assert caught.value.code == "invitation-used"
    assert env.actions().count("invitation.accept") == 1


@pytest.mark.parametrize("token", ["", "x", "A" * 43, "A" * 5000, "tok\x00en", "é" * 43])
def test_unknown_tokens_are_refused(env: Env, token: str) -> None:
    env.invite("bob@example.com")
    with pytest.raises(InvitationUnknown) as caught:
        env.invitations.accept(Actor(None), token, password=PASSWORD)
    assert caught.value.code == "invitation-unknown"


def test_refusals_never_name_the_store(env: Env) -> None:
    _, used = env.invite("used@example.com")
    env.invitations.accept(Actor(None), used, password=PASSWORD)
    revoked_id, revoked = env.invite("revoked@example.com")
    env.invitations.revoke(env.actor, STORE, revoked_id)
    _, expired = env.invite("expired@example.com")
    env.clock.advance(LIFETIME * 2)
    for token in (used, revoked, expired, "nonsense"):
        with pytest.raises(IotstoreError) as caught:
            env.invitations.accept(Actor(None), token, password=PASSWORD)
        assert STORE not in caught.value.message
        assert "Acme" not in caught.value.message
        assert "@" not in caught.value.message


def test_lifetime_must_be_positive(env: Env) -> None:
    with pytest.raises(ValueError, match="positive"):
        InvitationService(
            env.session, env.memberships, env.accounts, env.audit, env.mailer, BASE_URL,
            timedelta(0), normalise_email=normalise_email,
        )  # fmt: skip


def test_membership_rows_match_what_accepting_granted(env: Env) -> None:
    _, token = env.invite("bob@example.com", "admin", store="acme-kiosk")
    accepted = env.invitations.accept(Actor(None), token, password=PASSWORD)
    rows = env.session.scalars(
        select(Membership).where(Membership.account_id == accepted.account_id)
    ).all()
    assert [(m.store_id, m.role) for m in rows] == [("acme-kiosk", "admin")]
    assert env.roles_of(accepted.account_id, STORE) == set()  # nothing above the sub-store
