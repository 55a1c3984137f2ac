"""A throwaway PostgreSQL server for the test run, and a fresh database per test.

The suite runs every database test on SQLite and on PostgreSQL. By default the
run starts its own server (Debian's PostgreSQL binaries, a data directory in a
temporary directory, loopback only, a free port, ``fsync=off``) and stops it at
the end; with ``IOTSTORE_TEST_POSTGRES_URL`` set it uses that server instead
(CI may start one itself). Under pytest-xdist every worker starts its own
server: nothing is shared between processes, so nothing needs a lock.

PostgreSQL refuses to run as root, so as root ``initdb`` and ``pg_ctl`` run as
the ``postgres`` user through ``runuser``.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from psycopg import sql
from sqlalchemy.engine import URL, make_url

__all__ = [
    "BACKENDS",
    "ENV_URL",
    "PostgresServer",
    "PostgresUnavailable",
    "die_with_parent",
    "free_port",
    "fresh_database",
    "start_server",
]

BACKENDS = ("sqlite", "postgresql")
ENV_URL = "IOTSTORE_TEST_POSTGRES_URL"
ENV_BIN = "IOTSTORE_TEST_POSTGRES_BIN"
DEFAULT_BIN = Path("/usr/lib/postgresql/15/bin")
# Fixed ports of other servers the suite starts (SeaweedFS): never hand them out.
RESERVED_PORTS = frozenset({8333, 8888, 9333, 9340, 8181, 9101, 18333, 18888, 19333, 19340, 33646})
_START_ATTEMPTS = 3
_PR_SET_PDEATHSIG = 1  # linux/prctl.h


class PostgresUnavailable(Exception):
    """The test PostgreSQL server could not be started or reached."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (never a reserved one)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port: int = s.getsockname()[1]
        if port not in RESERVED_PORTS:
            return port
    raise OSError("no free port on 127.0.0.1")


def _bin_dir() -> Path:
    configured = os.environ.get(ENV_BIN)
    if configured:
        return Path(configured)
    if (DEFAULT_BIN / "pg_ctl").exists():
        return DEFAULT_BIN
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
    if found:
        return found[-1].parent
    on_path = shutil.which("pg_ctl")
    if on_path:
        return Path(on_path).parent
    raise PostgresUnavailable(
        f"no PostgreSQL binaries: install Debian's postgresql (expected {DEFAULT_BIN}), "
        f"set {ENV_BIN}, or point {ENV_URL} at a running server"
    )


def _as_owner(argv: list[str]) -> list[str]:
    # initdb and postgres refuse to run as root
    return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv


