"""Serial keys in an HSM (SoftHSM2 over PKCS#11) behind the running server.

``IOTSTORE_KEYSTORE=pkcs11`` (+ module, token label and PIN) makes ``iotstore
serve`` generate new brand and serial keys in the token; the root, made
before, keeps signing from the encrypted store. A device then registers
through the live server and its serial is signed inside the token: the key
is found there and not in the encrypted store, and the answer verifies
against the deployment's root.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import httpx
import pytest

from iotstore import asserts
from iotstore.keystore import EncryptedKeyStore, KeyNotFound, MasterKey, PKCS11KeyStore

from ._live import VAULT_PATH, LiveVault, serial_request_stream

SOFTHSM_MODULE = Path("/usr/lib/softhsm/libsofthsm2.so")
TOKEN, PIN = "iotstore-serials", "4321"


@pytest.fixture
def hsm_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A fresh SoftHSM2 token, and the server's settings pointing at it (environment)."""
    util = shutil.which("softhsm2-util")
    if util is None or not SOFTHSM_MODULE.exists():
        pytest.fail("SoftHSM2 is not installed: apt-get install softhsm2")
    tokens = tmp_path / "tokens"
    tokens.mkdir()
    conf = tmp_path / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {tokens}\nobjectstore.backend = file\n")
    monkeypatch.setenv("SOFTHSM2_CONF", str(conf))
    subprocess.run(
        [util, "--init-token", "--free", "--label", TOKEN, "--so-pin", "1234", "--pin", PIN],
        check=True, capture_output=True,
    )  # fmt: skip
    monkeypatch.setenv("IOTSTORE_KEYSTORE", "pkcs11")
    monkeypatch.setenv("IOTSTORE_PKCS11_MODULE", str(SOFTHSM_MODULE))
    monkeypatch.setenv("IOTSTORE_PKCS11_TOKEN", TOKEN)
    monkeypatch.setenv("IOTSTORE_PKCS11_PIN", PIN)


def test_a_device_registers_with_a_serial_key_held_in_softhsm(
    hsm_env: None, tmp_path: Path
) -> None:
    vault = LiveVault(tmp_path / "vault")  # seeded in this process, served from the environment
    try:
        model = vault.model
        with vault.admin() as admin:
            rotated = admin.post(
                f"/api/v1/stores/{vault.store_id}/models/{model.model}/serial-keys",
                json={"bits": 2048},
            )
            assert rotated.status_code == 201, rotated.text
        device = asserts.generate_rsa(2048)
        with httpx.Client(base_url=vault.url, timeout=60) as c:
            rid = c.post(f"{VAULT_PATH}/request-id", headers={"api-key": vault.api_key})
            assert rid.status_code == 200, rid.text
            answer = c.post(
                f"{VAULT_PATH}/serial",
                content=serial_request_stream(device, model, rid.json()["request-id"]),
                headers={"api-key": vault.api_key, "Content-Type": asserts.MEDIA_TYPE},
            )
        assert answer.status_code == 200, answer.text + vault.log()
    finally:
        vault.stop()

    serial, *chain = asserts.decode_stream(answer.content)
    assert isinstance(serial, asserts.Serial)
    # the answer verifies against the root alone, as a device's database checks it
    trust = asserts.Database(asserts.decode_stream(vault.root_assert.read_bytes()))
    assert trust.add_many([*chain, serial]) == {}

    hsm = PKCS11KeyStore(str(SOFTHSM_MODULE), TOKEN, PIN)
    try:
        held = hsm.find_by_id(serial.sign_key_id)
        assert held.backend == "pkcs11"
    finally:
        hsm.close()
    encrypted = EncryptedKeyStore.open_sqlite(
        vault.data_dir / "keys.sqlite", MasterKey.from_file(vault.data_dir / "master.key")
    )
    try:
        with pytest.raises(KeyNotFound):
            encrypted.find_by_id(serial.sign_key_id)
        encrypted.find_by_id(trust.trusted[1].header_str("public-key-sha3-384"))  # the root's
    finally:
        encrypted.close()
