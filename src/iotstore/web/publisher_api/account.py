"""``GET /dev/api/account``: the caller's account and the snaps it publishes.

snapcraft reads ``account_id`` (and ``sign-build`` reads ``id``), the keys
under both ``account_keys`` and ``account-keys`` (two commands read
different spellings), and ``snaps["16"][name]["snap-id"]`` to find a snap's
id (``close``, metadata). Only ``status == "Approved"`` names are listed by
``snapcraft names``.

``POST /dev/api/account/account-key`` is ``snapcraft register-key``: the
body carries the ``account-key-request`` of ``snap export-key
--account=ID NAME``; the deployment's root certifies it (``account-key``,
stored with the other assertions, where ``v2/assertions`` serves it) and
the account lists it from then on.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field

from iotstore import asserts
from iotstore.accounts.models import Account
from iotstore.errors import Conflict, Forbidden, InvalidInput
from iotstore.stores.permissions import Permission

from ..auth import require
from ..context import RequestContext
from .snaps import publishing

__all__ = ["router"]

router = APIRouter(tags=["publisher: account"])

Self = Annotated[RequestContext, Depends(require(Permission.ACCOUNT_SELF))]


class KeyRequest(BaseModel):
    """``snapcraft register-key``'s body."""

    model_config = ConfigDict(extra="ignore")

    account_key_request: str = Field(max_length=64 << 10)


def _account_keys(ctx: RequestContext, account_id: str) -> list[asserts.AccountKey]:
    found = ctx.trust.find_many("account-key", {"account-id": account_id})
    return sorted(
        (k for k in found if isinstance(k, asserts.AccountKey)), key=lambda k: k.validity.since
    )


def _key_json(key: asserts.AccountKey) -> dict[str, Any]:
    until = key.validity.until
    return {
        "name": key.name,
        "public-key-sha3-384": key.key_id,
        "since": asserts.format_time(key.validity.since),
        "until": asserts.format_time(until) if until else None,
    }


def _sign_as_root(ctx: RequestContext, type_name: str, headers: dict[str, Any], body: str) -> None:
    root = ctx.deployment.root
    signer = ctx.deployment.keystore.signer(root.key_name)
    ctx.trust.add(
        asserts.sign(type_name, {"authority-id": root.account_id, **headers}, signer, body)
    )


def _ensure_account(ctx: RequestContext, who: Account) -> None:
    try:
        ctx.trust.find("account", (who.id,))
    except asserts.NotFoundError:
        _sign_as_root(
            ctx,
            "account",
            {
                "account-id": who.id,
                "display-name": who.display_name,
                "validation": "unproven",
                "timestamp": asserts.format_time(datetime.now(UTC)),
            },
            "",
        )


@router.post("/dev/api/account/account-key")
def register_key(ctx: Self, body: KeyRequest) -> dict[str, Any]:
    """Certify a key the caller holds (its ``account-key-request``) for the caller's account."""
    who = ctx.principal.account
    if who is None:  # pragma: no cover - require(ACCOUNT_SELF) guarantees one
        raise Forbidden("sign in or send a token")
    try:
        request = asserts.decode(body.account_key_request.encode())
    except asserts.DecodeError as e:
        raise InvalidInput(f"not an account-key-request: {e}", field="account_key_request") from e
    if not isinstance(request, asserts.AccountKeyRequest):
        raise InvalidInput(
            f"expected an account-key-request, got {request.type_name}", field="account_key_request"
        )
    if request.account_id != who.id:
        raise Forbidden(f"the request is for account {request.account_id!r}, not yours")
    if request.sign_key_id != request.key_id:
        raise InvalidInput("the request must be signed by the key it registers")
    # the request is checked against the account's assertion: sign one if it has none
    _ensure_account(ctx, who)
    try:
        ctx.trust.check(request)
    except asserts.AssertsError as e:
        raise InvalidInput(f"account-key-request refused: {e}") from e
    existing = _account_keys(ctx, who.id)
    if any(k.name == request.name for k in existing):
        raise Conflict(f"you have a key named {request.name!r} already")
    if any(k.key_id == request.key_id for k in existing):
        raise Conflict("this key is registered already")
    # the account-key chains to an account assertion devices can fetch
    headers: dict[str, Any] = {
        "account-id": who.id,
        "name": request.name,
        "public-key-sha3-384": request.key_id,
        "since": asserts.format_time(request.validity.since),
    }
    if request.validity.until is not None:
        headers["until"] = asserts.format_time(request.validity.until)
    _sign_as_root(ctx, "account-key", headers, request.public_key.encoded)
    ctx.audit.record(
        ctx.actor, "account.key.register", target=request.key_id, after={"name": request.name}
    )
    return {"success": True, "public-key-sha3-384": request.key_id, "name": request.name}


@router.get("/dev/api/account")
def account(ctx: Self) -> dict[str, Any]:
    """The account, its registered keys and its snaps by series."""
    who = ctx.principal.account
    if who is None:  # pragma: no cover - require(ACCOUNT_SELF) guarantees one
        raise Forbidden("sign in or send a token")
    snaps = {
        snap.name: {
            "snap-id": snap.snap_id,
            "since": snap.created_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "private": snap.private,
            "status": "Approved",
            "store": snap.store_id,
        }
        for snap in publishing(ctx).snaps.account_snaps(who.id)
    }
    keys = [_key_json(k) for k in _account_keys(ctx, who.id)]
    return {
        "account_id": who.id,
        "id": who.id,
        "username": who.email.partition("@")[0],
        "email": who.email,
        "account_keys": keys,
        "account-keys": keys,
        "snaps": {"16": snaps},
    }
