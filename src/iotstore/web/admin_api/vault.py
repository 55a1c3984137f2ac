"""Serial vault administration: models, serial keys, API keys, allow-lists, devices, the log."""

from __future__ import annotations

import csv
import io
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import PlainTextResponse
from pydantic import Field
from starlette.concurrency import run_in_threadpool

from iotstore import asserts
from iotstore.devices.errors import ModelNotFound, VaultRuleViolation
from iotstore.devices.models import DeviceModel, SigningLogEntry
from iotstore.devices.services import VaultService, model_dict
from iotstore.stores.permissions import Permission

from ..auth import require
from ..context import RequestContext
from ..device_service import PREFIX, vault_service
from ._common import Body, Limit, page

router = APIRouter(prefix="/api/v1", tags=["vault"])

Manage = Annotated[RequestContext, Depends(require(Permission.VAULT_MANAGE))]
DevicesView = Annotated[RequestContext, Depends(require(Permission.DEVICES_VIEW))]
DevicesManage = Annotated[RequestContext, Depends(require(Permission.DEVICES_MANAGE))]
MAX_UPLOAD = 256 * 1024
LOG_FIELDS = [
    "id", "at", "brand-id", "model", "serial", "device-key-sha3-384", "revision",
    "sign-key-sha3-384", "address",
]  # fmt: skip


def _models_below(ctx: RequestContext, store_id: str) -> list[DeviceModel]:
    subtree = list(ctx.session.scalars(ctx.stores.subtree_ids(store_id)))
    return vault_service(ctx).models(subtree)


def _model(ctx: RequestContext, store_id: str, name: str) -> tuple[VaultService, DeviceModel]:
    for model in _models_below(ctx, store_id):
        if model.name == name:
            return vault_service(ctx), model
    raise ModelNotFound(f"no model {name!r} in store {store_id!r} or below")


def _model_details(vault: VaultService, model: DeviceModel, base_url: str) -> dict[str, Any]:
    assertion = vault.model_assertion(model)
    return {
        **model_dict(model),
        "revision": assertion.revision,
        "grade": assertion.grade,
        "assertion": assertion.to_bytes().decode(),
        "device-service-url": f"{base_url}{PREFIX}/",
        "serial-keys": [
            {"name": b.name, "key-id": b.key_id, "active": s.active, "state": b.state}
            for s, b in vault.serial_keys(model)
        ],
        "api-keys": [
            {"id": k.id, "label": k.label, "prefix": k.prefix, "revoked": k.revoked_at is not None}
            for k in vault.api_keys(model)
        ],
    }


@router.get("/stores/{store_id}/models")
def list_models(ctx: Manage, store_id: str) -> dict[str, Any]:
    """Models whose store is this one or below it."""
    return {"items": [model_dict(m) for m in _models_below(ctx, store_id)]}


class SignedModel(Body):
    """A model to register: a signed assertion, or headers to sign with a held brand key."""

    assertion: str | None = Field(default=None, max_length=MAX_UPLOAD)
    key: str | None = Field(default=None, max_length=64)
    headers: dict[str, Any] | None = None


@router.post("/stores/{store_id}/models", status_code=201)
async def register_model(ctx: Manage, store_id: str, request: Request) -> dict[str, Any]:
    """Register (or revise) a model: ``application/x.ubuntu.assertion`` made with ``snap sign``,
    or JSON ``{"assertion": "..."}`` or ``{"key": NAME, "headers": {...}}``."""
    data = await request.body()
    if len(data) > MAX_UPLOAD:
        raise VaultRuleViolation("the model is too large")
    content_type = request.headers.get("content-type", "")
    # signing, checking and SQL block: off the event loop, which serves every other request
    return await run_in_threadpool(_register_model, ctx, store_id, content_type, data)


