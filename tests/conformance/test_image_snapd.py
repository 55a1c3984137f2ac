"""snapd's image builder (``image.Prepare``, 2.57.6) makes a core22 image from ``iotstore serve``.

``conformance/imagebuild`` runs the code behind ``snap prepare-image`` with
only the deployment's root trusted, against a live server holding a
core22-style set (kernel, gadget, base, snapd, an app: the fixture snaps of
``shared/fixtures/image-snaps``, published through the publishing services),
for a model signed by the brand. A Viewer's token (``UBUNTU_STORE_AUTH``)
opens the private store; without it the build is refused. The seed is then
reopened by snapd's seed loader, which verifies every assertion in it.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from iotstore import asserts
from iotstore.accounts.brands import BrandService
from iotstore.accounts.services import AccountService
from iotstore.accounts.tokens import TokenService
from iotstore.assertdb import trust_database
from iotstore.deployment import Deployment
from iotstore.settings import Settings
from iotstore.snaps.models import Snap
from iotstore.snaps.testing import mksquashfs
from iotstore.stores.audit import Actor, AuditLog
from iotstore.stores.services import MembershipService, StoreService
from tests.devices._live import LiveVault
from tests.web.device_api._publish import Publisher

from .snapd import build_conformance_program

pytestmark = pytest.mark.snapd

FIXTURES = Path(
    os.environ.get("IOTSTORE_IMAGE_SNAPS")
    or Path(__file__).resolve().parents[3] / "shared/fixtures/image-snaps"
)
# (name, type, channel released to and named in the model)
IMAGE_SNAPS = (
    ("pc-kernel", "kernel", "22/stable"),
    ("pc", "gadget", "22/stable"),
    ("core22", "base", "latest/stable"),
    ("snapd", "snapd", "latest/stable"),
    ("hello-iot", "app", "latest/stable"),
)
SYSTEM = Actor(account_id=None, address="test")


@pytest.fixture(scope="module")
def vault(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveVault]:
    server = LiveVault(tmp_path_factory.mktemp("image"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def deployment(vault: LiveVault) -> Iterator[Deployment]:
    d = Deployment.open(vault.data_dir, Settings(data_dir=vault.data_dir, base_url=vault.url))
    yield d
    d.close()


def _person(deployment: Deployment, store_id: str, email: str, roles: tuple[str, ...]) -> str:
    with deployment.database.unit_of_work() as session:
        account = AccountService(session).create(email, email, email_verified=True)
        audit = AuditLog(session)
        memberships = MembershipService(session, StoreService(session, audit), audit)
        for role in roles:
            memberships.grant(SYSTEM, store_id, account.id, role)
        return account.id


@pytest.fixture(scope="module")
def published(
    vault: LiveVault, deployment: Deployment, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, tuple[str, int]]:
    """The five snaps in the demo store: name -> (snap-id, revision)."""
    work = tmp_path_factory.mktemp("image-snaps")
    account_id = _person(deployment, vault.store_id, "brand-admin@example.com",
                         ("admin", "publisher"))  # fmt: skip
    publisher = Publisher(deployment, account_id, work)
    with deployment.database.unit_of_work(write=False) as session:
        demo = {s.name: s.snap_id for s in session.query(Snap).all()}
    out: dict[str, tuple[str, int]] = {}
    for name, snap_type, channel in IMAGE_SNAPS:
        if name in demo:  # the demo seeds kernel, gadget, base and snapd by name
            snap_id = demo[name]
            publisher.adopt(snap_id, name, tracks=[channel.split("/")[0]])
        else:
            snap_id = publisher.register(vault.store_id, name, snap_type=snap_type)
        tree = work / f"{name}-tree"
        shutil.copytree(FIXTURES / name, tree)
        path = mksquashfs(tree, work / f"{name}.snap")
        out[name] = (snap_id, publisher.push_file(snap_id, path, [channel]))
    return out


@pytest.fixture(scope="module")
def model(vault: LiveVault, deployment: Deployment, published: dict[str, tuple[str, int]],
          tmp_path_factory: pytest.TempPathFactory) -> Path:  # fmt: skip
    """A core22 model of the demo brand listing the five snaps, signed by the brand."""
    snaps = [
        {"name": name, "id": published[name][0], "type": snap_type, "default-channel": channel}
        for name, snap_type, channel in IMAGE_SNAPS
    ]
    with deployment.database.unit_of_work(write=False) as session:
        trust = trust_database(session, deployment.root.trusted)
        brands = BrandService(session, deployment.keystore, deployment.root, trust)
        key_name = brands.key(vault.brand_id, "models").keystore_name
        assert key_name is not None
    signed = asserts.sign(
        "model",
        {
            "series": "16", "authority-id": vault.brand_id, "brand-id": vault.brand_id,
            "model": "image-core22", "architecture": "amd64", "base": "core22",
            "grade": "signed", "store": vault.store_id, "snaps": snaps,
            "timestamp": asserts.format_time(datetime.now(UTC)),
        },
        deployment.keystore.signer(key_name),
    )  # fmt: skip
    path = tmp_path_factory.mktemp("model") / "model.assert"
    path.write_bytes(signed.to_bytes())
    return path


@pytest.fixture(scope="module")
def viewer_token(vault: LiveVault, deployment: Deployment) -> str:
    account_id = _person(deployment, vault.store_id, "image-viewer@example.com", ("viewer",))
    with deployment.database.unit_of_work() as session:
        account = AccountService(session).get(account_id)
        _, token = TokenService(session, deployment.secret, vault.url).issue(account)
    return token


def prepare(vault: LiveVault, model: Path, directory: Path, token: str | None) -> dict[str, Any]:
    binary = build_conformance_program("imagebuild")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("UBUNTU_STORE", "SNAPPY_"))}
    env["UBUNTU_STORE_URL"] = vault.url + "/"
    if token is not None:
        # what `snapcraft export-login`-style tooling credentials look like for a bearer token
        env["UBUNTU_STORE_AUTH"] = base64.b64encode(
            json.dumps({"t": "bearer", "v": token}).encode()
        ).decode()
    proc = subprocess.run(
        [str(binary), "-trusted", str(vault.root_assert), "-model", str(model),
         "-dir", str(directory)],
        env=env, capture_output=True, timeout=600, check=False,
    )  # fmt: skip
    assert proc.returncode in (0, 1), proc.stderr.decode()
    assert proc.stdout.startswith(b"{"), (proc.stdout[-3000:], proc.stderr[-3000:])
    result: dict[str, Any] = json.loads(proc.stdout)
    result["stderr"] = proc.stderr.decode()
    return result


def test_prepare_image_for_a_core22_model(
    vault: LiveVault, model: Path, viewer_token: str, published: dict[str, tuple[str, int]],
    tmp_path: Path,
) -> None:  # fmt: skip
    result = prepare(vault, model, tmp_path / "image", viewer_token)
    assert result["ok"], result
    seeded = {s["name"]: s for s in result["snaps"]}
    assert set(seeded) == {name for name, _, _ in IMAGE_SNAPS}
    for name, (snap_id, revision) in published.items():
        assert seeded[name]["snap-id"] == snap_id
        assert seeded[name]["revision"] == revision
    assert result["assertions"]["snap-declaration"] == len(IMAGE_SNAPS)
    assert result["assertions"]["snap-revision"] == len(IMAGE_SNAPS)
    seed = tmp_path / "image" / "system-seed"
    assert (seed / "systems" / result["label"] / "model").read_bytes() == model.read_bytes()
    assert sorted(p.name for p in (seed / "snaps").iterdir()) == sorted(
        f"{name}_{revision}.snap" for name, (_, revision) in published.items()
    )


def test_prepare_image_without_credentials_is_refused_by_the_private_store(
    vault: LiveVault, model: Path, published: dict[str, tuple[str, int]], tmp_path: Path
) -> None:
    result = prepare(vault, model, tmp_path / "image", None)
    assert not result["ok"]
    assert "401" in result["error"], result
