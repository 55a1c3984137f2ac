"""Test helpers that ship with the library: fixed keys and a signed chain in one call.

**The keys here are published test keys.** They protect nothing; never let a
real store, vault or device trust anything they sign.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from importlib import resources
from typing import Literal

from .. import _checks
from .._base import Assertion
from .._codec import encode_stream, sign
from ..account import Account, AccountKey
from ..database import Database
from ..keys import RSAPrivateKey, load_pem_private_key
from ..model import Model
from ..serial import Serial

__all__ = ["Chain", "FixedKeyName", "fixed_key", "mint_chain", "mint_root"]

FixedKeyName = Literal["root", "brand", "vault", "device", "device-4096"]


@cache
def fixed_key(name: FixedKeyName) -> RSAPrivateKey:
    """One of the fixed test keys (RSA-2048, ``device-4096`` is RSA-4096)."""
    pem = resources.files(__package__).joinpath("keys", f"{name}.pem").read_bytes()
    return load_pem_private_key(pem)


def _t(when: datetime) -> str:
    return _checks.format_time(when)


def mint_root(
    key: RSAPrivateKey, account_id: str, *, now: datetime, display_name: str = "Test Root"
) -> tuple[Account, AccountKey]:
    """A self-signed root ``account`` and ``account-key`` (a trusted set)."""
    account = sign(
        "account",
        {
            "authority-id": account_id,
            "account-id": account_id,
            "display-name": display_name,
            "validation": "verified",
            "timestamp": _t(now),
        },
        key,
        signed_at=now,
    )
    account_key = sign(
        "account-key",
        {
            "authority-id": account_id,
            "account-id": account_id,
            "name": "root",
            "public-key-sha3-384": key.public_key.id,
            "since": _t(now),
        },
        key,
        key.public_key.encoded,
        signed_at=now,
    )
    assert isinstance(account, Account) and isinstance(account_key, AccountKey)
    return account, account_key


@dataclass(frozen=True)
class Chain:
    """A root -> brand -> model -> serial chain, every member signed and consistent."""

    root_key: RSAPrivateKey
    brand_key: RSAPrivateKey
    device_key: RSAPrivateKey
    root_account: Account
    root_account_key: AccountKey
    brand_account: Account
    brand_account_key: AccountKey
    model: Model
    serial: Serial
    now: datetime
    extra: tuple[Assertion, ...] = field(default=())

    @property
    def trusted(self) -> list[Assertion]:
        """The trusted set: root account and root account-key."""
        return [self.root_account, self.root_account_key]

    @property
    def members(self) -> list[Assertion]:
        """Everything below the root, in an order a database can add them."""
        return [self.brand_account, self.brand_account_key, self.model, self.serial]

    def database(self) -> Database:
        """A fresh database trusting the root and holding every member."""
        db = Database(self.trusted, clock=lambda: self.now)
        for a in self.members:
            db.add(a)
        return db

    def stream(self) -> bytes:
        """Trusted set plus members as one assertion stream."""
        return encode_stream([*self.trusted, *self.members])


def mint_chain(
    *,
    root_id: str = "test-root",
    brand_id: str = "test-brand",
    model: str = "test-model",
    serial: str = "TEST-0001",
    store: str | None = None,
    now: datetime | None = None,
) -> Chain:
    """Sign a complete chain with the fixed test keys.

    The keys' ``since`` is an hour before ``now`` (default: the current
    time, whole seconds) so everything is valid now and at its timestamp.
    """
    now = (now or datetime.now(UTC)).replace(microsecond=0)
    since = now - timedelta(hours=1)
    root_key, brand_key, device_key = fixed_key("root"), fixed_key("brand"), fixed_key("device")
    root_account, root_account_key = mint_root(root_key, root_id, now=since)
    brand_account = sign(
        "account",
        {
            "authority-id": root_id,
            "account-id": brand_id,
            "display-name": "Test Brand",
            "username": brand_id,
            "validation": "verified",
            "timestamp": _t(since),
        },
        root_key,
        signed_at=now,
    )
    brand_account_key = sign(
        "account-key",
        {
            "authority-id": root_id,
            "account-id": brand_id,
            "name": "default",
            "public-key-sha3-384": brand_key.public_key.id,
            "since": _t(since),
        },
        root_key,
        brand_key.public_key.encoded,
        signed_at=now,
    )
    model_headers: dict[str, object] = {
        "authority-id": brand_id,
        "series": "16",
        "brand-id": brand_id,
        "model": model,
        "architecture": "amd64",
        "base": "core22",
        "grade": "signed",
        "snaps": [
            {"name": "pc", "id": "UqFziVZDHLSyO3TqSWgNBoAdHbLI4dAH", "type": "gadget"},
            {"name": "pc-kernel", "id": "pYVQrBcKmBa0mZ4CCN7ExT6jH8rY1hza", "type": "kernel"},
            {"name": "core22", "id": "amcUKQILKXHHTlmSa7NMdnXSx02dNeeT", "type": "base"},
        ],
        "timestamp": _t(now),
    }
    if store:
        model_headers["store"] = store
    model_a = sign("model", model_headers, brand_key, signed_at=now)
    serial_a = sign(
        "serial",
        {
            "authority-id": brand_id,
            "brand-id": brand_id,
            "model": model,
            "serial": serial,
            "device-key": device_key.public_key.encoded,
            "device-key-sha3-384": device_key.public_key.id,
            "timestamp": _t(now),
        },
        brand_key,
        signed_at=now,
    )
    assert isinstance(brand_account, Account) and isinstance(brand_account_key, AccountKey)
    assert isinstance(model_a, Model) and isinstance(serial_a, Serial)
    return Chain(
        root_key=root_key,
        brand_key=brand_key,
        device_key=device_key,
        root_account=root_account,
        root_account_key=root_account_key,
        brand_account=brand_account,
        brand_account_key=brand_account_key,
        model=model_a,
        serial=serial_a,
        now=now,
    )
