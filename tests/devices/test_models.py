"""Registering models in the vault: signed uploads, JSON headers, and every check on them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from iotstore import asserts
from iotstore.accounts.errors import BrandNotFound
from iotstore.devices.errors import VaultRuleViolation
from iotstore.devices.services import model_dict

from .conftest import ADMIN, VaultWorld, model_headers


def signed_model(world: VaultWorld, signer: asserts.RSAPrivateKey, **headers: Any) -> bytes:
    """A model as ``snap sign`` makes it, signed by ``signer``."""
    merged = model_headers(world.brand_id, "gateway", world.store_id)
    merged.update(headers)
    return asserts.sign("model", merged, signer).to_bytes()


def test_model_uploaded_signed_by_a_registered_brand_key(vault_world: VaultWorld) -> None:
    key = vault_world.own_key("release")
    data = signed_model(vault_world, key.signer)
    with vault_world.vault() as vault:
        row = vault.register_model(ADMIN, vault_world.brand_id, data)
        assert model_dict(row) == {
            "id": row.id, "brand-id": vault_world.brand_id, "model": "gateway",
            "store-id": vault_world.store_id, "open-enrolment": True,
            "require-key-allowlist": False, "allow-reregistration": False,
        }  # fmt: skip
        # the exact bytes are kept and served
        assert vault.model_assertion(row).to_bytes() == data
    with vault_world.unit() as (session, _, _brands):
        trust = vault_world.trust(session)
        found = trust.find("model", ("16", vault_world.brand_id, "gateway"))
        assert found.to_bytes() == data


def test_model_signed_from_json_headers_with_a_held_key(vault_world: VaultWorld) -> None:
    with vault_world.vault() as vault:
        row = vault.sign_model(
            ADMIN, vault_world.brand_id, "models",
            {"model": "kiosk", "architecture": "arm64", "base": "core22", "grade": "signed",
             "store": vault_world.store_id,
             "snaps": model_headers("x", "x", "x")["snaps"]},
        )  # fmt: skip
        model = vault.model_assertion(row)
    assert (model.brand_id, model.model, model.authority_id) == (
        vault_world.brand_id, "kiosk", vault_world.brand_id,
    )  # fmt: skip
    # only an active key held by iotstore signs
    with vault_world.vault() as vault, pytest.raises(BrandNotFound):
        vault.sign_model(ADMIN, vault_world.brand_id, "no-such-key", {"model": "x"})
    vault_world.own_key("offline")
    with vault_world.unit() as (_, _vault, brands):
        brands.generate_key(vault_world.brand_id, "spare", 2048)
        brands.disable_key(vault_world.brand_id, "spare", "spare")
    for name in ("offline", "spare"):
        with vault_world.vault() as vault, pytest.raises(VaultRuleViolation) as refused:
            vault.sign_model(ADMIN, vault_world.brand_id, name, {"model": "x"})
        assert refused.value.field == "key"


def test_model_of_another_brand_is_refused(vault_world: VaultWorld) -> None:
    other_brand, other_store = vault_world.new_brand()
    key = vault_world.own_key("theirs", brand_id=other_brand)
    data = asserts.sign("model", model_headers(other_brand, "gw", other_store), key.signer)
    with vault_world.vault() as vault, pytest.raises(VaultRuleViolation) as refused:
        vault.register_model(ADMIN, vault_world.brand_id, data.to_bytes())
    assert refused.value.field == "brand-id"


def test_model_signed_by_an_unregistered_key_is_refused(vault_world: VaultWorld) -> None:
    data = signed_model(vault_world, asserts.generate_rsa(2048))
    with vault_world.vault() as vault, pytest.raises(VaultRuleViolation) as refused:
        vault.register_model(ADMIN, vault_world.brand_id, data)
    assert refused.value.field == "assertion"
    assert "model refused" in refused.value.message


def test_model_older_than_its_key_is_refused(vault_world: VaultWorld) -> None:
    since = datetime.now(UTC).replace(microsecond=0)
    key = vault_world.own_key("fresh", since=asserts.format_time(since))
    early = asserts.format_time(since - timedelta(days=1))
    with vault_world.vault() as vault, pytest.raises(VaultRuleViolation) as refused:
        vault.register_model(
            ADMIN, vault_world.brand_id, signed_model(vault_world, key.signer, timestamp=early)
        )
    assert "model refused" in refused.value.message


def test_model_store_must_be_of_this_brand(vault_world: VaultWorld) -> None:
    key = vault_world.own_key("release")
    _, foreign_store = vault_world.new_brand()
    for store in (foreign_store, "no-such-store"):
        with vault_world.vault() as vault, pytest.raises(VaultRuleViolation) as refused:
            vault.register_model(
                ADMIN, vault_world.brand_id, signed_model(vault_world, key.signer, store=store)
            )
        assert refused.value.field == "store"
    headers = model_headers(vault_world.brand_id, "nostore", vault_world.store_id)
    del headers["store"]
    with vault_world.vault() as vault, pytest.raises(VaultRuleViolation) as missing:
        vault.register_model(
            ADMIN, vault_world.brand_id, asserts.sign("model", headers, key.signer).to_bytes()
        )
    assert missing.value.field == "store"
    # a sub-store of the brand's store is the brand's too
    product = vault_world.substore(vault_world.store_id)
    with vault_world.vault() as vault:
        row = vault.register_model(
            ADMIN, vault_world.brand_id, signed_model(vault_world, key.signer, store=product)
        )
        assert row.store_id == product


def test_newer_revision_replaces_and_older_is_refused(vault_world: VaultWorld) -> None:
    key = vault_world.own_key("release")
    with vault_world.vault() as vault:
        first = vault.register_model(
            ADMIN, vault_world.brand_id, signed_model(vault_world, key.signer)
        )
        first_id = first.id
    product = vault_world.substore(vault_world.store_id)
    newer = signed_model(vault_world, key.signer, revision="2", store=product)
    with vault_world.vault() as vault:
        row = vault.register_model(ADMIN, vault_world.brand_id, newer)
        assert row.id == first_id
        assert row.store_id == product  # the new revision's store wins
        assert vault.model_assertion(row).revision == 2
    for revision in ("1", "2"):
        with vault_world.vault() as vault, pytest.raises(VaultRuleViolation):
            vault.register_model(
                ADMIN, vault_world.brand_id,
                signed_model(vault_world, key.signer, revision=revision),
            )  # fmt: skip
    with vault_world.vault() as vault:
        assert vault.model_assertion(vault.model(vault_world.brand_id, "gateway")).revision == 2


@pytest.mark.parametrize(
    "data",
    [b"", b"not an assertion", b"type: model\n\nbroken", b"\xff\xfe" * 10],
    ids=["empty", "text", "truncated", "binary"],
)
def test_malformed_uploads_are_rule_violations(vault_world: VaultWorld, data: bytes) -> None:
    with vault_world.vault() as vault, pytest.raises(VaultRuleViolation) as refused:
        vault.register_model(ADMIN, vault_world.brand_id, data)
    assert refused.value.field == "assertion"


def test_an_account_is_not_a_model(vault_world: VaultWorld) -> None:
    with vault_world.unit() as (session, vault, _):
        account = vault_world.trust(session).find("account", (vault_world.brand_id,))
        with pytest.raises(VaultRuleViolation, match="expected a model"):
            vault.register_model(ADMIN, vault_world.brand_id, account.to_bytes())
