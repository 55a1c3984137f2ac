"""iotstore.asserts judged by snapd's own code, and snapd's output judged by iotstore.

Both directions, for every type a store and vault use: what we sign, snapd
accepts (and refuses once tampered); what snapd's signer and the ``snap``
command sign, we decode and accept.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib import resources
from typing import Any

import pytest

from iotstore import asserts
from iotstore.asserts.testing import Chain, FixedKeyName, fixed_key, mint_chain

from .snapcli import SnapKey
from .snapd import SnapdCheck

pytestmark = pytest.mark.snapd

SNAP_ID = "SnapIdOfTheConformanceAgent0001"[:32].ljust(32, "x")
DIGEST = "Mzeq54uBpcGIzg756QjVceMGOX6t3dnoC8GJAYQkKGswJu5hFuQrDX_5hENYnGI1"


@dataclass(frozen=True)
class Statement:
    """One assertion to sign: its type, headers, body and which fixed key signs it."""

    name: str
    type_name: str
    headers: dict[str, Any]
    key: FixedKeyName
    body: str = ""

    def as_snap_sign_input(self) -> dict[str, Any]:
        """The same statement in ``snap sign``'s JSON form."""
        out = {"type": self.type_name, **self.headers}
        if self.body:
            out["body"] = self.body
        return out


def _pem(name: FixedKeyName) -> bytes:
    return resources.files("iotstore.asserts.testing").joinpath("keys", f"{name}.pem").read_bytes()


