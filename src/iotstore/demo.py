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

from iotstore.accounts.brands import BrandService
from iotstore.accounts.services import AccountService
from iotstore.accounts.tokens import TokenService
from iotstore.assertdb import trust_database
from iotstore.deployment import Deployment
from iotstore.stores.audit import Actor, AuditLog
from iotstore.stores.permissions import Role
from iotstore.stores.services import MembershipService, StoreService

__all__ = ["DEMO_FILE", "seed_demo"]

DEMO_FILE = "demo.json"
DEMO_STORE = "demo-store"
DEMO_ADMIN = "admin@demo.example.com"


def seed_demo(deployment: Deployment, url: str) -> dict[str, Any]:
    """Create the demo brand, store and administrator once; return what ``demo.json`` holds."""
    path = deployment.data_dir / DEMO_FILE
    if path.exists():
        info: dict[str, Any] = json.loads(path.read_text())
        if info.get("url") != url:
            info["url"] = url
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
    _write(path, info)
    return info


def _write(path: Path, info: dict[str, Any]) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(info, f, indent=2)
        f.write("\n")
    path.chmod(0o600)
