"""A live ``iotstore serve`` with the demo model, and a device client in Python.

:class:`LiveVault` initialises a data directory with the fixed test root key
(no 4096-bit root to generate), seeds the demo brand, store, model, serial
key and API key exactly as the first start of ``iotstore serve`` does, writes
seed-like files a device needs (the root stream, the model with its chain),
then runs ``python -m iotstore serve`` in a subprocess on a free loopback
port. It can SIGKILL and restart the server (fault tests).

:func:`serial_request_stream` builds what snapd posts to ``serial`` with
iotstore's own signer; :class:`DeviceKeys` hands out device keys.
"""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from iotstore import asserts
from iotstore.accounts.brands import BrandService
from iotstore.assertdb import trust_database
from iotstore.demo import seed_demo
from iotstore.deployment import Deployment
from iotstore.settings import Settings
from tests._pg import free_port

__all__ = [
    "ROOT_ID",
    "DeviceKey",
    "DeviceKeys",
    "LiveVault",
    "root_key_pem",
    "serial_request_stream",
]

ROOT_ID = "test-root"
VAULT_PATH = "/serial-vault/v1"


def root_key_pem() -> bytes:
    """The library's fixed (published, worthless) test root key."""
    return resources.files("iotstore.asserts.testing").joinpath("keys", "root.pem").read_bytes()


@dataclass(frozen=True)
class DeviceKey:
    """A device key: the signer, its PEM (for the Go client) and its id."""

    signer: asserts.RSAPrivateKey
    pem: bytes = field(repr=False)

    @property
    def id(self) -> str:
        """sha3-384 key id, as in the serial's ``device-key-sha3-384``."""
        return self.signer.public_key.id

    def write(self, path: Path) -> Path:
        """Write the PEM (0600) and return ``path``."""
        path.write_bytes(self.pem)
        path.chmod(0o600)
        return path


class DeviceKeys:
    """Fresh device keys (4096 bits as snapd's, unless told otherwise).

    :meth:`prefetch` generates keys on a background thread (e.g. while a
    server starts); :meth:`new` takes one of those, or makes one.
    """

    def __init__(self, bits: int = 4096) -> None:
        self.bits = bits
        self._ready: queue.SimpleQueue[DeviceKey] = queue.SimpleQueue()

    def prefetch(self, count: int) -> None:
        """Start generating ``count`` keys in the background."""

        def work() -> None:
            for _ in range(count):
                self._ready.put(self._generate())

        threading.Thread(target=work, name="device-keys", daemon=True).start()

    def new(self) -> DeviceKey:
        """One new key (never handed out twice)."""
        try:
            return self._ready.get_nowait()
        except queue.Empty:
            return self._generate()

    def _generate(self) -> DeviceKey:
        key = rsa.generate_private_key(public_exponent=65537, key_size=self.bits)
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        return DeviceKey(asserts.RSAPrivateKey(key), pem)


def serial_request_stream(
    key: DeviceKey | asserts.RSAPrivateKey,
    model: asserts.Model,
    request_id: str,
    *,
    serial: str | None = None,
    body: str = "",
    send_model: bool = True,
) -> bytes:
    """serial-request (+ model) as snapd posts it, signed by the device key."""
    signer = key.signer if isinstance(key, DeviceKey) else key
    headers: dict[str, object] = {
        "brand-id": model.brand_id,
        "model": model.model,
        "request-id": request_id,
        "device-key": signer.public_key.encoded,
    }
    if serial is not None:
        headers["serial"] = serial
    request = asserts.sign("serial-request", headers, signer, body)
    return asserts.encode_stream([request, model] if send_model else [request])