def statements(chain: Chain) -> list[Statement]:
    """One statement per type (several for model), consistent with ``chain``."""
    root, brand = chain.root_account.account_id, chain.brand_account.account_id
    t = asserts.format_time(chain.now)
    since = asserts.format_time(chain.now - timedelta(minutes=30))
    until = asserts.format_time(chain.now + timedelta(days=200))
    device = fixed_key("device").public_key
    vault = fixed_key("vault").public_key
    snaps = [
        {"name": "pc", "id": "UqFziVZDHLSyO3TqSWgNBoAdHbLI4dAH", "type": "gadget"},
        {"name": "pc-kernel", "id": "pYVQrBcKmBa0mZ4CCN7ExT6jH8rY1hza", "type": "kernel"},
        {"name": "core22", "id": "amcUKQILKXHHTlmSa7NMdnXSx02dNeeT", "type": "base"},
        {"name": "snapd", "id": "PMrrV4ml8uWuEUDBT8dSGnKUYbevVhc4", "type": "snapd"},
        {
            "name": "agent",
            "id": SNAP_ID,
            "default-channel": "2.0/stable",
            "modes": ["run", "recover"],
            "presence": "optional",
        },
    ]
    model: dict[str, Any] = {
        "authority-id": brand,
        "series": "16",
        "brand-id": brand,
        "architecture": "amd64",
        "timestamp": t,
    }
    return [
        Statement(
            "account-dev",
            "account",
            {
                "authority-id": root,
                "account-id": "dev-account",
                "display-name": "Dev Ä",
                "validation": "unproven",
                "timestamp": since,
            },
            "root",
        ),
        Statement(
            "account-key-vault",
            "account-key",
            {
                "authority-id": root,
                "account-id": brand,
                "name": "vault",
                "public-key-sha3-384": vault.id,
                "since": since,
                "until": until,
            },
            "root",
            vault.encoded,
        ),
        Statement(
            "account-key-request",
            "account-key-request",
            {
                "account-id": brand,
                "name": "vault",
                "public-key-sha3-384": vault.id,
                "since": since,
            },
            "vault",
            vault.encoded,
        ),
        Statement(
            "model-uc22-dangerous",
            "model",
            {
                **model,
                "model": "gw-dangerous",
                "base": "core22",
                "grade": "dangerous",
                "store": "brand-store",
                "display-name": "Gateway (dangerous)",
                "serial-authority": [brand, "dev-account"],
                "system-user-authority": "*",
                "snaps": [*snaps, {"name": "no-id-tool", "type": "app"}],
            },
            "brand",
        ),
        Statement(
            "model-uc22-secured",
            "model",
            {**model, "model": "gw-secured", "base": "core22", "grade": "secured", "snaps": snaps},
            "brand",
        ),
        Statement(
            "model-uc18",
            "model",
            {
                **model,
                "model": "gw-18",
                "base": "core18",
                "gadget": "pc=18",
                "kernel": "pc-kernel=18",
                "required-snaps": ["agent", "other-snap"],
            },
            "brand",
            "Free text body\n\nwith a blank line.\n",
        ),
        Statement(
            "model-classic",
            "model",
            {**model, "model": "desk", "classic": "true", "gadget": "pc"},
            "brand",
        ),
        Statement(
            "serial-by-vault-key",
            "serial",
            {
                "authority-id": brand,
                "brand-id": brand,
                "model": chain.model.model,
                "serial": "SER-42",
                "revision": "2",
                "device-key": device.encoded,
                "device-key-sha3-384": device.id,
                "timestamp": t,
            },
            "brand",
            "registration body",
        ),
        Statement(
            "serial-request",
            "serial-request",
            {
                "brand-id": brand,
                "model": chain.model.model,
                "request-id": "REQ-1",
                "serial": "SER-43",
                "device-key": device.encoded,
            },
            "device",
            "mac: 00:11:22:33:44:55\n",
        ),
        Statement(
            "device-session-request",
            "device-session-request",
            {
                "brand-id": brand,
                "model": chain.model.model,
                "serial": chain.serial.serial,
                "nonce": "nonce-123",
                "timestamp": t,
            },
            "device",
        ),
        Statement(
            "snap-declaration",
            "snap-declaration",
            {
                "authority-id": root,
                "series": "16",
                "snap-id": SNAP_ID,
                "snap-name": "agent",
                "publisher-id": brand,
                "revision": "3",
                "revision-authority": [
                    {"account-id": brand, "provenance": ["factory"], "min-revision": "100"}
                ],
                "aliases": [{"name": "ag", "target": "agent"}],
                "timestamp": t,
            },
            "root",
        ),
        Statement(
            "snap-revision",
            "snap-revision",
            {
                "authority-id": root,
                "snap-sha3-384": DIGEST,
                "snap-id": SNAP_ID,
                "snap-size": "39",
                "snap-revision": "7",
                "developer-id": brand,
                "timestamp": t,
            },
            "root",
        ),
        Statement(
            "snap-revision-provenance",
            "snap-revision",
            {
                "authority-id": brand,
                "snap-sha3-384": DIGEST,
                "provenance": "factory",
                "snap-id": SNAP_ID,
                "snap-size": "39",
                "snap-revision": "150",
                "developer-id": brand,
                "timestamp": t,
            },
            "brand",
        ),
        Statement(
            "snap-developer",
            "snap-developer",
            {
                "authority-id": brand,
                "snap-id": SNAP_ID,
                "publisher-id": brand,
                "developers": [
                    {"developer-id": "dev-account", "since": since},
                    {"developer-id": brand, "since": since, "until": until},
                ],
            },
            "brand",
        ),
        Statement(
            "store",
            "store",
            {
                "authority-id": root,
                "store": "brand-store",
                "operator-id": brand,
                "url": "https://store.example.com",
                "friendly-stores": ["partner-store"],
                "timestamp": t,
            },
            "root",
        ),
        Statement(
            "system-user",
            "system-user",
            {
                "authority-id": brand,
                "brand-id": brand,
                "email": "ops@example.com",
                "username": "ops",
                "name": "Operations",
                "password": "$6$rounds=5000$saltsalt$hashhashhash",
                "models": [chain.model.model],
                "ssh-keys": ["ssh-ed25519 AAAAC3Nz ops@example.com"],
                "since": since,
                "until": until,
            },
            "brand",
        ),
        Statement(
            "validation-set",
            "validation-set",
            {
                "authority-id": brand,
                "series": "16",
                "account-id": brand,
                "name": "fleet",
                "sequence": "4",
                "snaps": [
                    {"name": "agent", "id": SNAP_ID, "presence": "required", "revision": "7"},
                    {"name": "bad-snap", "id": "B" * 32, "presence": "invalid"},
                ],
                "timestamp": t,
            },
            "brand",
        ),
    ]


@pytest.fixture(scope="module")
def chain() -> Chain:
    return mint_chain(store="brand-store")


def _ours(chain: Chain) -> list[asserts.Assertion]:
    return [
        asserts.sign(s.type_name, s.headers, fixed_key(s.key), s.body, signed_at=chain.now)
        for s in statements(chain)
    ]


def _base_stream(chain: Chain) -> bytes:
    return asserts.encode_stream(chain.members)


def test_snapd_accepts_every_type_we_sign(snapdcheck: SnapdCheck, chain: Chain) -> None:
    ours = _ours(chain)
    assert {a.type_name for a in ours} >= {
        "account", "account-key", "account-key-request", "model", "serial", "serial-request",
        "device-session-request", "snap-declaration", "snap-revision", "snap-developer",
        "store", "system-user", "validation-set",
    }  # fmt: skip
    root = asserts.encode_stream(chain.trusted)
    lines = snapdcheck.assert_accepted(
        root, _base_stream(chain), asserts.encode_stream(ours), now=chain.now
    )
    assert len([line for line in lines if line["stream"] == 1]) == len(ours)


def _tamper(data: bytes) -> bytes:
    """Change one character of the first header value after the type line."""
    head, _, rest = data.partition(b"\n")
    second, _, tail = rest.partition(b"\n")
    name, _, value = second.partition(b": ")
    flipped = (value[:-1] + (b"X" if value[-1:] != b"X" else b"Y")) if value else value
    return head + b"\n" + name + b": " + flipped + b"\n" + tail


