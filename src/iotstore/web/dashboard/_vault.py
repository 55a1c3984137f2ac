"""Serial vault pages: brand keys, models, their keys and allow-lists, devices, signing log."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse, PlainTextResponse, Response
from pydantic import BaseModel, Field
from sqlalchemy import select

from iotstore import asserts
from iotstore.accounts.brands import brand_dict, brand_key_dict
from iotstore.devices.errors import ModelNotFound
from iotstore.devices.models import Device, DeviceModel, InventoryEntry, RefreshHistoryEntry
from iotstore.devices.services import VaultService, model_dict
from iotstore.errors import InvalidInput, IotstoreError
from iotstore.snaps.models import Snap

from .._brand_keys import generate_brand_key, key_action, register_brand_key
from ..context import RequestContext
from ..device_service import PREFIX, vault_service
from ._deps import BrandKeys, BrandView, DevicesManage, DevicesView, FormDep, Vault
from ._render import HTML_PAGE as _HTML
from ._render import Form, parse, redirect, refused, reject, render, render_fragment
from ._stores import devices_chart

__all__ = ["router"]

router = APIRouter(tags=["dashboard"], default_response_class=HTMLResponse)
KEY_BITS = (2048, 3072, 4096)


# -- brand keys ----------------------------------------------------------------------------


@router.get("/stores/{store_id}/brand", responses=_HTML)
def brand_page(ctx: BrandView, store_id: str) -> HTMLResponse:
    """The brand that owns the store and, in its root store, its signing keys."""
    store = ctx.stores.get(store_id)
    brand = ctx.brands.get(store.brand_id)
    keys = [brand_key_dict(k) for k in ctx.brands.keys(brand.account_id)]
    return render(
        ctx, "brand.html", store=store, tab="Brand keys", brand=brand_dict(brand), keys=keys,
        bits=KEY_BITS, root=store.kind == "brand",
    )  # fmt: skip


class NewKey(BaseModel):
    """The generate-key form."""

    name: str = Field(min_length=1, max_length=64)
    bits: int = Field(default=4096, ge=2048, le=8192, multiple_of=1024)


@router.post("/stores/{store_id}/brand/keys", responses=_HTML)
def generate_key(ctx: BrandKeys, store_id: str, form: FormDep) -> Response:
    """Generate a key in the key store, certified by the root."""
    template = "_key_form.html"
    values = {"store_id": store_id, "bits": KEY_BITS}
    body = parse(NewKey, form, ("name", "bits"), template, **values)
    try:
        generate_brand_key(ctx, store_id, body.name, body.bits)
    except IotstoreError as e:
        raise refused(template, form, e, **values) from e
    return redirect(f"/stores/{store_id}/brand")


class KeyRequest(BaseModel):
    """The register-key form: ``snap export-key --account=ID NAME`` pasted."""

    request: str = Field(min_length=1, max_length=64 * 1024)


@router.post("/stores/{store_id}/brand/keys/register", responses=_HTML)
def register_key(ctx: BrandKeys, store_id: str, form: FormDep) -> Response:
    """Certify a key the brand holds itself."""
    template = "_register_key_form.html"
    values = {"store_id": store_id}
    body = parse(KeyRequest, form, ("request",), template, **values)
    try:
        register_brand_key(ctx, store_id, body.request.encode())
    except (IotstoreError, asserts.AssertsError) as e:
        error = e if isinstance(e, IotstoreError) else InvalidInput(str(e), field="request")
        raise refused(template, form, error, **values) from e
    return redirect(f"/stores/{store_id}/brand")


class KeyAction(BaseModel):
    """Disable or revoke: the key's name typed again."""

    confirm: str = Field(min_length=1, max_length=64)


def _key_action(
    ctx: RequestContext, store_id: str, name: str, form: Form, revoke: bool
) -> Response:
    action = "revoke" if revoke else "disable"
    template = "_key_action_form.html"
    values = {"store_id": store_id, "name": name, "action": action}
    body = parse(KeyAction, form, ("confirm",), template, **values)
    force = form.checked("force")
    try:
        key_action(ctx, store_id, name, body.confirm, force, revoke)
    except IotstoreError as e:
        raise refused(template, form, e, **values) from e
    return redirect(f"/stores/{store_id}/brand")


