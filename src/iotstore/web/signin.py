"""Sign-in for people: local passwords and OpenID Connect, dashboard sessions.

``POST /auth/login``          email + password (JSON, or the dashboard's HTML form) -> session
``POST /auth/logout``         ends the session (CSRF header, like every unsafe session request)
``GET  /auth/session``        who is signed in, and the CSRF token the dashboard's scripts send
``GET  /auth/methods``        which sign-in methods this deployment offers
``GET  /auth/oidc/login``     authorization code + PKCE (S256) at the deployment's provider
``GET  /auth/oidc/callback``  checks the answer, finds or creates the account, starts a session

A session is an HttpOnly, SameSite=Lax cookie (Secure when the base URL is
https) whose value only exists hashed in the database (see
``accounts/sessions.py``); ``auth.authenticate`` turns it into a principal and
enforces the CSRF header. Sign-in and sign-out are audited; failed attempts
are logged, never with the password.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from fastapi.responses import JSONResponse, RedirectResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from iotstore.accounts.errors import BadCredentials
from iotstore.accounts.models import Account, WebSession
from iotstore.accounts.oidc import (
    LOGIN_LIFETIME,
    OidcClient,
    OidcError,
    OidcIdentity,
    OidcUnavailable,
    PendingLogin,
)
from iotstore.accounts.services import AccountService, account_dict, normalise_email
from iotstore.errors import Forbidden, InvalidInput, IotstoreError, NotFound
from iotstore.stores.permissions import Permission

from .auth import SESSION_COOKIE, require, sessions
from .context import Principal, RequestContext
from .errors import error_response

__all__ = ["LOGIN_COOKIE", "login_cookie_key", "router", "safe_next"]

log = logging.getLogger("iotstore.web.signin")

router = APIRouter(prefix="/auth", tags=["sign-in"])

Public = Annotated[RequestContext, Depends(require(Permission.PUBLIC))]
Self = Annotated[RequestContext, Depends(require(Permission.ACCOUNT_SELF))]

LOGIN_COOKIE = "iotstore_oidc"
"""The sealed, short-lived state of a started single sign-on (path /auth/oidc only)."""

_LOGIN_COOKIE_PATH = "/auth/oidc"
_CALLBACK_PATH = "/auth/oidc/callback"
_MAX_NEXT = 2048


# -- helpers ------------------------------------------------------------------------------


def safe_next(value: object) -> str:
    """``value`` if it is a same-site relative path, else ``"/"`` (no open redirects).

    Refused: absolute and scheme-relative URLs (``//host``), backslashes (browsers read
    them as slashes), whitespace, control and non-ASCII characters, overlong values.
    """
    if not isinstance(value, str) or not 0 < len(value) <= _MAX_NEXT:
        return "/"
    if not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    if not all("!" <= c <= "~" for c in value):
        return "/"
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return "/"
    return value


def login_cookie_key(secret: bytes) -> bytes:
    """The HMAC key sealing :data:`LOGIN_COOKIE`, derived from the deployment secret."""
    return hmac.new(secret, b"iotstore/web/signin/oidc-login-cookie/v1", hashlib.sha256).digest()


def _secure(ctx: RequestContext) -> bool:
    return ctx.deployment.settings.base_url.lower().startswith("https://")


def _address(ctx: RequestContext) -> str:
    client = ctx.request.client
    return client.host if client else "unknown"


def _iso(row: WebSession) -> str:
    return row.expires_at.isoformat().replace("+00:00", "Z")


def _session_body(account: Account, row: WebSession) -> dict[str, Any]:
    return {"account": account_dict(account), "csrf-token": row.csrf_token, "expires-at": _iso(row)}


def _set_session_cookie(response: Response, ctx: RequestContext, value: str) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        value,
        max_age=ctx.deployment.settings.session_hours * 3600,
        path="/",
        secure=_secure(ctx),
        httponly=True,
        samesite="lax",
    )


def _start_session(
    ctx: RequestContext, account: Account, how: dict[str, Any]
) -> tuple[str, WebSession]:
    """A fresh session for ``account`` (any session the browser brought is ended: no
    fixation), audited as ``account.sign-in``."""
    service = sessions(ctx)
    old = ctx.request.cookies.get(SESSION_COOKIE)
    if old:
        service.end(old)
    cookie, row = service.start(account)
    ctx.principal = Principal(account=account, via_session=True)
    ctx.audit.record(ctx.actor, "account.sign-in", target=account.id, after=how)
    return cookie, row


def _origin(url: str) -> str:
    parts = urlsplit(url)
    scheme, host = parts.scheme.lower(), (parts.hostname or "").lower()
    port = parts.port
    if port is None or (scheme, port) in (("http", 80), ("https", 443)):
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


def _refuse_cross_site(ctx: RequestContext) -> None:
    """Login CSRF: a foreign page must not sign the browser in to the attacker's account.

    Browsers label cross-site requests with ``Sec-Fetch-Site``; older ones only send
    ``Origin``. Clients that send neither (scripts, CLIs) are not browsers.
    """
    headers = ctx.request.headers
    fetch_site = headers.get("sec-fetch-site")
    origin = headers.get("origin")
    if fetch_site == "cross-site" or (
        fetch_site is None
        and origin is not None
        and origin.lower() != _origin(ctx.deployment.settings.base_url)
    ):
        raise Forbidden("sign-in from another site is refused")


# -- local passwords ----------------------------------------------------------------------


class Credentials(BaseModel):
    """Email and password of a local account."""

    model_config = ConfigDict(extra="forbid", str_max_length=1024)

    email: str = Field(max_length=254)
    password: str = Field(max_length=1024)


class _LoginForm(BaseModel):
    """The dashboard's form: credentials and where to go afterwards."""

    email: str = Field(max_length=254)
    password: str = Field(max_length=1024)
    next: str = Field(default="/", max_length=_MAX_NEXT)


