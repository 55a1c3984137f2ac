"""Fixtures of the dashboard tests: a served deployment, a real OIDC provider and SMTP server,
and Debian's Chromium driven by Playwright.

* ``site`` (per module and backend): the app served by uvicorn on 127.0.0.1 in a
  thread, its deployment configured with the panva OIDC provider (``tests/oidc``)
  and an aiosmtpd sink, so sign-in and invitation emails are the real ones.
* ``page``: pytest-playwright's page in a fresh browser context; the browser is
  ``/usr/bin/chromium`` (``apt-get install chromium``), never a downloaded one.
* ``shoot(page, name)``: a full-page screenshot into :data:`SCREENSHOTS`
  (``tests/web/dashboard/.screenshots/``, ignored by git), to look at.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page

from iotstore.accounts.services import AccountService
from tests._pg import free_port
from tests.mail.smtp_server import SmtpSink
from tests.oidc.provider import running_provider

from .._support import PASSWORD, Factory, make_deployment
from ._browser import CHROMIUM, CHROMIUM_ARGS, Site, serve

SCREENSHOTS = Path(__file__).resolve().parent / ".screenshots"


@pytest.fixture(scope="session")
def browser_type_launch_args() -> dict[str, Any]:
    """Debian's Chromium with the flags COMPONENTS.md lists (pytest-playwright reads this)."""
    if not Path(CHROMIUM).exists():
        pytest.fail(
            f"{CHROMIUM} is required by the dashboard tests: apt-get install chromium"
            " (scripts/setup --test)",
            pytrace=False,
        )
    return {"executable_path": CHROMIUM, "args": CHROMIUM_ARGS, "headless": True}


@pytest.fixture(scope="session")
def browser_context_args() -> dict[str, Any]:
    """A laptop-sized window; tests that check tablets set their own viewport."""
    return {"viewport": {"width": 1366, "height": 900}, "locale": "en-GB"}


@pytest.fixture(scope="module")
def site(module_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """The dashboard served for the module's tests, on the module's backend."""
    base = tmp_path_factory.mktemp("dashboard")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    sink = SmtpSink().start()
    try:
        with running_provider([f"{url}/auth/oidc/callback"], base) as provider:
            deployment = make_deployment(
                base / "data", module_database_url, base_url=url,
                oidc=provider.settings("Test sign-on"),
                smtp=sink.settings(sender="store@example.test"),
            )  # fmt: skip
            try:
                with serve(deployment, port):
                    yield Site(
                        url, deployment, Factory(deployment), provider, sink,
                        AccountService.hash_password(PASSWORD),
                    )  # fmt: skip
            finally:
                deployment.close()
    finally:
        sink.stop()


@pytest.fixture(scope="session")
def screenshots() -> Path:
    """The screenshot directory (files are overwritten by each run)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    (SCREENSHOTS / ".gitignore").write_text("*\n")
    return SCREENSHOTS


@pytest.fixture
def shoot(screenshots: Path, request: pytest.FixtureRequest) -> Callable[[Page, str], Path]:
    """Save a full-page screenshot named after the page (and the backend)."""
    backend = "pg" if "postgresql" in request.node.name else "sqlite"

    def take(page: Page, name: str) -> Path:
        path = screenshots / f"{name}-{backend}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return take
