"""Sign-in: local passwords, dashboard sessions with CSRF, and OpenID Connect.

The app runs in-process on ``app.test``; the identity provider is the real
panva ``oidc-provider`` on loopback (``tests/oidc``). A "browser" is one
httpx client whose cookie jar spans both, so the authorization code + PKCE
flow is the one a browser does: redirects followed by hand, the provider's
login and consent forms posted, back to ``/auth/oidc/callback``.
Every test runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import dataclasses
import html
import logging
import re
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from http.cookies import Morsel, SimpleCookie
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select, update

from iotstore.accounts.models import Account, WebSession
from iotstore.accounts.oidc import LOGIN_LIFETIME, OidcError, PendingLogin
from iotstore.accounts.services import AccountService
from iotstore.db import utcnow
from iotstore.deployment import Deployment
from iotstore.stores.audit import AuditLog
from iotstore.web import create_app
from iotstore.web.auth import CSRF_HEADER, SESSION_COOKIE
from iotstore.web.signin import LOGIN_COOKIE, login_cookie_key, safe_next
from tests.oidc.provider import APP_URL, OidcProvider, oidc_provider

from ._support import PASSWORD, Factory, SyncASGITransport, error_of, make_deployment, unique

__all__ = ["oidc_provider"]  # the provider's session fixture, used by the fixtures below

HTTPS_URL = "https://app.test"


@dataclasses.dataclass(frozen=True)
class Local:
    """An account with a local password."""

    account_id: str
    email: str


@dataclasses.dataclass
class SigninWorld:
    """A deployment whose base URL is ``APP_URL`` and whose identity provider is real."""

    deployment: Deployment
    app: FastAPI
    provider: OidcProvider
    factory: Factory
    password_hash: str  # of PASSWORD, computed once: argon2 costs ~0.3 s a hash

    def local_person(self, email: str | None = None) -> Local:
        """A new account with the local password ``PASSWORD``."""
        email = email or f"{unique('local')}@example.com"
        with self.deployment.database.unit_of_work() as session:
            account = AccountService(session).create(email, "Local Person", email_verified=True)
            account.password_hash = self.password_hash
            return Local(account.id, account.email)

    def variant(self, **settings: Any) -> FastAPI:
        """Another app over the same data with different settings (base URL, no SSO...)."""
        changed = dataclasses.replace(self.deployment.settings, **settings)
        return create_app(changed, dataclasses.replace(self.deployment, settings=changed))


@pytest.fixture(scope="module")
def site(
    module_database_url: str,
    tmp_path_factory: pytest.TempPathFactory,
    oidc_provider: OidcProvider,
) -> Iterator[SigninWorld]:
    data_dir = tmp_path_factory.mktemp("signin") / "data"
    deployment = make_deployment(
        data_dir, module_database_url, base_url=APP_URL, oidc=oidc_provider.settings()
    )
    try:
        app = create_app(deployment.settings, deployment)
        yield SigninWorld(
            deployment,
            app,
            oidc_provider,
            Factory(deployment),
            AccountService.hash_password(PASSWORD),
        )
    finally:
        deployment.close()


def browser_of(app: FastAPI) -> httpx.Client:
    """A client whose one cookie jar spans the app (app.test, in-process) and the provider."""
    transport = SyncASGITransport(app)
    return httpx.Client(
        mounts={APP_URL: transport, HTTPS_URL: transport}, timeout=30, follow_redirects=False
    )


@pytest.fixture
def browser(site: SigninWorld) -> Iterator[httpx.Client]:
    with browser_of(site.app) as client:
        yield client


def cookie_of(response: httpx.Response, name: str) -> Morsel[str]:
    """The ``Set-Cookie`` of ``name`` in ``response``, attributes parsed."""
    for header in response.headers.get_list("set-cookie"):
        jar: SimpleCookie = SimpleCookie()
        jar.load(header)
        if name in jar:
            return jar[name]
    raise AssertionError(f"no Set-Cookie {name} in {response.headers.get_list('set-cookie')}")


def login(browser: httpx.Client, email: str, password: str = PASSWORD) -> dict[str, Any]:
    response = browser.post(f"{APP_URL}/auth/login", json={"email": email, "password": password})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def audit_actions(site: SigninWorld, account_id: str) -> list[str]:
    """Actions of the audit entries about ``account_id``, oldest first."""
    with site.deployment.database.unit_of_work(write=False) as session:
        entries = AuditLog(session).query(limit=500)
        return [e.action for e in entries if e.target == account_id]


# -- local passwords ----------------------------------------------------------------------


def test_json_login_starts_a_session(site: SigninWorld, browser: httpx.Client) -> None:
    person = site.local_person()
    response = browser.post(
        f"{APP_URL}/auth/login", json={"email": person.email.upper(), "password": PASSWORD}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["account"]["id"] == person.account_id
    assert "password" not in str(body["account"])
    assert len(body["csrf-token"]) >= 32
    cookie = cookie_of(response, SESSION_COOKIE)
    assert cookie["httponly"] is True
    assert cookie["samesite"].lower() == "lax"
    assert cookie["path"] == "/"
    assert not cookie["secure"]  # http base URL
    assert int(cookie["max-age"]) == site.deployment.settings.session_hours * 3600

    me = browser.get(f"{APP_URL}/api/v1/account")
    assert me.status_code == 200, me.text
    assert me.json()["id"] == person.account_id
    session = browser.get(f"{APP_URL}/auth/session")
    assert session.status_code == 200
    assert session.json()["csrf-token"] == body["csrf-token"]
    assert session.json()["account"]["email"] == person.email
    assert audit_actions(site, person.account_id)[-1] == "account.sign-in"


def test_cookie_is_secure_behind_https(site: SigninWorld) -> None:
    person = site.local_person()
    with browser_of(site.variant(base_url=HTTPS_URL)) as browser:
        response = browser.post(
            f"{HTTPS_URL}/auth/login", json={"email": person.email, "password": PASSWORD}
        )
        assert response.status_code == 200, response.text
        assert cookie_of(response, SESSION_COOKIE)["secure"] is True
        assert browser.get(f"{HTTPS_URL}/auth/session").status_code == 200


@pytest.mark.parametrize(
    ("next_path", "expected"),
    [
        ("/stores/s1?tab=members", "/stores/s1?tab=members"),
        (None, "/"),
        ("//evil.example/", "/"),  # the rest of the rules: test_safe_next
    ],
)
def test_form_login_redirects_to_a_local_next(
    site: SigninWorld, browser: httpx.Client, next_path: str | None, expected: str
) -> None:
    person = site.local_person()
    form = {"email": person.email, "password": PASSWORD, "submit": "Sign in"}
    if next_path is not None:
        form["next"] = next_path
    response = browser.post(f"{APP_URL}/auth/login", data=form)
    assert response.status_code == 303, response.text
    assert response.headers["location"] == expected
    assert cookie_of(response, SESSION_COOKIE)["httponly"] is True
    assert browser.get(f"{APP_URL}/api/v1/account").json()["id"] == person.account_id


def test_wrong_credentials_do_not_say_which(
    site: SigninWorld, browser: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    person = site.local_person()
    wrong = "not the password 1234"
    with caplog.at_level(logging.WARNING, logger="iotstore.web.signin"):
        bad_password = browser.post(
            f"{APP_URL}/auth/login", json={"email": person.email, "password": wrong}
        )
        no_account = browser.post(
            f"{APP_URL}/auth/login", data={"email": f"{unique('nobody')}@x.test", "password": wrong}
        )
        sso_only = site.factory.person()  # no local password
        no_password = browser.post(
            f"{APP_URL}/auth/login", json={"email": sso_only.email, "password": wrong}
        )
    errors = [error_of(r, 401) for r in (bad_password, no_account, no_password)]
    assert errors[0] == errors[1] == errors[2]
    assert "set-cookie" not in bad_password.headers
    assert any(person.email in r.getMessage() for r in caplog.records)
    assert not any(wrong in r.getMessage() for r in caplog.records)
    assert browser.get(f"{APP_URL}/auth/session").status_code == 401


@pytest.mark.parametrize(
    ("kwargs", "status"),
    [
        ({"content": b"email=a", "headers": {"content-type": "text/plain"}}, 415),
        ({"content": b"{not json", "headers": {"content-type": "application/json"}}, 400),
        ({"json": ["a", "b"]}, 400),
        ({"json": {"email": "a@b.test"}}, 400),
        ({"json": {"email": "a@b.test", "password": "x" * 10, "admin": True}}, 400),
        ({"json": {"email": "a@b.test", "password": "x" * 2000}}, 400),
        ({"data": {"email": "a@b.test"}}, 400),
    ],
)
def test_malformed_login_requests_get_4xx(
    browser: httpx.Client, kwargs: dict[str, Any], status: int
) -> None:
    error_of(browser.post(f"{APP_URL}/auth/login", **kwargs), status)


@pytest.mark.parametrize(
    "headers",
    [
        {"origin": "https://evil.example"},
        {"origin": "null"},
        {"sec-fetch-site": "cross-site", "origin": APP_URL},
    ],
)
def test_cross_site_login_is_refused(
    site: SigninWorld, browser: httpx.Client, headers: dict[str, str]
) -> None:
    person = site.local_person()
    response = browser.post(
        f"{APP_URL}/auth/login",
        data={"email": person.email, "password": PASSWORD},
        headers=headers,
    )
    error_of(response, 403)
    assert "set-cookie" not in response.headers


def test_same_origin_browser_login_is_accepted(site: SigninWorld, browser: httpx.Client) -> None:
    person = site.local_person()
    response = browser.post(
        f"{APP_URL}/auth/login",
        data={"email": person.email, "password": PASSWORD},
        headers={"origin": APP_URL, "sec-fetch-site": "same-origin"},
    )
    assert response.status_code == 303, response.text


def test_csrf_token_is_required_for_unsafe_requests(
    site: SigninWorld, browser: httpx.Client
) -> None:
    person = site.local_person()
    csrf = login(browser, person.email)["csrf-token"]
    tokens = f"{APP_URL}/api/v1/tokens"
    assert error_of(browser.post(tokens, json={}), 403)["message"] == "missing or wrong CSRF token"
    error_of(browser.post(tokens, json={}, headers={CSRF_HEADER: "x" + csrf[1:]}), 403)
    error_of(browser.post(f"{APP_URL}/auth/logout"), 403)
    created = browser.post(
        tokens, json={"description": "from the dashboard"}, headers={CSRF_HEADER: csrf}
    )
    assert created.status_code == 201, created.text
    # safe methods need no token
    assert browser.get(tokens).status_code == 200


def test_logout_ends_the_session(site: SigninWorld, browser: httpx.Client) -> None:
    person = site.local_person()
    csrf = login(browser, person.email)["csrf-token"]
    old_cookie = browser.cookies[SESSION_COOKIE]
    response = browser.post(f"{APP_URL}/auth/logout", headers={CSRF_HEADER: csrf})
    assert response.status_code == 204, response.text
    cleared = cookie_of(response, SESSION_COOKIE)
    assert cleared.value in ("", '""') and int(cleared["max-age"]) == 0
    assert SESSION_COOKIE not in browser.cookies
    error_of(browser.get(f"{APP_URL}/auth/session"), 401)
    # the old cookie value is dead on the server, not only forgotten by the browser
    with browser_of(site.app) as replay:
        replay.cookies.set(SESSION_COOKIE, old_cookie, domain="app.test")
        error_of(replay.get(f"{APP_URL}/api/v1/account"), 401)
        error_of(replay.post(f"{APP_URL}/auth/logout", headers={CSRF_HEADER: csrf}), 401)
    actions = audit_actions(site, person.account_id)
    assert actions[-2:] == ["account.sign-in", "account.sign-out"]


def test_logout_needs_a_session(site: SigninWorld, browser: httpx.Client) -> None:
    person = site.factory.person()
    error_of(browser.post(f"{APP_URL}/auth/logout"), 401)
    token_caller = browser.post(f"{APP_URL}/auth/logout", headers=person.headers)
    assert error_of(token_caller, 400)["code"] == "invalid-input"
    by_token = browser.get(f"{APP_URL}/auth/session", headers=person.headers)
    assert by_token.status_code == 200, by_token.text
    assert by_token.json()["account"]["id"] == person.account_id
    assert by_token.json()["csrf-token"] is None and by_token.json()["via"] == "token"


def test_expired_session_is_refused(site: SigninWorld, browser: httpx.Client) -> None:
    person = site.local_person()
    login(browser, person.email)
    assert browser.get(f"{APP_URL}/api/v1/account").status_code == 200
    with site.deployment.database.unit_of_work() as session:
        session.execute(
            update(WebSession)
            .where(WebSession.account_id == person.account_id)
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
    error_of(browser.get(f"{APP_URL}/api/v1/account"), 401)
    error_of(browser.get(f"{APP_URL}/auth/session"), 401)


def test_signing_in_again_replaces_the_session(site: SigninWorld, browser: httpx.Client) -> None:
    person = site.local_person()
    first = login(browser, person.email)
    first_cookie = browser.cookies[SESSION_COOKIE]
    response = browser.post(
        f"{APP_URL}/auth/login",
        json={"email": person.email, "password": PASSWORD},
        headers={CSRF_HEADER: first["csrf-token"]},
    )
    assert response.status_code == 200, response.text
    assert browser.cookies[SESSION_COOKIE] != first_cookie
    with browser_of(site.app) as other:
        other.cookies.set(SESSION_COOKIE, first_cookie, domain="app.test")
        error_of(other.get(f"{APP_URL}/auth/session"), 401)


def test_methods_name_the_provider(site: SigninWorld, browser: httpx.Client) -> None:
    body = browser.get(f"{APP_URL}/auth/methods").json()
    assert body == {
        "password": True,
        "oidc": {"name": "Test sign-on", "login-url": "/auth/oidc/login"},
    }


def test_without_a_provider_sso_is_not_found(site: SigninWorld) -> None:
    with browser_of(site.variant(oidc=None)) as browser:
        assert browser.get(f"{APP_URL}/auth/methods").json()["oidc"] is None
        error_of(browser.get(f"{APP_URL}/auth/oidc/login"), 404)
        error_of(browser.get(f"{APP_URL}/auth/oidc/callback?code=x&state=y"), 404)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("/", "/"),
        ("/x/y?z=1#f", "/x/y?z=1#f"),
        ("", "/"),
        ("x", "/"),
        ("//x", "/"),
        ("/\\x", "/"),
        ("http://x/", "/"),
        ("/é", "/"),
        ("/\tx", "/"),
        ("/" + "a" * 3000, "/"),
        (None, "/"),
    ],
)
def test_safe_next(value: object, expected: str) -> None:
    assert safe_next(value) == expected


# -- OpenID Connect -----------------------------------------------------------------------

_FORM_ACTION = re.compile(r'<form[^>]*action="([^"]+)"')
_PROMPT = re.compile(r'name="prompt" value="(\w+)"')
_ABORT = re.compile(r'href="([^"]*/abort)"')


def _is_app(url: str) -> bool:
    return url.startswith((APP_URL + "/", HTTPS_URL + "/"))


def through_provider(
    browser: httpx.Client, response: httpx.Response, login_name: str, *, abort: bool = False
) -> str:
    """Follow the provider's redirects and post its forms (as ``login_name``) until it sends
    the browser back to the app; return that callback URL, not yet visited."""
    for _ in range(20):
        if response.is_redirect:
            url = str(response.url.join(response.headers["location"]))
            if _is_app(url):
                return url
            response = browser.get(url)
            continue
        assert response.status_code == 200, response.text
        if abort:
            link = _ABORT.search(response.text)
            assert link, response.text
            response = browser.get(response.url.join(html.unescape(link.group(1))))
            continue
        action, prompt = _FORM_ACTION.search(response.text), _PROMPT.search(response.text)
        assert action and prompt, response.text
        fields = {"prompt": prompt.group(1)}
        if prompt.group(1) == "login":
            fields |= {"login": login_name, "password": "anything at all"}
        response = browser.post(response.url.join(html.unescape(action.group(1))), data=fields)
    raise AssertionError("the provider never sent the browser back")


def start_sso(browser: httpx.Client, next_path: str = "/dashboard") -> httpx.Response:
    response = browser.get(f"{APP_URL}/auth/oidc/login", params={"next": next_path})
    assert response.status_code == 303, response.text
    return response


def sso_callback(browser: httpx.Client, login_name: str, next_path: str = "/dashboard") -> str:
    return through_provider(browser, start_sso(browser, next_path), login_name)


def login_name(prefix: str = "sso") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def account_by_email(site: SigninWorld, email: str) -> Account | None:
    with site.deployment.database.unit_of_work(write=False) as session:
        return session.scalars(select(Account).where(Account.email == email)).first()


def test_authorization_request_uses_pkce(site: SigninWorld, browser: httpx.Client) -> None:
    response = start_sso(browser, next_path="//evil.example/")
    target = httpx.URL(response.headers["location"])
    assert str(target).startswith(f"{site.provider.issuer}/auth?")
    query = dict(target.params)
    assert query["response_type"] == "code"
    assert query["client_id"] == site.provider.client_id
    assert query["redirect_uri"] == f"{APP_URL}/auth/oidc/callback"
    assert query["code_challenge_method"] == "S256"
    assert set(query["scope"].split()) >= {"openid", "email"}
    cookie = cookie_of(response, LOGIN_COOKIE)
    assert cookie["httponly"] is True and cookie["samesite"].lower() == "lax"
    assert cookie["path"] == "/auth/oidc" and int(cookie["max-age"]) == LOGIN_LIFETIME
    pending = PendingLogin.unseal(cookie.value, login_cookie_key(site.deployment.secret))
    assert pending.state == query["state"] and pending.nonce == query["nonce"]
    assert pending.code_challenge == query["code_challenge"]
    assert pending.verifier not in str(target)
    assert pending.next == "/"  # the foreign next was dropped


def test_sso_creates_the_account_and_signs_in(site: SigninWorld, browser: httpx.Client) -> None:
    name = login_name()
    callback = sso_callback(browser, name, next_path="/stores?tab=mine")
    response = browser.get(callback)
    assert response.status_code == 303, response.text
    assert response.headers["location"] == "/stores?tab=mine"
    session_cookie = cookie_of(response, SESSION_COOKIE)
    assert session_cookie["httponly"] is True and session_cookie["samesite"].lower() == "lax"
    assert int(cookie_of(response, LOGIN_COOKIE)["max-age"]) == 0  # one sign-in, one use

    me = browser.get(f"{APP_URL}/api/v1/account")
    assert me.status_code == 200, me.text
    account = me.json()
    assert account["email"] == f"{name}@example.test"
    assert account["email-verified"] is True and account["sso"] is True
    assert account["display-name"] == f"Test {name}"
    # the session is a full dashboard session: CSRF token and unsafe requests
    csrf = browser.get(f"{APP_URL}/auth/session").json()["csrf-token"]
    created = browser.post(f"{APP_URL}/api/v1/tokens", json={}, headers={CSRF_HEADER: csrf})
    assert created.status_code == 201, created.text
    assert audit_actions(site, account["id"])[:2] == ["account.create", "account.sign-in"]

    # signing in again (the provider remembers the browser) finds the same account
    browser.cookies.delete(SESSION_COOKIE)
    again = browser.get(sso_callback(browser, name))
    assert again.status_code == 303, again.text
    assert browser.get(f"{APP_URL}/api/v1/account").json()["id"] == account["id"]


def test_sso_links_a_local_account_by_verified_email(
    site: SigninWorld, browser: httpx.Client
) -> None:
    name = login_name("local")
    person = site.local_person(f"{name}@example.test")
    response = browser.get(sso_callback(browser, name))
    assert response.status_code == 303, response.text
    me = browser.get(f"{APP_URL}/api/v1/account").json()
    assert me["id"] == person.account_id and me["sso"] is True
    assert audit_actions(site, person.account_id)[-2:] == ["account.link-sso", "account.sign-in"]
    # the local password still works
    with browser_of(site.app) as other:
        assert login(other, person.email)["account"]["id"] == person.account_id


def test_sso_refuses_an_unverified_email(site: SigninWorld, browser: httpx.Client) -> None:
    name = login_name("shady")
    # an existing local account with that address must not be taken over either
    victim = site.local_person(f"{name}@example.test")
    response = browser.get(sso_callback(browser, f"{name}-unverified"))
    assert "verify" in error_of(response, 401)["message"]
    assert SESSION_COOKIE not in browser.cookies
    error_of(browser.get(f"{APP_URL}/api/v1/account"), 401)
    account = account_by_email(site, victim.email)
    assert account is not None and account.oidc_subject is None
    fresh = login_name("nobody")
    error_of(browser.get(sso_callback(browser, f"{fresh}-unverified")), 401)
    assert account_by_email(site, f"{fresh}@example.test") is None


def test_tampered_state_is_refused(site: SigninWorld, browser: httpx.Client) -> None:
    callback = httpx.URL(sso_callback(browser, login_name()))
    state = callback.params["state"]
    forged = callback.copy_set_param("state", state[:-2] + ("AA" if state[-2:] != "AA" else "BB"))
    response = browser.get(forged)
    assert error_of(response, 400)["code"] == "sso-failed"
    assert SESSION_COOKIE not in browser.cookies
    # the failed attempt used the sign-in up: the genuine answer is refused now too
    error_of(browser.get(callback), 400)
    error_of(browser.get(f"{APP_URL}/api/v1/account"), 401)


def test_callback_without_a_started_sign_in_is_refused(
    site: SigninWorld, browser: httpx.Client
) -> None:
    callback = sso_callback(browser, login_name())
    with browser_of(site.app) as stranger:  # another browser: no login cookie
        error_of(stranger.get(callback), 400)
    sealed = browser.cookies[LOGIN_COOKIE]
    browser.cookies.set(LOGIN_COOKIE, sealed[:-3] + "AAA", domain="app.test", path="/auth/oidc")
    assert "expired" in error_of(browser.get(callback), 400)["message"]


def test_replayed_callback_is_refused(site: SigninWorld, browser: httpx.Client) -> None:
    callback = sso_callback(browser, login_name())
    sealed = browser.cookies[LOGIN_COOKIE]
    assert browser.get(callback).status_code == 303
    # the browser forgot the sign-in...
    error_of(browser.get(callback), 400)
    # ...and an attacker who kept the cookie meets the provider's refusal of a used code
    with browser_of(site.app) as attacker:
        attacker.cookies.set(LOGIN_COOKIE, sealed, domain="app.test", path="/auth/oidc")
        message = error_of(attacker.get(callback), 400)["message"]
        assert "refused the authorization code" in message
        assert SESSION_COOKIE not in attacker.cookies


def _reseal(site: SigninWorld, browser: httpx.Client, **changes: Any) -> None:
    key = login_cookie_key(site.deployment.secret)
    pending = PendingLogin.unseal(browser.cookies[LOGIN_COOKIE], key)
    forged = dataclasses.replace(pending, **changes).seal(key)
    browser.cookies.set(LOGIN_COOKIE, forged, domain="app.test", path="/auth/oidc")


def test_wrong_nonce_is_refused(site: SigninWorld, browser: httpx.Client) -> None:
    callback = sso_callback(browser, login_name())
    _reseal(site, browser, nonce="not-the-nonce-the-provider-signed")
    assert "nonce" in error_of(browser.get(callback), 400)["message"]
    assert SESSION_COOKIE not in browser.cookies


def test_wrong_pkce_verifier_is_refused_by_the_provider(
    site: SigninWorld, browser: httpx.Client
) -> None:
    callback = sso_callback(browser, login_name())
    _reseal(site, browser, verifier="v" * 64)
    assert "refused the authorization code" in error_of(browser.get(callback), 400)["message"]


def test_expired_sign_in_is_refused(site: SigninWorld, browser: httpx.Client) -> None:
    callback = sso_callback(browser, login_name())
    _reseal(site, browser, expires=int(time.time()) - 1)
    assert "expired" in error_of(browser.get(callback), 400)["message"]


def test_provider_error_is_shown(site: SigninWorld, browser: httpx.Client) -> None:
    callback = through_provider(browser, start_sso(browser), login_name(), abort=True)
    assert "error=access_denied" in callback
    assert "access_denied" in error_of(browser.get(callback), 400)["message"]
    assert SESSION_COOKIE not in browser.cookies


def test_answer_naming_another_issuer_is_refused(site: SigninWorld, browser: httpx.Client) -> None:
    callback = httpx.URL(sso_callback(browser, login_name()))
    mixed_up = callback.copy_set_param("iss", "https://other-idp.example")
    assert "another identity provider" in error_of(browser.get(mixed_up), 400)["message"]


def test_unreachable_provider_is_a_clean_error(site: SigninWorld) -> None:
    gone = dataclasses.replace(site.provider.settings(), issuer="http://127.0.0.1:9")
    with browser_of(site.variant(oidc=gone)) as browser:
        response = browser.get(f"{APP_URL}/auth/oidc/login")
        assert error_of(response, 502)["code"] == "sso-unavailable"


def test_sealed_sign_in_round_trip() -> None:
    key = b"k" * 32
    pending = PendingLogin.new("https://idp.example", "/x", now=1000)
    assert PendingLogin.unseal(pending.seal(key), key, now=1000) == pending
    sealed = pending.seal(key)
    payload, _, mac = sealed.partition(".")
    for broken in (
        "",
        sealed + "x",
        f"{payload}x.{mac}",
        f"{payload}.",
        "a.b.c",
        "x" * 5000,
        pending.seal(b"other key"),
    ):
        with pytest.raises(OidcError, match="expired or was already used"):
            PendingLogin.unseal(broken, key, now=1000)
    with pytest.raises(OidcError, match="expired"):
        PendingLogin.unseal(sealed, key, now=1000 + LOGIN_LIFETIME)
