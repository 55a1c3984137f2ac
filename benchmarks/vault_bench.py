"""Serials issued per second, as a ratio to raw RSA-4096 signing on the same cores, and where
the rest of the time goes.

Run: ``.venv/bin/python -m benchmarks.vault_bench [--seconds S] [--concurrency C] [--workers W]
[--no-hsm] [--no-registrations]``

1. **Limit**: RSA-4096 PKCS#1 v1.5 SHA-512 signatures per second with
   ``cryptography``, in P = max(W, cores) processes, measured in this run
   before and after the HTTP window (the higher counts): the cores the
   server may use. Not W alone: ``cryptography`` releases the
   GIL while it signs, so even one worker signs on every core at once from
   its thread pool.
2. **HTTP, the vault alone** (the headline): a live ``iotstore serve``
   (embedded default: SQLite and the encrypted key store, W workers).
   A device signs its serial-request on its own CPU, not the vault's: so the
   request-ids are fetched and the serial-requests (2048-bit device keys,
   each with its own single-use request-id, well inside the vault's
   ``NONCE_LIFETIME``) signed *before* the window; in the window ``wrk``
   (C connections, one thread, a Lua script cycling through the pre-built
   bodies, each used once) posts ``POST serial`` for S seconds. Every answer
   is checked in the script (200, and a stream of serial, account-key,
   account); only those count, failures are printed. The server's database
   must then hold at least as many new serials (requests answered after wrk
   stopped may add a few). Ratio: serials/s over raw RSA-4096/s.
3. **The ceiling**: :mod:`benchmarks.sign_only`, the same HTTP server (granian with
   ``iotstore serve``'s settings, W workers) answering each POST with one
   RSA-4096 signature of its body in a thread per core and nothing else, under
   the same wrk load. Its ratio is the most a Python vault on this server can
   reach; the vault's server CPU per serial is split into RSA, the ceiling's
   own overhead (HTTP server, event loop, signing threads) and the vault's
   own work beyond it.
4. **HTTP, whole registrations** (unless ``--no-registrations``): what snapd
   does, ``POST request-id`` then ``POST serial``, from C concurrent Python
   devices (httpx, signing each serial-request) in this process, on the same
   cores; the client's CPU time is shown. A figure for the whole protocol,
   not the vault's limit.
5. **In-process**: the server's own code path (``register_device``: a read
   transaction with every check, the signature in none, one write
   transaction) on pre-built serial-requests, on one thread: CPU time per
   serial against CPU time per raw RSA-4096 signature, and the time split
   into decoding, verifying, signing, SQL and the rest.
6. **SoftHSM** (unless ``--no-hsm``): the in-process measurement with the
   serial key in a SoftHSM2 token behind ``iotstore.keystore.PKCS11KeyStore``,
   against one session's raw signing rate; then the wrk window with the
   server set to ``IOTSTORE_KEYSTORE=pkcs11`` (the demo's serial key generated
   in the token) and one worker per core, since a PKCS#11 key store signs one
   digest at a time per process, against the token's raw rate in as many
   processes (a session each).

Exits 1 when a window had a failed answer, a socket error or a timeout, or
answered a serial its database lacks.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import queue as queue_module
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from sqlalchemy import event, func, select
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session, SessionTransaction

from iotstore import asserts
from iotstore.accounts import RootAuthority, adopt_root
from iotstore.accounts.brands import BrandService
from iotstore.assertdb import trust_database
from iotstore.db import SqlDatabase
from iotstore.db.prepared import PreparedStatement
from iotstore.demo import seed_demo
from iotstore.deployment import Deployment
from iotstore.devices.models import SigningLogEntry
from iotstore.devices.registration import DeviceRegistrar
from iotstore.devices.services import NONCE_LIFETIME, VaultService
from iotstore.keystore import (
    EncryptedKeyStore,
    KeyStore,
    MasterKey,
    PKCS11KeyStore,
    SqliteKeyRecords,
)
from iotstore.keystore._common import StoreSigner
from iotstore.migrations import upgrade
from iotstore.settings import KeystoreSettings, Settings
from iotstore.stores.audit import Actor, AuditLog
from iotstore.stores.services import StoreService
from iotstore.web.device_service import register_device

from ._timing import run_async

VAULT = "/serial-vault/v1"
ROOT_ID = "bench-root"
Summary = dict[str, float]  # the figures main prints as JSON at the end
SOFTHSM_MODULE = "/usr/lib/softhsm/libsofthsm2.so"


def root_key_pem() -> bytes:
    """The library's fixed test root key (no 4096-bit root to generate)."""
    return resources.files("iotstore.asserts.testing").joinpath("keys", "root.pem").read_bytes()


def free_port() -> int:
    """A free loopback port (away from the fixed ports other test servers use)."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port not in {8333, 8888, 9333, 9340, 8181, 9101, 18333, 18888, 19333, 19340, 33646}:
            return port


# -- the server ------------------------------------------------------------------------------


@dataclass
class Server:
    """A seeded deployment served by ``iotstore serve`` in a subprocess."""

    data_dir: Path
    url: str
    info: dict[str, Any]
    database_url: str
    model: asserts.Model
    root_stream: bytes
    process: subprocess.Popen[bytes] | None = None

    @property
    def api_key(self) -> str:
        return str(self.info["api_key"])


def seeded_server_dir(
    base: Path, database_url: str | None, keystore: KeystoreSettings | None = None
) -> Server:
    """Initialise a data directory and seed the demo (model, serial key, API key)."""
    data_dir = base / "data"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    settings = Settings(
        data_dir=data_dir, base_url=url, database_url=database_url,
        keystore=keystore or KeystoreSettings(),
    )  # fmt: skip
    deployment = Deployment.init(
        data_dir, settings=settings, root_id=ROOT_ID, root_key_pem=root_key_pem()
    )
    try:
        info = seed_demo(deployment, url)
    finally:
        deployment.close()
    model = asserts.decode((data_dir / "demo-model.assert").read_bytes())
    assert isinstance(model, asserts.Model)
    return Server(
        data_dir, url, info, settings.resolved_database_url, model,
        (data_dir / "root.assert").read_bytes(),
    )  # fmt: skip


@contextlib.contextmanager
def background(
    argv: list[str],
    log_path: Path,
    ready: Callable[[], bool],
    name: str,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``argv`` until ``ready()`` (transport errors count as not yet); stop it after."""
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            argv, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
    try:
        deadline = time.monotonic() + 120
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited: see {log_path}")
            with contextlib.suppress(httpx.TransportError):
                if ready():
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not start: see {log_path}")
            time.sleep(0.1)
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def serve_process(
    args: list[str], env: dict[str, str], url: str, log_path: Path
) -> contextlib.AbstractContextManager[subprocess.Popen[bytes]]:
    """Run ``iotstore serve ARGS`` until ``url`` answers its health check; stop it after."""
    argv = [sys.executable, "-m", "iotstore", "serve", *args]
    return background(
        argv, log_path, lambda: httpx.get(f"{url}/api/v1/health", timeout=2).status_code == 200,
        "iotstore serve", env,
    )  # fmt: skip


