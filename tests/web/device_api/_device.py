"""A device as snapd is one, over HTTP: registration with the vault, then store sessions.

:class:`Fleet` seeds the demo brand, store, model and vault of a deployment
(as ``iotstore serve`` does on first start) and registers devices through the
device service; :class:`Device` opens store sessions the way snapd's
``store/auth.go`` does (nonce, device-session-request signed by the device
key, serial + model) and sends v1/v2 header families.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric import rsa

from iotstore import asserts
from iotstore.demo import seed_demo
from iotstore.deployment import Deployment
from tests.devices._live import serial_request_stream

__all__ = ["Device", "Fleet", "new_device_key"]

VAULT = "/serial-vault/v1"


def new_device_key(bits: int = 2048) -> asserts.RSAPrivateKey:
    """A fresh device key (2048 bits: the vault's minimum, quick to make)."""
    return asserts.RSAPrivateKey(rsa.generate_private_key(public_exponent=65537, key_size=bits))


@dataclass
class Device:
    """A registered device: its key, serial and model."""

    client: httpx.Client
    key: asserts.RSAPrivateKey
    serial: asserts.Serial
    model: asserts.Model
    session: str | None = field(default=None)

    def session_request(self, nonce: str, when: datetime | None = None) -> asserts.Assertion:
        """A device-session-request signed by the device key."""
        return asserts.sign(
            "device-session-request",
            {
                "brand-id": self.serial.brand_id,
                "model": self.serial.model,
                "serial": self.serial.serial,
                "nonce": nonce,
                "timestamp": asserts.format_time(when or datetime.now(UTC)),
            },
            self.key,
        )

    def session_body(self, nonce: str, **overrides: Any) -> dict[str, Any]:
        """What snapd posts to ``api/v1/snaps/auth/sessions``."""
        body = {
            "device-session-request": self.session_request(nonce).to_bytes().decode(),
            "serial-assertion": self.serial.to_bytes().decode(),
            "model-assertion": self.model.to_bytes().decode(),
        }
        body.update(overrides)
        return body

    def nonce(self) -> str:
        """A nonce from the store."""
        response = self.client.post(
            "/api/v1/snaps/auth/nonces", headers={"Accept": "application/json"}
        )
        assert response.status_code == 200, response.text
        nonce = response.json()["nonce"]
        assert isinstance(nonce, str)
        return nonce

    def open_session(self) -> httpx.Response:
        """Ask for a session; on success remember it."""
        response = self.client.post(
            "/api/v1/snaps/auth/sessions",
            json=self.session_body(self.nonce()),
            headers={"Accept": "application/json"},
        )
        if response.status_code in (200, 202):
            self.session = response.json()["macaroon"]
        return response

    def v2(self, **extra: str) -> dict[str, str]:
        """v2-family headers with the device session."""
        assert self.session is not None or "Snap-Device-Authorization" in extra
        headers = {
            "Snap-Device-Store": self.model.store or "",
            "Snap-Device-Series": "16",
            "Snap-Device-Architecture": "amd64",
            "Snap-Classic": "false",
            "Snap-Device-Capabilities": "default-tracks",
        }
        if self.session is not None:
            headers["Snap-Device-Authorization"] = f'Macaroon root="{self.session}"'
        return {**headers, **extra}

    def v1(self, **extra: str) -> dict[str, str]:
        """v1-family headers with the device session."""
        headers = {
            "X-Ubuntu-Store": self.model.store or "",
            "X-Ubuntu-Series": "16",
            "X-Ubuntu-Architecture": "amd64",
            "X-Ubuntu-Wire-Protocol": "1",
        }
        if self.session is not None:
            headers["X-Device-Authorization"] = f'Macaroon root="{self.session}"'
        return {**headers, **extra}


class Fleet:
    """The demo brand of a deployment and devices registered through its vault."""

    def __init__(self, deployment: Deployment, client: httpx.Client) -> None:
        self.deployment = deployment
        self.client = client
        self.info: Mapping[str, Any] = seed_demo(deployment, str(client.base_url))
        model = asserts.decode((deployment.data_dir / "demo-model.assert").read_bytes())
        assert isinstance(model, asserts.Model)
        self.model = model

    @property
    def store_id(self) -> str:
        """The demo store."""
        return str(self.info["store_id"])

    @property
    def admin(self) -> dict[str, str]:
        """Headers of the demo administrator."""
        return {"Authorization": f"Bearer {self.info['admin_token']}"}

    def register(self, key: asserts.RSAPrivateKey | None = None) -> Device:
        """A new device of the demo model, registered with the vault over HTTP."""
        key = key or new_device_key()
        api = {"api-key": str(self.info["api_key"])}
        response = self.client.post(f"{VAULT}/request-id", headers=api)
        assert response.status_code == 200, response.text
        stream = serial_request_stream(key, self.model, response.json()["request-id"])
        response = self.client.post(f"{VAULT}/serial", headers=api, content=stream)
        assert response.status_code == 200, response.text
        serial = next(iter(asserts.decode_stream(response.content)))
        assert isinstance(serial, asserts.Serial)
        return Device(self.client, key, serial, self.model)