@router.post("/stores/{store_id}/brand/keys/{name}/disable", responses=_HTML)
def disable_key(ctx: BrandKeys, store_id: str, name: str, form: FormDep) -> Response:
    """Stop signing with a held key (refused while models rely on it, unless forced)."""
    return _key_action(ctx, store_id, name, form, revoke=False)


@router.post("/stores/{store_id}/brand/keys/{name}/revoke", responses=_HTML)
def revoke_key(ctx: BrandKeys, store_id: str, name: str, form: FormDep) -> Response:
    """End the key's validity now."""
    return _key_action(ctx, store_id, name, form, revoke=True)


# -- models --------------------------------------------------------------------------------


def _models_below(ctx: RequestContext, store_id: str) -> list[DeviceModel]:
    return vault_service(ctx).models(list(ctx.session.scalars(ctx.stores.subtree_ids(store_id))))


def _model(ctx: RequestContext, store_id: str, name: str) -> tuple[VaultService, DeviceModel]:
    for model in _models_below(ctx, store_id):
        if model.name == name:
            return vault_service(ctx), model
    raise ModelNotFound(f"no model {name!r} in store {store_id!r} or below")


def _model_form_values(ctx: RequestContext, store_id: str) -> dict[str, Any]:
    store = ctx.stores.get(store_id)
    held = [
        k.name
        for k in ctx.brands.keys(store.brand_id)
        if k.keystore_name is not None and k.state == "active"
    ]
    below = [s.id for s in ctx.stores.list_stores(ctx.stores.subtree_ids(store_id), "", 500)]
    return {"store_id": store_id, "held_keys": held, "stores": below}


@router.get("/stores/{store_id}/models", responses=_HTML)
def models_page(ctx: Vault, store_id: str) -> HTMLResponse:
    """Models of this store and below, forms to sign a model and a system user."""
    store = ctx.stores.get(store_id)
    models = [model_dict(m) for m in _models_below(ctx, store_id)]
    users = vault_service(ctx).system_users(store.brand_id)
    return render(
        ctx, "models.html", store=store, tab="Models", models=models, system_users=users,
        model_names=[m["model"] for m in models], **_model_form_values(ctx, store_id),
    )  # fmt: skip


class NewSystemUser(BaseModel):
    """The system-user form: a local user the brand's devices may create."""

    key: str = Field(min_length=1, max_length=64)
    email: str = Field(min_length=3, max_length=254)
    username: str = Field(min_length=1, max_length=32)
    name: str | None = Field(default=None, max_length=120)
    until: date
    ssh_keys: str = Field(default="", max_length=64 * 1024)


@router.post("/stores/{store_id}/system-users", responses=_HTML)
def create_system_user(ctx: Vault, store_id: str, form: FormDep) -> Response:
    """Sign a system-user assertion for models of this store (``snap create-user --known``)."""
    template = "_system_user_form.html"
    values = _model_form_values(ctx, store_id)
    values["model_names"] = [m.name for m in _models_below(ctx, store_id)]
    names = ("key", "email", "username", "name", "until", "ssh_keys")
    body = parse(NewSystemUser, form, names, template, **values)
    models = form.getlist("models")
    if not models or set(models) - set(values["model_names"]):
        raise reject(
            template, form, {"models": "tick the models of this store it is for"}, **values
        )
    try:
        store = ctx.stores.get(store_id)
        vault_service(ctx).create_system_user(
            ctx.actor, store.brand_id, body.key, email=body.email, username=body.username,
            models=models, until=datetime.combine(body.until, time(), tzinfo=UTC),
            name=body.name, ssh_keys=[k for k in body.ssh_keys.splitlines() if k.strip()] or None,
            store_id=store_id,
        )  # fmt: skip
    except IotstoreError as e:
        raise refused(template, form, e, **values) from e
    return redirect(f"/stores/{store_id}/models")


class NewModel(BaseModel):
    """The sign-a-model form (UC16/18 style headers, plus any extra JSON headers)."""

    key: str = Field(min_length=1, max_length=64)
    model: str = Field(min_length=1, max_length=64)
    store: str = Field(min_length=1, max_length=63)
    architecture: str = Field(default="amd64", max_length=32)
    base: str = Field(default="", max_length=64)
    gadget: str = Field(min_length=1, max_length=64)
    kernel: str = Field(min_length=1, max_length=64)
    extra: str = Field(default="", max_length=64 * 1024)