@contextlib.contextmanager
def serving(
    server: Server, workers: int, log_path: Path, extra_env: dict[str, str] | None = None
) -> Iterator[Server]:
    """Run ``iotstore serve`` on the seeded directory until the block ends."""
    env = {**os.environ, "IOTSTORE_BASE_URL": server.url, "IOTSTORE_DATA_DIR": str(server.data_dir)}
    env.update(extra_env or {})
    env.pop("IOTSTORE_DATABASE_URL", None)
    if not server.database_url.startswith("sqlite"):
        env["IOTSTORE_DATABASE_URL"] = server.database_url
    port = server.url.rsplit(":", 1)[1]
    args = ["--data-dir", str(server.data_dir), "--port", port, "--workers", str(workers)]
    with serve_process(args, env, server.url, log_path) as server.process:
        yield server


# -- a device ----------------------------------------------------------------------------------


def device_keys(count: int, bits: int) -> list[asserts.RSAPrivateKey]:
    """A pool of device keys, generated once (the client must stay cheap)."""
    return [asserts.generate_rsa(bits) for _ in range(count)]


def serial_request(
    key: asserts.RSAPrivateKey, model: asserts.Model, request_id: str, serial: str | None
) -> bytes:
    """What snapd posts to ``serial``: the signed serial-request, then the model."""
    headers: dict[str, object] = {
        "brand-id": model.brand_id, "model": model.model, "request-id": request_id,
        "device-key": key.public_key.encoded,
    }  # fmt: skip
    if serial is not None:
        headers["serial"] = serial
    return asserts.encode_stream([asserts.sign("serial-request", headers, key), model])


@dataclass
class Outcome:
    """One registration as the device saw it."""

    statuses: list[int] = field(default_factory=list)
    seconds: float = 0.0
    serial_seconds: float = 0.0
    answer: bytes = b""
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.statuses[-1:] == [200] and not self.error


async def register(
    client: httpx.AsyncClient,
    api_key: str,
    model: asserts.Model,
    key: asserts.RSAPrivateKey,
    serial: str | None = None,
) -> Outcome:
    """request-id, then serial, as snapd does; never raises."""
    out = Outcome()
    start = time.perf_counter()
    try:
        rid = await client.post(f"{VAULT}/request-id", headers={"api-key": api_key})
        out.statuses.append(rid.status_code)
        if rid.status_code != 200:
            out.error = rid.text[:300]
            return out
        data = serial_request(key, model, rid.json()["request-id"], serial)
        serial_start = time.perf_counter()
        answer = await client.post(
            f"{VAULT}/serial",
            content=data,
            headers={"api-key": api_key, "Content-Type": asserts.MEDIA_TYPE,
                     "Snap-Device-Capabilities": "serial-stream"},
        )  # fmt: skip
        out.serial_seconds = time.perf_counter() - serial_start
        out.statuses.append(answer.status_code)
        if answer.status_code == 200:
            out.answer = answer.content
        else:
            out.error = answer.text[:300]
    except httpx.HTTPError as e:
        out.error = f"{type(e).__name__}: {e}"
    finally:
        out.seconds = time.perf_counter() - start
    return out


def percentile(values: list[float], p: float) -> float:
    """The p-th percentile (nearest rank) of ``values``."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]


# -- the limit ---------------------------------------------------------------------------------


def _rsa_signer() -> Callable[[], bytes]:
    """One RSA-4096 PKCS#1 v1.5 SHA-512 signature of a serial-sized message per call, warmed up."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=4096)
    message = b"x" * 600
    pkcs1, sha512 = padding.PKCS1v15(), hashes.SHA512()
    key.sign(message, pkcs1, sha512)
    return lambda: key.sign(message, pkcs1, sha512)


def _sign_for(seconds: float, queue: Any) -> None:
    sign = _rsa_signer()
    count = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        sign()
        count += 1
    queue.put(count / (time.perf_counter() - start))


def rsa_cpu_ms(seconds: float) -> float:
    """CPU milliseconds per RSA-4096 signature in this process (CPU time, not wall)."""
    sign = _rsa_signer()
    count = 0
    start = time.process_time()
    while time.process_time() - start < seconds:
        sign()
        count += 1
    return (time.process_time() - start) / count * 1000


def raw_rsa_rate(processes: int, seconds: float) -> float:
    """RSA-4096 PKCS#1 v1.5 SHA-512 signatures per second over ``processes`` processes."""
    return rate_in_processes(_sign_for, (seconds,), processes, seconds)


def rate_in_processes(
    target: Callable[..., None], args: tuple[Any, ...], processes: int, seconds: float
) -> float:
    """The sum of the rates ``processes`` processes of ``target(*args, queue)`` put on the queue."""
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    workers = [ctx.Process(target=target, args=(*args, queue)) for _ in range(processes)]
    for w in workers:
        w.start()
    rates: list[float] = []
    deadline = time.monotonic() + seconds + 120
    while len(rates) < processes:
        try:
            rates.append(queue.get(timeout=1))
        except queue_module.Empty:
            # a worker that died (e.g. its import failed) never reports: stop now
            if any(w.exitcode not in (None, 0) for w in workers) or time.monotonic() > deadline:
                raise RuntimeError("a signing process failed: see its output") from None
    for w in workers:
        w.join()
    return float(sum(rates))


