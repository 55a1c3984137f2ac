"""Helpers of the web tests: a deployment on a test database, clients, a factory, a live server.

* :func:`make_deployment` initialises a deployment that adopts the fixed test
  root key (generating a 4096-bit root would cost about a second per test).
* :func:`asgi_client` is a synchronous ``httpx.Client`` that calls the ASGI
  app in-process (starlette's TestClient warns about httpx; warnings are errors).
* :class:`Factory` makes accounts, roles, brands, stores, snaps and tokens
  through the domain services, each in its own committed unit of work.
* :class:`LiveServer` runs the real production server (granian) on loopback
  against the same data directory and database.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from iotstore.accounts.brands import BrandService
from iotstore.accounts.services import AccountService
from iotstore.accounts.tokens import TokenService
from iotstore.assertdb import trust_database
from iotstore.db import Base, sqlite_url
from iotstore.deployment import Deployment
from iotstore.settings import Settings
from iotstore.snaps.models import Snap
from iotstore.stores.audit import Actor, AuditLog
from iotstore.stores.services import MembershipService, StoreService
from iotstore.web import create_app
from tests._pg import die_with_parent, free_port

__all__ = [
    "PASSWORD",
    "ROOT_ID",
    "Factory",
    "LiveServer",
    "Person",
    "SyncASGITransport",
    "World",
    "asgi_client",
    "bearer",
    "error_of",
    "in_process_world",
    "make_deployment",
    "row_counts",
    "throwaway_app",
    "unique",
]

ROOT_ID = "test-root"
PASSWORD = "correct horse battery staple"
SEED = Actor(account_id=None, address="test-factory")


def root_key_pem() -> bytes:
    """The library's fixed (published, worthless) test root key."""
    return resources.files("iotstore.asserts.testing").joinpath("keys", "root.pem").read_bytes()


def unique(prefix: str) -> str:
    """A short lower-case name nobody else in the run uses (valid store id or username)."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def make_deployment(
    data_dir: Path, database_url: str, base_url: str = "http://testserver", **extra: Any
) -> Deployment:
    """A new deployment on ``database_url`` that adopts the fixed test root key."""
    settings = Settings(data_dir=data_dir, database_url=database_url, base_url=base_url, **extra)
    return Deployment.init(
        data_dir, settings=settings, root_id=ROOT_ID, root_key_pem=root_key_pem()
    )


class SyncASGITransport(httpx.BaseTransport):
    """Run an ASGI app in-process for a synchronous ``httpx.Client``.

    ``httpx.ASGITransport`` is async only; this one drives it on an event loop
    in a background thread. Unhandled app errors come back as 500 responses
    (as a real server sends them), not as exceptions in the test.
    """

    def __init__(self, app: FastAPI, client_address: str = "127.0.0.1") -> None:
        self._transport = httpx.ASGITransport(
            app=app, raise_app_exceptions=False, client=(client_address, 40000)
        )
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        async def call() -> httpx.Response:
            response = await self._transport.handle_async_request(request)
            body = await response.aread()
            await response.aclose()
            # a stream, not content=, so the client reads and closes it (and sets elapsed)
            return httpx.Response(
                response.status_code,
                headers=response.headers,
                stream=httpx.ByteStream(body),
                extensions=response.extensions,
            )

        return asyncio.run_coroutine_threadsafe(call(), self._loop).result(timeout=120)

    def close(self) -> None:
        if self._loop.is_closed():
            return
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=30)
        self._loop.close()


def asgi_client(app: FastAPI, base_url: str = "http://testserver") -> httpx.Client:
    """A synchronous client of ``app`` without a network."""
    return httpx.Client(transport=SyncASGITransport(app), base_url=base_url, timeout=120)


def error_of(response: httpx.Response, status: int | Collection[int]) -> dict[str, Any]:
    """Assert ``response`` is an admin-API error with ``status``; return its ``error`` object."""
    allowed = {status} if isinstance(status, int) else set(status)
    assert response.status_code in allowed, (
        f"{response.request.method} {response.request.url.path}: expected {sorted(allowed)}, "
        f"got {response.status_code}: {response.text[:500]}"
    )
    assert response.headers.get("content-type", "").startswith("application/json"), response.text
    body = response.json()
    if isinstance(body, dict) and isinstance(body.get("error_list"), list) and body["error_list"]:
        # the publisher API answers craft-store's shape: its first entry, same codes
        body = {"error": body["error_list"][0]}
    assert isinstance(body, dict) and set(body) == {"error"}, body
    error = body["error"]
    assert isinstance(error, dict), body
    assert isinstance(error.get("code"), str) and error["code"], body
    assert isinstance(error.get("message"), str) and error["message"], body
    assert set(error) <= {"code", "message", "field"}, body
    return error


@dataclass(frozen=True)
class Person:
    """An account made by the factory, with a token that can do all the account can."""

    account_id: str
    email: str
    token: str
    password: str | None = None

    @property
    def headers(self) -> dict[str, str]:
        """``Authorization`` header with the account's unrestricted token."""
        return bearer(self.token)


