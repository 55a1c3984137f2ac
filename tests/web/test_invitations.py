"""Invitations through HTTP, with the email travelling over real SMTP.

The deployment is built with SMTP settings pointing at an aiosmtpd server on
loopback: an administrator invites, the email arrives at that server, the
token is read out of it and accepted, and the new member shows up with the
role. A relay that is down answers 503 ``mail-failed`` and leaves no
invitation. Every test runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import re
import stat
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
import pytest

from iotstore.mail import DirectoryMailer, SmtpMailer
from iotstore.settings import SmtpSettings
from iotstore.web import create_app
from tests.mail.smtp_server import SmtpSink, free_port

from ._support import (
    PASSWORD,
    Person,
    World,
    asgi_client,
    bearer,
    error_of,
    make_deployment,
    unique,
)

BASE_URL = "https://store.example.test"
TOKEN_RE = re.compile(r"https://store\.example\.test/invitations/accept\?token=([A-Za-z0-9_-]+)")


@pytest.fixture(scope="module")
def sink() -> Iterator[SmtpSink]:
    """The module's SMTP server; tests tell their messages apart by recipient."""
    server = SmtpSink().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def smtp_world(
    sink: SmtpSink, module_database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    """A deployment whose settings name the SMTP server, its app and a client."""
    data_dir = tmp_path_factory.mktemp("smtp-world") / "data"
    deployment = make_deployment(
        data_dir,
        module_database_url,
        base_url=BASE_URL,
        smtp=sink.settings(sender="store@example.test"),
    )
    assert isinstance(deployment.mailer, SmtpMailer)  # chosen from the settings
    app = create_app(deployment.settings, deployment)
    backend = "postgresql" if module_database_url.startswith("postgresql") else "sqlite"
    world = World(backend, deployment, app, asgi_client(app))
    yield world
    world.close()


@pytest.fixture
def w(smtp_world: World) -> Iterator[World]:
    """The module's world, its mailer restored after each test."""
    mailer = smtp_world.deployment.mailer
    yield smtp_world
    smtp_world.deployment.mailer = mailer


@pytest.fixture
def store(w: World) -> str:
    """A fresh store for the test."""
    return w.factory.brand()[1]


@pytest.fixture
def admin(w: World, store: str) -> Person:
    """An administrator of the test's store."""
    return w.factory.person({store: "admin"}, display_name="Ada Admin")


def _mail_to(sink: SmtpSink, address: str) -> list[EmailMessage]:
    return [r.message for r in sink.received if address in r.rcpt_tos]


def _token(message: EmailMessage) -> str:
    match = TOKEN_RE.search(message.get_content())
    assert match, message.get_content()
    return match.group(1)


def _invite(
    client: httpx.Client, admin: Person, store: str, email: str, role: str = "publisher"
) -> httpx.Response:
    return client.post(
        f"/api/v1/stores/{store}/invitations",
        json={"email": email, "role": role},
        headers=admin.headers,
    )


def _list(client: httpx.Client, who: Person, store: str, **params: Any) -> list[dict[str, Any]]:
    response = client.get(f"/api/v1/stores/{store}/invitations", params=params, headers=who.headers)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def test_invite_mail_accept_and_the_member_appears(
    w: World, sink: SmtpSink, store: str, admin: Person
) -> None:
    email = f"{unique('new')}@example.com"
    response = _invite(w.client, admin, store, email.upper(), "reviewer")
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["email"] == email
    assert (created["role"], created["status"], created["store-id"]) == (
        "reviewer",
        "pending",
        store,
    )
    assert created["invited-by"] == admin.account_id
    assert "token" not in response.text.replace("token-", "")

    # the email went over SMTP to the invitee
    [message] = _mail_to(sink, email)
    assert message["To"] == email
    assert message["From"] == "store@example.test"
    assert message["Subject"] == f"Invitation to Store {store} as reviewer"
    assert message["Date"] and message["Message-ID"]
    assert "Ada Admin invited you" in message.get_content()
    token = _token(message)

    accepted = w.client.post(
        "/api/v1/invitations/accept",
        json={"token": token, "display-name": "New Person", "password": PASSWORD},
    )
    assert accepted.status_code == 200, accepted.text
    body = accepted.json()
    assert (body["store-id"], body["role"], body["account-created"]) == (store, "reviewer", True)
    assert body["invitation-id"] == created["id"]

    members = w.client.get(f"/api/v1/stores/{store}/members", headers=admin.headers).json()
    [member] = [m for m in members["items"] if m["email"] == email]
    assert (member["role"], member["display-name"], member["account-id"]) == (
        "reviewer",
        "New Person",
        body["account-id"],
    )
    # the new person signs in with the chosen password and sees the store
    issued = w.client.post("/api/v1/tokens/password", json={"email": email, "password": PASSWORD})
    assert issued.status_code == 201, issued.text
    new_headers = bearer(issued.json()["token"])
    assert w.client.get(f"/api/v1/stores/{store}", headers=new_headers).status_code == 200

    assert _list(w.client, admin, store) == []
    [closed] = _list(w.client, admin, store, **{"include-closed": "true"})
    assert (closed["status"], closed["accepted-by"]) == ("accepted", body["account-id"])

    audit = w.client.get(f"/api/v1/stores/{store}/audit", headers=admin.headers).json()["items"]
    actions = [e["action"] for e in audit]
    assert actions.index("invitation.create") < actions.index("invitation.accept")
    assert "role.grant" in actions
    assert not any(token in str(e) for e in audit)

    # the token works once
    again = w.client.post("/api/v1/invitations/accept", json={"token": token, "password": PASSWORD})
    assert error_of(again, 409)["code"] == "invitation-used"


def test_a_relay_that_is_down_answers_503_and_keeps_nothing(
    w: World, store: str, admin: Person
) -> None:
    w.deployment.mailer = SmtpMailer(SmtpSettings(host="127.0.0.1", port=free_port()), timeout=5)
    email = f"{unique('down')}@example.com"
    response = _invite(w.client, admin, store, email)
    error = error_of(response, 503)
    assert error["code"] == "mail-failed"
    assert _list(w.client, admin, store, **{"include-closed": "true"}) == []
    audit = w.client.get(f"/api/v1/stores/{store}/audit", headers=admin.headers).json()["items"]
    assert not [e for e in audit if e["action"].startswith("invitation.")]


def test_accepting_while_signed_in(w: World, sink: SmtpSink, store: str, admin: Person) -> None:
    invitee = w.factory.person()
    stranger = w.factory.person()
    assert _invite(w.client, admin, store, invitee.email, "viewer").status_code == 201
    token = _token(_mail_to(sink, invitee.email)[-1])
    url = "/api/v1/invitations/accept"

    # anonymous: the address has an account, so sign in first
    assert error_of(w.client.post(url, json={"token": token}), 401)["code"] == "sign-in-required"
    # another account: refused
    wrong = w.client.post(url, json={"token": token}, headers=stranger.headers)
    assert error_of(wrong, 403)["code"] == "invitation-other-email"
    # a token without account:self cannot add roles to its account
    _, narrow = w.factory.token(invitee, permissions=["store:view"])
    assert error_of(w.client.post(url, json={"token": token}, headers=bearer(narrow)), 403)
    # a password is for new accounts only
    mixed = w.client.post(url, json={"token": token, "password": PASSWORD}, headers=invitee.headers)
    assert error_of(mixed, 400)["field"] == "password"

    ok = w.client.post(url, json={"token": token}, headers=invitee.headers)
    assert ok.status_code == 200, ok.text
    assert ok.json()["account-created"] is False
    assert ok.json()["account-id"] == invitee.account_id
    store_info = w.client.get(f"/api/v1/stores/{store}", headers=invitee.headers)
    assert store_info.status_code == 200, store_info.text


def test_revoke_and_reinvite(w: World, sink: SmtpSink, store: str, admin: Person) -> None:
    email = f"{unique('rev')}@example.com"
    first = _invite(w.client, admin, store, email).json()
    first_token = _token(_mail_to(sink, email)[-1])
    second = _invite(w.client, admin, store, email, "viewer").json()
    second_token = _token(_mail_to(sink, email)[-1])
    assert [i["id"] for i in _list(w.client, admin, store)] == [second["id"]]

    url = f"/api/v1/stores/{store}/invitations/{second['id']}"
    assert w.client.delete(url, headers=admin.headers).status_code == 204
    assert w.client.delete(url, headers=admin.headers).status_code == 204  # idempotent
    assert _list(w.client, admin, store) == []
    for token in (first_token, second_token):
        refused = w.client.post(
            "/api/v1/invitations/accept", json={"token": token, "password": PASSWORD}
        )
        assert error_of(refused, 409)["code"] == "invitation-revoked"
    statuses = {
        i["id"]: i["status"] for i in _list(w.client, admin, store, **{"include-closed": "1"})
    }
    assert statuses == {first["id"]: "revoked", second["id"]: "revoked"}
    missing = w.client.delete(
        f"/api/v1/stores/{store}/invitations/{'0' * 32}", headers=admin.headers
    )
    assert error_of(missing, 404)


def test_invitations_stay_inside_their_store(w: World, store: str, admin: Person) -> None:
    other_store = w.factory.brand()[1]
    other_admin = w.factory.person({other_store: "admin"})
    publisher = w.factory.person({store: "publisher"})
    invited = _invite(w.client, admin, store, f"{unique('iso')}@example.com").json()

    # another store's administrator sees nothing and cannot revoke through their store
    assert error_of(
        w.client.get(f"/api/v1/stores/{store}/invitations", headers=other_admin.headers), 404
    )
    assert _list(w.client, other_admin, other_store, **{"include-closed": "true"}) == []
    cross = w.client.delete(
        f"/api/v1/stores/{other_store}/invitations/{invited['id']}", headers=other_admin.headers
    )
    assert error_of(cross, 404)
    # a publisher sees the store's invitations but does not invite
    assert [i["id"] for i in _list(w.client, publisher, store)] == [invited["id"]]
    assert error_of(_invite(w.client, publisher, store, "x@example.com"), 403)
    # nobody anonymous
    assert error_of(w.client.get(f"/api/v1/stores/{store}/invitations"), 401)


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"token": "A" * 43}, 404, "invitation-unknown"),
        ({"token": ""}, 400, "invalid-input"),
        ({"token": "A" * 129}, 400, "invalid-input"),
        ({"token": "A" * 43, "role": "admin"}, 400, "invalid-input"),
        ({}, 400, "invalid-input"),
    ],
)
def test_bad_acceptances_get_an_error_body(
    w: World, body: dict[str, Any], status: int, code: str
) -> None:
    response = w.client.post("/api/v1/invitations/accept", json=body)
    assert error_of(response, status)["code"] == code


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"email": "not an address", "role": "viewer"}, "email"),
        ({"email": "x@example.com", "role": "collaborator"}, "role"),
        ({"email": "x@example.com", "role": "viewer", "extra": 1}, "extra"),
        ({"email": "é" * 300, "role": "viewer"}, "email"),
    ],
)
def test_bad_invitations_get_an_error_body(
    w: World, store: str, admin: Person, body: dict[str, Any], field: str
) -> None:
    response = w.client.post(
        f"/api/v1/stores/{store}/invitations", json=body, headers=admin.headers
    )
    assert error_of(response, 400).get("field") == field


def test_without_smtp_invitations_land_in_the_outbox(tmp_path: Path, database_url: str) -> None:
    deployment = make_deployment(tmp_path / "data", database_url, base_url=BASE_URL)
    try:
        assert isinstance(deployment.mailer, DirectoryMailer)
        app = create_app(deployment.settings, deployment)
        world = World("any", deployment, app, asgi_client(app))
        store = world.factory.brand()[1]
        admin = world.factory.person({store: "admin"})
        with world.client as client:
            assert _invite(client, admin, store, "newcomer@example.com").status_code == 201
            outbox = tmp_path / "data" / "outbox"
            [eml] = outbox.glob("*.eml")
            assert stat.S_IMODE(eml.stat().st_mode) == 0o600
            match = TOKEN_RE.search(eml.read_text())
            assert match, eml.read_text()
            accepted = client.post(
                "/api/v1/invitations/accept", json={"token": match.group(1), "password": PASSWORD}
            )
            assert accepted.status_code == 200, accepted.text
    finally:
        deployment.close()