# -- HTTP ----------------------------------------------------------------------------------------


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds (user + system) used so far by process ``pid`` and its descendants.

    The server's granian workers are child processes: read them all from /proc.
    """
    parents: dict[int, int] = {}
    times: dict[int, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue  # exited meanwhile
        fields = text[text.rindex(")") + 2 :].split()
        child = int(stat.parent.name)
        parents[child] = int(fields[1])
        times[child] = (int(fields[11]) + int(fields[12])) / tick
    tree, grew = {pid}, True
    while grew:
        more = {p for p, parent in parents.items() if parent in tree} - tree
        tree |= more
        grew = bool(more)
    return sum(times.get(p, 0.0) for p in tree)


async def closed_loop(
    server: Server, keys: list[asserts.RSAPrivateKey], concurrency: int, seconds: float
) -> tuple[list[Outcome], float, float]:
    """``concurrency`` devices registering back to back for ``seconds``.

    Returns (outcomes, wall seconds, server CPU seconds over the same window).
    """
    outcomes: list[Outcome] = []
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=server.url, timeout=120, limits=limits) as client:
        # warm-up: first requests pay for imports, caches and connections
        await asyncio.gather(
            *(
                register(client, server.api_key, server.model, keys[i % len(keys)])
                for i in range(concurrency)
            )
        )
        assert server.process is not None
        server_cpu = tree_cpu_seconds(server.process.pid)
        deadline = time.perf_counter() + seconds
        start = time.perf_counter()

        async def device(n: int) -> None:
            i = n
            while time.perf_counter() < deadline:
                outcomes.append(
                    await register(client, server.api_key, server.model, keys[i % len(keys)])
                )
                i += concurrency

        await asyncio.gather(*(device(n) for n in range(concurrency)))
        wall = time.perf_counter() - start
        server_cpu = tree_cpu_seconds(server.process.pid) - server_cpu
    return outcomes, wall, server_cpu


# -- HTTP, the vault alone: pre-built serial-requests posted by wrk --------------------------------

# One Lua state per wrk thread; thread ``id`` of ``threads`` takes every threads-th
# body, so each pre-built serial-request (and its request-id) is posted once.
# When a thread runs out it asks for /version instead, which counts as a failure
# ("exhausted"): the pool is sized so that it does not happen.
WRK_SCRIPT = r"""
local threads, created = {}, 0
function setup(thread)
  thread:set("id", created)
  created = created + 1
  table.insert(threads, thread)
end

function init(args)
  local nthreads, path, api_key, url_path = tonumber(args[1]), args[2], args[3], args[4]
  expect = args[5]
  local file = assert(io.open(path, "rb"))
  local data = file:read("*a")
  file:close()
  local headers = {["api-key"] = api_key, ["Content-Type"] = "application/x.ubuntu.assertion",
                   ["Snap-Device-Capabilities"] = "serial-stream"}
  requests, next_request, i = {}, 1, 0
  for body in string.gmatch(data, "([^%z]+)") do
    if i % nthreads == id then
      requests[#requests + 1] = wrk.format("POST", url_path, headers, body)
    end
    i = i + 1
  end
  ok, failed, exhausted, first_failure = 0, 0, 0, ""
end

function request()
  local r = requests[next_request]
  if r == nil then
    exhausted = exhausted + 1
    return wrk.format("GET", "/serial-vault/v1/version")
  end
  requests[next_request] = nil
  next_request = next_request + 1
  return r
end

local function answered(status, body)
  if expect == "signature" then
    return status == 200 and #body == 512
  end
  return status == 200 and body:sub(1, 13) == "type: serial\n"
      and body:find("\n\ntype: account-key\n", 1, true) ~= nil
      and body:find("\n\ntype: account\n", 1, true) ~= nil
end

function response(status, headers, body)
  if answered(status, body) then
    ok = ok + 1
  else
    failed = failed + 1
    if first_failure == "" then
      first_failure = tostring(status) .. " " .. string.gsub(body:sub(1, 200), "%c", " ")
    end
  end
end

function done(summary, latency, requests)
  local ok_all, failed_all, exhausted_all, first = 0, 0, 0, ""
  for _, thread in ipairs(threads) do
    ok_all = ok_all + thread:get("ok")
    failed_all = failed_all + thread:get("failed")
    exhausted_all = exhausted_all + thread:get("exhausted")
    if first == "" then first = thread:get("first_failure") end
  end
  local errors = summary.errors
  io.write(string.format(
    "VAULT %d %d %d %d %d %d %d %d %d\n", ok_all, failed_all, exhausted_all, summary.duration,
    latency:percentile(50), latency:percentile(99),
    errors.connect + errors.read + errors.write, errors.timeout, summary.requests))
  io.write("FIRST_FAILURE " .. first .. "\n")
end
"""


async def prebuilt_serial_requests(
    server: Server, keys: list[asserts.RSAPrivateKey], count: int, concurrency: int = 8
) -> list[bytes]:
    """``count`` serial-request + model streams, each with its own fresh request-id.

    What a device does before it posts ``serial`` (fetch a request-id, sign), done
    before the measured window so that the device's work is not on the vault's CPU.
    """
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    bodies: list[bytes] = []
    async with httpx.AsyncClient(base_url=server.url, timeout=120, limits=limits) as client:

        async def fetch(n: int) -> list[str]:
            ids = []
            for _ in range(n):
                answer = await client.post(
                    f"{VAULT}/request-id", headers={"api-key": server.api_key}
                )
                answer.raise_for_status()
                ids.append(answer.json()["request-id"])
            return ids

        share = -(-count // concurrency)
        batches = await asyncio.gather(*(fetch(share) for _ in range(concurrency)))
    request_ids = [rid for batch in batches for rid in batch][:count]
    for i, rid in enumerate(request_ids):
        bodies.append(serial_request(keys[i % len(keys)], server.model, rid, None))
    return bodies


@dataclass
class WrkSerials:
    """What one wrk window of ``POST serial`` saw."""

    ok: int
    failed: int  # includes exhausted
    exhausted: int  # requests made after the pool ran out
    socket_errors: int
    timeouts: int
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    first_failure: str
    server_cpu: float  # CPU seconds of the server's process tree over the window
    wrk_cpu: float  # CPU seconds wrk used (it runs on the same cores)
    recorded: int | None = None  # serials the server's database gained over the window

    @property
    def rate(self) -> float:
        """Checked serials per second."""
        return self.ok / self.seconds

    @property
    def problems(self) -> int:
        """Failed answers, socket errors, timeouts and answered serials the database lacks."""
        unrecorded = 0 if self.recorded is None else max(0, self.ok - self.recorded)
        return self.failed + self.socket_errors + self.timeouts + unrecorded


def signing_log_count(database_url: str) -> int:
    """Signing-log entries in the server's database: one per serial issued."""
    database = SqlDatabase.from_url(database_url)
    try:
        with database.unit_of_work(write=False) as session:
            return int(session.scalar(select(func.count(SigningLogEntry.id))) or 0)
    finally:
        database.dispose()


def run_wrk(
    url: str,
    pid: int,
    bodies: list[bytes],
    connections: int,
    seconds: float,
    work_dir: Path,
    api_key: str = "",
    expect: str = "serial",
) -> WrkSerials:
    """Post ``bodies`` (each once) to ``url``'s ``serial`` for ``seconds`` with wrk.

    Each answer is checked: a serial stream (``expect="serial"``) or an RSA-4096
    signature (``"signature"``, the ceiling's). ``pid``: the server, whose process
    tree's CPU time is measured. ``recorded`` is left None.
    """
    binary = shutil.which("wrk")
    if binary is None:
        raise SystemExit("wrk is not installed: apt-get install -y wrk")
    assert all(b"\0" not in body for body in bodies)
    bodies_path = work_dir / "serial-requests.bin"
    bodies_path.write_bytes(b"\0".join(bodies))
    script = work_dir / "serials.lua"
    script.write_text(WRK_SCRIPT)
    threads = 1  # one core's worth of load generator at most: the server needs the rest
    cmd = [binary, "-t", str(threads), "-c", str(connections), "-d", f"{max(1, round(seconds))}s",
           "--timeout", "60s", "-s", str(script), url,
           "--", str(threads), str(bodies_path), api_key, f"{VAULT}/serial", expect]  # fmt: skip
    children = os.times()
    server_cpu = tree_cpu_seconds(pid)
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 120, check=False)
    server_cpu = tree_cpu_seconds(pid) - server_cpu
    after = os.times()
    wrk_cpu = (after.children_user - children.children_user) + (
        after.children_system - children.children_system
    )
    line = next((x for x in out.stdout.splitlines() if x.startswith("VAULT ")), None)
    if out.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({out.returncode}):\n{out.stdout}\n{out.stderr}")
    ok, failed, exhausted, duration_us, p50, p99, sock, timeouts, requests = map(
        int, line.split()[1:]
    )
    first = next(
        (x[len("FIRST_FAILURE ") :] for x in out.stdout.splitlines() if x.startswith("FIRST_")), ""
    )
    return WrkSerials(
        ok, failed, exhausted, sock, timeouts, requests, duration_us / 1e6, p50 / 1000,
        p99 / 1000, first, server_cpu, wrk_cpu,
    )  # fmt: skip