_JSON = "application/json"
_FORM = "application/x-www-form-urlencoded"
_LOGIN_OPENAPI: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            _JSON: {"schema": Credentials.model_json_schema()},
            _FORM: {"schema": _LoginForm.model_json_schema()},
        },
    }
}


class _Login:
    """A parsed sign-in request; ``redirect`` is set for the form variant."""

    def __init__(self, credentials: Credentials, redirect: str | None) -> None:
        self.credentials = credentials
        self.redirect = redirect


def _invalid(error: ValidationError) -> InvalidInput:
    details = error.errors()
    if not details:
        return InvalidInput("invalid sign-in request")
    location = [p for p in details[0]["loc"] if isinstance(p, str)]
    return InvalidInput(details[0]["msg"], field=".".join(location) if location else None)


async def _login_body(request: Request) -> _Login:
    """Credentials from a JSON body or a urlencoded form (read before the transaction
    opens: a malformed body costs no database work)."""
    media = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media == _JSON:
        try:
            data = await request.json()
        except ValueError as e:
            raise InvalidInput("the body is not valid JSON") from e
        try:
            return _Login(Credentials.model_validate(data), None)
        except ValidationError as e:
            raise _invalid(e) from e
    if media == _FORM:
        form = await request.form(max_files=0, max_fields=20)
        # the page's own extra fields (submit buttons...) are ignored
        fields = {k: v for k in ("email", "password", "next") if isinstance(v := form.get(k), str)}
        try:
            parsed = _LoginForm.model_validate(fields)
        except ValidationError as e:
            raise _invalid(e) from e
        credentials = Credentials(email=parsed.email, password=parsed.password)
        return _Login(credentials, safe_next(parsed.next))
    raise HTTPException(415, f"send the credentials as {_JSON} or {_FORM}")


@router.post(
    "/login",
    response_model=None,
    openapi_extra=_LOGIN_OPENAPI,
    responses={
        200: {"description": "Signed in (JSON): the account and the session's CSRF token."},
        303: {"description": "Signed in (form): on to `next`."},
        401: {"description": "Wrong email or password (never says which)."},
    },
)
def login(login: Annotated[_Login, Depends(_login_body)], ctx: Public) -> Response:
    """Sign in with a local account's email and password; sets the session cookie."""
    _refuse_cross_site(ctx)
    credentials = login.credentials
    # The password check (argon2, ~0.1-0.3 s) runs in a read-only unit of its own: the
    # request's unit takes SQLite's write lock at its first statement, and holding it
    # through the hash would queue every other writer behind each sign-in.
    try:
        with ctx.deployment.database.unit_of_work(write=False) as session:
            account_id = (
                AccountService(session).authenticate(credentials.email, credentials.password).id
            )
    except BadCredentials:
        log.warning(
            "password sign-in failed for %r from %s", credentials.email[:254], _address(ctx)
        )
        raise
    account = ctx.accounts.get(account_id)
    if account.disabled:  # disabled in between
        raise BadCredentials("wrong email or password")
    cookie, row = _start_session(ctx, account, {"method": "password"})
    response: Response
    if login.redirect is not None:
        response = RedirectResponse(login.redirect, status_code=303)
    else:
        response = JSONResponse(_session_body(account, row))
    _set_session_cookie(response, ctx, cookie)
    return response


