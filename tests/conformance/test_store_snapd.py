"""snapd's own store client (``store`` package, 2.57.6) as a device of a live ``iotstore serve``.

``conformance/storeclient`` loads a device registered by ``conformance/devicereg``
(snapd's registration steps against our vault) and trusts only the
deployment's root. snapd's client obtains the device session itself, installs,
downloads (sha3-384 checked), fetches every assertion of each snap into
snapd's ``asserts.Database`` and cross-checks the file against them
(``snapasserts.CrossCheck``), refreshes after a new release, and refreshes
snap-declarations through fetch-assertions. Refusals: a blocked device, an
anonymous client of the private store, a snap of another brand's store.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from iotstore.deployment import Deployment
from iotstore.devices.models import Device as DeviceRow
from iotstore.settings import Settings
from iotstore.stores.audit import Actor, AuditLog
from iotstore.stores.services import StoreService
from tests.devices._live import LiveVault
from tests.web.device_api._publish import Publisher

from .devicereg import DeviceReg
from .snapd import build_conformance_program

pytestmark = pytest.mark.snapd


@pytest.fixture(scope="module")
def vault(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveVault]:
    server = LiveVault(tmp_path_factory.mktemp("store"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def deployment(vault: LiveVault) -> Iterator[Deployment]:
    """The live server's deployment, opened beside it (publishing as a publisher would)."""
    settings = Settings(data_dir=vault.data_dir, base_url=vault.url)
    d = Deployment.open(vault.data_dir, settings)
    yield d
    d.close()


@pytest.fixture(scope="module")
def publisher(
    deployment: Deployment, vault: LiveVault, tmp_path_factory: pytest.TempPathFactory
) -> Publisher:
    from iotstore.accounts.services import AccountService  # noqa: PLC0415
    from iotstore.stores.services import MembershipService  # noqa: PLC0415

    with deployment.database.unit_of_work() as session:
        account = AccountService(session).create(
            "publisher@example.com", "Publisher", email_verified=True
        )
        audit = AuditLog(session)
        memberships = MembershipService(session, StoreService(session, audit), audit)
        for role in ("admin", "publisher"):
            memberships.grant(Actor(None, None, "t"), vault.store_id, account.id, role)
        account_id = account.id
    return Publisher(deployment, account_id, tmp_path_factory.mktemp("snaps"))


@pytest.fixture(scope="module")
def storeclient() -> Path:
    return build_conformance_program("storeclient")


class Client:
    """One device (or an anonymous client) running storeclient steps."""

    def __init__(
        self, binary: Path, vault: LiveVault, *, serial: Path | None = None,
        key: Path | None = None, model: bool = True, store: str | None = None,
        auth: str | None = None,
    ) -> None:  # fmt: skip
        self.binary = binary
        self.args = ["-url", vault.url + "/", "-trusted", str(vault.root_assert)]
        if model:
            self.args += ["-model", str(vault.model_seed)]
        if serial is not None and key is not None:
            self.args += ["-serial", str(serial), "-key", str(key)]
        if store:
            self.args += ["-store", store]
        if auth:
            self.args += ["-auth", auth]

    def run(self, *steps: dict[str, Any]) -> dict[str, Any]:
        proc = subprocess.run(
            [str(self.binary), *self.args],
            input=json.dumps({"steps": list(steps)}).encode(),
            capture_output=True, timeout=300, check=False,
        )  # fmt: skip
        assert proc.returncode in (0, 1), proc.stderr.decode()
        report: dict[str, Any] = json.loads(proc.stdout)
        return report