@router.post("/stores/{store_id}/models", responses=_HTML)
def sign_model(ctx: Vault, store_id: str, form: FormDep) -> Response:
    """Sign (or revise) a model with a held brand key; its store must be this one or below."""
    template = "_model_form.html"
    values = _model_form_values(ctx, store_id)
    names = ("key", "model", "store", "architecture", "base", "gadget", "kernel", "extra")
    body = parse(NewModel, form, names, template, **values)
    headers: dict[str, Any] = {
        "model": body.model, "store": body.store, "architecture": body.architecture,
        "gadget": body.gadget, "kernel": body.kernel,
    }  # fmt: skip
    if body.base:
        headers["base"] = body.base
    if body.extra.strip():
        try:
            extra = json.loads(body.extra)
        except ValueError as e:
            raise reject(template, form, {"extra": f"not JSON: {e}"}, **values) from e
        if not isinstance(extra, dict):
            raise reject(template, form, {"extra": "a JSON object of headers"}, **values)
        headers |= extra
    if body.store not in values["stores"]:
        raise reject(template, form, {"store": "this store or one below it"}, **values)
    try:
        store = ctx.stores.get(store_id)
        vault_service(ctx).sign_model(ctx.actor, store.brand_id, body.key, headers)
    except IotstoreError as e:
        raise refused(template, form, e, **values) from e
    return redirect(f"/stores/{store_id}/models/{body.model}")


@router.get("/stores/{store_id}/models/{model}", responses=_HTML)
def model_page(ctx: Vault, store_id: str, model: str) -> HTMLResponse:
    """A model: its assertion, enrolment policy, serial keys, API keys and allow-list."""
    store = ctx.stores.get(store_id)
    vault, row = _model(ctx, store_id, model)
    assertion = vault.model_assertion(row)
    return render(
        ctx, "model.html", store=store, tab="Models", model=model_dict(row),
        assertion=assertion.to_bytes().decode(), revision=assertion.revision,
        device_service_url=f"{ctx.deployment.settings.base_url}{PREFIX}/",
        serial_keys=[(s, b) for s, b in vault.serial_keys(row)],
        api_keys=vault.api_keys(row), allowlist=vault.allowlist(row), bits=KEY_BITS,
    )  # fmt: skip


_POLICY = ("open_enrolment", "require_key_allowlist", "allow_reregistration")


@router.post("/stores/{store_id}/models/{model}/policy", responses=_HTML)
def update_policy(ctx: Vault, store_id: str, model: str, form: FormDep) -> Response:
    """Switch open enrolment, key allow-listing and re-registration."""
    vault, row = _model(ctx, store_id, model)
    vault.update_policy(ctx.actor, row, {name: form.checked(name) for name in _POLICY})
    return redirect(f"/stores/{store_id}/models/{model}")


class Bits(BaseModel):
    """Size of a new key."""

    bits: int = Field(default=4096, ge=2048, le=8192, multiple_of=1024)


@router.post("/stores/{store_id}/models/{model}/serial-keys", responses=_HTML)
def rotate_serial_key(ctx: Vault, store_id: str, model: str, form: FormDep) -> Response:
    """Generate a new serial key and make it the active one."""
    vault, row = _model(ctx, store_id, model)
    values = {"store_id": store_id, "model_name": model, "bits": KEY_BITS}
    body = parse(Bits, form, ("bits",), "_rotate_form.html", **values)
    vault.rotate_serial_key(ctx.actor, row, body.bits)
    return redirect(f"/stores/{store_id}/models/{model}")


@router.post("/stores/{store_id}/models/{model}/serial-keys/{name}/disable", responses=_HTML)
def disable_serial_key(ctx: Vault, store_id: str, model: str, name: str, form: FormDep) -> Response:
    """Stop signing serials with a key (typed name; never the only active one)."""
    template = "_key_action_form.html"
    values = {
        "store_id": store_id, "name": name, "action": "disable",
        "url": f"/stores/{store_id}/models/{model}/serial-keys/{name}/disable",
    }  # fmt: skip
    body = parse(KeyAction, form, ("confirm",), template, **values)
    vault, row = _model(ctx, store_id, model)
    try:
        vault.disable_serial_key(ctx.actor, row, name, body.confirm)
    except IotstoreError as e:
        raise refused(template, form, e, **values) from e
    return redirect(f"/stores/{store_id}/models/{model}")


class Label(BaseModel):
    """A label for a new API key."""

    label: str = Field(default="", max_length=120)


