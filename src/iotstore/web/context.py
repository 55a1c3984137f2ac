"""The per-request unit of work: one transaction, the caller's identity, the services.

``RequestContext`` is what every endpoint receives. It is opened by
:func:`request_context` (a dependency), committed when the endpoint returns
normally and rolled back when it raises, so a failed request leaves nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from iotstore import asserts
from iotstore.accounts.brands import BrandService
from iotstore.accounts.models import Account
from iotstore.accounts.services import AccountService
from iotstore.accounts.tokens import TokenService, VerifiedToken
from iotstore.assertdb import trust_database
from iotstore.deployment import Deployment
from iotstore.stores.audit import Actor, AuditLog
from iotstore.stores.services import MembershipService, StoreService

__all__ = ["ContextDep", "Principal", "RequestContext", "request_context"]

_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass
class Principal:
    """Who is calling: nobody, an account with a dashboard session, or an account's token."""

    account: Account | None = None
    token: VerifiedToken | None = None
    via_session: bool = False


@dataclass
class RequestContext:
    """Transaction, identity and services of one request."""

    session: Session
    deployment: Deployment
    request: Request
    principal: Principal = field(default_factory=Principal)

    @property
    def actor(self) -> Actor:
        """The principal as the audit log names it."""
        account = self.principal.account
        token = self.principal.token
        client = self.request.client
        return Actor(
            account_id=account.id if account else None,
            token_id=token.token.id if token else None,
            address=client.host if client else None,
        )

    @cached_property
    def audit(self) -> AuditLog:
        """The audit log in this transaction."""
        return AuditLog(self.session)

    @cached_property
    def stores(self) -> StoreService:
        """Stores service."""
        return StoreService(self.session, self.audit)

    @cached_property
    def memberships(self) -> MembershipService:
        """Roles service."""
        return MembershipService(self.session, self.stores, self.audit)

    @cached_property
    def accounts(self) -> AccountService:
        """Accounts service."""
        return AccountService(self.session)

    @cached_property
    def tokens(self) -> TokenService:
        """API tokens service."""
        return TokenService(self.session, self.deployment.secret, self.deployment.settings.base_url)

    @cached_property
    def trust(self) -> asserts.Database:
        """The assertion trust database over this transaction."""
        return trust_database(self.session, self.deployment.root.trusted)

    @cached_property
    def brands(self) -> BrandService:
        """Brands service."""
        return BrandService(
            self.session, self.deployment.keystore, self.deployment.root, self.trust
        )


def request_context(request: Request) -> Iterator[RequestContext]:
    """Open the request's transaction; commit on success, roll back on error."""
    deployment: Deployment = request.app.state.deployment
    write = request.method not in _SAFE_METHODS
    with deployment.database.unit_of_work(write=write) as session:
        yield RequestContext(session=session, deployment=deployment, request=request)


# scope="function": the transaction ends (commit or rollback) before the response
# is sent, so a failed commit answers with an error, never with a 2xx.
ContextDep = Annotated[RequestContext, Depends(request_context, scope="function")]
