"""``GET /dev/api/account``: the caller's account and the snaps it publishes.

snapcraft reads ``account_id`` (and ``sign-build`` reads ``id``), the keys
under both ``account_keys`` and ``account-keys`` (two commands read
different spellings), and ``snaps["16"][name]["snap-id"]`` to find a snap's
id (``close``, metadata). Only ``status == "Approved"`` names are listed by
``snapcraft names``.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends

from iotstore.errors import Forbidden
from iotstore.stores.permissions import Permission

from ..auth import require
from ..context import RequestContext
from .snaps import publishing

__all__ = ["router"]

router = APIRouter(tags=["publisher: account"])

Self = Annotated[RequestContext, Depends(require(Permission.ACCOUNT_SELF))]


@router.get("/dev/api/account")
def account(ctx: Self) -> dict[str, Any]:
    """The account, its registered keys (none yet) and its snaps by series."""
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
    keys: list[dict[str, Any]] = []
    return {
        "account_id": who.id,
        "id": who.id,
        "username": who.email.partition("@")[0],
        "email": who.email,
        "account_keys": keys,
        "account-keys": keys,
        "snaps": {"16": snaps},
    }