def bearer(token: str) -> dict[str, str]:
    """``Authorization`` header for ``token``."""
    return {"Authorization": f"Bearer {token}"}


class Factory:
    """Test data through the domain services; every call is one committed unit of work."""

    def __init__(self, deployment: Deployment) -> None:
        self.deployment = deployment

    def _tokens(self, session: Session) -> TokenService:
        return TokenService(session, self.deployment.secret, self.deployment.settings.base_url)

    def person(
        self,
        roles: Mapping[str, str | Iterable[str]] | None = None,
        *,
        operator: bool = False,
        password: str | None = None,
        email: str | None = None,
        display_name: str = "Test Person",
    ) -> Person:
        """A new account holding ``roles`` ({store id: role or roles}) and an unrestricted token."""
        email = email or f"{unique('p')}@example.com"
        with self.deployment.database.unit_of_work() as session:
            account = AccountService(session).create(
                email, display_name, password=password, email_verified=True, is_operator=operator
            )
            audit = AuditLog(session)
            memberships = MembershipService(session, StoreService(session, audit), audit)
            for store_id, granted in (roles or {}).items():
                for role in [granted] if isinstance(granted, str) else granted:
                    memberships.grant(SEED, store_id, account.id, role)
            _, token = self._tokens(session).issue(account, description="factory")
            return Person(account.id, account.email, token, password)

    def grant(self, store_id: str, person: Person, role: str) -> None:
        """Give ``person`` a role in a store."""
        with self.deployment.database.unit_of_work() as session:
            audit = AuditLog(session)
            MembershipService(session, StoreService(session, audit), audit).grant(
                SEED, store_id, person.account_id, role
            )

    def token(
        self,
        person: Person,
        *,
        stores: list[str] | None = None,
        permissions: list[str] | None = None,
        expires_at: datetime | None = None,
        description: str = "factory",
    ) -> tuple[str, str]:
        """A restricted token of ``person``: (token id, serialized macaroon)."""
        with self.deployment.database.unit_of_work() as session:
            account = AccountService(session).get(person.account_id)
            row, token = self._tokens(session).issue(
                account,
                description=description,
                stores=stores,
                permissions=permissions,
                expires_at=expires_at,
            )
            return row.id, token

    def brand(self, username: str | None = None, store_id: str | None = None) -> tuple[str, str]:
        """A brand (signed ``account`` assertion) and its root store: (brand id, store id)."""
        username = username or unique("b")
        store_id = store_id or unique("s")
        with self.deployment.database.unit_of_work() as session:
            trust = trust_database(session, self.deployment.root.trusted)
            brand = BrandService(
                session, self.deployment.keystore, self.deployment.root, trust
            ).create(username, f"Brand {username}")
            StoreService(session, AuditLog(session)).create_brand_store(
                SEED, brand.account_id, store_id, f"Store {store_id}"
            )
            return brand.account_id, store_id

    def substore(self, parent_id: str, store_id: str | None = None, kind: str = "product") -> str:
        """A sub-store of ``parent_id``; returns its id."""
        store_id = store_id or unique("s")
        with self.deployment.database.unit_of_work() as session:
            StoreService(session, AuditLog(session)).create_substore(
                SEED, parent_id, store_id, f"Store {store_id}", kind
            )
        return store_id

    def settings(self, store_id: str, **changes: Any) -> None:
        """Change store settings directly."""
        with self.deployment.database.unit_of_work() as session:
            StoreService(session, AuditLog(session)).update(SEED, store_id, changes)

    def snap(self, store_id: str, name: str | None = None) -> str:
        """A snap row registered in ``store_id``; returns its 32-character id."""
        snap_id = uuid.uuid4().hex
        with self.deployment.database.unit_of_work() as session:
            session.add(
                Snap(
                    snap_id=snap_id,
                    name=name or unique("snap"),
                    store_id=store_id,
                    publisher_id="0" * 32,
                )
            )
        return snap_id