def _current_session(ctx: RequestContext) -> tuple[str, WebSession] | None:
    cookie = ctx.request.cookies.get(SESSION_COOKIE)
    if not ctx.principal.via_session or not cookie:
        return None
    row = sessions(ctx).find(cookie)
    return (cookie, row) if row is not None else None


@router.post(
    "/logout",
    status_code=204,
    response_class=Response,
    responses={400: {"description": "The caller used a token, not a session."}},
)
def logout(ctx: Self) -> Response:
    """End the caller's dashboard session and clear its cookie (needs the CSRF header)."""
    current = _current_session(ctx)
    if current is None:
        raise InvalidInput(
            "there is no dashboard session to end; revoke tokens with DELETE /api/v1/tokens/{id}"
        )
    account = ctx.principal.account
    assert account is not None
    sessions(ctx).end(current[0])
    ctx.audit.record(ctx.actor, "account.sign-out", target=account.id)
    response = Response(status_code=204)
    response.delete_cookie(
        SESSION_COOKIE, path="/", secure=_secure(ctx), httponly=True, samesite="lax"
    )
    return response


@router.get("/session")
def session_info(ctx: Self) -> dict[str, Any]:
    """Who is calling: the account, and for a dashboard session its CSRF token and end.

    A token caller gets its account with ``csrf-token`` null (tokens need none).
    """
    account = ctx.principal.account
    assert account is not None
    current = _current_session(ctx)
    if current is not None:
        return {**_session_body(account, current[1]), "via": "session"}
    return {
        "account": account_dict(account),
        "csrf-token": None,
        "expires-at": None,
        "via": "token",
    }


@router.get("/methods")
def methods(ctx: Public) -> dict[str, Any]:
    """How people sign in here: local passwords, and the single sign-on provider if any."""
    oidc = ctx.deployment.settings.oidc
    return {
        "password": True,
        "oidc": {"name": oidc.name, "login-url": "/auth/oidc/login"} if oidc else None,
    }


# -- OpenID Connect -----------------------------------------------------------------------


def _oidc_client(ctx: RequestContext) -> OidcClient:
    """The app's relying party (kept on app.state so discovery and keys are cached)."""
    settings = ctx.deployment.settings
    if settings.oidc is None:
        raise NotFound("single sign-on is not configured on this deployment")
    state = ctx.request.app.state
    client: OidcClient | None = getattr(state, "iotstore_oidc_client", None)
    if client is None or client.settings is not settings.oidc:
        client = OidcClient(
            settings.oidc,
            settings.base_url.rstrip("/") + _CALLBACK_PATH,
            allow_http=settings.development,
        )
        state.iotstore_oidc_client = client
    return client


def _sso_failure(ctx: RequestContext, error: OidcError | OidcUnavailable) -> Response:
    """The error body, and the started sign-in forgotten (it cannot be retried)."""
    if isinstance(error, OidcUnavailable):
        log.error("single sign-on unavailable: %s", error.message)
        response = error_response(502, error.code, error.message)
    else:
        log.warning("single sign-on failed from %s: %s", _address(ctx), error.message)
        response = error_response(400, error.code, error.message)
    response.delete_cookie(
        LOGIN_COOKIE, path=_LOGIN_COOKIE_PATH, secure=_secure(ctx), httponly=True, samesite="lax"
    )
    return response