def _run(argv: list[str], what: str) -> None:
    try:
        done = subprocess.run(  # noqa: PLW1510 - the return code is checked below
            _as_owner(argv), capture_output=True, text=True, timeout=120
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        raise PostgresUnavailable(f"{what} failed: {e}") from e
    if done.returncode != 0:
        raise PostgresUnavailable(
            f"{what} failed (exit {done.returncode}):\n{done.stdout}\n{done.stderr}"
        )


@dataclass
class PostgresServer:
    """A PostgreSQL server the tests may create and drop databases on."""

    admin_url: URL
    _stop: Callable[[], None] | None = field(default=None, repr=False)

    @property
    def _admin_conninfo(self) -> str:
        return self.admin_url.set(drivername="postgresql").render_as_string(hide_password=False)

    def check(self) -> None:
        """Raise :class:`PostgresUnavailable` unless the server answers."""
        try:
            with psycopg.connect(self._admin_conninfo, connect_timeout=10) as conn:
                conn.execute("SELECT 1")
        except psycopg.Error as e:
            raise PostgresUnavailable(
                f"cannot connect to PostgreSQL at {self.admin_url!r}: {e}"
            ) from e

    def create_database(self) -> str:
        """A new, empty database; returns its SQLAlchemy URL (psycopg driver)."""
        name = f"iotstore_test_{uuid.uuid4().hex[:16]}"
        with psycopg.connect(self._admin_conninfo, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        url = self.admin_url.set(drivername="postgresql+psycopg", database=name)
        return url.render_as_string(hide_password=False)

    def drop_database(self, url: str) -> None:
        """Drop a database made by :meth:`create_database`, closing its connections."""
        name = make_url(url).database
        assert name is not None and name.startswith("iotstore_test_")
        with psycopg.connect(self._admin_conninfo, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )

    def stop(self) -> None:
        """Stop the server if this run started it (idempotent)."""
        stop, self._stop = self._stop, None
        if stop is not None:
            stop()


def server_from_url(url: str) -> PostgresServer:
    """A server someone else runs, reached through ``url`` (any database on it)."""
    try:
        parsed = make_url(url)
    except Exception as e:
        raise PostgresUnavailable(f"{ENV_URL} is not a database URL: {e}") from e
    if not parsed.drivername.startswith("postgresql"):
        raise PostgresUnavailable(f"{ENV_URL} must be a postgresql:// URL")
    server = PostgresServer(parsed.set(drivername="postgresql+psycopg"))
    server.check()
    return server


def die_with_parent() -> Callable[[], None]:
    """A pre-exec hook: the child gets SIGTERM when the test run dies (even by SIGKILL).

    So no server outlives its run (runuser passes the signal on to postgres).
    The function is looked up here, in the parent: the hook itself only calls it.
    """
    prctl = ctypes.CDLL(None, use_errno=True).prctl

    def hook() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)

    return hook


def _wait_ready(process: subprocess.Popen[bytes], port: int, deadline: float) -> bool:
    """True once the server takes connections; False when it exits (e.g. the port is taken)."""
    conninfo = f"host=127.0.0.1 port={port} user=postgres dbname=postgres connect_timeout=2"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        try:
            with psycopg.connect(conninfo) as conn:
                conn.execute("SELECT 1")
        except psycopg.OperationalError:
            time.sleep(0.05)
            continue
        return True
    raise PostgresUnavailable("the server did not accept connections within 60 s")


def start_server() -> PostgresServer:
    """Start a private server on 127.0.0.1 (a free port) and return it.

    Raises :class:`PostgresUnavailable` with the server's own output when it
    cannot start; never returns a half-started server.
    """
    bindir = _bin_dir()
    base = Path(tempfile.mkdtemp(prefix="iotstore-pg-"))
    data = base / "data"
    log = base / "postgres.log"
    if os.geteuid() == 0:
        shutil.chown(base, "postgres", "postgres")
    base.chmod(0o700)
    process: subprocess.Popen[bytes] | None = None

    def stop() -> None:
        if process is not None and process.poll() is None:
            with contextlib.suppress(PostgresUnavailable):
                _run([str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"], "stop")
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=30)
        shutil.rmtree(base, ignore_errors=True)

    try:
        _run(
            [
                str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres",
                "--no-sync", "-E", "UTF8", "--locale=C.UTF-8",
            ],
            "initdb",
        )  # fmt: skip
        data.chmod(0o700)
        hook = die_with_parent()
        for _ in range(_START_ATTEMPTS):
            port = free_port()
            # in the foreground, as this process's child, so it cannot outlive the run
            with log.open("ab") as out:
                process = subprocess.Popen(
                    _as_owner([
                        str(bindir / "postgres"), "-D", str(data),
                        "-c", "listen_addresses=127.0.0.1", "-p", str(port), "-k", str(base),
                        "-c", "fsync=off", "-c", "synchronous_commit=off",
                        "-c", "full_page_writes=off", "-c", "max_connections=300",
                    ]),
                    stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                    preexec_fn=hook,  # noqa: PLW1509 - only prctl, before exec
                )  # fmt: skip
            if _wait_ready(process, port, time.monotonic() + 60):
                break
            # most likely the port was taken in between: try another one
        else:
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise PostgresUnavailable(f"postgres did not start; its log ends:\n{tail}")
    except BaseException:
        stop()
        raise

    server = PostgresServer(
        URL.create("postgresql+psycopg", username="postgres", host="127.0.0.1", port=port,
                   database="postgres"),
        stop,
    )  # fmt: skip
    # a run that ends before the session fixture's teardown still stops its server
    atexit.register(server.stop)
    server.check()
    return server


@contextlib.contextmanager
def fresh_database(
    kind: str, directory: Path, postgres: Callable[[], PostgresServer]
) -> Iterator[str]:
    """An empty database of ``kind`` (see :data:`BACKENDS`), gone afterwards.

    SQLite is a file in ``directory``; PostgreSQL a new database on the server
    ``postgres()`` returns (called only for PostgreSQL, so SQLite-only runs never
    start a server). Whoever opened engines on it must dispose them first.
    """
    if kind == "sqlite":
        yield f"sqlite+pysqlite:///{directory / 'iotstore.sqlite'}"
        return
    if kind != "postgresql":
        raise ValueError(f"unknown backend {kind!r}")
    server = postgres()
    url = server.create_database()
    try:
        yield url
    finally:
        server.drop_database(url)