class LiveVault:
    """A seeded data directory served by ``python -m iotstore serve`` on loopback."""

    def __init__(self, base: Path, *, database_url: str | None = None, workers: int = 1) -> None:
        self.base = base
        self.data_dir = base / "data"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.database_url = database_url
        self.workers = workers
        self.log_path = base / "server.log"
        self._process: subprocess.Popen[bytes] | None = None
        settings = Settings(data_dir=self.data_dir, base_url=self.url, database_url=database_url)
        deployment = Deployment.init(
            self.data_dir, settings=settings, root_id=ROOT_ID, root_key_pem=root_key_pem()
        )
        try:
            self.info: dict[str, Any] = seed_demo(deployment, self.url)
            self._write_device_files(deployment)
        finally:
            deployment.close()
        self.start()

    # -- what a device carries ---------------------------------------------------------

    @property
    def root_assert(self) -> Path:
        """The trusted set (root account + account-key) devices carry."""
        return self.data_dir / "root.assert"

    @property
    def model_seed(self) -> Path:
        """The demo model followed by its chain (brand account-key, brand account)."""
        return self.base / "demo-model.seed"

    @property
    def model_chain(self) -> bytes:
        """The model's chain alone (to append to other models signed by the same key)."""
        return (self.base / "models-key.chain").read_bytes()

    @property
    def ghost_model(self) -> Path:
        """A model validly signed by the brand but never registered in the vault."""
        return self.base / "ghost-model.seed"

    @property
    def model(self) -> asserts.Model:
        """The demo model assertion."""
        model = asserts.decode((self.data_dir / "demo-model.assert").read_bytes())
        assert isinstance(model, asserts.Model)
        return model

    @property
    def resolved_database_url(self) -> str:
        """The database the server uses (SQLite in the data directory by default)."""
        return self.database_url or f"sqlite+pysqlite:///{self.data_dir / 'iotstore.sqlite'}"

    @property
    def device_service_url(self) -> str:
        """``device-service.url`` for the gadget."""
        return str(self.info["device_service_url"])

    @property
    def api_key(self) -> str:
        """The demo model's API key."""
        return str(self.info["api_key"])

    @property
    def store_id(self) -> str:
        """The demo store."""
        return str(self.info["store_id"])

    @property
    def brand_id(self) -> str:
        """The demo brand's account id."""
        return str(self.info["brand_id"])

    def admin(self) -> httpx.Client:
        """A client of the admin API with the demo administrator's token."""
        return httpx.Client(
            base_url=self.url,
            headers={"Authorization": f"Bearer {self.info['admin_token']}"},
            timeout=60,
        )

    def _write_device_files(self, deployment: Deployment) -> None:
        brand_id = self.info["brand_id"]
        with deployment.database.unit_of_work() as session:
            trust = trust_database(session, deployment.root.trusted)
            model = trust.find("model", ("16", brand_id, self.info["model"]))
            chain = [
                trust.find("account-key", (model.sign_key_id,)),
                trust.find("account", (brand_id,)),
            ]
            brands = BrandService(session, deployment.keystore, deployment.root, trust)
            key_name = brands.key(brand_id, "models").keystore_name
            assert key_name is not None
            ghost = asserts.sign(
                "model",
                {
                    "series": "16", "authority-id": brand_id, "brand-id": brand_id,
                    "model": "ghost-model", "architecture": "amd64", "base": "core22",
                    "grade": "signed", "store": self.info["store_id"],
                    "snaps": model.header("snaps"),
                    "timestamp": asserts.format_time(datetime.now(UTC)),
                },
                deployment.keystore.signer(key_name),
            )  # fmt: skip
        chain_bytes = asserts.encode_stream(chain)
        (self.base / "models-key.chain").write_bytes(chain_bytes)
        self.model_seed.write_bytes(asserts.encode_stream([model, *chain]))
        self.ghost_model.write_bytes(asserts.encode_stream([ghost, *chain]))

    # -- the server process ------------------------------------------------------------

    def start(self, timeout: float = 60.0) -> None:
        """Start ``iotstore serve`` and wait until it answers."""
        env = {
            **os.environ,
            "IOTSTORE_BASE_URL": self.url,
            "IOTSTORE_DATA_DIR": str(self.data_dir),
        }
        env.pop("IOTSTORE_DATABASE_URL", None)
        if self.database_url:
            env["IOTSTORE_DATABASE_URL"] = self.database_url
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "iotstore", "serve", "--data-dir", str(self.data_dir),
                 "--port", str(self.port), "--workers", str(self.workers)],
                env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"iotstore serve exited early:\n{self.log()}")
            try:
                if httpx.get(f"{self.url}/api/v1/health", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"iotstore serve did not answer within {timeout}s:\n{self.log()}")

    def log(self) -> str:
        """The end of what the server printed."""
        return self.log_path.read_text(errors="replace")[-6000:]

    def kill(self) -> None:
        """SIGKILL the server's whole process group member we started (no clean shutdown)."""
        proc = self._process
        if proc is None or proc.poll() is not None:
            return
        # granian runs workers as child processes: kill them with the parent
        for child in _children(proc.pid):
            _signal(child, signal.SIGKILL)
        proc.kill()
        proc.wait(timeout=30)

    def stop(self) -> None:
        """Stop the server we started (SIGTERM, then SIGKILL)."""
        proc = self._process
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.kill()


def _children(pid: int) -> Iterator[int]:
    """Descendants of ``pid`` (from /proc), deepest first."""
    try:
        raw = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return
    for child in map(int, raw):
        yield from _children(child)
        yield child


def _signal(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)