def wrk_serials(
    server: Server, bodies: list[bytes], connections: int, seconds: float, work_dir: Path
) -> WrkSerials:
    """Post the pre-built ``bodies`` (each once) for ``seconds``; count what the database gained."""
    assert server.process is not None
    recorded = signing_log_count(server.database_url)
    result = run_wrk(
        server.url, server.process.pid, bodies, connections, seconds, work_dir, server.api_key
    )
    result.recorded = signing_log_count(server.database_url) - recorded
    return result


def serial_window(
    server: Server,
    keys: list[asserts.RSAPrivateKey],
    connections: int,
    seconds: float,
    expected_rate: float,
    work_dir: Path,
) -> WrkSerials:
    """Pre-build serial-requests for ``seconds`` at up to ``expected_rate``; post them with wrk."""
    count = int(expected_rate * seconds * 1.5) + 4 * connections
    started = time.monotonic()
    warm = run_async(prebuilt_serial_requests(server, keys, 2 * connections))
    bodies = run_async(prebuilt_serial_requests(server, keys, count))
    # warm-up: imports, caches and connections, outside the window
    wrk_serials(server, warm, connections, 1, work_dir)
    if time.monotonic() - started + seconds > NONCE_LIFETIME.total_seconds() * 0.8:
        raise SystemExit("the window would outlive the request-ids: use fewer --seconds")
    return wrk_serials(server, bodies, connections, seconds, work_dir)


@contextlib.contextmanager
def sign_only_server(workers: int, log_path: Path) -> Iterator[tuple[str, int]]:
    """Run :mod:`benchmarks.sign_only` (the ceiling) until the block ends: (url, pid)."""
    url = f"http://127.0.0.1:{free_port()}"
    argv = [sys.executable, "-m", "benchmarks.sign_only", "--port", url.rsplit(":", 1)[1],
            "--workers", str(workers)]  # fmt: skip
    # ready once every worker has generated its key; any POST is signed
    with background(
        argv, log_path, lambda: httpx.post(url, content=b"up?", timeout=2).status_code == 200,
        "the sign-only server", cwd=Path(__file__).resolve().parent.parent,
    ) as process:  # fmt: skip
        yield url, process.pid


def ceiling_window(
    body: bytes, workers: int, connections: int, seconds: float, most: float, work_dir: Path
) -> WrkSerials:
    """The wrk window of :func:`serial_window` against the sign-only server, posting ``body``."""
    with sign_only_server(workers, work_dir / "sign-only.log") as (url, pid):
        warm = [body] * (4 * connections)
        run_wrk(url, pid, warm, connections, 1, work_dir, expect="signature")
        bodies = [body] * (int(most * seconds * 1.5) + 4 * connections)
        return run_wrk(url, pid, bodies, connections, seconds, work_dir, expect="signature")