@router.get(
    "/oidc/login",
    status_code=303,
    response_class=RedirectResponse,
    responses={
        303: {"description": "On to the identity provider."},
        404: {"description": "No single sign-on provider is configured."},
        502: {"description": "The identity provider cannot be reached."},
    },
)
def oidc_login(
    ctx: Public,
    next_path: Annotated[str, Query(alias="next", max_length=_MAX_NEXT)] = "/",
) -> Response:
    """Start single sign-on: authorization code with PKCE (S256) at the provider."""
    client = _oidc_client(ctx)
    try:
        url, pending = client.begin(safe_next(next_path))
    except OidcUnavailable as e:
        return _sso_failure(ctx, e)
    response = RedirectResponse(url, status_code=303)
    # SameSite=Lax: the provider's redirect back is a top-level GET, which carries it
    response.set_cookie(
        LOGIN_COOKIE,
        pending.seal(login_cookie_key(ctx.deployment.secret)),
        max_age=LOGIN_LIFETIME,
        path=_LOGIN_COOKIE_PATH,
        secure=_secure(ctx),
        httponly=True,
        samesite="lax",
    )
    return response


def _account_of(ctx: RequestContext, identity: OidcIdentity) -> Account:
    """The account of a checked identity: found, linked by verified email, or created;
    links and creations are audited."""
    email = normalise_email(identity.email)
    by_email = ctx.accounts.find_by_email(email)
    link_before = (by_email.oidc_issuer, by_email.oidc_subject) if by_email else None
    before = account_dict(by_email) if by_email else None
    account = ctx.accounts.from_oidc(
        identity.issuer,
        identity.subject,
        identity.email,
        identity.email_verified,
        identity.display_name,
    )
    if account.disabled:
        raise Forbidden("this account is disabled")
    if by_email is None and account.email == email:
        ctx.principal = Principal(account=account)
        ctx.audit.record(
            ctx.actor, "account.create", target=account.id, after=account_dict(account)
        )
    elif by_email is account and link_before != (identity.issuer, identity.subject):
        ctx.principal = Principal(account=account)
        ctx.audit.record(
            ctx.actor, "account.link-sso", target=account.id, before=before,
            after={**account_dict(account), "oidc-issuer": identity.issuer},
        )  # fmt: skip
    return account


@router.get(
    _CALLBACK_PATH.removeprefix("/auth"),
    status_code=303,
    response_class=RedirectResponse,
    responses={
        303: {"description": "Signed in: on to where the sign-in started."},
        400: {"description": "Forged, replayed or expired sign-in, or the provider said no."},
        401: {"description": "The provider did not verify the email address."},
        404: {"description": "No single sign-on provider is configured."},
        502: {"description": "The identity provider cannot be reached."},
    },
)
def oidc_callback(
    ctx: Public,
    code: Annotated[str | None, Query(max_length=2048)] = None,
    state: Annotated[str | None, Query(max_length=512)] = None,
    error: Annotated[str | None, Query(max_length=256)] = None,
    error_description: Annotated[str | None, Query(max_length=1024)] = None,
    iss: Annotated[str | None, Query(max_length=1024)] = None,
) -> Response:
    """Finish single sign-on: check state, code, ID token; sign the account in."""
    client = _oidc_client(ctx)
    params = {
        name: value
        for name, value in (
            ("code", code),
            ("state", state),
            ("error", error),
            ("error_description", error_description),
            ("iss", iss),
        )
        if value is not None
    }
    try:
        pending = PendingLogin.unseal(
            ctx.request.cookies.get(LOGIN_COOKIE, ""), login_cookie_key(ctx.deployment.secret)
        )
        identity = client.finish(pending, params)
    except (OidcError, OidcUnavailable) as e:
        return _sso_failure(ctx, e)
    # A GET runs in a read-only unit of work (context.py); the sign-in writes in one
    # unit of its own, opened only now that the provider's answer is checked (no write
    # lock held across network calls). It commits as a whole or not at all.
    try:
        with ctx.deployment.database.unit_of_work() as session:
            writer = RequestContext(session=session, deployment=ctx.deployment, request=ctx.request)
            account = _account_of(writer, identity)
            cookie, _row = _start_session(
                writer, account, {"method": "oidc", "issuer": identity.issuer}
            )
    except IotstoreError as e:
        log.warning(
            "single sign-on refused for %r (%s) from %s: %s",
            identity.email[:254], identity.subject[:64], _address(ctx), e.message,
        )  # fmt: skip
        raise
    ctx.principal = writer.principal
    response = RedirectResponse(pending.next, status_code=303)
    _set_session_cookie(response, ctx, cookie)
    response.delete_cookie(
        LOGIN_COOKIE, path=_LOGIN_COOKIE_PATH, secure=_secure(ctx), httponly=True, samesite="lax"
    )
    return response
