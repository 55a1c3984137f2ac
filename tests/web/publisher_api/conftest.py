"""A live ``iotstore serve`` for the publisher API, with snaps on disk or in S3 (SeaweedFS).

``publisher`` is module-scoped and parametrised over the database backends
(``module_database_url``); ``s3_publisher`` is the same on S3. Each has a
brand store with a publisher (who has a password, for the SSO login), a
reviewer, and a store that requires manual review.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from iotstore.blobstore import BlobStore
from iotstore.blobstore.testing import S3Server, SeaweedFSUnavailable, join_seaweedfs
from iotstore.db import sqlite_url
from iotstore.deployment import Deployment
from iotstore.settings import BlobSettings
from iotstore.snaps.services import UploadService
from iotstore.stores.audit import AuditLog
from tests.web._support import PASSWORD, Factory, LiveServer, Person, make_deployment

# the server's snap size limit in these tests: small, so "oversized" is cheap to send
MAX_SNAP = 8 << 20


class PublisherServer(LiveServer):
    """The live server with extra environment (blob backend, limits), which tests may kill."""

    def __init__(
        self, data_dir: Path, database_url: str, log_path: Path, env: Mapping[str, str]
    ) -> None:
        self._env = dict(env)
        self._args = (data_dir, database_url, log_path)
        super().__init__(data_dir, database_url, log_path)

    def restarted(self) -> PublisherServer:
        """A new server on the same data directory, database and environment."""
        return PublisherServer(*self._args, self._env)

    def _start(self, data_dir: Path, database_url: str) -> object:  # type: ignore[override]
        saved = {k: os.environ.get(k) for k in self._env}
        os.environ.update(self._env)
        try:
            return super()._start(data_dir, database_url)
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v

    @property
    def pid(self) -> int:
        """The server process (granian's; its worker is a child)."""
        return self._process.pid

    def kill(self) -> None:
        """SIGKILL the server and its worker: no clean-up of any kind runs."""
        # granian's worker is a child of the process we started and outlived it before
        # (nothing tells it its parent died): it is killed with it, as a crash would
        workers = _children(self._process.pid)
        self._process.kill()
        for pid in workers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self._process.wait(timeout=15)


def _children(pid: int) -> list[int]:
    """The child processes of ``pid`` (Linux)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            found.extend(int(c) for c in (task / "children").read_text().split())
    return found


@dataclass
class Publisher:
    """A live server and who publishes in it."""

    server: PublisherServer
    deployment: Deployment  # the same data directory and database, opened in the test
    factory: Factory
    store: str
    reviewed_store: str  # requires manual review
    publisher: Person  # publisher in both stores, with PASSWORD
    reviewer: Person  # reviewer in reviewed_store
    other: Person  # publisher in store too, with PASSWORD
    work: Path

    @property
    def url(self) -> str:
        """The server's base URL (dashboard, storage and SSO at once)."""
        return self.server.url

    @property
    def blobs(self) -> BlobStore:
        """The server's blob store, seen from the test."""
        return self.deployment.blobs

    def http(self) -> httpx.Client:
        """A plain client of the server."""
        return httpx.Client(base_url=self.url, timeout=60)

    def referenced(self) -> set[str]:
        """Every blob key a committed row refers to."""
        with self.deployment.database.unit_of_work(write=False) as session:
            return UploadService(session, AuditLog(session)).referenced_blob_keys()


def _env(blobs: BlobSettings) -> dict[str, str]:
    env = {"IOTSTORE_MAX_SNAP_BYTES": str(MAX_SNAP), "CRAFT_STORE_RETRIES": "0"}
    if blobs.backend == "s3":
        env |= {
            "IOTSTORE_BLOB_BACKEND": "s3",
            "IOTSTORE_S3_ENDPOINT_URL": blobs.s3_endpoint_url or "",
            "IOTSTORE_S3_BUCKET": blobs.s3_bucket or "",
            "IOTSTORE_S3_ACCESS_KEY": blobs.s3_access_key or "",
            "IOTSTORE_S3_SECRET_KEY": blobs.s3_secret_key or "",
            "IOTSTORE_S3_REGION": blobs.s3_region,
        }
    return env


def start_publisher(base: Path, database_url: str, blobs: BlobSettings) -> Publisher:
    """A deployment with stores and people, served live."""
    deployment = make_deployment(base / "data", database_url, max_snap_bytes=MAX_SNAP, blobs=blobs)
    factory = Factory(deployment)
    _, store = factory.brand()
    _, reviewed = factory.brand()
    factory.settings(reviewed, manual_review=True)
    publisher = factory.person({store: "publisher", reviewed: "publisher"}, password=PASSWORD)
    reviewer = factory.person({reviewed: "reviewer"})
    other = factory.person({store: "publisher"}, password=PASSWORD)
    server = PublisherServer(base / "data", database_url, base / "server.log", _env(blobs))
    return Publisher(
        server, deployment, factory, store, reviewed, publisher, reviewer, other, base / "work"
    )


@pytest.fixture(scope="session")
def s3_settings() -> Iterator[BlobSettings]:
    """A bucket of the machine's test SeaweedFS, as the deployment's settings name it."""
    try:
        server: S3Server = join_seaweedfs()
    except SeaweedFSUnavailable as e:
        pytest.fail(f"the S3 publisher tests need SeaweedFS: {e}", False)
    bucket = f"iotstore-pub-{secrets.token_hex(4)}"
    server.store(bucket).close()  # creates the bucket
    yield BlobSettings(
        backend="s3",
        s3_endpoint_url=server.endpoint_url,
        s3_bucket=bucket,
        s3_access_key=server.access_key,
        s3_secret_key=server.secret_key,
        s3_region=server.region,
    )
    server.leave()


def _stop(p: Publisher) -> None:
    p.server.stop()
    p.deployment.close()


@pytest.fixture(scope="module")
def publisher(
    module_database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Publisher]:
    """A live server keeping snaps on disk, on each database backend."""
    p = start_publisher(tmp_path_factory.mktemp("pub"), module_database_url, BlobSettings())
    yield p
    _stop(p)


@pytest.fixture(scope="module")
def s3_publisher(
    s3_settings: BlobSettings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Publisher]:
    """A live server keeping snaps in S3 (SeaweedFS), on SQLite: the blob store is what
    differs here, and ``publisher`` runs the same walk on both databases already."""
    base = tmp_path_factory.mktemp("pub-s3")
    p = start_publisher(base, sqlite_url(base / "db.sqlite"), s3_settings)
    yield p
    _stop(p)