def print_ceiling(ceiling: WrkSerials, vault: WrkSerials, raw: float, rsa_ms: float) -> None:
    """The ceiling's figures, and a serial's server CPU split against it."""
    print(f"\nceiling: the same HTTP server (iotstore serve's granian settings and workers)"
          f" answering each POST with one RSA-4096 signature of its body (a signing thread per"
          f" core) and nothing else, wrk, {ceiling.seconds:.1f} s:")  # fmt: skip
    print(
        f"  {ceiling.rate:.1f} signatures/s ({ceiling.problems} failed); ratio to raw:"
        f" {ceiling.rate / raw:.3f}; the vault reaches {vault.rate / ceiling.rate:.3f} of it"
    )
    per_request = ceiling.server_cpu / max(1, ceiling.ok) * 1000
    per_serial = vault.server_cpu / max(1, vault.ok) * 1000
    print(f"  server CPU {per_request:.2f} ms per request; wrk CPU"
          f" {ceiling.wrk_cpu / max(1, ceiling.ok) * 1000:.2f} ms")  # fmt: skip
    print(f"  a serial's {per_serial:.2f} ms of server CPU: RSA-4096 {rsa_ms:.2f} ms; HTTP server,"
          f" event loop and signing threads (the ceiling's beyond RSA) {per_request - rsa_ms:.2f}"
          f" ms; the vault's own work (beyond the ceiling) {per_serial - per_request:.2f} ms,"
          f" split below (in-process)")  # fmt: skip


def print_window(title: str, result: WrkSerials, limit: float, limit_name: str) -> None:
    """The wrk window's figures."""
    print(f"\n{title}, {result.seconds:.1f} s:")
    print(f"  serials: {result.ok} ok (checked: 200 + serial stream), {result.failed} failed"
          f" ({result.exhausted} after the pre-built requests ran out), socket errors"
          f" {result.socket_errors}, timeouts {result.timeouts};"
          f" the database gained {result.recorded}")  # fmt: skip
    print(f"  {result.rate:.1f} serials/s; ratio to {limit_name}: {result.rate / limit:.3f}"
          f"  (goal >= 0.8)")  # fmt: skip
    print(f"  latency p50 {result.p50_ms:.1f} ms, p99 {result.p99_ms:.1f} ms")
    per = max(1, result.ok)
    print(f"  server CPU {result.server_cpu / per * 1000:.2f} ms per serial;"
          f" wrk CPU {result.wrk_cpu / per * 1000:.2f} ms per serial (same cores)")  # fmt: skip
    if result.failed:
        print(f"  first failure: {result.first_failure}")
    if result.recorded is not None and result.recorded < result.ok:
        print("  ERROR: fewer serials recorded than answered")


# -- in-process, with phases -----------------------------------------------------------------------


class Phases:
    """Exclusive CPU time (this thread's) per phase of a registration, by wrapping what the
    vault calls; CPU time, so other load on the machine does not inflate it.

    Phases nest (``asserts.sign`` calls the key store, a trust check runs SQL):
    each phase counts only its own time, what its callees took is charged to
    them. What no wrapper covers is "other Python".
    """

    def __init__(self) -> None:
        self.totals: dict[str, float] = defaultdict(float)
        self._local = threading.local()
        self._undo: list[Callable[[], None]] = []

    def _stack(self) -> list[list[Any]]:
        stack: list[list[Any]] | None = getattr(self._local, "stack", None)
        if stack is None:
            stack = self._local.stack = []
        return stack

    def enter(self, phase: str) -> None:
        self._stack().append([phase, time.thread_time(), 0.0])

    def leave(self) -> None:
        phase, start, children = self._stack().pop()
        spent = time.thread_time() - start
        self.totals[phase] += spent - children
        if self._stack():
            self._stack()[-1][2] += spent

    def _wrap(self, owner: Any, name: str, phase: str, lazy: bool = False) -> None:
        original = getattr(owner, name)

        def timed(*args: Any, **kwargs: Any) -> Any:
            self.enter(phase)
            try:
                return original(*args, **kwargs)
            finally:
                self.leave()

        def timed_items(*args: Any, **kwargs: Any) -> Iterator[Any]:
            # a generator does its work in next(): time each step, as the caller takes it
            items = original(*args, **kwargs)
            while True:
                self.enter(phase)
                try:
                    item = next(items)
                except StopIteration:
                    return
                finally:
                    self.leave()
                yield item

        setattr(owner, name, timed_items if lazy else timed)
        self._undo.append(lambda: setattr(owner, name, original))

    @contextlib.contextmanager
    def installed(self, database: SqlDatabase, keystore: KeyStore) -> Iterator[None]:
        """Time each phase while the block runs."""
        # the vault calls these through the iotstore.asserts package: patch them there
        self._wrap(asserts, "decode_stream", "decode the posted stream", lazy=True)
        self._wrap(asserts, "decode", "decode assertions read from the database")
        self._wrap(asserts, "verify_signature", "verify the serial-request signature")
        self._wrap(asserts, "sign", "assemble and check the serial (asserts.sign)")
        self._wrap(asserts.Database, "check", "trust checks (a model revision the device sent)")
        self._wrap(StoreSigner, "sign_digest", "RSA-4096 signature (key store)")
        self._wrap(keystore, "signer", "key store: look up the serial key")
        self._wrap(asserts, "encode_stream", "encode streams (answer; model fast path)")
        self._wrap(DeviceRegistrar, "_enrolment", "API key, policy, signer revisions (1 query)")
        self._wrap(DeviceRegistrar, "_decide", "device row decisions")
        self._wrap(DeviceRegistrar, "_issue", "issue: device, serial, log rows")
        self._wrap(PreparedStatement, "_run", "prepared statements (SQL on the driver's cursor)")
        self._wrap(SqlDatabase, "_driver_sql", "driver units: BEGIN and COMMIT")
        self._wrap(Connection, "_commit_impl", "COMMIT")
        self._wrap(Connection, "execute", "SQLAlchemy Core execute (Python around the SQL)")
        for name in ("__init__", "begin", "close", "connection"):
            self._wrap(Session, name, "ORM sessions: open, begin, connection, close")
        # the registration's own transactions: Core connections, no ORM session in use
        core = "Core connections: pool checkout, BEGIN, checkin"
        self._wrap(Engine, "connect", core)
        self._wrap(Connection, "begin", core)
        self._wrap(Connection, "close", core)
        self._wrap(SessionTransaction, "commit", "ORM sessions: open, begin, connection, close")
        engine = database.engine

        def before(conn: Any, cursor: Any, *args: Any) -> None:
            self.enter("SQL statements")

        def after(conn: Any, cursor: Any, *args: Any) -> None:
            self.leave()

        event.listen(engine, "before_cursor_execute", before)
        event.listen(engine, "after_cursor_execute", after)
        try:
            yield
        finally:
            event.remove(engine, "before_cursor_execute", before)
            event.remove(engine, "after_cursor_execute", after)
            while self._undo:
                self._undo.pop()()


