"""A brand's account and signing keys, managed from the brand's root store."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import Field
from starlette.concurrency import run_in_threadpool

from iotstore.accounts.brands import brand_dict, brand_key_dict
from iotstore.errors import InvalidInput
from iotstore.stores.permissions import Permission

from .._brand_keys import brand_of_root_store, generate_brand_key, key_action, register_brand_key
from ..auth import require
from ..context import RequestContext
from ._common import Body

router = APIRouter(prefix="/api/v1", tags=["brand"])

View = Annotated[RequestContext, Depends(require(Permission.BRAND_VIEW))]
Manage = Annotated[RequestContext, Depends(require(Permission.BRAND_KEYS_MANAGE))]
MAX_REQUEST_ASSERTION = 64 * 1024


@router.get("/stores/{store_id}/brand")
def get_brand(ctx: View, store_id: str) -> dict[str, Any]:
    """The brand that owns this store."""
    store = ctx.stores.get(store_id)
    return brand_dict(ctx.brands.get(store.brand_id))


@router.get("/stores/{store_id}/brand/keys")
def list_keys(ctx: View, store_id: str) -> dict[str, Any]:
    """The brand's signing keys."""
    brand = brand_of_root_store(ctx, store_id)
    return {"items": [brand_key_dict(k) for k in ctx.brands.keys(brand.account_id)]}


class NewKey(Body):
    """A key to generate and hold."""

    name: str = Field(max_length=64)
    bits: int = Field(default=4096, ge=2048, le=8192, multiple_of=1024)


@router.post("/stores/{store_id}/brand/keys", status_code=201)
def generate_key(ctx: Manage, store_id: str, body: NewKey) -> dict[str, Any]:
    """Generate a brand key in the key store and have the root certify it."""
    return brand_key_dict(generate_brand_key(ctx, store_id, body.name, body.bits))


@router.post("/stores/{store_id}/brand/keys/register", status_code=201)
async def register_key(ctx: Manage, store_id: str, request: Request) -> dict[str, Any]:
    """Certify a key the brand holds, from ``snap export-key --account=ID NAME`` (the body)."""
    data = await request.body()
    if len(data) > MAX_REQUEST_ASSERTION:
        raise InvalidInput("the account-key-request is too large", field="body")
    # verifying and signing as the root, and SQL, block: off the event loop
    key = await run_in_threadpool(register_brand_key, ctx, store_id, data)
    return brand_key_dict(key)


class KeyAction(Body):
    """Confirmation for disabling or revoking: the key name typed again."""

    confirm: str = Field(max_length=64)
    force: bool = False


def _key_action(
    ctx: RequestContext, store_id: str, name: str, body: KeyAction, revoke: bool
) -> dict[str, Any]:
    return brand_key_dict(key_action(ctx, store_id, name, body.confirm, body.force, revoke))


@router.post("/stores/{store_id}/brand/keys/{name}/disable")
def disable_key(ctx: Manage, store_id: str, name: str, body: KeyAction) -> dict[str, Any]:
    """Stop signing with a held key; refused while models rely on it unless forced."""
    return _key_action(ctx, store_id, name, body, revoke=False)


@router.post("/stores/{store_id}/brand/keys/{name}/revoke")
def revoke_key(ctx: Manage, store_id: str, name: str, body: KeyAction) -> dict[str, Any]:
    """End the key's validity now (new account-key revision with ``until``)."""
    return _key_action(ctx, store_id, name, body, revoke=True)