@router.post("/stores/{store_id}/models/{model}/api-keys", responses=_HTML)
def create_api_key(ctx: Vault, store_id: str, model: str, form: FormDep) -> Response:
    """A new API key for the gadget's prepare-device hook; its secret is shown once."""
    vault, row = _model(ctx, store_id, model)
    values = {"store_id": store_id, "model_name": model}
    body = parse(Label, form, ("label",), "_api_key_form.html", **values)
    _key, secret = vault.create_api_key(ctx.actor, row, body.label)
    return render_fragment(
        "_secret.html", title="New API key", secret=secret, what="API key",
        note="Copy it now: it is not shown again. The gadget's prepare-device hook sends it"
        ' in the api-key header: snapctl set device-service.headers=\'{"api-key": "..."}\'',
        back=f"/stores/{store_id}/models/{model}",
    )  # fmt: skip


@router.post("/stores/{store_id}/models/{model}/api-keys/{key_id}/revoke", responses=_HTML)
def revoke_api_key(ctx: Vault, store_id: str, model: str, key_id: int) -> Response:
    """Revoke an API key: devices sending it are refused."""
    vault, row = _model(ctx, store_id, model)
    vault.revoke_api_key(ctx.actor, row, key_id)
    return redirect(f"/stores/{store_id}/models/{model}")


class Entries(BaseModel):
    """Allow-list lines: ``serial[,device-key-id]``."""

    entries: str = Field(min_length=1, max_length=4 * 1024 * 1024)


def _with_header(text: str) -> str:
    """The vault's CSV import wants a header row; people paste bare ``serial[,key]`` lines."""
    lines = text.strip().splitlines()
    if lines and lines[0].split(",")[0].strip().lower() == "serial":
        return text
    return "serial,device-key\n" + "\n".join(lines) + "\n"


@router.post("/stores/{store_id}/models/{model}/allowlist", responses=_HTML)
def add_allowlist(ctx: Vault, store_id: str, model: str, form: FormDep) -> Response:
    """Pre-authorise serials (one per line, optionally ``,device-key-id``)."""
    vault, row = _model(ctx, store_id, model)
    template = "_allowlist_form.html"
    values = {"store_id": store_id, "model_name": model}
    body = parse(Entries, form, ("entries",), template, **values)
    try:
        vault.import_allowlist_csv(ctx.actor, row, _with_header(body.entries))
    except IotstoreError as e:
        raise refused(template, form, e, **values) from e
    return redirect(f"/stores/{store_id}/models/{model}")


# -- devices and the signing log -------------------------------------------------------------

Search = Annotated[str, Query(max_length=128)]


@router.get("/stores/{store_id}/devices", responses=_HTML)
def devices_page(
    ctx: DevicesView, store_id: str, search: Search = "", after: Annotated[int, Query(ge=0)] = 0
) -> HTMLResponse:
    """Registered devices (search by serial), block and unblock, the registrations chart."""
    store = ctx.stores.get(store_id)
    models = _models_below(ctx, store_id)
    rows = vault_service(ctx).devices(models, search=search or None, after_id=after, limit=100)
    return render(
        ctx, "devices.html", store=store, tab="Devices", devices=rows, search=search,
        seen=_inventory(ctx, rows),
        chart=devices_chart(ctx, store_id),
        next_after=rows[-1].id if len(rows) == 100 else None,
    )  # fmt: skip


@dataclass
class Seen:
    """What the store knows of one device's snaps: reported installed, or last offered."""

    snaps: list[dict[str, Any]] = field(default_factory=list)
    last_seen: datetime | None = None