@pytest.fixture(scope="module")
def device(vault: LiveVault, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A device registered by snapd's registration steps: (serial file, key file)."""
    base = tmp_path_factory.mktemp("device")
    key = base / "device.pem"
    reg = DeviceReg().register(
        url=vault.device_service_url, model=vault.model_seed, trusted=vault.root_assert,
        api_key=vault.api_key, save_key=key,
    )  # fmt: skip
    assert reg.ok, reg.error
    serial = base / "serial.assert"
    serial.write_text(reg.serial_assertion)
    return serial, key


def test_install_refresh_download_and_assertions(
    storeclient: Path, vault: LiveVault, device: tuple[Path, Path], publisher: Publisher
) -> None:
    snap_id = publisher.register(vault.store_id, "hello-device")
    first = publisher.push(snap_id, "1.0")
    client = Client(storeclient, vault, serial=device[0], key=device[1])
    report = client.run(
        {"op": "install", "name": "hello-device", "channel": "stable"},
        {"op": "info", "name": "hello-device"},
        {"op": "find", "query": "hello"},
    )
    install, info, find = report["steps"]
    assert install["ok"], install
    assert install["revision"] == first
    # the whole chain went into snapd's database and cross-checked
    assert install["assertions"]["snap-revision"] == 1
    assert install["assertions"]["snap-declaration"] == 1
    assert report["sessions"] == 1
    assert info["ok"] and info["snap-id"] == snap_id, info
    assert find["ok"] and "hello-device" in find["found"], find

    second = publisher.push(snap_id, "2.0")
    report = client.run(
        {"op": "refresh", "name": "hello-device", "snap-id": snap_id, "revision": first,
         "channel": "latest/stable"},
        {"op": "download", "name": "hello-device", "revision": first},
        {"op": "declarations", "snap-ids": [snap_id]},
    )  # fmt: skip
    refresh, download, declarations = report["steps"]
    assert refresh["ok"] and refresh["revision"] == second, refresh
    assert refresh["assertions"]["snap-revision"] == 1
    assert download["ok"] and download["revision"] == first, download
    assert declarations["ok"], declarations


def test_anonymous_client_of_a_private_store_is_refused(
    storeclient: Path, vault: LiveVault, publisher: Publisher
) -> None:
    snap_id = publisher.register(vault.store_id, "hello-private")
    publisher.push(snap_id, "1.0")
    client = Client(storeclient, vault, model=False, store=vault.store_id)
    (install,) = client.run({"op": "install", "name": "hello-private"})["steps"]
    assert not install["ok"]
    assert "401" in install["error"], install


def test_viewer_token_installs_like_a_device(
    storeclient: Path, vault: LiveVault, publisher: Publisher, deployment: Deployment
) -> None:
    from iotstore.accounts.services import AccountService  # noqa: PLC0415
    from iotstore.accounts.tokens import TokenService  # noqa: PLC0415
    from iotstore.stores.services import MembershipService  # noqa: PLC0415

    snap_id = publisher.register(vault.store_id, "hello-viewer")
    rev = publisher.push(snap_id, "1.0")
    with deployment.database.unit_of_work() as session:
        account = AccountService(session).create("viewer@example.com", "V", email_verified=True)
        audit = AuditLog(session)
        MembershipService(session, StoreService(session, audit), audit).grant(
            Actor(None, None, "t"), vault.store_id, account.id, "viewer"
        )
        _, token = TokenService(session, deployment.secret, vault.url).issue(account)
    client = Client(storeclient, vault, model=False, store=vault.store_id, auth=token)
    (install,) = client.run({"op": "download", "name": "hello-viewer"})["steps"]
    assert install["ok"], install
    assert install["revision"] == rev


def test_snap_of_another_store_is_not_found(
    storeclient: Path, vault: LiveVault, device: tuple[Path, Path], deployment: Deployment,
    tmp_path: Path,
) -> None:  # fmt: skip
    from iotstore.accounts.brands import BrandService  # noqa: PLC0415
    from iotstore.assertdb import trust_database  # noqa: PLC0415

    with deployment.database.unit_of_work() as session:
        trust = trust_database(session, deployment.root.trusted)
        brand = BrandService(session, deployment.keystore, deployment.root, trust).create(
            "other-brand", "Other brand"
        )
        StoreService(session, AuditLog(session)).create_brand_store(
            Actor(None, None, "t"), brand.account_id, "other-store", "Other"
        )
    from iotstore.accounts.services import AccountService  # noqa: PLC0415
    from iotstore.stores.services import MembershipService  # noqa: PLC0415

    with deployment.database.unit_of_work() as session:
        account = AccountService(session).create("other@example.com", "O", email_verified=True)
        audit = AuditLog(session)
        memberships = MembershipService(session, StoreService(session, audit), audit)
        memberships.grant(Actor(None, None, "t"), "other-store", account.id, "publisher")
        other_id = account.id
    other = Publisher(deployment, other_id, tmp_path)
    snap_id = other.register("other-store", "hello-elsewhere")
    other.push(snap_id, "1.0")
    client = Client(storeclient, vault, serial=device[0], key=device[1])
    (install,) = client.run({"op": "install", "name": "hello-elsewhere"})["steps"]
    assert not install["ok"]
    assert "not found" in install["error"], install


def test_blocked_device_is_refused(
    storeclient: Path, vault: LiveVault, deployment: Deployment, publisher: Publisher,
    tmp_path: Path,
) -> None:  # fmt: skip
    key = tmp_path / "blocked.pem"
    reg = DeviceReg().register(
        url=vault.device_service_url, model=vault.model_seed, trusted=vault.root_assert,
        api_key=vault.api_key, save_key=key, bits=2048,
    )  # fmt: skip
    assert reg.ok, reg.error
    serial = tmp_path / "serial.assert"
    serial.write_text(reg.serial_assertion)
    snap_id = publisher.register(vault.store_id, "hello-blocked")
    publisher.push(snap_id, "1.0")
    client = Client(storeclient, vault, serial=serial, key=key)
    (install,) = client.run({"op": "install", "name": "hello-blocked"})["steps"]
    assert install["ok"], install
    with deployment.database.unit_of_work() as session:
        session.execute(
            update(DeviceRow).where(DeviceRow.serial == reg.serial).values(blocked=True)
        )
    (install,) = client.run({"op": "install", "name": "hello-blocked"})["steps"]
    assert not install["ok"]
    assert "blocked" in install["error"], install
