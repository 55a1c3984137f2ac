"""Fixtures for the key store tests: every implementation behind one ``keystore`` fixture."""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pkcs11
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from iotstore.keystore import (
    EncryptedKeyStore,
    KeyStore,
    LayeredKeyStore,
    MasterKey,
    MemoryKeyStore,
    PKCS11KeyStore,
    SqliteKeyRecords,
)

VECTORS = Path(__file__).resolve().parents[3] / "shared" / "spec" / "vectors"
SOFTHSM_MODULE = Path("/usr/lib/softhsm/libsofthsm2.so")
TOKEN_LABEL = "test"
USER_PIN = "1234"
SO_PIN = "1234"


def vector_path(name: str) -> Path:
    """Path of a shared vector file, failing clearly when shared/ is missing."""
    path = VECTORS / name
    if not path.exists():
        pytest.fail(f"test vector {path} is missing: the suite needs ../shared/spec/vectors")
    return path


@dataclass(frozen=True)
class VectorKey:
    """A published test key from the shared vectors and what keys.json says about it."""

    pem: bytes = field(repr=False)
    key_id: str
    public_key: str
    bits: int

    @property
    def private(self) -> rsa.RSAPrivateKey:
        key = serialization.load_pem_private_key(self.pem, password=None)
        assert isinstance(key, rsa.RSAPrivateKey)
        return key


@pytest.fixture(scope="session")
def brand_key() -> VectorKey:
    """The vectors' brand key (RSA-2048) with its expected snapd key id."""
    meta = json.loads(vector_path("keys/keys.json").read_text())["keys"]["brand"]
    return VectorKey(
        pem=vector_path(meta["file"]).read_bytes(),
        key_id=meta["key-id"],
        public_key=meta["public-key"],
        bits=meta["bits"],
    )


@dataclass(frozen=True)
class SoftHSMToken:
    """A freshly initialised SoftHSM2 token, visible to this process's PKCS#11 module."""

    module: str
    label: str
    pin: str
    tokendir: Path

    def open_store(self) -> PKCS11KeyStore:
        return PKCS11KeyStore(self.module, self.label, self.pin)


@pytest.fixture
def softhsm_token(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SoftHSMToken:
    """A new SoftHSM2 token in ``tmp_path``, never shared between tests.

    python-pkcs11 loads (and C_Initialize's) the module once per process, and
    SoftHSM reads ``SOFTHSM2_CONF`` and scans its token directory only in
    C_Initialize, so after pointing the config at a new directory the module
    is reinitialised. Stores from earlier tests are closed by then.
    """
    util = shutil.which("softhsm2-util")
    if util is None or not SOFTHSM_MODULE.exists():
        pytest.fail(
            "SoftHSM2 is not installed (softhsm2-util or"
            f" {SOFTHSM_MODULE} missing): install the Debian package 'softhsm2'"
            " (apt-get install softhsm2)",
            pytrace=False,
        )
    tokendir = tmp_path / "softhsm-tokens"
    tokendir.mkdir()
    conf = tmp_path / "softhsm2.conf"
    conf.write_text(
        f"directories.tokendir = {tokendir}\nobjectstore.backend = file\nlog.level = ERROR\n"
    )
    monkeypatch.setenv("SOFTHSM2_CONF", str(conf))
    subprocess.run(
        [
            util,
            "--init-token",
            "--free",
            "--label",
            TOKEN_LABEL,
            "--so-pin",
            SO_PIN,
            "--pin",
            USER_PIN,
        ],
        check=True,
        capture_output=True,
    )
    pkcs11.lib(str(SOFTHSM_MODULE)).reinitialize()
    return SoftHSMToken(str(SOFTHSM_MODULE), TOKEN_LABEL, USER_PIN, tokendir)


BACKENDS = [
    pytest.param("memory", id="memory"),
    pytest.param("encrypted", id="encrypted-sqlite"),
    # new keys in the first store, and the second empty: it must behave as one store
    pytest.param("layered", id="layered-memory"),
    pytest.param("pkcs11", id="pkcs11-softhsm", marks=pytest.mark.hsm),
]


@pytest.fixture(params=BACKENDS)
def keystore(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[KeyStore]:
    """Each :class:`KeyStore` implementation in turn, empty and private to the test."""
    if request.param == "memory":
        yield MemoryKeyStore()
    elif request.param == "layered":
        yield LayeredKeyStore(MemoryKeyStore(), MemoryKeyStore())
    elif request.param == "encrypted":
        with contextlib.closing(SqliteKeyRecords(tmp_path / "keys.db")) as records:
            store = EncryptedKeyStore(records, MasterKey.generate())
            yield store
            store.close()
    else:
        token: SoftHSMToken = request.getfixturevalue("softhsm_token")
        hsm_store = token.open_store()
        yield hsm_store
        hsm_store.close()


@pytest.fixture
def backend_name(keystore: KeyStore) -> str:
    """The ``KeyInfo.backend`` value the current store reports."""
    return {
        MemoryKeyStore: "memory",
        LayeredKeyStore: "memory",
        EncryptedKeyStore: "encrypted",
        PKCS11KeyStore: "pkcs11",
    }[type(keystore)]