@pytest.mark.parametrize("index", range(len(statements(mint_chain()))))
def test_snapd_refuses_each_tampered_copy(snapdcheck: SnapdCheck, chain: Chain, index: int) -> None:
    signed = _ours(chain)
    target = signed[index]
    tampered = _tamper(target.to_bytes())
    assert tampered != target.to_bytes()
    others = [a for i, a in enumerate(signed) if i != index]
    lines = snapdcheck.verify(
        asserts.encode_stream(chain.trusted),
        _base_stream(chain),
        asserts.encode_stream(others),
        tampered,
        now=chain.now,
    )
    verdicts = [line for line in lines if line["stream"] == 2]
    assert verdicts and not any(line["ok"] for line in verdicts), verdicts


def _our_database(chain: Chain) -> asserts.Database:
    db = chain.database()
    # prerequisites other statements refer to
    for s in statements(chain):
        if s.name in ("account-dev", "account-key-vault"):
            db.add(asserts.sign(s.type_name, s.headers, fixed_key(s.key), s.body))
    return db


def _accept(db: asserts.Database, a: asserts.Assertion) -> None:
    if a.type_name == "device-session-request":
        serial = db.find("serial", a.primary_key)
        assert isinstance(serial, asserts.Serial)
        asserts.verify_signature(a, serial.device_key)
    elif a.type_name in ("serial-request", "account-key-request"):
        db.check(a)
    else:
        errors = db.add_many([a])
        assert not errors, errors


def test_we_accept_what_snapds_signer_makes(snapdcheck: SnapdCheck, chain: Chain) -> None:
    db = _our_database(chain)
    pending: list[asserts.Assertion] = []
    for s in statements(chain):
        data = snapdcheck.sign(s.as_snap_sign_input(), _pem(s.key))
        a = asserts.decode(data)
        assert a.to_bytes() == data
        ours = asserts.sign(s.type_name, s.headers, fixed_key(s.key), s.body)
        assert a.content == ours.content, s.name  # same canonical encoding, byte for byte
        pending.append(a)
    order = ["snap-declaration", "account", "account-key"]
    pending.sort(key=lambda a: order.index(a.type_name) if a.type_name in order else 9)
    for a in pending:
        if (a.type_name, a.primary_key) in {
            (b.type_name, b.primary_key) for b in (*chain.members, *chain.trusted)
        }:
            continue
        try:
            held = db.find(a.type_name, a.primary_key) if a.primary_key else None
        except asserts.NotFoundError:
            held = None
        if held is not None and held.content == a.content:
            # our own copy is stored already; its signature may carry another second
            db.check(a)
            continue
        try:
            _accept(db, a)
        except (asserts.RevisionError, asserts.CheckError) as e:
            if "already the current revision" not in str(e):
                raise


def test_we_accept_snap_sign_and_export_key(
    snapdcheck: SnapdCheck, snap_key: SnapKey, chain: Chain
) -> None:
    brand = chain.brand_account.account_id
    request = asserts.decode(snap_key.export(brand))
    assert isinstance(request, asserts.AccountKeyRequest)
    db = asserts.Database(chain.trusted)  # real clock: export-key stamps "since" with now
    assert db.add_many(chain.members) == {}
    db.check(request)  # self-signed by the gpg-held key, brand account known

    # The root certifies the key as a store does on registration.
    account_key = asserts.sign(
        "account-key",
        {
            "authority-id": chain.root_account.account_id,
            "account-id": brand,
            "name": request.name,
            "public-key-sha3-384": request.key_id,
            "since": asserts.format_time(request.validity.since),
        },
        chain.root_key,
        request.public_key.encoded,
    )
    db.add(account_key)
    now = datetime.now(UTC).replace(microsecond=0)
    model = snap_key.sign(
        {
            "type": "model",
            "authority-id": brand,
            "series": "16",
            "brand-id": brand,
            "model": "gpg-signed",
            "architecture": "arm64",
            "base": "core22",
            "snaps": [
                {"name": "pi", "id": "p" * 32, "type": "gadget"},
                {"name": "pi-kernel", "id": "k" * 32, "type": "kernel"},
                {"name": "core22", "id": "amcUKQILKXHHTlmSa7NMdnXSx02dNeeT", "type": "base"},
            ],
            "timestamp": asserts.format_time(max(now, request.validity.since)),
        }
    )
    decoded = asserts.decode(model)
    assert decoded.to_bytes() == model
    db.add(decoded)  # gpg signature: issuer subpackets, exact-length MPI
    # and snapd agrees with the whole chain we built around the gpg key
    snapdcheck.assert_accepted(
        asserts.encode_stream(chain.trusted),
        asserts.encode_stream([*chain.members, account_key]),
        model,
    )