def _register_model(
    ctx: RequestContext, store_id: str, content_type: str, data: bytes
) -> dict[str, Any]:
    store = ctx.stores.get(store_id)
    vault = vault_service(ctx)
    if content_type.startswith(asserts.MEDIA_TYPE):
        model = vault.register_model(ctx.actor, store.brand_id, data)
    else:
        try:
            body = SignedModel.model_validate_json(data)
        except ValueError as e:
            raise VaultRuleViolation(f"invalid JSON body: {e}") from e
        if body.assertion is not None:
            model = vault.register_model(ctx.actor, store.brand_id, body.assertion.encode())
        elif body.key is not None and body.headers is not None:
            model = vault.sign_model(ctx.actor, store.brand_id, body.key, body.headers)
        else:
            raise VaultRuleViolation('send "assertion", or "key" with "headers"')
    allowed = set(ctx.session.scalars(ctx.stores.subtree_ids(store_id)))
    if model.store_id not in allowed:
        raise VaultRuleViolation(
            f"the model's store {model.store_id!r} is not {store_id!r} or below it", field="store"
        )
    return _model_details(vault, model, ctx.deployment.settings.base_url)


@router.get("/stores/{store_id}/models/{model}")
def get_model(ctx: Manage, store_id: str, model: str) -> dict[str, Any]:
    """A model with its assertion, serial keys and API keys (prefixes only)."""
    vault, row = _model(ctx, store_id, model)
    return _model_details(vault, row, ctx.deployment.settings.base_url)


class Policy(Body):
    """Enrolment policy; omitted flags stay."""

    open_enrolment: bool | None = None
    require_key_allowlist: bool | None = None
    allow_reregistration: bool | None = None


@router.patch("/stores/{store_id}/models/{model}")
def update_policy(ctx: Manage, store_id: str, model: str, body: Policy) -> dict[str, Any]:
    """Switch open enrolment, key allow-listing and re-registration."""
    vault, row = _model(ctx, store_id, model)
    vault.update_policy(ctx.actor, row, body.model_dump(exclude_none=True))
    return model_dict(row)


class NewSerialKey(Body):
    """Size of the new serial key."""

    bits: int = Field(default=4096, ge=2048, le=8192, multiple_of=1024)


@router.post("/stores/{store_id}/models/{model}/serial-keys", status_code=201)
def rotate_serial_key(ctx: Manage, store_id: str, model: str, body: NewSerialKey) -> dict[str, Any]:
    """Generate a new serial key and make it active (older keys keep verifying)."""
    vault, row = _model(ctx, store_id, model)
    key = vault.rotate_serial_key(ctx.actor, row, body.bits)
    return {"name": key.name, "key-id": key.key_id}


class Confirm(Body):
    """The key name typed again."""

    confirm: str = Field(max_length=64)


@router.post("/stores/{store_id}/models/{model}/serial-keys/{name}/disable")
def disable_serial_key(
    ctx: Manage, store_id: str, model: str, name: str, body: Confirm
) -> dict[str, Any]:
    """Stop signing serials with a key (never the only active one)."""
    vault, row = _model(ctx, store_id, model)
    key = vault.disable_serial_key(ctx.actor, row, name, body.confirm)
    return {"name": key.name, "key-id": key.key_id, "state": key.state}


class NewApiKey(Body):
    """A label to tell API keys apart."""

    label: str = Field(default="", max_length=120)


@router.post("/stores/{store_id}/models/{model}/api-keys", status_code=201)
def create_api_key(ctx: Manage, store_id: str, model: str, body: NewApiKey) -> dict[str, Any]:
    """A new API key; the secret is in this answer only."""
    vault, row = _model(ctx, store_id, model)
    key, secret = vault.create_api_key(ctx.actor, row, body.label)
    return {"id": key.id, "label": key.label, "prefix": key.prefix, "api-key": secret}


@router.delete("/stores/{store_id}/models/{model}/api-keys/{key_id}", status_code=204)
def revoke_api_key(ctx: Manage, store_id: str, model: str, key_id: int) -> None:
    """Revoke an API key."""
    vault, row = _model(ctx, store_id, model)
    vault.revoke_api_key(ctx.actor, row, key_id)