@dataclass
class InProcess:
    """A vault on a database file and a key store, with the demo-like model."""

    database: SqlDatabase
    keystore: KeyStore
    root: RootAuthority
    brand_id: str = ""
    model_name: str = "bench-model"
    api_key: str = ""
    model: asserts.Model | None = None

    @contextlib.contextmanager
    def vault(self) -> Iterator[VaultService]:
        with self.database.unit_of_work() as session:
            trust = self.trust(session)
            brands = BrandService(session, self.keystore, self.root, trust)
            yield VaultService(session, self.keystore, brands, trust, AuditLog(session))

    def setup(self) -> None:
        system = Actor(account_id=None, address="bench")
        with self.database.unit_of_work() as session:
            trust = self.trust(session)
            brands = BrandService(session, self.keystore, self.root, trust)
            brand = brands.create("benchbrand", "Bench Brand")
            brands.generate_key(brand.account_id, "models")
            StoreService(session, AuditLog(session)).create_brand_store(
                system, brand.account_id, "bench-store", "Bench"
            )
            self.brand_id = brand.account_id
        with self.vault() as vault:
            snaps = [
                {"name": "pc-kernel", "id": "pYVQrBcKmBa0mZ4CCN7ExT6jH8rY1hza", "type": "kernel"},
                {"name": "pc", "id": "UqFziVZDHLSyO3TqSWgNBoAdHbLI4dAH", "type": "gadget"},
                {"name": "core22", "id": "amcUKQILKXHHTlmSa7NMdnXSx02dNeeT", "type": "base"},
            ]
            row = vault.sign_model(
                system, self.brand_id, "models",
                {"model": self.model_name, "architecture": "amd64", "base": "core22",
                 "grade": "signed", "store": "bench-store", "snaps": snaps},
            )  # fmt: skip
            vault.rotate_serial_key(system, row)
            _, self.api_key = vault.create_api_key(system, row)
            self.model = vault.model_assertion(row)

    def service(self, session: Session, connection: Connection | None = None) -> VaultService:
        """The vault service over ``session`` (what the server builds per transaction)."""
        trust = self.trust(session)
        brands = BrandService(session, self.keystore, self.root, trust)
        return VaultService(session, self.keystore, brands, trust, AuditLog(session), connection)

    def request_id(self) -> str:
        """A fresh request-id, committed (as ``POST request-id`` does)."""
        with self.database.unit_of_work() as session:
            return self.service(session).new_request_id(self.api_key)

    def serial_requests(self, keys: list[asserts.RSAPrivateKey], count: int) -> list[bytes]:
        """``count`` serial-request + model streams, each with its own request-id."""
        assert self.model is not None
        return [
            serial_request(keys[i % len(keys)], self.model, self.request_id(), None)
            for i in range(count)
        ]

    def register(self, data: bytes) -> asserts.Serial:
        """``POST serial``'s code path (register_device), without HTTP."""
        return register_device(
            self.database, self.trust, self.keystore, self.api_key, data, "127.0.0.1"
        ).serial

    def trust(self, session: Session) -> asserts.Database:
        """The assertion database over ``session``, trusting the fixed root."""
        return trust_database(session, self.root.trusted)


def open_in_process(base: Path, keystore: KeyStore) -> InProcess:
    """A fresh SQLite database with migrations, the fixed root adopted into ``keystore``."""
    database = SqlDatabase.from_url(f"sqlite+pysqlite:///{base / 'vault.sqlite'}")
    upgrade(database.engine)
    world = InProcess(database, keystore, adopt_root(keystore, ROOT_ID, root_key_pem()))
    world.setup()
    return world


@dataclass
class InProcessFigures:
    """One thread registering pre-built serial-requests through the server's code path."""

    serials: int
    wall: float  # seconds spent registering (building the requests excluded)
    cpu: float  # this thread's CPU seconds spent registering
    phases: dict[str, float]  # CPU seconds per serial, by phase
    request_id_cpu: float  # CPU seconds per request-id (not part of the serial figures)

    @property
    def rate(self) -> float:
        """Serials per second of wall time."""
        return self.serials / self.wall

    @property
    def cpu_ms(self) -> float:
        """CPU milliseconds per serial."""
        return self.cpu / self.serials * 1000


def measure_in_process(
    world: InProcess, keys: list[asserts.RSAPrivateKey], seconds: float, batch: int = 50
) -> InProcessFigures:
    """Register pre-built serial-requests on one thread for ``seconds`` (of registering)."""
    for data in world.serial_requests(keys, 3):
        world.register(data)  # warm-up: caches, statements
    start = time.thread_time()
    for _ in range(batch):
        world.request_id()
    request_id_cpu = (time.thread_time() - start) / batch
    phases = Phases()
    count, wall, cpu = 0, 0.0, 0.0
    while wall < seconds:
        bodies = world.serial_requests(keys, batch)
        with phases.installed(world.database, world.keystore):
            start, start_cpu = time.perf_counter(), time.thread_time()
            for data in bodies:
                world.register(data)
            wall += time.perf_counter() - start
            cpu += time.thread_time() - start_cpu
        count += len(bodies)
    per = {name: total / count for name, total in phases.totals.items()}
    per["other Python (sessions, register's own checks, glue)"] = cpu / count - sum(per.values())
    return InProcessFigures(count, wall, cpu, per, request_id_cpu)


# -- SoftHSM ------------------------------------------------------------------------------------


