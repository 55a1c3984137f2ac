"""Login for snapcraft and craft-store: root macaroons, the SSO discharge, whoami.

``POST /dev/api/acl/``              a root macaroon for the permissions asked for (anonymous)
``POST /api/v2/tokens/discharge``   email + password + caveat id -> discharge macaroon (the SSO)
``POST /api/v2/tokens/refresh``     a discharge we issued -> a usable discharge
``GET  /api/v2/tokens/whoami``      the account and restrictions of the credentials sent

Point snapcraft at the deployment with ``STORE_DASHBOARD_URL``,
``STORE_UPLOAD_URL`` and ``UBUNTU_ONE_SSO_URL`` all set to the base URL. See
``_macaroons.py`` for how the three steps fit together; a login is an
ordinary API token of the account (listed, revocable).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field

from iotstore.accounts.errors import BadCredentials
from iotstore.errors import InvalidInput
from iotstore.stores.audit import Actor
from iotstore.stores.permissions import Permission

from ..auth import require
from ..context import RequestContext
from . import _macaroons
from ._macaroons import MAX_TTL, LoginRequest

__all__ = ["router", "sso_location"]

router = APIRouter(tags=["publisher: login"])

Public = Annotated[RequestContext, Depends(require(Permission.PUBLIC))]
Self = Annotated[RequestContext, Depends(require(Permission.ACCOUNT_SELF))]

_DEFAULT_TTL = timedelta(days=365)


class _Lenient(BaseModel):
    # clients send fields we do not use (series, ttl...); ignore them, bound the rest
    model_config = ConfigDict(extra="ignore", str_max_length=4096)


class PackageRef(_Lenient):
    """A snap a login is restricted to."""

    name: str = Field(max_length=40)
    series: str | None = Field(default=None, max_length=8)


class AclRequest(_Lenient):
    """What a login may do (snapcraft's ``/dev/api/acl/`` body)."""

    permissions: list[str] = Field(default_factory=lambda: ["package_access"], max_length=50)
    description: str = Field(default="", max_length=200)
    expires: datetime | None = None
    packages: list[PackageRef] | None = Field(default=None, max_length=100)
    channels: list[str] | None = Field(default=None, max_length=100)


class DischargeRequest(_Lenient):
    """The SSO discharge request (craft-store, snapcraft and snapd send this shape)."""

    email: str = Field(max_length=254)
    password: str = Field(max_length=1024)
    caveat_id: str = Field(max_length=4096)
    otp: str | None = Field(default=None, max_length=64)


class RefreshRequest(_Lenient):
    """A discharge to refresh."""

    discharge_macaroon: str = Field(max_length=16384)


def sso_location(ctx: RequestContext) -> str:
    """The SSO's network location, which craft-store matches against ``UBUNTU_ONE_SSO_URL``."""
    return urlsplit(ctx.deployment.settings.base_url).netloc


def _expiry(requested: datetime | None) -> datetime:
    now = datetime.now(UTC).replace(microsecond=0)
    if requested is None:
        return now + _DEFAULT_TTL
    when = requested if requested.tzinfo else requested.replace(tzinfo=UTC)
    if when <= now:
        raise InvalidInput("expires must be in the future", field="expires")
    return min(when.astimezone(UTC).replace(microsecond=0), now + MAX_TTL)


@router.post("/dev/api/acl/")
def root_macaroon(ctx: Public, body: AclRequest) -> dict[str, str]:
    """A root macaroon to be discharged by this deployment's SSO endpoint; stores nothing."""
    _macaroons.our_permissions(body.permissions)  # refuse unknown names now, not at discharge
    request = LoginRequest(
        permissions=sorted(set(body.permissions)),
        description=body.description,
        expires=_expiry(body.expires),
        channels=body.channels,
        packages=[p.name for p in body.packages] if body.packages else None,
    )
    settings = ctx.deployment.settings
    macaroon = _macaroons.mint_root(
        ctx.deployment.secret, settings.base_url, sso_location(ctx), request
    )
    return {"macaroon": macaroon}


@router.post("/api/v2/tokens/discharge")
def discharge(ctx: Public, body: DischargeRequest) -> dict[str, str]:
    """Check the password and discharge the caveat: the login becomes an API token."""
    request = _macaroons.open_caveat_id(ctx.deployment.secret, body.caveat_id)
    account = ctx.accounts.authenticate(body.email, body.password)
    token, serialized = ctx.tokens.issue(
        account,
        description=request.description or "publisher login",
        permissions=_macaroons.our_permissions(request.permissions),
        expires_at=request.expires,
    )
    # what the client asked for in its own words: whoami reports it, releases enforce it
    token.extra = {
        "u1": {
            "permissions": request.permissions,
            "channels": request.channels,
            "packages": request.packages,
        }
    }
    ctx.session.flush()
    ctx.audit.record(
        Actor(account_id=account.id, token_id=token.id, address=ctx.actor.address),
        "token.issue",
        target=token.id,
        after={"via": "publisher-login", "description": token.description},
    )
    return {
        "discharge_macaroon": _macaroons.discharge(
            ctx.deployment.secret, sso_location(ctx), body.caveat_id, serialized
        )
    }


@router.post("/api/v2/tokens/refresh")
def refresh(ctx: Public, body: RefreshRequest) -> dict[str, str]:
    """Our discharges do not expire on their own (the token does): hand a valid one back."""
    _macaroons.check_discharge(ctx.deployment.secret, body.discharge_macaroon)
    return {"discharge_macaroon": body.discharge_macaroon}


def login_restrictions(ctx: RequestContext) -> dict[str, Any]:
    """The client-vocabulary restrictions of the caller's login (empty for other tokens)."""
    token = ctx.principal.token
    extra = token.token.extra if token is not None else None
    u1 = extra.get("u1") if isinstance(extra, dict) else None
    return u1 if isinstance(u1, dict) else {}


@router.get("/api/v2/tokens/whoami")
def whoami(ctx: Self) -> dict[str, Any]:
    """The caller's account and what its credentials allow (null: no restriction)."""
    account = ctx.principal.account
    if account is None:  # pragma: no cover - require() guarantees an account
        raise BadCredentials("sign in or send a token")
    token = ctx.principal.token
    u1 = login_restrictions(ctx)
    permissions = u1.get("permissions")
    if permissions is None and token is not None and token.permissions is not None:
        permissions = sorted(token.permissions)
    expires = token.expires_at if token is not None else None
    return {
        "account": {
            "email": account.email,
            "id": account.id,
            "name": account.display_name,
            "username": account.email.partition("@")[0],
        },
        "permissions": permissions,
        "channels": u1.get("channels"),
        "packages": [{"series": "16", "name": n} for n in u1["packages"]]
        if u1.get("packages")
        else None,
        # snapcraft appends "Z" itself
        "expires": expires.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000") if expires else None,
    }
