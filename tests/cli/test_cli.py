"""The ``iotstore`` command end to end, as a user runs it: a real process per call."""

from __future__ import annotations

import base64
import json
import os
import stat
import subprocess
import sys
from importlib import resources
from pathlib import Path

import pytest

from iotstore import asserts
from iotstore.accounts import RootAuthority
from iotstore.asserts.testing import fixed_key
from iotstore.deployment import Deployment


def run(
    *args: str, stdin: bytes = b"", env: dict[str, str] | None = None, ok: bool = True
) -> subprocess.CompletedProcess[bytes]:
    """Run ``python -m iotstore ARGS``; check the exit status against ``ok``."""
    proc = subprocess.run(
        [sys.executable, "-m", "iotstore", *args],
        input=stdin,
        capture_output=True,
        timeout=120,
        env={**os.environ, **(env or {})},
        check=False,
    )
    if ok:
        assert proc.returncode == 0, proc.stderr.decode()
    else:
        assert proc.returncode != 0, proc.stdout.decode()
        lines = proc.stderr.decode().strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("iotstore: error: "), lines
    return proc


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data_dir = tmp_path_factory.mktemp("deploy") / "data"
    run("init", "--data-dir", str(data_dir), "--root-id", "cli-root")
    run("key", "generate", "brand-key", "--bits", "2048", "--data-dir", str(data_dir))
    return data_dir


def test_init_lays_out_a_private_data_dir(deployment: Path) -> None:
    assert stat.S_IMODE(deployment.stat().st_mode) == 0o700
    assert stat.S_IMODE((deployment / "master.key").stat().st_mode) == 0o600
    info = json.loads((deployment / "deployment.json").read_text())
    assert info["root-id"] == "cli-root"
    keys = run("key", "list", "--data-dir", str(deployment)).stdout.decode()
    assert keys.split()[0] == "brand-key" and "root" in keys


def test_root_export_is_a_self_signed_trusted_set(deployment: Path) -> None:
    stream = run("root", "export", "--data-dir", str(deployment)).stdout
    root = RootAuthority.from_stream(stream)
    assert root.account_id == "cli-root"
    assert root.account_key.public_key.bits == 4096
    assert stream == (deployment / "root.assert").read_bytes()


def test_data_dir_from_environment(deployment: Path) -> None:
    out = run("root", "export", env={"IOTSTORE_DATA_DIR": str(deployment)}).stdout
    assert out.startswith(b"type: account\n")


def test_init_refuses_an_existing_deployment_but_exist_ok_passes(deployment: Path) -> None:
    proc = run("init", "--data-dir", str(deployment), ok=False)
    assert b"already holds a deployment" in proc.stderr
    run("init", "--exist-ok", "--data-dir", str(deployment))


def test_sign_like_snap_sign_then_verify(deployment: Path) -> None:
    brand_key = run("key", "list", "--data-dir", str(deployment)).stdout.split()[1].decode()
    root = RootAuthority.from_stream((deployment / "root.assert").read_bytes())
    since = asserts.format_time(root.account.timestamp)
    account = run(
        "assert", "sign", "--key", "root", "--authority", "cli-root",
        "--data-dir", str(deployment),
        stdin=json.dumps({
            "type": "account", "account-id": "acme", "display-name": "Acme",
            "validation": "verified", "timestamp": since,
        }).encode(),
    ).stdout  # fmt: skip
    public = asserts.decode(account)  # the root's signature on the brand account
    assert public.authority_id == "cli-root"
    key_body = asserts.Database(root.trusted).find("account-key", (root.account_key.key_id,))
    assert key_body.authority_id == "cli-root"

    brand_public = _public_key_of(deployment, brand_key)
    account_key = run(
        "assert", "sign", "--key", "root", "--data-dir", str(deployment),
        stdin=json.dumps({
            "type": "account-key", "authority-id": "cli-root", "account-id": "acme",
            "name": "default", "public-key-sha3-384": brand_key, "since": since,
            "body": brand_public,
        }).encode(),
    ).stdout  # fmt: skip
    model = run(
        "assert", "sign", "--key", "brand-key", "--authority", "acme",
        "--data-dir", str(deployment),
        stdin=json.dumps({
            "type": "model", "series": "16", "brand-id": "acme", "model": "m1",
            "architecture": "amd64", "gadget": "pc", "kernel": "pc-kernel", "timestamp": since,
        }).encode(),
    ).stdout  # fmt: skip
    stream = deployment.parent / "chain.assert"
    stream.write_bytes(
        asserts.encode_stream(asserts.decode(x) for x in (account, account_key, model))
    )
    out = run("assert", "verify", str(stream), "--data-dir", str(deployment)).stdout.decode()
    assert out.splitlines() == [
        "OK   account acme",
        f"OK   account-key {brand_key}",
        "OK   model 16/acme/m1",
    ]


