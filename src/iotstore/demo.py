"""First-start seeding of the embedded default: a demo brand, its store and an administrator.

Idempotent: it runs once per data directory and records what it made in
``demo.json`` (mode 0600, it holds a password and a token).
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any

from sqlalchemy import select

from iotstore.accounts.brands import BrandService
from iotstore.accounts.root_authority import new_account_id
from iotstore.accounts.services import AccountService
from iotstore.accounts.tokens import TokenService
from iotstore.assertdb import trust_database
from iotstore.asserts.model import WELL_KNOWN_SNAP_IDS
from iotstore.deployment import Deployment
from iotstore.devices.services import VaultService
from iotstore.snaps.models import Snap
from iotstore.stores.audit import Actor, AuditLog
from iotstore.stores.permissions import Role
from iotstore.stores.services import MembershipService, StoreService
from iotstore.web.device_service import PREFIX as DEVICE_SERVICE_PREFIX

__all__ = ["DEMO_FILE", "seed_demo"]

DEMO_FILE = "demo.json"
DEMO_STORE = "demo-store"
DEMO_ADMIN = "admin@demo.example.com"
DEMO_MODEL = "demo-model"
DEMO_MODEL_FILE = "demo-model.assert"


def seed_demo(deployment: Deployment, url: str) -> dict[str, Any]:
    """Create the demo brand, store and administrator once; return what ``demo.json`` holds."""
    path = deployment.data_dir / DEMO_FILE
    if path.exists():
        info: dict[str, Any] = json.loads(path.read_text())
        changed = info.get("url") != url
        info["url"] = url
        if "model" not in info:  # made before the serial vault existed
            info.update(_seed_vault(deployment, info))
            changed = True
        if changed:
            _write(path, info)
        return info
    password = secrets.token_urlsafe(12)
    system = Actor(account_id=None, address="seed")
    with deployment.database.unit_of_work() as session:
        audit = AuditLog(session)
        accounts = AccountService(session)
        admin = accounts.create(
            DEMO_ADMIN, "Demo administrator", password=password, email_verified=True,
            is_operator=True,
        )  # fmt: skip
        trust = trust_database(session, deployment.root.trusted)
        brand = BrandService(session, deployment.keystore, deployment.root, trust).create(
            "demo-brand", "Demo Brand"
        )
        stores = StoreService(session, audit)
        store = stores.create_brand_store(system, brand.account_id, DEMO_STORE, "Demo Store")
        MembershipService(session, stores, audit).grant(
            system, store.id, admin.id, Role.ADMIN.value
        )
        _, token = TokenService(session, deployment.secret, deployment.settings.base_url).issue(
            admin, description="demo administrator token"
        )
        info = {
            "url": url,
            "root_id": deployment.root.account_id,
            "brand_id": brand.account_id,
            "store_id": store.id,
            "admin_email": admin.email,
            "admin_password": password,
            "admin_token": token,
        }
    info.update(_seed_vault(deployment, info))
    _write(path, info)
    return info


# Snaps of a core22-style image. The base and snapd keep the ids devices know
# them by; the store hosts its own builds under those ids.
DEMO_SNAPS = (
    ("pc-kernel", "kernel", "22/stable"),
    ("pc", "gadget", "22/stable"),
    ("core22", "base", "latest/stable"),
    ("snapd", "snapd", "latest/stable"),
)


def _seed_vault(deployment: Deployment, info: dict[str, Any]) -> dict[str, Any]:
    """The demo model (amd64, core22-style), its serial key and an API key."""
    system = Actor(account_id=None, address="seed")
    brand_id, store_id = info["brand_id"], info["store_id"]
    with deployment.database.unit_of_work() as session:
        audit = AuditLog(session)
        trust = trust_database(session, deployment.root.trusted)
        brands = BrandService(session, deployment.keystore, deployment.root, trust)
        brands.generate_key(brand_id, "models")
        snaps = []
        for name, snap_type, channel in DEMO_SNAPS:
            snap = (
                session.get(Snap, WELL_KNOWN_SNAP_IDS.get(name, ""))
                or session.scalars(select(Snap).where(Snap.name == name)).first()
            )
            if snap is None:
                snap = Snap(
                    snap_id=WELL_KNOWN_SNAP_IDS.get(name) or new_account_id(),
                    name=name, store_id=store_id, publisher_id=brand_id, snap_type=snap_type,
                )  # fmt: skip
                session.add(snap)
            snaps.append({"name": name, "id": snap.snap_id, "type": snap_type,
                          "default-channel": channel})  # fmt: skip
        session.flush()
        vault = VaultService(session, deployment.keystore, brands, trust, audit)
        model = vault.sign_model(
            system, brand_id, "models",
            {"model": DEMO_MODEL, "architecture": "amd64", "base": "core22", "grade": "signed",
             "store": store_id, "display-name": "Demo gateway", "snaps": snaps},
        )  # fmt: skip
        vault.rotate_serial_key(system, model)
        _, api_key = vault.create_api_key(system, model, "demo")
        assertion = vault.model_assertion(model).to_bytes()
    (deployment.data_dir / DEMO_MODEL_FILE).write_bytes(assertion)
    return {
        "model": DEMO_MODEL,
        "api_key": api_key,
        "device_service_url": f"{info['url']}{DEVICE_SERVICE_PREFIX}/",
    }


def _write(path: Path, info: dict[str, Any]) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(info, f, indent=2)
        f.write("\n")
    path.chmod(0o600)
