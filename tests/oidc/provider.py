"""A real OpenID Connect provider for tests: panva ``oidc-provider`` on Node.js.

``server.mjs`` (next to this file) runs one provider on a free loopback port
with one confidential client, PKCE required and the development login and
consent pages, which a test drives headless by posting their forms. Any login
name signs in, with any password; its email is ``<name>@example.test``,
verified, except for names ending in ``-unverified``.

* :func:`running_provider` starts one (installing the npm package into
  ``tests/oidc/node_modules`` from the lock file the first time) and stops it.
* :func:`oidc_provider` is the session fixture: registered redirect URIs are
  :data:`REDIRECT_URIS`. Import it into a test module to use it.

Node.js and npm are required by the suite: without them the tests fail with
the reason, never skip.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import NamedTuple

import httpx
import pytest

from iotstore.settings import OidcSettings

__all__ = [
    "CLIENT_ID",
    "REDIRECT_URIS",
    "OidcProvider",
    "ensure_installed",
    "oidc_provider",
    "running_provider",
]

HERE = Path(__file__).resolve().parent
CLIENT_ID = "iotstore"
APP_URL = "http://app.test"
REDIRECT_URIS = (f"{APP_URL}/auth/oidc/callback", "https://app.test/auth/oidc/callback")
"""Where the session fixture's client may be sent back to (an app mounted on app.test)."""


class OidcProvider(NamedTuple):
    """A running provider: its issuer and the client registered in it."""

    issuer: str
    client_id: str
    client_secret: str

    def settings(self, name: str = "Test sign-on") -> OidcSettings:
        """The deployment settings that point at this provider."""
        return OidcSettings(
            issuer=self.issuer,
            client_id=self.client_id,
            client_secret=self.client_secret,
            name=name,
        )


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(
            f"{name} is required by the sign-in tests (the OIDC provider runs on Node.js):"
            " install Node.js 20 or later with npm (scripts/setup --test)",
            pytrace=False,
        )
    return path


def ensure_installed() -> str:
    """Install ``oidc-provider`` into ``tests/oidc/node_modules`` if missing; return node's path.

    ``npm ci`` follows the lock file exactly; a file lock keeps parallel workers
    (pytest-xdist) from installing twice at once.
    """
    node = _tool("node")
    marker = HERE / "node_modules" / "oidc-provider" / "package.json"
    if marker.exists():
        return node
    npm = _tool("npm")
    with (HERE / ".install.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if marker.exists():
            return node
        command = "ci" if (HERE / "package-lock.json").exists() else "install"
        try:
            result = subprocess.run(
                [npm, command, "--no-audit", "--no-fund", "--loglevel=error"],
                cwd=HERE,
                capture_output=True,
                text=True,
                timeout=300,
                check=False,
            )
        except subprocess.TimeoutExpired:
            pytest.fail(f"npm {command} in {HERE} took more than 5 minutes", pytrace=False)
        if result.returncode != 0 or not marker.exists():
            pytest.fail(
                f"npm {command} in {HERE} failed ({result.returncode}):\n"
                f"{result.stdout[-2000:]}\n{result.stderr[-2000:]}",
                pytrace=False,
            )
    return node


def _issuer_from(log: Path, process: subprocess.Popen[bytes], deadline: float) -> str:
    while time.monotonic() < deadline:
        for line in log.read_text(errors="replace").splitlines():
            if line.startswith('{"issuer"'):
                issuer: str = json.loads(line)["issuer"]
                return issuer
        if process.poll() is not None:
            break
        time.sleep(0.02)
    pytest.fail(f"the OIDC provider did not start:\n{log.read_text(errors='replace')[-3000:]}")


def _wait_discovery(issuer: str, log: Path, deadline: float) -> None:
    url = f"{issuer}/.well-known/openid-configuration"
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.02)
    pytest.fail(f"the OIDC provider does not answer {url}:\n{log.read_text()[-3000:]}")


@contextlib.contextmanager
def running_provider(
    redirect_uris: Sequence[str],
    log_dir: Path,
    *,
    client_id: str = CLIENT_ID,
    client_secret: str | None = None,
    auth_method: str = "client_secret_basic",
    timeout: float = 30.0,
) -> Iterator[OidcProvider]:
    """A provider on 127.0.0.1 whose one client may redirect to ``redirect_uris``."""
    node = ensure_installed()
    secret = client_secret or secrets.token_urlsafe(24)
    env = {
        **os.environ,
        "OIDC_CLIENT_ID": client_id,
        "OIDC_CLIENT_SECRET": secret,
        "OIDC_REDIRECT_URIS": ",".join(redirect_uris),
        "OIDC_AUTH_METHOD": auth_method,
    }
    log = log_dir / "oidc-provider.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [node, "server.mjs", "0"],
            cwd=HERE,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + timeout
        issuer = _issuer_from(log, process, deadline)
        _wait_discovery(issuer, log, deadline)
        yield OidcProvider(issuer, client_id, secret)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@pytest.fixture(scope="session")
def oidc_provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OidcProvider]:
    """One provider for the run (per xdist worker); see :data:`REDIRECT_URIS`."""
    with running_provider(REDIRECT_URIS, tmp_path_factory.mktemp("oidc")) as provider:
        yield provider