class AllowEntry(Body):
    """One pre-authorised serial, optionally bound to a device-key id."""

    serial: str = Field(max_length=128)
    device_key: str | None = Field(default=None, max_length=64)


class AllowList(Body):
    """Entries to add."""

    entries: list[AllowEntry] = Field(max_length=10_000)


@router.get("/stores/{store_id}/models/{model}/allowlist")
def get_allowlist(ctx: Manage, store_id: str, model: str) -> dict[str, Any]:
    """The pre-authorised serials."""
    vault, row = _model(ctx, store_id, model)
    return {
        "items": [{"serial": e.serial, "device-key": e.device_key_id} for e in vault.allowlist(row)]
    }


@router.post("/stores/{store_id}/models/{model}/allowlist")
async def add_allowlist(ctx: Manage, store_id: str, model: str, request: Request) -> dict[str, Any]:
    """Add serials: JSON ``{"entries": [...]}`` or ``text/csv`` with ``serial[,device-key]``."""
    data = await request.body()
    if len(data) > 4 * 1024 * 1024:
        raise VaultRuleViolation("the allow-list upload is too large")
    content_type = request.headers.get("content-type", "")
    # parsing a large CSV and its SQL block: off the event loop
    return await run_in_threadpool(_add_allowlist, ctx, store_id, model, content_type, data)


def _add_allowlist(
    ctx: RequestContext, store_id: str, model: str, content_type: str, data: bytes
) -> dict[str, Any]:
    vault, row = _model(ctx, store_id, model)
    if content_type.startswith("text/csv"):
        added = vault.import_allowlist_csv(ctx.actor, row, data.decode("utf-8", "replace"))
    else:
        try:
            body = AllowList.model_validate_json(data)
        except ValueError as e:
            raise VaultRuleViolation(f"invalid JSON body: {e}") from e
        added = vault.allow(ctx.actor, row, [(e.serial, e.device_key) for e in body.entries])
    return {"added": added}


def _log_dict(entry: SigningLogEntry) -> dict[str, Any]:
    return {
        "id": entry.id,
        "at": asserts.format_time(entry.at),
        "brand-id": entry.brand_id,
        "model": entry.model,
        "serial": entry.serial,
        "device-key-sha3-384": entry.device_key_id,
        "revision": entry.revision,
        "sign-key-sha3-384": entry.sign_key_id,
        "address": entry.address,
    }


class NewSystemUser(Body):
    """A local user the brand's devices may create (``snap create-user --known``)."""

    key: str = Field(max_length=64)
    email: str = Field(max_length=254)
    username: str = Field(max_length=32)
    name: str | None = Field(default=None, max_length=120)
    password_hash: str | None = Field(default=None, max_length=255)
    ssh_keys: list[str] | None = Field(default=None, max_length=50)
    models: list[str] = Field(min_length=1, max_length=100)
    until: datetime


def _system_user_dict(user: asserts.SystemUser) -> dict[str, Any]:
    return {
        "brand-id": user.brand_id,
        "email": user.email,
        "username": user.username,
        "models": list(user.models),
        "since": asserts.format_time(user.since),
        "until": asserts.format_time(user.until),
        "revision": user.revision,
        "assertion": user.to_bytes().decode(),
    }


@router.post("/stores/{store_id}/system-users", status_code=201)
def create_system_user(ctx: Manage, store_id: str, body: NewSystemUser) -> dict[str, Any]:
    """Sign a system-user assertion for models of this store (or below)."""
    names = {m.name for m in _models_below(ctx, store_id)}
    missing = sorted(set(body.models) - names)
    if missing:
        raise ModelNotFound(f"no model {missing[0]!r} in store {store_id!r} or below")
    if body.until.tzinfo is None:
        raise VaultRuleViolation("until needs a time zone (use Z for UTC)", field="until")
    store = ctx.stores.get(store_id)
    user = vault_service(ctx).create_system_user(
        ctx.actor, store.brand_id, body.key, email=body.email, username=body.username,
        models=body.models, until=body.until, name=body.name, password_hash=body.password_hash,
        ssh_keys=body.ssh_keys, store_id=store_id,
    )  # fmt: skip
    return _system_user_dict(user)


