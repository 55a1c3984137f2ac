"""``GET v2/assertions/{type}/{primary-key...}`` as snapd fetches assertions (device-api.md 6).

The bytes served are exactly those stored (signer's output), the newest
revision whose format the client supports (``max-format``). Not found is a
404 ``error-list`` in ``application/json``: snapd tolerates exactly that for
the ``store`` assertion it asks for on every install, anything else aborts
the install.

Assertions are public (a device fetches its serial's chain before it has a
session) except those that name a snap of a private store: its
``snap-declaration`` and ``snap-revision`` assertions are served only to
callers who may see the snap (a device or Viewer whose catalogue holds it, a
person with a role in its store, or its collaborator); to anyone else the snap
does not exist, as in every other device answer.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from iotstore import asserts
from iotstore.assertdb.models import StoredAssertion
from iotstore.errors import InvalidInput, IotstoreError, NotFound
from iotstore.snaps.models import Revision, Snap
from iotstore.stores.models import Store
from iotstore.stores.permissions import Permission

from .._publishing import publishing
from ..context import RequestContext
from ._common import STORE_VERSION, Caller, DeviceRead, caller_of

__all__ = ["AssertionNotFound", "Lookup", "find_assertion", "router", "stream_url"]

router = APIRouter(prefix="/v2/assertions", tags=["device store"])
MAX_KEY_LENGTH = 1024


class AssertionNotFound(NotFound):
    """No such assertion (snapd's ``not-found``)."""


@dataclass(frozen=True)
class Lookup:
    """One assertion to find: full primary key, or a sequence key plus sequence (or latest)."""

    type_name: str
    key: tuple[str, ...]
    max_format: int | None = None
    # sequence-forming types: None = latest sequence (key is then the sequence key)
    sequence: int | None = None


def parse_lookup(type_name: str, path: str, max_format: str | None, sequence: str | None) -> Lookup:
    """Interpret the URL of an assertion GET; raise :class:`InvalidInput` or a not-found."""
    kind = asserts.lookup_type(type_name)
    if kind is None:
        raise AssertionNotFound(f"assertion type {type_name!r} is not known")
    t = kind.TYPE
    if len(path) > MAX_KEY_LENGTH:
        raise InvalidInput("primary key too long")
    parts = tuple(p for p in path.split("/") if p) if path else ()
    fmt: int | None = None
    if max_format is not None:
        if not max_format.isdigit() or len(max_format) > 4:
            raise InvalidInput("max-format must be a small non-negative integer")
        fmt = int(max_format)
    if t.sequence_forming:
        sequence_key_length = len(t.primary_key) - 1
        seq: int | None = None
        if len(parts) == len(t.primary_key):  # full primary key form ".../{name}/{N}"
            parts, last = parts[:-1], parts[-1]
            seq = _sequence(last)
        elif sequence not in (None, "", "latest"):
            assert sequence is not None
            seq = _sequence(sequence)
        if len(parts) != sequence_key_length:
            raise InvalidInput(f"{type_name} needs its sequence key in the path")
        return Lookup(type_name, parts, fmt, seq)
    if not parts or not t.acceptable_primary_key(parts):
        raise InvalidInput(f"wrong primary key length for {type_name!r}")
    try:
        full = t.complete_primary_key(parts)
    except asserts.DecodeError as e:
        raise InvalidInput(str(e)) from e
    return Lookup(type_name, full, fmt)


def _sequence(value: str) -> int:
    if not value.isdigit() or len(value) > 9 or int(value) < 1:
        raise InvalidInput("sequence must be a positive integer or 'latest'")
    return int(value)


def find_assertion(
    session: Session, trusted: list[asserts.Assertion], lookup: Lookup
) -> tuple[bytes, int]:
    """The stored bytes and revision of the assertion; raise :class:`AssertionNotFound`."""
    if lookup.sequence is None and asserts.lookup_type(lookup.type_name) is not None:
        kind = asserts.lookup_type(lookup.type_name)
        assert kind is not None
        if kind.TYPE.sequence_forming:
            return _latest_sequence(session, lookup)
    key = lookup.key if lookup.sequence is None else (*lookup.key, str(lookup.sequence))
    for member in trusted:
        if member.type_name == lookup.type_name and member.primary_key == key:
            return member.to_bytes(), member.revision
    query = select(StoredAssertion.data, StoredAssertion.revision).where(
        StoredAssertion.type_name == lookup.type_name,
        StoredAssertion.primary_key == "/".join(key),
    )
    if lookup.max_format is not None:
        query = query.where(StoredAssertion.format <= lookup.max_format)
    row = session.execute(query.order_by(StoredAssertion.revision.desc()).limit(1)).first()
    if row is None:
        raise AssertionNotFound("not found")
    return bytes(row[0]), int(row[1])


def _latest_sequence(session: Session, lookup: Lookup) -> tuple[bytes, int]:
    prefix = "/".join(lookup.key) + "/"
    query = select(
        StoredAssertion.primary_key, StoredAssertion.revision, StoredAssertion.data
    ).where(
        StoredAssertion.type_name == lookup.type_name,
        StoredAssertion.primary_key.startswith(prefix, autoescape=True),
    )
    if lookup.max_format is not None:
        query = query.where(StoredAssertion.format <= lookup.max_format)
    best: tuple[int, int, bytes] | None = None
    for primary_key, revision, data in session.execute(query):
        tail = primary_key[len(prefix) :]
        if not tail.isdigit():
            continue
        candidate = (int(tail), int(revision), bytes(data))
        if best is None or candidate[:2] > best[:2]:
            best = candidate
    if best is None:
        raise AssertionNotFound("not found")
    return best[2], best[1]


def stream_url(base_url: str, type_name: str, key: tuple[str, ...], max_format: int) -> str:
    """An absolute URL of the assertion GET (fetch-assertions hands these out)."""
    path = "/".join(quote(k, safe="") for k in key)
    return f"{base_url.rstrip('/')}/v2/assertions/{type_name}/{path}?max-format={max_format}"


def _hex_digest(encoded: str) -> str | None:
    """A ``snap-sha3-384`` key (base64url, unpadded) as the hex the revisions table holds."""
    try:
        raw = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
    except (binascii.Error, ValueError):
        return None
    return raw.hex() if len(raw) == 48 else None


def _snap_named(ctx: RequestContext, lookup: Lookup) -> tuple[str, str, bool] | None:
    """(snap id, its store, whether that store is private) of the snap the lookup names."""
    if lookup.type_name == "snap-declaration" and len(lookup.key) == 2:
        by = Snap.snap_id == lookup.key[1]
    elif lookup.type_name == "snap-revision" and lookup.key:  # (digest, provenance)
        digest = _hex_digest(lookup.key[0])
        if digest is None:
            return None  # names no revision of ours
        by = Snap.snap_id.in_(select(Revision.snap_id).where(Revision.sha3_384 == digest))
    else:
        return None
    row = ctx.session.execute(
        select(Snap.snap_id, Snap.store_id, Store.private)
        .join(Store, Store.id == Snap.store_id)
        .where(by)
    ).first()
    return (str(row[0]), str(row[1]), bool(row[2])) if row is not None else None


def _may_see(ctx: RequestContext, caller: Caller, snap_id: str, store_id: str) -> bool:
    """Whether an authenticated caller may learn of a private store's snap."""
    if caller.device is None and caller.account_id is None:
        return False  # an anonymous caller's store header proves nothing
    if caller.store_id is not None and ctx.stores.catalogue(caller.store_id).contains(
        store_id, snap_id
    ):
        return True
    if caller.account_id is None:
        return False
    pub = publishing(ctx)
    snap = ctx.session.get(Snap, snap_id)
    try:
        assert snap is not None
        pub.snaps.check(ctx.actor, snap, Permission.SNAP_VIEW)
    except IotstoreError:
        return False
    return True


@router.get("/{type_name}/{key:path}")
def get_assertion(ctx: DeviceRead, request: Request, type_name: str, key: str) -> Response:
    """One assertion, as snapd's ``store_asserts.go`` expects it."""
    # credentials are checked when sent (a stale session is renewed); most assertions
    # are public: a device fetches its serial's chain before it has a session
    caller = caller_of(ctx, anonymous_ok=True)
    params = request.query_params
    lookup = parse_lookup(type_name, key, params.get("max-format"), params.get("sequence"))
    named = _snap_named(ctx, lookup)
    if named is not None and named[2] and not _may_see(ctx, caller, named[0], named[1]):
        raise AssertionNotFound("not found")
    data, _ = find_assertion(ctx.session, ctx.deployment.root.trusted, lookup)
    return Response(
        data, media_type=asserts.MEDIA_TYPE, headers={"Snap-Store-Version": STORE_VERSION}
    )