def _inventory(ctx: RequestContext, devices: list[Device]) -> dict[int, Seen]:
    """Per device id: snaps it reported installed, snaps the store last offered it (install
    or refresh answers not yet reported back), and when it was last seen."""
    if not devices:
        return {}
    wanted = {(d.brand_id, d.model, d.serial): d for d in devices}
    serials = sorted({d.serial for d in devices})
    out = {d.id: Seen(last_seen=d.last_seen_at) for d in devices}
    names: dict[str, str] = {}
    rows = ctx.session.scalars(select(InventoryEntry).where(InventoryEntry.serial.in_(serials)))
    for row in rows:
        device = wanted.get((row.brand_id, row.model, row.serial))
        if device is None:
            continue
        seen = out[device.id]
        seen.last_seen = max(filter(None, (seen.last_seen, row.last_seen_at)), default=None)
        for snap in row.snaps or []:
            seen.snaps.append({**snap, "state": "installed"})
    offers = ctx.session.scalars(
        select(RefreshHistoryEntry)
        .where(RefreshHistoryEntry.serial.in_(serials), RefreshHistoryEntry.event == "offered")
        .order_by(RefreshHistoryEntry.id.desc())
        .limit(5000)
    )
    for offer in offers:
        device = wanted.get((offer.brand_id, offer.model, offer.serial))
        if device is None:
            continue
        seen = out[device.id]
        if not any(s["snap-id"] == offer.snap_id for s in seen.snaps):
            seen.snaps.append(
                {"snap-id": offer.snap_id, "revision": offer.to_revision,
                 "channel": offer.channel, "state": "offered"}
            )  # fmt: skip
            seen.last_seen = max(filter(None, (seen.last_seen, offer.at)), default=None)
    snap_ids = {str(s["snap-id"]) for seen in out.values() for s in seen.snaps}
    if snap_ids:
        found = ctx.session.execute(
            select(Snap.snap_id, Snap.name).where(Snap.snap_id.in_(sorted(snap_ids)))
        )
        names = {str(row[0]): str(row[1]) for row in found}
    for seen in out.values():
        for snap in seen.snaps:
            snap["name"] = names.get(str(snap["snap-id"]), str(snap["snap-id"]))
    return out


def _block(ctx: RequestContext, store_id: str, model: str, serial: str, blocked: bool) -> Response:
    vault, row = _model(ctx, store_id, model)
    vault.set_blocked(ctx.actor, row, serial, blocked)
    return redirect(f"/stores/{store_id}/devices")


@router.post("/stores/{store_id}/models/{model}/devices/{serial}/block", responses=_HTML)
def block_device(ctx: DevicesManage, store_id: str, model: str, serial: str) -> Response:
    """Block a device: its requests and store sessions are refused."""
    return _block(ctx, store_id, model, serial, True)


@router.post("/stores/{store_id}/models/{model}/devices/{serial}/unblock", responses=_HTML)
def unblock_device(ctx: DevicesManage, store_id: str, model: str, serial: str) -> Response:
    """Let a blocked device back in."""
    return _block(ctx, store_id, model, serial, False)


DEVICE_FIELDS = ["serial", "model", "brand-id", "device-key-sha3-384", "revision", "blocked",
                 "last-seen"]  # fmt: skip


@router.get(
    "/stores/{store_id}/devices.csv",
    response_class=PlainTextResponse,
    responses={200: {"content": {"text/csv": {}}, "description": "The devices as CSV."}},
)
def devices_csv(ctx: DevicesView, store_id: str, search: Search = "") -> PlainTextResponse:
    """The registered devices (up to 100 000) as CSV, with the page's search applied."""
    rows = vault_service(ctx).devices(
        _models_below(ctx, store_id), search=search or None, limit=100_000
    )
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=DEVICE_FIELDS)
    writer.writeheader()
    for d in rows:
        writer.writerow({
            "serial": d.serial, "model": d.model, "brand-id": d.brand_id,
            "device-key-sha3-384": d.device_key_id, "revision": d.serial_revision,
            "blocked": d.blocked,
            "last-seen": asserts.format_time(d.last_seen_at) if d.last_seen_at else "",
        })  # fmt: skip
    return PlainTextResponse(
        out.getvalue(),
        media_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="devices-{store_id}.csv"'},
    )


@router.post("/stores/{store_id}/models/{model}/devices/{serial}/release", responses=_HTML)
def release_device(ctx: DevicesManage, store_id: str, model: str, serial: str) -> Response:
    """Free a serial for re-provisioning with a new device key."""
    vault, row = _model(ctx, store_id, model)
    vault.release(ctx.actor, row, serial)
    return redirect(f"/stores/{store_id}/devices")


@router.get("/stores/{store_id}/signing-log", responses=_HTML)
def signing_log_page(
    ctx: DevicesView, store_id: str, search: Search = "", after: Annotated[int, Query(ge=0)] = 0
) -> HTMLResponse:
    """Every serial issued for models here and below; search; CSV export."""
    store = ctx.stores.get(store_id)
    models = _models_below(ctx, store_id)
    entries = vault_service(ctx).signing_log(
        [m.id for m in models], search=search or None, after_id=after, limit=100
    )
    return render(
        ctx, "signing_log.html", store=store, tab="Signing log", entries=entries, search=search,
        next_after=entries[-1].id if len(entries) == 100 else None,
    )  # fmt: skip