def _public_key_of(deployment: Path, key_id: str) -> str:
    # The CLI never prints private keys; the public half comes from the key store API.
    store = Deployment.open(deployment).keystore
    return store.public_key(store.find_by_id(key_id).name).encoded


def test_verify_reports_each_assertion_and_fails_on_any_refusal(deployment: Path) -> None:
    vector = Path(__file__).resolve().parents[3] / "shared/spec/vectors/model-core22.assert"
    command = ["assert", "verify", str(vector), "--data-dir", str(deployment)]
    proc = subprocess.run(
        [sys.executable, "-m", "iotstore", *command], capture_output=True, check=False, timeout=60
    )
    assert proc.returncode == 1
    assert proc.stdout.decode().startswith("FAIL model 16/acme/acme-gw22: no matching public key")


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (["assert", "sign", "--key", "root"], b"{", "cannot parse the assertion input as JSON"),
        (["assert", "sign", "--key", "root"], b"[]", "must be a JSON object"),
        (["assert", "sign", "--key", "root"], b"{}", "missing assertion type header"),
        (["assert", "sign", "--key", "nope"], b'{"type": "account"}', "nope"),
        (
            ["assert", "sign", "--key", "root"],
            b'{"type": "account", "authority-id": "cli-root"}',
            '"account-id" header is mandatory',
        ),
        (["assert", "verify", "does-not-exist"], b"", "does-not-exist"),
        (["key", "disable", "root", "--confirm", "roo"], b"", "--confirm must repeat"),
    ],
)
def test_errors_are_one_line_and_nonzero(
    deployment: Path, args: list[str], stdin: bytes, message: str
) -> None:
    proc = run(*args, "--data-dir", str(deployment), stdin=stdin, ok=False)
    assert message in proc.stderr.decode()


def test_missing_deployment_is_a_clear_error(tmp_path: Path) -> None:
    proc = run("root", "export", "--data-dir", str(tmp_path / "none"), ok=False)
    assert b"holds no deployment" in proc.stderr


def test_adopt_an_offline_root_key(tmp_path: Path) -> None:
    pem = resources.files("iotstore.asserts.testing").joinpath("keys", "root.pem").read_bytes()
    (tmp_path / "root.pem").write_bytes(pem)
    data_dir = tmp_path / "adopted"
    key_file = str(tmp_path / "root.pem")
    run("init", "--data-dir", str(data_dir), "--root-id", "offline-root", "--root-key", key_file)
    root = RootAuthority.from_stream(run("root", "export", "--data-dir", str(data_dir)).stdout)
    assert root.account_key.key_id == fixed_key("root").public_key.id
    assert b"PRIVATE KEY" not in (data_dir / "keys.sqlite").read_bytes()


def test_adopting_needs_the_root_id(tmp_path: Path) -> None:
    (tmp_path / "k.pem").write_bytes(b"x")
    run("init", "--data-dir", str(tmp_path / "d"), "--root-key", str(tmp_path / "k.pem"), ok=False)


def test_master_key_from_the_environment(tmp_path: Path) -> None:
    key = base64.b64encode(os.urandom(32)).decode()
    data_dir = tmp_path / "envkey"
    env = {"IOTSTORE_MASTER_KEY": key}
    run("init", "--data-dir", str(data_dir), env=env)
    assert not (data_dir / "master.key").exists()
    run("key", "list", "--data-dir", str(data_dir), env=env)
    proc = run("key", "list", "--data-dir", str(data_dir), ok=False)
    assert b"master key" in proc.stderr
