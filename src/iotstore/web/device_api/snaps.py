"""Snap action (``v2/snaps/refresh``), info, find, cohorts and the v1 catalogue calls.

The store's catalogue is computed by ``stores`` (:class:`CatalogueScope`) and
the revision each device gets by ``snaps`` (:class:`ChannelResolver`: one
query for every requested snap, channel fallback, progressive buckets); this
module speaks snapd's wire format around them (device-api.md 4, 5). The
answer is computed in a read-only unit of work; the device's inventory is
written afterwards, in its own short one, and only when something changed.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import secrets
import threading
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from iotstore import asserts
from iotstore.accounts.models import Account, Brand
from iotstore.deployment import Deployment
from iotstore.devices.errors import DeviceBlocked
from iotstore.devices.inventory import (
    SEEN_INTERVAL,
    DeviceRef,
    InstalledSnap,
    InventoryService,
    InventorySnapshot,
    Offer,
)
from iotstore.errors import InvalidInput, NotFound
from iotstore.snaps.channels import parse_channel
from iotstore.snaps.errors import ChannelError
from iotstore.snaps.models import ChannelRelease, Revision, Snap
from iotstore.snaps.services import ChannelResolver, ResolvedRevision, ResolveRequest
from iotstore.stores.services import CatalogueScope

from ..context import RequestContext
from ._common import (
    Caller,
    DeviceCall,
    DeviceCallDep,
    DeviceRead,
    caller_of,
    json_response,
    parse_json_object,
    require_store,
)
from .assertions import AssertionNotFound, Lookup, find_assertion, stream_url
from .downloads import download_url

__all__ = ["router", "snap_action_router", "snap_object"]

log = logging.getLogger("iotstore.device_api")

router = APIRouter(tags=["device store"])
# snapd's hot path on its own router, which web/app.py includes before every other: the
# app tries its routes in order, and matching the ~80 routes before the device API cost
# a refresh about a tenth of its CPU
snap_action_router = APIRouter(tags=["device store"])

MAX_ACTIONS = 1000
MAX_BODY = 4 * 1024 * 1024
DEFAULT_ARCH = "amd64"
_FIND_LIMIT = 100


# -- the snap object -----------------------------------------------------------------


# Publisher objects change rarely (a display name edit) and every refresh names a few
# of them: each process remembers them briefly instead of reading two tables per request.
_PUBLISHER_TTL = 30.0
_publisher_cache: dict[str, tuple[float, dict[str, str]]] = {}
_publisher_lock = threading.Lock()


@dataclass
class _Publishers:
    """Publisher objects of a set of account ids (persons or brands), looked up once."""

    by_id: dict[str, dict[str, str]] = field(default_factory=dict)

    @classmethod
    def load(cls, session: Session, ids: Iterable[str]) -> _Publishers:
        wanted = set(ids)
        now = time.monotonic()
        out: dict[str, dict[str, str]] = {}
        with _publisher_lock:
            for i in wanted:
                hit = _publisher_cache.get(i)
                if hit is not None and hit[0] > now:
                    out[i] = hit[1]
        missing = sorted(wanted - out.keys())
        if not missing:
            return cls(out)
        loaded: dict[str, dict[str, str]] = {}
        brands = select(Brand.account_id, Brand.username, Brand.display_name, Brand.validation)
        for b in session.execute(brands.where(Brand.account_id.in_(missing))):
            loaded[b.account_id] = {
                "id": b.account_id, "username": b.username,
                "display-name": b.display_name, "validation": b.validation,
            }  # fmt: skip
        rest = [i for i in missing if i not in loaded]
        if rest:
            persons = select(Account.id, Account.display_name).where(Account.id.in_(rest))
            for a in session.execute(persons):
                loaded[a.id] = {
                    "id": a.id, "username": a.id.lower(),
                    "display-name": a.display_name, "validation": "unproven",
                }  # fmt: skip
        with _publisher_lock:
            if len(_publisher_cache) > 10_000:
                _publisher_cache.clear()
            for i, obj in loaded.items():
                _publisher_cache[i] = (now + _PUBLISHER_TTL, obj)
        out.update(loaded)
        return cls(out)

    def get(self, account_id: str) -> dict[str, str]:
        return self.by_id.get(
            account_id,
            {"id": account_id, "username": account_id.lower(), "display-name": account_id,
             "validation": "unproven"},
        )  # fmt: skip


def _snap_type(value: str) -> str:
    # snapd refuses a response with a type it does not know (details_v2.go)
    return value if value in {"app", "gadget", "kernel", "base", "os", "snapd"} else "app"


def snap_object(
    rev: ResolvedRevision,
    publishers: _Publishers,
    deployment: Deployment,
    *,
    yaml: bool = True,
) -> dict[str, Any]:
    """The snap object snapd decodes (details_v2.go), for one revision."""
    details = rev.details
    filename = f"{rev.name}_{rev.revision}.snap"
    settings = deployment.settings
    obj: dict[str, Any] = {
        "architectures": list(rev.architectures),
        "base": rev.base or "",
        "confinement": rev.confinement,
        "contact": str(details.get("contact", "")),
        "created-at": asserts.format_time(rev.created_at),
        "description": str(details.get("description", "")),
        "download": {
            "url": download_url(
                settings.download_base_url, deployment.secret, rev.blob_key, filename
            ),
            "size": rev.size,
            "sha3-384": rev.sha3_384,
            "deltas": [],
        },
        "epoch": rev.epoch or {"read": [0], "write": [0]},
        "license": str(details.get("license", "")),
        "name": rev.name,
        "prices": {},
        "private": rev.private,
        "publisher": publishers.get(rev.publisher_id),
        "revision": rev.revision,
        "snap-id": rev.snap_id,
        "summary": str(details.get("summary", "")),
        "title": str(details.get("title", "") or rev.name),
        "type": _snap_type(rev.snap_type),
        "version": rev.version,
        "website": str(details.get("website", "")),
        "store-url": "",
        "media": [],
        "common-ids": [],
    }
    if yaml:
        obj["snap-yaml"] = rev.snap_yaml
    return obj


# -- snap action ------------------------------------------------------------------------


def _str(entry: dict[str, Any], name: str, *, required: bool = False) -> str | None:
    value = entry.get(name)
    if isinstance(value, str) and len(value) <= 256:
        return value
    if value is None:
        if required:
            raise InvalidInput(f"{name!r} is required", field=name)
        return None
    raise InvalidInput(f"{name!r} must be a string", field=name)


def _int(entry: dict[str, Any], name: str) -> int | None:
    value = entry.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 2**31:
        raise InvalidInput(f"{name!r} must be a positive integer", field=name)
    return value


@dataclass
class _Context:
    snap_id: str
    revision: int
    channel: str | None
    cohort: str | None


def _parse_context(items: Any) -> dict[str, _Context]:
    if items is None:
        return {}
    if not isinstance(items, list) or len(items) > MAX_ACTIONS:
        raise InvalidInput("context must be a list", field="context")
    out: dict[str, _Context] = {}
    for item in items:
        if not isinstance(item, dict):
            raise InvalidInput("context entries are objects", field="context")
        snap_id = _str(item, "snap-id", required=True)
        key = _str(item, "instance-key") or snap_id
        revision = _int(item, "revision")
        assert snap_id is not None and key is not None
        if revision is None:
            raise InvalidInput("context entries need a revision", field="context.revision")
        out[key] = _Context(
            snap_id, revision, _str(item, "tracking-channel"), _str(item, "cohort-key")
        )
    return out


def _error(action: str, key: str, code: str, message: str, **extra: Any) -> dict[str, Any]:
    result: dict[str, Any] = {
        "result": "error", "instance-key": key, "error": {"code": code, "message": message},
    }  # fmt: skip
    result.update({k.replace("_", "-"): v for k, v in extra.items() if v is not None})
    del action
    return result


@dataclass
class _Plan:
    """Parsed actions: what to resolve and what to answer without resolving."""

    requests: list[ResolveRequest] = field(default_factory=list)
    # request key -> (action, instance key, name asked for, context)
    asked: dict[str, tuple[str, str, str | None, _Context | None]] = field(default_factory=dict)
    results: list[dict[str, Any]] = field(default_factory=list)
    fetches: list[dict[str, Any]] = field(default_factory=list)
    refreshes: int = 0
    cohorts: dict[str, str] = field(default_factory=dict)


def _cohort_bucket(deployment: Deployment, cohort: str | None) -> str | None:
    """The bucket key a valid cohort key stands for (devices of one cohort see the same)."""
    if not cohort:
        return None
    body, _, mac = cohort.rpartition(".")
    if body and hmac.compare_digest(_cohort_mac(deployment, body), mac):
        return "cohort:" + body
    return None


def _cohort_mac(deployment: Deployment, body: str) -> str:
    return hmac.new(deployment.secret, b"cohort:" + body.encode(), hashlib.sha256).hexdigest()[:32]


def _plan(
    body: dict[str, Any], context: dict[str, _Context], resolver: ChannelResolver,
    scope: CatalogueScope,
) -> _Plan:  # fmt: skip
    actions = body.get("actions", [])
    if not isinstance(actions, list) or len(actions) > MAX_ACTIONS:
        raise InvalidInput("actions must be a list", field="actions")
    plan = _Plan()
    by_name: list[tuple[dict[str, Any], str, str]] = []
    seen: set[str] = set()
    for entry in actions:
        if not isinstance(entry, dict):
            raise InvalidInput("actions are objects", field="actions")
        action = _str(entry, "action", required=True)
        if action == "fetch-assertions":
            plan.fetches.append(entry)
            continue
        if action not in ("install", "download", "refresh"):
            raise InvalidInput(f"unknown action {action!r}", field="action")
        key = _str(entry, "instance-key", required=True)
        assert key is not None
        if key in seen:
            raise InvalidInput(f"instance-key {key!r} is used twice", field="instance-key")
        seen.add(key)
        cohort = _str(entry, "cohort-key")
        if cohort:
            plan.cohorts[key] = cohort
        if action == "refresh":
            plan.refreshes += 1
            current = context.get(key)
            snap_id = _str(entry, "snap-id") or (current.snap_id if current else None)
            if current is None or snap_id is None:
                plan.results.append(
                    _error(action, key, "missing-context", "refresh needs a context entry",
                           snap_id=snap_id)
                )  # fmt: skip
                continue
            channel = _str(entry, "channel") or current.channel
            revision = _int(entry, "revision")
            plan.requests.append(ResolveRequest(key, snap_id, channel, revision))
            plan.asked[key] = (action, key, None, current)
        else:
            name = _str(entry, "name", required=True)
            assert name is not None
            _int(entry, "revision")  # refuse malformed values before any lookup
            _str(entry, "channel")
            by_name.append((entry, key, name))
            plan.asked[key] = (action, key, name, None)
    if by_name:
        found = resolver.lookup_names([n for _, _, n in by_name], scope)
        for entry, key, name in by_name:
            action = plan.asked[key][0]
            snap = found.get(name)
            if snap is None:
                del plan.asked[key]
                plan.results.append(
                    _error(action, key, "name-not-found", f"no snap named {name!r} in this store",
                           name=name)
                )  # fmt: skip
                continue
            if entry.get("channel") is not None and entry.get("revision") is not None:
                del plan.asked[key]
                plan.results.append(
                    _error(action, key, "revision-conflict",
                           "give a channel or a revision, not both", name=name,
                           snap_id=snap.snap_id)
                )  # fmt: skip
                continue
            plan.requests.append(
                ResolveRequest(key, snap.snap_id, _str(entry, "channel"), _int(entry, "revision"))
            )
    return plan


def _not_resolved(
    resolver: ChannelResolver, request: ResolveRequest, action: str, name: str | None,
    known: set[str],
) -> dict[str, Any]:  # fmt: skip
    if request.snap_id not in known and action == "refresh":
        return _error(action, request.key, "id-not-found", "snap not found in this store",
                      snap_id=request.snap_id)  # fmt: skip
    releases = [
        {"architecture": arch, "channel": channel}
        for arch, channel in resolver.available(request.snap_id)
    ]
    if request.revision is not None:
        message = f"no revision {request.revision} available"
    else:
        message = f"no revision available in channel {request.channel or 'stable'!r}"
    error = _error(action, request.key, "revision-not-found", message, snap_id=request.snap_id,
                   name=name)  # fmt: skip
    error["error"]["extra"] = {"releases": releases}
    return error


def _known_snaps(session: Session, snap_ids: Sequence[str], scope: CatalogueScope) -> set[str]:
    if not snap_ids:
        return set()
    q = select(Snap.snap_id).where(
        Snap.snap_id.in_(sorted(set(snap_ids))), scope.sql_filter(Snap.store_id, Snap.snap_id)
    )
    return set(session.scalars(q))


def _fetch_assertions(
    ctx: RequestContext, fetches: list[dict[str, Any]], max_formats: dict[str, int]
) -> list[dict[str, Any]]:
    base = ctx.deployment.settings.base_url
    out: list[dict[str, Any]] = []
    for group in fetches:
        key = _str(group, "key", required=True)
        items = group.get("assertions")
        if not isinstance(items, list) or len(items) > MAX_ACTIONS:
            raise InvalidInput("assertions must be a list", field="assertions")
        urls: list[str] = []
        errors: list[dict[str, Any]] = []
        for item in items:
            if not isinstance(item, dict):
                raise InvalidInput("assertions entries are objects", field="assertions")
            type_name = _str(item, "type", required=True)
            assert type_name is not None
            kind = asserts.lookup_type(type_name)
            max_format = max_formats.get(type_name, 0)
            sequence_key = item.get("sequence-key")
            ref_name = "sequence-key" if sequence_key is not None else "primary-key"
            raw_key = sequence_key if sequence_key is not None else item.get("primary-key")
            if not isinstance(raw_key, list) or not all(isinstance(k, str) for k in raw_key):
                raise InvalidInput(f"{ref_name} must be a list of strings", field=ref_name)
            if kind is None:
                errors.append({"code": "not-found", "message": "unknown assertion type",
                               "type": type_name, ref_name: raw_key})  # fmt: skip
                continue
            newer_than = item.get("if-newer-than")
            if newer_than is not None and (
                isinstance(newer_than, bool) or not isinstance(newer_than, int)
            ):
                raise InvalidInput("if-newer-than must be an integer", field="if-newer-than")
            try:
                if sequence_key is not None:
                    lookup = Lookup(type_name, tuple(raw_key), max_format, _int(item, "sequence"))
                else:
                    full = kind.TYPE.complete_primary_key(tuple(raw_key))
                    lookup = Lookup(type_name, full, max_format)
                data, revision = find_assertion(ctx.session, ctx.deployment.root.trusted, lookup)
            except (AssertionNotFound, asserts.DecodeError):
                errors.append({"code": "not-found", "message": "not found", "type": type_name,
                               ref_name: raw_key})  # fmt: skip
                continue
            if newer_than is not None and revision <= newer_than and sequence_key is None:
                continue
            decoded_key = asserts.decode(data).primary_key
            urls.append(stream_url(base, type_name, decoded_key, max_format))
        if urls:
            out.append({"result": "fetch-assertions", "key": key, "assertion-stream-urls": urls})
        elif errors:
            out.append({"result": "fetch-assertions", "key": key, "error-list": errors})
    return out


@dataclass
class _Answer:
    body: dict[str, Any]
    installed: list[InstalledSnap]
    offers: list[Offer]
    write_inventory: bool


def _snap_action(
    ctx: RequestContext, caller: Caller, body: dict[str, Any],
    inventory: InventorySnapshot | None = None,
) -> _Answer:  # fmt: skip
    store_id = require_store(caller)
    request = ctx.request
    arch = (
        request.headers.get("snap-device-architecture")
        or request.headers.get("x-ubuntu-architecture")
        or DEFAULT_ARCH
    )
    context = _parse_context(body.get("context"))
    max_formats_raw = body.get("assertion-max-formats") or {}
    if not isinstance(max_formats_raw, dict):
        raise InvalidInput("assertion-max-formats must be an object")
    max_formats = {str(k): v for k, v in max_formats_raw.items() if isinstance(v, int)}
    fields = body.get("fields")
    want_yaml = not isinstance(fields, list) or "snap-yaml" in fields
    scope = ctx.stores.catalogue(store_id)
    resolver = ChannelResolver(ctx.session)
    plan = _plan(body, context, resolver, scope)
    results = list(plan.results)
    offers: list[Offer] = []
    if plan.requests:
        # devices are bucketed per device; a cohort key buckets all its members alike
        base_key = caller.bucket_key or (
            f"account:{caller.account_id}" if caller.account_id else ""
        )
        grouped: dict[str, list[ResolveRequest]] = {}
        for req in plan.requests:
            current = plan.asked[req.key][3]
            cohort = plan.cohorts.get(req.key) or (current.cohort if current else None)
            bucket = _cohort_bucket(ctx.deployment, cohort)
            grouped.setdefault(bucket or base_key, []).append(req)
        # auto-refresh (several refresh actions) leaves snaps without an update out of
        # its answer: those are decided but never loaded
        installed_now = {
            key: asked[3].revision
            for key, asked in plan.asked.items()
            if plan.refreshes > 1 and asked[0] == "refresh" and asked[3] is not None
        }
        resolved: dict[str, ResolvedRevision] = {}
        no_update: set[str] = set()
        for bucket_key, reqs in grouped.items():
            found, same = resolver.resolve_changes(reqs, arch, bucket_key, scope, installed_now)
            resolved.update(found)
            no_update |= same
        publishers = _Publishers.load(ctx.session, (r.publisher_id for r in resolved.values()))
        known: set[str] | None = None
        for req in plan.requests:
            action, key, name, current = plan.asked[req.key]
            if req.key in no_update:
                continue
            rev = resolved.get(req.key)
            if rev is None:
                if known is None:
                    known = _known_snaps(ctx.session, [r.snap_id for r in plan.requests], scope)
                results.append(_not_resolved(resolver, req, action, name, known))
                continue
            unchanged = current is not None and rev.revision == current.revision
            if action == "refresh" and unchanged and plan.refreshes > 1:
                # no update: only a single-snap refresh needs the answer ("unexpectedly
                # empty response" otherwise); auto-refresh leaves it out
                continue
            result: dict[str, Any] = {
                "result": action,
                "instance-key": key,
                "snap-id": rev.snap_id,
                "name": rev.name,
                "snap": snap_object(rev, publishers, ctx.deployment, yaml=want_yaml),
                "effective-channel": rev.channel.name if rev.channel else None,
            }
            if rev.redirect_channel:
                result["redirect-channel"] = rev.redirect_channel
            if result["effective-channel"] is None:
                del result["effective-channel"]
            results.append(result)
            if caller.device is not None and (current is None or rev.revision != current.revision):
                offers.append(
                    Offer(rev.snap_id, current.revision if current else None, rev.revision,
                          rev.channel.name if rev.channel else "")
                )  # fmt: skip
    if plan.fetches:
        results.extend(_fetch_assertions(ctx, plan.fetches, max_formats))
    installed = [InstalledSnap(c.snap_id, c.revision, c.channel or "") for c in context.values()]
    write = False
    if caller.device is not None:
        device = _device_ref(caller)
        write = InventoryService.needs_write(inventory, device, installed, offers) and not (
            offers
            and not InventoryService.needs_write(inventory, device, installed, [])
            and _offered_recently(device, installed, offers)
        )
    return _Answer({"results": results, "error-list": []}, installed, offers, write)


def _device_ref(caller: Caller) -> DeviceRef:
    assert caller.device is not None
    d = caller.device
    return DeviceRef(d.brand_id, d.model, d.serial, d.store_id)


def _refresh(ctx: RequestContext, body_bytes: bytes) -> tuple[Caller, _Answer]:
    caller = caller_of(ctx, check_blocked=False)
    inventory = None
    if caller.device is not None:
        # the blocked check and the inventory read in one statement
        state = InventoryService(ctx.session).state(_device_ref(caller))
        if state.blocked:
            raise DeviceBlocked(f"device {caller.device.serial!r} is blocked")
        inventory = state.inventory
    if len(body_bytes) > MAX_BODY:
        raise InvalidInput("the request is too large")
    return caller, _snap_action(ctx, caller, parse_json_object(body_bytes), inventory)


def _record(deployment: Deployment, caller: Caller, answer: _Answer) -> None:
    with deployment.database.unit_of_work() as session:
        InventoryService(session).record(_device_ref(caller), answer.installed, answer.offers)
    _offers_recorded(_device_ref(caller), answer)


# What each device was last offered, remembered by this process: a device asking again
# with the same context within SEEN_INTERVAL (a held refresh, `snap refresh --list` in a
# loop, a retry) is offered the same revisions, and another history row would say nothing
# new; its inventory row is throttled the same way (InventoryService.needs_write). Another
# process, or this one after a restart, records the offer once more: harmless.
_RECENT_OFFERS_MAX = 100_000
_recent_offers: dict[DeviceRef, tuple[float, tuple[Offer, ...], tuple[InstalledSnap, ...]]] = {}
_recent_lock = threading.Lock()


def _offers_recorded(device: DeviceRef, answer: _Answer) -> None:
    entry = (time.monotonic(), tuple(answer.offers), tuple(sorted(answer.installed)))
    with _recent_lock:
        if len(_recent_offers) >= _RECENT_OFFERS_MAX:
            _recent_offers.clear()
        _recent_offers[device] = entry


def _offered_recently(
    device: DeviceRef, installed: list[InstalledSnap], offers: list[Offer]
) -> bool:
    hit = _recent_offers.get(device)
    if hit is None:
        return False
    at, offered, context = hit
    return (
        time.monotonic() - at < SEEN_INTERVAL.total_seconds()
        and offered == tuple(offers)
        and context == tuple(sorted(installed))
    )


# Where the refresh's reads run. On SQLite they are page-cache reads of a local file
# that never wait for a lock (WAL: readers go on while a writer holds its lock), and the
# rest is Python holding the GIL, so a thread hop buys no parallelism, only hand-offs:
# run on the event loop, a refresh cost 4.4 ms of server CPU against 6.9 ms in a pool of
# two threads (and 5.4 ms in one), measured with refresh_bench's request under wrk. On
# PostgreSQL each statement waits for a round trip: there the reads run in the refresh's
# own pool, where eight threads overlap those waits without competing with the shared
# pool. Inventory writes, which may queue on SQLite's write lock, always run in the
# shared pool: a writer holding the lock never stalls the reads.
# (ThreadPoolExecutor starts its threads on first use: none on SQLite)
_refresh_pool = ThreadPoolExecutor(8, thread_name_prefix="iotstore-refresh")


@snap_action_router.post("/v2/snaps/refresh")
async def refresh(call: DeviceCallDep) -> Response:
    """snapd's snap action: install, download, refresh and fetch-assertions in one request.

    The answer is computed in a read-only unit of work (on the event loop with
    SQLite, in the refresh's pool otherwise); then, only when something
    changed, the device's inventory is written in its own short writing one.
    """
    if call.deployment.database.embedded:
        caller, answer, response = _answer_of(call)
    else:
        loop = asyncio.get_running_loop()
        caller, answer, response = await loop.run_in_executor(_refresh_pool, _answer_of, call)
    if answer.write_inventory:
        # after the read: the answer never waits on another device's inventory write for
        # long, and a failed inventory write must not fail the device's refresh
        await run_in_threadpool(_record_logged, call.deployment, caller, answer)
    return response


def _answer_of(call: DeviceCall) -> tuple[Caller, _Answer, Response]:
    with call.read() as ctx:
        caller, answer = _refresh(ctx, call.body)
    return caller, answer, json_response(answer.body)


def _record_logged(deployment: Deployment, caller: Caller, answer: _Answer) -> None:
    try:
        _record(deployment, caller, answer)
    except Exception:  # inventory is best effort: logged, never fatal to the refresh
        log.warning("inventory write failed", exc_info=True)


# -- info and find -----------------------------------------------------------------


def _snap_in_scope(ctx: RequestContext, scope: CatalogueScope, name: str) -> Snap:
    snap = ChannelResolver(ctx.session).lookup_names([name], scope).get(name)
    if snap is None:
        raise NotFound("snap not found")
    return snap


@router.get("/v2/snaps/info/{name}")
def info(ctx: DeviceRead, request: Request, name: str) -> Response:
    """Every open channel of a snap for the architecture (``snap info``)."""
    caller = caller_of(ctx)
    scope = ctx.stores.catalogue(require_store(caller))
    snap = _snap_in_scope(ctx, scope, name)
    arch = request.query_params.get("architecture") or DEFAULT_ARCH
    resolver = ChannelResolver(ctx.session)
    rows = ctx.session.execute(
        select(ChannelRelease, Revision)
        .join(Revision, Revision.id == ChannelRelease.revision_id)
        .where(
            ChannelRelease.snap_id == snap.snap_id,
            ChannelRelease.architecture.in_([arch, "all"]),
        )
    ).all()
    requests = [
        ResolveRequest(f"{r.track}/{r.risk}/{r.branch}".rstrip("/"), snap.snap_id,
                       f"{r.track}/{r.risk}/{r.branch}".rstrip("/"))
        for r, _ in rows
    ]  # fmt: skip
    resolved = resolver.resolve(requests, arch, caller.bucket_key or "", scope)
    publishers = _Publishers.load(ctx.session, [snap.publisher_id])
    channel_map = []
    for row, _ in sorted(rows, key=lambda p: (p[0].track, p[0].risk, p[0].branch)):
        key = f"{row.track}/{row.risk}/{row.branch}".rstrip("/")
        rev = resolved.get(key)
        if rev is None or rev.channel is None or rev.channel.name != key:
            continue  # the channel is closed here (fell back), or expired
        entry = snap_object(rev, publishers, ctx.deployment, yaml=False)
        entry["channel"] = {
            "architecture": arch, "name": key if row.track != "latest" else key[len("latest/"):],
            "track": row.track, "risk": row.risk,
            "released-at": asserts.format_time(row.released_at),
        }  # fmt: skip
        channel_map.append(entry)
    if not channel_map:
        raise NotFound("snap not found")
    first = channel_map[0]
    common = {k: first[k] for k in ("name", "snap-id", "publisher", "summary", "title",
                                    "description", "license", "private", "type")}  # fmt: skip
    return json_response(
        {"name": snap.name, "snap-id": snap.snap_id, "snap": common, "channel-map": channel_map}
    )


_FIND_REFUSED = set('+=&|><!(){}[]^"~*?:\\/')


@router.get("/v2/snaps/find")
def find(ctx: DeviceRead, request: Request) -> Response:
    """Search the store's catalogue by text (``q``) or name prefix (``name``)."""
    caller = caller_of(ctx)
    scope = ctx.stores.catalogue(require_store(caller))
    params = request.query_params
    text = (params.get("q") or "").strip().lower()
    prefix = (params.get("name") or "").strip().lower().rstrip("*")
    if len(text) > 100 or len(prefix) > 100 or set(text) & _FIND_REFUSED:
        raise InvalidInput("bad search query")
    arch = params.get("architecture") or DEFAULT_ARCH
    q = select(Snap).where(scope.sql_filter(Snap.store_id, Snap.snap_id))
    if prefix:
        q = q.where(Snap.name.startswith(prefix, autoescape=True))
    elif text:
        q = q.where(Snap.name.contains(text, autoescape=True))
    snaps = list(ctx.session.scalars(q.order_by(Snap.name).limit(_FIND_LIMIT)))
    channel = params.get("channel") or "stable"
    try:
        parse_channel(channel)
    except ChannelError as e:
        raise InvalidInput(str(e)) from e
    resolver = ChannelResolver(ctx.session)
    resolved = resolver.resolve(
        [ResolveRequest(s.snap_id, s.snap_id, channel) for s in snaps], arch,
        caller.bucket_key or "", scope,
    )  # fmt: skip
    publishers = _Publishers.load(ctx.session, (r.publisher_id for r in resolved.values()))
    results = []
    for snap in snaps:
        rev = resolved.get(snap.snap_id)
        if rev is None:
            continue
        obj = snap_object(rev, publishers, ctx.deployment, yaml=False)
        revision = dict(obj)
        revision["channel"] = rev.channel.risk if rev.channel else channel
        results.append({"name": snap.name, "snap-id": snap.snap_id, "snap": obj,
                        "revision": revision})  # fmt: skip
    return json_response({"results": results})


# -- cohorts and the v1 catalogue --------------------------------------------------------


@router.post("/v2/cohorts")
async def cohorts(ctx: DeviceRead, request: Request) -> Response:
    """Cohort keys: devices sharing one see the same revisions of progressive releases."""
    body = parse_json_object(await request.body())
    caller = caller_of(ctx)
    scope = ctx.stores.catalogue(require_store(caller))
    names = body.get("snaps")
    if (
        not isinstance(names, list)
        or not all(isinstance(n, str) for n in names)
        or len(names) > 100
    ):
        raise InvalidInput("snaps must be a list of names", field="snaps")
    found = ChannelResolver(ctx.session).lookup_names(names, scope)
    if not found:
        raise NotFound("snap not found")
    keys = {}
    for name in found:
        nonce = secrets.token_urlsafe(24)
        keys[name] = f"{nonce}.{_cohort_mac(ctx.deployment, nonce)}"
    return json_response({"cohort-keys": keys})


@router.get("/api/v1/snaps/sections")
def sections(ctx: DeviceRead) -> Response:
    """Sections (categories) of the catalogue: none are curated yet."""
    caller_of(ctx)
    return json_response(
        {"_embedded": {"clickindex:sections": []}}, media_type="application/hal+json"
    )


@router.get("/api/v1/snaps/names")
def names(ctx: DeviceRead) -> Response:
    """The command catalogue snapd fetches daily (an empty list is fine)."""
    caller_of(ctx)
    # snapd streams this and wants exactly this key order at the start
    return Response(
        b'{"_embedded": {"clickindex:package": []}}',
        media_type="application/hal+json",
    )
