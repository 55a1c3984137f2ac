"""What every device-facing endpoint shares: its unit of work, and who is calling.

snapd sends two header families (device-api.md 2.1): ``api/v1/...``,
assertions and downloads use ``X-Device-Authorization`` / ``X-Ubuntu-Store``;
``v2/snaps/...`` uses ``Snap-Device-Authorization`` / ``Snap-Device-Store``.
Both are accepted everywhere. A caller is one of:

* a **device** with a session (bound to its model's store),
* a **person** with an API token (``Authorization: Bearer``/``Macaroon``, as
  ``UBUNTU_STORE_AUTH`` makes snapd's tooling send it) who holds
  ``snap:download`` in the store named by the store header (Viewers build
  images this way),
* **anonymous**, served only by public stores.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.responses import Response

from iotstore.deployment import Deployment
from iotstore.devices.sessions import (
    DeviceIdentity,
    DeviceSessionService,
    SessionNeedsRefresh,
    SessionVerifier,
)
from iotstore.errors import InvalidInput, NotFound, Unauthenticated
from iotstore.stores.permissions import Permission

from ..auth import authorize
from ..context import Principal, RequestContext

__all__ = [
    "STORE_VERSION",
    "Caller",
    "DeviceCall",
    "DeviceCallDep",
    "DeviceRead",
    "DeviceWrite",
    "caller_of",
    "json_response",
    "session_verifier",
]

# snapd reads Snap-Store-Version: >= 55 unlocks what 2.6x clients send (held snaps)
STORE_VERSION = "55"


def json_response(data: Any, status: int = 200, media_type: str = "application/json") -> Response:
    """JSON with exactly ``media_type`` (snapd compares content types literally)."""
    return Response(
        json.dumps(data, separators=(",", ":")).encode(),
        status_code=status,
        media_type=media_type,
        headers={"Snap-Store-Version": STORE_VERSION},
    )


def _unit_of_work(write: bool) -> Callable[..., Iterator[RequestContext]]:
    def dependency(request: Request) -> Iterator[RequestContext]:
        deployment = request.app.state.deployment
        with deployment.database.unit_of_work(write=write) as session:
            yield RequestContext(session=session, deployment=deployment, request=request)

    # Device endpoints are public in the permission table: each authenticates the
    # device, person or anonymous caller itself (caller_of) against the store's
    # rules. Unlike web.auth.require, a POST here may be read-only (snap action):
    # on SQLite a writing unit takes the one write lock up front.
    dependency.permission = Permission.PUBLIC  # type: ignore[attr-defined]
    return dependency


DeviceRead = Annotated[RequestContext, Depends(_unit_of_work(False), scope="function")]
DeviceWrite = Annotated[RequestContext, Depends(_unit_of_work(True), scope="function")]


@dataclass(frozen=True)
class DeviceCall:
    """A device request whose endpoint opens its own units of work (the hot paths).

    A synchronous generator dependency (:data:`DeviceRead`) costs two thread
    hand-offs (open, close) on top of the endpoint's own; an endpoint that takes
    this instead runs its whole request (read, inventory write) in the one
    thread FastAPI gives a sync endpoint.
    """

    request: Request
    deployment: Deployment
    body: bytes

    def read(self) -> AbstractContextManager[RequestContext]:
        """A read-only unit of work (deferred BEGIN on SQLite) as a request context."""
        return _context(self.deployment, self.request, write=False)


@contextmanager
def _context(deployment: Deployment, request: Request, *, write: bool) -> Iterator[RequestContext]:
    with deployment.database.unit_of_work(write=write) as session:
        yield RequestContext(session=session, deployment=deployment, request=request)


async def _device_call(request: Request) -> DeviceCall:
    # async: reading the body needs the event loop, and nothing here blocks
    return DeviceCall(request, request.app.state.deployment, await request.body())


_device_call.permission = Permission.PUBLIC  # type: ignore[attr-defined]  # as _unit_of_work
DeviceCallDep = Annotated[DeviceCall, Depends(_device_call)]


def session_verifier(ctx: RequestContext) -> SessionVerifier:
    """The process's device-session verifier (it caches verifications)."""
    state = ctx.request.app.state
    verifier: SessionVerifier | None = getattr(state, "device_session_verifier", None)
    if verifier is None:
        verifier = SessionVerifier(ctx.deployment.secret)
        state.device_session_verifier = verifier
    return verifier


