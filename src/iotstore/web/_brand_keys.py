"""Brand-key actions shared by the admin API and the dashboard, each audited once.

Both edges parse their own input and shape their own answer; what the action does
and what the audit log says of it live here, so the two can never drift apart.
"""

from __future__ import annotations

from iotstore.accounts.brands import brand_key_dict
from iotstore.accounts.models import Brand, BrandKey
from iotstore.errors import InvalidInput

from .context import RequestContext

__all__ = ["brand_of_root_store", "generate_brand_key", "key_action", "register_brand_key"]


def brand_of_root_store(ctx: RequestContext, store_id: str) -> Brand:
    """The brand whose keys ``store_id`` manages: only a brand's root store does."""
    store = ctx.stores.get(store_id)
    if store.kind != "brand":
        raise InvalidInput("brand keys are managed from the brand's root store", field="store")
    return ctx.brands.get(store.brand_id)


def generate_brand_key(ctx: RequestContext, store_id: str, name: str, bits: int) -> BrandKey:
    """Generate a key in the key store, certified by the root."""
    brand = brand_of_root_store(ctx, store_id)
    key = ctx.brands.generate_key(brand.account_id, name, bits)
    ctx.audit.record(
        ctx.actor, "brand-key.generate", store_id=store_id, target=key.key_id,
        after=brand_key_dict(key),
    )  # fmt: skip
    return key


def register_brand_key(ctx: RequestContext, store_id: str, request: bytes) -> BrandKey:
    """Certify a key the brand holds itself (``snap export-key --account=ID NAME``)."""
    brand = brand_of_root_store(ctx, store_id)
    key = ctx.brands.register_key(brand.account_id, request)
    ctx.audit.record(
        ctx.actor, "brand-key.register", store_id=store_id, target=key.key_id,
        after=brand_key_dict(key),
    )  # fmt: skip
    return key


def key_action(
    ctx: RequestContext, store_id: str, name: str, confirm: str, force: bool, revoke: bool
) -> BrandKey:
    """Disable (stop signing) or revoke (end validity) a key, ``confirm`` naming it again."""
    brand = brand_of_root_store(ctx, store_id)
    before = brand_key_dict(ctx.brands.key(brand.account_id, name))
    act = ctx.brands.revoke_key if revoke else ctx.brands.disable_key
    key = act(brand.account_id, name, confirm, force)
    ctx.audit.record(
        ctx.actor, f"brand-key.{'revoke' if revoke else 'disable'}", store_id=store_id,
        target=key.key_id, before=before, after={**brand_key_dict(key), "forced": force},
    )  # fmt: skip
    return key