@contextlib.contextmanager
def softhsm_token(base: Path) -> Iterator[tuple[str, str, str]]:
    """A fresh SoftHSM2 token for this process: (module, label, pin)."""
    util = shutil.which("softhsm2-util")
    if util is None or not Path(SOFTHSM_MODULE).exists():
        raise RuntimeError("SoftHSM2 is not installed: apt-get install softhsm2")
    tokens = base / "tokens"
    tokens.mkdir()
    conf = base / "softhsm2.conf"
    conf.write_text(
        f"directories.tokendir = {tokens}\nobjectstore.backend = file\nlog.level = ERROR\n"
    )
    os.environ["SOFTHSM2_CONF"] = str(conf)
    subprocess.run(
        [util, "--init-token", "--free", "--label", "bench", "--so-pin", "1234", "--pin", "1234"],
        check=True, capture_output=True,
    )  # fmt: skip
    yield SOFTHSM_MODULE, "bench", "1234"


def hsm_raw_rate(keystore: KeyStore, name: str, seconds: float) -> tuple[float, float]:
    """Raw signatures per second through the token (one SHA-512 digest per call), and the
    CPU milliseconds each took in this thread (SoftHSM signs in the caller's thread)."""
    signer = keystore.signer(name)
    digest = b"\x01" * 64
    count = 0
    start, start_cpu = time.perf_counter(), time.thread_time()
    while time.perf_counter() - start < seconds:
        signer.sign_digest(digest)
        count += 1
    cpu_ms = (time.thread_time() - start_cpu) / count * 1000
    return count / (time.perf_counter() - start), cpu_ms


def _hsm_sign_for(module: str, label: str, pin: str, name: str, seconds: float, queue: Any) -> None:
    store = PKCS11KeyStore(module, label, pin)
    try:
        queue.put(hsm_raw_rate(store, name, seconds)[0])
    finally:
        store.close()


def softhsm(base: Path, keys: list[asserts.RSAPrivateKey], args: argparse.Namespace) -> Summary:
    """The SoftHSM2 figures: raw token rates, in-process phases, the wrk window.

    python-pkcs11 initialises the module without OS locking, so a key store keeps one
    session and signs one digest at a time: a process signs on one core. The server
    therefore runs a worker per core here, and the limit is the token's raw rate in
    as many processes (a session each), as the encrypted store's is raw RSA on every core.
    """
    base.mkdir()
    cores = os.cpu_count() or 1
    workers = max(args.workers, cores)
    seconds = min(args.seconds, 5.0)
    with softhsm_token(base) as (module, label, pin):
        hsm = PKCS11KeyStore(module, label, pin)
        try:
            world = open_in_process(base, hsm)
            with world.vault() as vault:
                signer_name = vault.active_serial_key(
                    vault.model(world.brand_id, world.model_name)
                ).keystore_name
            assert signer_name is not None
            one, hsm_ms = hsm_raw_rate(hsm, signer_name, seconds)
            hsm_figures = measure_in_process(world, keys, args.seconds)
            world.database.dispose()
            raw = rate_in_processes(
                _hsm_sign_for, (module, label, pin, signer_name, seconds), workers, seconds
            )
        finally:
            hsm.close()
        # over HTTP: the server's keystore setting puts the serial key in the token
        hsm_env = {
            "IOTSTORE_KEYSTORE": "pkcs11", "IOTSTORE_PKCS11_MODULE": module,
            "IOTSTORE_PKCS11_TOKEN": label, "IOTSTORE_PKCS11_PIN": pin,
        }  # fmt: skip
        server_base = base / "server"
        server_base.mkdir()
        server = seeded_server_dir(
            server_base, None, KeystoreSettings("pkcs11", module, label, pin)
        )
        with serving(server, workers, server_base / "server.log", hsm_env):
            window = serial_window(
                server, keys, args.concurrency, args.seconds, one * cores, server_base
            )
    print(f"\nlimit: raw SoftHSM2 RSA-4096 sign, {workers} process(es), a session each:"
          f" {raw:.1f}/s ({one:.1f}/s on one; {hsm_ms:.2f} ms CPU each)")  # fmt: skip
    print_window(
        f"HTTP POST serial, SQLite + SoftHSM2 (IOTSTORE_KEYSTORE=pkcs11), {workers} worker(s)"
        f" (one PKCS#11 session each), wrk", window, raw,
        f"raw SoftHSM2 RSA-4096 in {workers} processes",
    )  # fmt: skip
    print_phases("in-process register_device, SoftHSM2 (PKCS#11)", hsm_figures, hsm_ms)
    print(f"  in-process rate {hsm_figures.rate:.1f}/s on one thread, ratio to one session's"
          f" raw rate {hsm_figures.rate / one:.3f}")  # fmt: skip
    return {
        "softhsm_raw_per_s": raw, "softhsm_raw_one_per_s": one,
        "http_softhsm_per_s": window.rate, "http_softhsm_ratio": window.rate / raw,
        "http_softhsm_failed": window.problems, "inprocess_softhsm_per_s": hsm_figures.rate,
        "inprocess_softhsm_ratio_to_hsm": hsm_figures.rate / one,
    }  # fmt: skip


# -- main -----------------------------------------------------------------------------------------


def print_phases(title: str, figures: InProcessFigures, rsa_ms: float) -> None:
    """CPU milliseconds per serial, by phase, and the CPU ratio to a raw signature."""
    print(f"\n{title}: {figures.serials} serials, {figures.rate:.1f}/s on one thread;"
          f" {figures.cpu_ms:.2f} ms CPU per serial, raw RSA-4096 sign {rsa_ms:.2f} ms CPU:"
          f" CPU ratio {rsa_ms / figures.cpu_ms:.3f}")  # fmt: skip
    for name, seconds in sorted(figures.phases.items(), key=lambda kv: -kv[1]):
        share = seconds * 1000 / figures.cpu_ms * 100
        print(f"  {name:<52} {seconds * 1000:7.2f} ms  {share:5.1f} %")
    print(f"  (POST request-id, not in the figures above: {figures.request_id_cpu * 1000:.2f} ms"
          " CPU)")  # fmt: skip