@router.get("/stores/{store_id}/system-users")
def list_system_users(ctx: Manage, store_id: str) -> dict[str, Any]:
    """The brand's system-user assertions."""
    store = ctx.stores.get(store_id)
    users = vault_service(ctx).system_users(store.brand_id)
    return {"items": [_system_user_dict(u) for u in users]}


@router.get("/stores/{store_id}/signing-log", response_model=None)
def signing_log(
    ctx: DevicesView,
    store_id: str,
    search: str | None = Query(default=None, max_length=128),
    after: int = Query(default=0, ge=0),
    limit: Limit = 100,
    format: str = Query(default="json", pattern="^(json|csv)$"),
) -> dict[str, Any] | PlainTextResponse:
    """Every serial issued for models of this store and below; JSON or CSV."""
    models = _models_below(ctx, store_id)
    entries = vault_service(ctx).signing_log(
        [m.id for m in models], search=search, after_id=after, limit=limit
    )
    rows = [_log_dict(e) for e in entries]
    if format == "csv":
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=LOG_FIELDS)
        writer.writeheader()
        writer.writerows(rows)
        return PlainTextResponse(
            out.getvalue(),
            media_type="text/csv",
            headers={"Content-Disposition": f'attachment; filename="signing-log-{store_id}.csv"'},
        )
    return page(rows, str(entries[-1].id) if entries else None, limit)


@router.get("/stores/{store_id}/devices")
def list_devices(
    ctx: DevicesView,
    store_id: str,
    search: str | None = Query(default=None, max_length=128),
    after: int = Query(default=0, ge=0),
    limit: Limit = 100,
) -> dict[str, Any]:
    """Registered devices of models of this store and below."""
    rows = vault_service(ctx).devices(
        _models_below(ctx, store_id), search=search, after_id=after, limit=limit
    )
    items = [
        {
            "id": d.id, "brand-id": d.brand_id, "model": d.model, "serial": d.serial,
            "device-key-sha3-384": d.device_key_id, "revision": d.serial_revision,
            "blocked": d.blocked,
            "last-seen": asserts.format_time(d.last_seen_at) if d.last_seen_at else None,
        }
        for d in rows
    ]  # fmt: skip
    return page(items, str(rows[-1].id) if rows else None, limit)


@router.post("/stores/{store_id}/models/{model}/devices/{serial}/block")
def block_device(ctx: DevicesManage, store_id: str, model: str, serial: str) -> dict[str, Any]:
    """Block a device: its later requests and store sessions are refused."""
    vault, row = _model(ctx, store_id, model)
    device = vault.set_blocked(ctx.actor, row, serial, True)
    return {"serial": device.serial, "blocked": device.blocked}


@router.post("/stores/{store_id}/models/{model}/devices/{serial}/unblock")
def unblock_device(ctx: DevicesManage, store_id: str, model: str, serial: str) -> dict[str, Any]:
    """Let a blocked device back in."""
    vault, row = _model(ctx, store_id, model)
    device = vault.set_blocked(ctx.actor, row, serial, False)
    return {"serial": device.serial, "blocked": device.blocked}


@router.post("/stores/{store_id}/models/{model}/devices/{serial}/release")
def release_device(ctx: DevicesManage, store_id: str, model: str, serial: str) -> dict[str, Any]:
    """Free a serial for re-provisioning with a new device key."""
    vault, row = _model(ctx, store_id, model)
    vault.release(ctx.actor, row, serial)
    return {"serial": serial, "released": True}