def row_counts(deployment: Deployment) -> dict[str, int]:
    """Rows in every table the models define: a failed or refused request changes none."""
    with deployment.database.unit_of_work(write=False) as session:
        return {
            table.name: int(session.scalar(select(func.count()).select_from(table)) or 0)
            for table in Base.metadata.sorted_tables
        }


@dataclass
class World:
    """A deployment on one backend, its app, a client of it and the factory."""

    backend: str
    deployment: Deployment
    app: FastAPI
    client: httpx.Client
    factory: Factory = field(init=False)

    def __post_init__(self) -> None:
        self.factory = Factory(self.deployment)

    def close(self) -> None:
        """Close the client and the deployment (engines, key store)."""
        self.client.close()
        self.deployment.close()


@contextlib.contextmanager
def throwaway_app() -> Iterator[FastAPI]:
    """An app on a temporary SQLite deployment, for reading routes at collection time."""
    with tempfile.TemporaryDirectory(prefix="iotstore-app-") as tmp:
        deployment = make_deployment(Path(tmp) / "data", sqlite_url(Path(tmp) / "db.sqlite"))
        try:
            yield create_app(deployment.settings, deployment)
        finally:
            deployment.close()


def in_process_world(backend: str, data_dir: Path, database_url: str) -> World:
    """A world whose client calls the app in-process."""
    deployment = make_deployment(data_dir, database_url)
    app = create_app(deployment.settings, deployment)
    return World(backend, deployment, app, asgi_client(app))


class _ExitedEarly(RuntimeError):
    pass


class LiveServer:
    """``iotstore.web.app:app_from_env`` served by granian on 127.0.0.1, as in production."""

    def __init__(self, data_dir: Path, database_url: str, log_path: Path) -> None:
        self._log_path = log_path
        for attempt in range(3):
            self.port = free_port()
            self.url = f"http://127.0.0.1:{self.port}"
            self._process = self._start(data_dir, database_url)
            try:
                self._wait_ready()
            except _ExitedEarly:
                if attempt == 2:  # not a port taken in between: give up with the log
                    raise
                continue
            except BaseException:
                self.stop()
                raise
            return

    def _start(self, data_dir: Path, database_url: str) -> subprocess.Popen[bytes]:
        env = {
            **os.environ,
            "IOTSTORE_DATA_DIR": str(data_dir),
            "IOTSTORE_DATABASE_URL": database_url,
            "IOTSTORE_BASE_URL": self.url,
        }
        with self._log_path.open("ab") as log:
            return subprocess.Popen(
                [
                    sys.executable, "-m", "granian", "--interface", "asgi", "--factory",
                    "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1",
                    "--no-ws", "iotstore.web.app:app_from_env",
                ],
                env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                preexec_fn=die_with_parent(),  # noqa: PLW1509 - only prctl, before exec
            )  # fmt: skip

    def log(self) -> str:
        """What the server printed so far."""
        return self._log_path.read_text(errors="replace")[-4000:]

    def _wait_ready(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise _ExitedEarly(f"the live server exited early:\n{self.log()}")
            try:
                if httpx.get(f"{self.url}/api/v1/health", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"the live server did not answer within {timeout}s:\n{self.log()}")

    def stop(self) -> None:
        """Stop the server process this object started."""
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(timeout=15)