def whole_registrations(
    server: Server, keys: list[asserts.RSAPrivateKey], concurrency: int, seconds: float, raw: float
) -> Summary:
    """request-id + serial from Python devices in this process (httpx; they sign here)."""
    cpu = time.process_time()
    outcomes, wall, server_cpu = run_async(closed_loop(server, keys, concurrency, seconds))
    client_cpu = time.process_time() - cpu
    good = [o for o in outcomes if o.ok]
    bad = [o for o in outcomes if not o.ok]
    rate = len(good) / wall
    print(
        f"\nHTTP, whole registrations (request-id + serial) from {concurrency} Python devices"
        f" in this process (httpx, each signs its serial-request on these cores), {wall:.1f} s:"
    )
    print(f"  {len(good)} ok, {len(bad)} failed; {rate:.1f}/s; ratio to raw RSA-4096:"
          f" {rate / raw:.3f}")  # fmt: skip
    lat = [o.seconds * 1000 for o in good]
    print(f"  latency p50 {percentile(lat, 50):.1f} ms, p99 {percentile(lat, 99):.1f} ms")
    n = max(1, len(good))
    print(
        f"  server CPU {server_cpu / n * 1000:.2f} ms per registration;"
        f" client CPU {client_cpu / max(1, len(outcomes)) * 1000:.2f} ms per registration"
    )
    if bad:
        print(f"  first failure: {bad[0].statuses} {bad[0].error}")
    return {"registrations_per_s": rate, "registrations_ratio": rate / raw,
            "registration_server_cpu_ms": server_cpu / n * 1000,
            "registrations_failed": len(bad)}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    """Measure and print the table."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each measurement")
    parser.add_argument("--concurrency", type=int, default=8, help="connections / devices at once")
    parser.add_argument("--workers", type=int, default=1, help="server worker processes")
    parser.add_argument("--key-bits", type=int, default=2048, help="device key size")
    parser.add_argument("--no-hsm", action="store_true", help="skip the SoftHSM measurement")
    parser.add_argument(
        "--no-registrations", action="store_true",
        help="skip the whole-registration (Python client) measurement",
    )  # fmt: skip
    args = parser.parse_args(argv)
    summary: Summary = {}
    load = os.getloadavg()[0]
    print(f"load average before: {load:.2f} {os.getloadavg()[1]:.2f} ({os.cpu_count()} cores)")
    if load > 0.5:
        print("  WARNING: other load on the machine: the serials/s ratios compare windows that"
              " got different shares of the cores; trust the CPU-time ratios")  # fmt: skip

    # every core: one worker's thread pool signs on all of them (no GIL while signing)
    processes = max(args.workers, os.cpu_count() or 1)
    raw = raw_rsa_rate(processes, min(args.seconds, 5.0))
    raw_one = raw if processes == 1 else raw_rsa_rate(1, min(args.seconds, 5.0))
    rsa_ms = rsa_cpu_ms(min(args.seconds, 2.0))
    limit = f"raw RSA-4096 in {processes} processes"
    print(f"limit: raw RSA-4096 sign (cryptography), {processes} process(es): {raw:.1f}/s"
          f" ({raw_one:.1f}/s on one; {rsa_ms:.2f} ms CPU each)")  # fmt: skip
    summary.update(raw_rsa4096_per_s=raw, rsa4096_cpu_ms=rsa_ms)
    keys = device_keys(16, args.key_bits)
    # a pool no server on these cores can empty: one signature per core, flat out
    most = raw_one * (os.cpu_count() or 1)

    with tempfile.TemporaryDirectory(prefix="iotstore-vault-bench-") as tmp:
        base = Path(tmp)
        server = seeded_server_dir(base, None)
        with serving(server, args.workers, base / "server.log"):
            window = serial_window(server, keys, args.concurrency, args.seconds, most, base)
            # the limit again right after the window; the higher of the two counts (other
            # load on a shared machine only ever lowers a measurement)
            again = raw_rsa_rate(processes, min(args.seconds, 5.0))
            print(f"\nlimit again after the window: {again:.1f}/s; using {max(raw, again):.1f}/s")
            raw = max(raw, again)
            summary.update(raw_rsa4096_per_s=raw)
            print_window(
                f"HTTP POST serial, the vault alone (embedded default: SQLite + encrypted key"
                f" store, {args.workers} worker(s); pre-built serial-requests, wrk,"
                f" {args.concurrency} connections)", window, raw, limit,
            )  # fmt: skip
            server_ms = window.server_cpu / max(1, window.ok) * 1000
            print(f"  on the server's own CPU time: RSA-4096 {rsa_ms:.2f} ms of {server_ms:.2f} ms"
                  f" per serial, ratio {rsa_ms / server_ms:.3f}")  # fmt: skip
            summary.update(
                http_serials_per_s=window.rate, http_ratio=window.rate / raw,
                http_failed=window.problems, server_cpu_ms=server_ms,
                server_cpu_ratio=rsa_ms / server_ms,
            )  # fmt: skip
            if not args.no_registrations:
                summary.update(
                    whole_registrations(server, keys, args.concurrency, args.seconds, raw)
                )
        # with the vault stopped; the body: a serial-request's size (the ceiling reads none)
        body = serial_request(keys[0], server.model, "0" * 32, None)
        ceiling = ceiling_window(body, args.workers, args.concurrency, args.seconds, most, base)
        print_ceiling(ceiling, window, raw, rsa_ms)
        summary.update(
            ceiling_per_s=ceiling.rate, ceiling_ratio=ceiling.rate / raw,
            vault_of_ceiling=window.rate / ceiling.rate, ceiling_failed=ceiling.problems,
        )  # fmt: skip

        enc_dir = base / "encrypted"
        enc_dir.mkdir()
        records = SqliteKeyRecords(enc_dir / "keys.sqlite")
        encrypted = EncryptedKeyStore(records, MasterKey.generate())
        world = open_in_process(enc_dir, encrypted)
        figures = measure_in_process(world, keys, args.seconds)
        world.database.dispose()
        encrypted.close()
        records.close()
        print_phases("in-process register_device, encrypted key store", figures, rsa_ms)
        print(f"  HTTP adds {server_ms - figures.cpu_ms:.2f} ms CPU per serial on the server"
              " (granian, Starlette, the route, the thread hand-off)")  # fmt: skip
        summary.update(inprocess_cpu_ms=figures.cpu_ms, inprocess_cpu_ratio=rsa_ms / figures.cpu_ms)

        if not args.no_hsm:
            summary.update(softhsm(base / "hsm", keys, args))
    print(f"load average after: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f}")
    print(json.dumps({k: round(v, 3) for k, v in summary.items()}))
    failed = [k for k, v in summary.items() if k.endswith("failed") and v]
    if failed:
        print(f"FAILED: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
