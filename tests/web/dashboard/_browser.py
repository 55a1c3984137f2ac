"""Helpers of the dashboard tests: the served site, signing in, Chromium's settings."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
import uvicorn
from playwright.sync_api import Page

from iotstore.accounts.services import AccountService
from iotstore.deployment import Deployment
from iotstore.web import create_app
from tests.mail.smtp_server import SmtpSink
from tests.oidc.provider import OidcProvider

from .._support import PASSWORD, Factory

__all__ = [
    "CHROMIUM",
    "CHROMIUM_ARGS",
    "Site",
    "http_session",
    "serve",
    "sign_in",
    "through_provider",
]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--disable-quic",
]


class _Server(uvicorn.Server):
    def install_signal_handlers(self) -> None:  # the test process keeps its own
        pass


@contextlib.contextmanager
def serve(deployment: Deployment, port: int) -> Iterator[str]:
    """The deployment's app served on 127.0.0.1:``port`` (a thread); yields its URL."""
    app = create_app(deployment.settings, deployment)
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", lifespan="off", ws="none"
    )
    server = _Server(config)
    thread = threading.Thread(target=server.run, name="dashboard-server", daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail(f"the dashboard server did not start on {url}")
        time.sleep(0.02)
    try:
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@dataclass
class Site:
    """A served deployment with its identity provider and mail server."""

    url: str
    deployment: Deployment
    factory: Factory
    provider: OidcProvider
    mail: SmtpSink
    password_hash: str

    def local_person(
        self, roles: dict[str, str] | None = None, name: str = "Ada Admin", operator: bool = False
    ) -> str:
        """A new account with the local password :data:`PASSWORD` (and roles); its email."""
        person = self.factory.person(roles or {}, display_name=name, operator=operator)
        with self.deployment.database.unit_of_work() as session:
            AccountService(session).get(person.account_id).password_hash = self.password_hash
        return person.email

    def mail_to(self, address: str) -> list[str]:
        """Bodies of the messages the SMTP server received for ``address``."""
        return [r.message.get_content() for r in self.mail.received if address in r.rcpt_tos]


def sign_in(page: Page, site: Site, email: str, next_path: str = "/") -> None:
    """Sign in through the local form, as a person would."""
    page.goto(f"{site.url}/sign-in?next={next_path}")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in", exact=True).click()
    page.wait_for_url(f"{site.url}{next_path}")


def http_session(site: Site, email: str) -> tuple[httpx.Client, str]:
    """A signed-in HTTP client (no browser) and its CSRF token."""
    client = httpx.Client(base_url=site.url, timeout=30)
    response = client.post("/auth/login", json={"email": email, "password": PASSWORD})
    assert response.status_code == 200, response.text
    return client, str(response.json()["csrf-token"])


def through_provider(page: Page, site: Site, login: str) -> None:
    """Answer the provider's development login and consent pages until back at the app."""
    for _ in range(5):
        if page.url.startswith(site.url):
            return
        if page.locator("input[name=login]").count():
            page.fill("input[name=login]", login)
            page.fill("input[name=password]", "anything at all")
        page.locator("button[type=submit]").first.click()
        page.wait_for_load_state()
    raise AssertionError(f"the provider never sent the browser back: {page.url}")