def macaroon_root(value: str) -> str | None:
    """The root macaroon of ``Macaroon root="..."[, discharge=...]`` or ``Macaroon X``."""
    scheme, _, rest = value.strip().partition(" ")
    rest = rest.strip()
    if scheme.lower() != "macaroon" or not rest:
        return None
    for part in rest.split(","):
        name, sep, raw = part.strip().partition("=")
        if sep and name.strip() == "root":
            return raw.strip().strip('"') or None
    if "," not in rest and '"' not in rest:
        return rest
    return None


@dataclass(frozen=True)
class Caller:
    """Who is calling and which store's catalogue applies (None: no brand store named)."""

    store_id: str | None
    device: DeviceIdentity | None = None
    account_id: str | None = None

    @property
    def bucket_key(self) -> str | None:
        """What progressive releases bucket by: the device, else nothing (full release)."""
        return self.device.key if self.device else None


def _device_session(request: Request) -> str | None:
    header = request.headers.get("snap-device-authorization") or request.headers.get(
        "x-device-authorization"
    )
    if not header:
        return None
    session = macaroon_root(header)
    if session is None:
        raise SessionNeedsRefresh("malformed device authorization")
    return session


def requested_store(request: Request) -> str | None:
    """The store ID header of either family."""
    return request.headers.get("snap-device-store") or request.headers.get("x-ubuntu-store")


def caller_of(
    ctx: RequestContext, *, anonymous_ok: bool = False, check_blocked: bool = True
) -> Caller:
    """Authenticate the caller of a device endpoint and decide its store.

    ``anonymous_ok`` serves anonymous callers of private stores too (assertions:
    a device fetches its serial's chain before it has a session).
    ``check_blocked=False`` leaves the blocked-device check to the caller (the
    snap action reads it together with the device's inventory).

    Raises :class:`SessionNeedsRefresh` (401, snapd renews its session) for
    a bad or expired session or one bound to another store than the header
    names, :class:`~iotstore.devices.errors.DeviceBlocked` for a blocked
    device, :class:`Unauthenticated` for an anonymous caller of a private
    store, and the admin rules' errors for a person without
    ``snap:download`` in the store.
    """
    request = ctx.request
    store_id = requested_store(request)
    session = _device_session(request)
    if session is not None:
        identity = session_verifier(ctx).verify(session)
        if store_id is not None and store_id != identity.store_id:
            # a remodelled device still holding its old store's session
            raise SessionNeedsRefresh("the device session is for another store")
        if check_blocked:
            DeviceSessionService(
                ctx.session, ctx.trust, session_verifier(ctx), ""
            ).check_not_blocked(identity)
        return Caller(identity.store_id, device=identity)
    header = request.headers.get("authorization")
    if header:
        token = _user_token(header)
        verified = ctx.tokens.verify(token)
        ctx.principal = Principal(account=verified.account, token=verified)
        if store_id is None:
            return Caller(None, account_id=verified.account.id)
        authorize(ctx, Permission.SNAP_DOWNLOAD, store_id)
        return Caller(store_id, account_id=verified.account.id)
    if store_id is None or anonymous_ok:
        return Caller(store_id)
    store = ctx.stores.get(store_id)
    if store.private:
        raise Unauthenticated(
            f"store {store_id!r} is private: use a device session or a Viewer's credentials"
        )
    return Caller(store.id)


def _user_token(header: str) -> str:
    scheme, _, rest = header.strip().partition(" ")
    if scheme.lower() == "bearer" and rest.strip():
        return rest.strip()
    root = macaroon_root(header)
    if root is None:
        raise Unauthenticated("unsupported Authorization header")
    return root


def require_store(caller: Caller) -> str:
    """The caller's store, or a 404 when no brand store is named."""
    if caller.store_id is None:
        raise NotFound("this store serves brand stores only: send the store ID header")
    return caller.store_id


def parse_json_object(body: bytes) -> dict[str, Any]:
    """A JSON object body, or :class:`InvalidInput`."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeError) as e:
        raise InvalidInput("the body must be a JSON object") from e
    if not isinstance(data, dict):
        raise InvalidInput("the body must be a JSON object")
    return data
