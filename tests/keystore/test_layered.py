"""What only the layered store does: keys made before stay where they are, new ones go first."""

from __future__ import annotations

import hashlib

import pytest

from iotstore.asserts.testing import fixed_key
from iotstore.keystore import KeyExists, KeyNotFound, LayeredKeyStore, MemoryKeyStore

from .conftest import VectorKey


@pytest.fixture
def stores(brand_key: VectorKey) -> tuple[LayeredKeyStore, MemoryKeyStore, MemoryKeyStore]:
    """A layered store whose fallback already holds the vectors' brand key as ``old``."""
    primary, fallback = MemoryKeyStore(), MemoryKeyStore()
    fallback.import_pem("old", brand_key.pem)
    return LayeredKeyStore(primary, fallback), primary, fallback


def test_keys_made_before_are_used_where_they_are(
    stores: tuple[LayeredKeyStore, MemoryKeyStore, MemoryKeyStore], brand_key: VectorKey
) -> None:
    layered, primary, _ = stores
    assert layered.get("old").key_id == brand_key.key_id
    assert layered.find_by_id(brand_key.key_id).name == "old"
    assert layered.public_key("old").encoded == brand_key.public_key
    digest = hashlib.sha512(b"signed by the old key").digest()
    signature = layered.signer("old").sign_digest(digest)
    layered.public_key("old").verify_digest(digest, signature)  # raises when wrong
    with pytest.raises(KeyNotFound):
        primary.get("old")


def test_new_keys_go_to_the_primary_store(
    stores: tuple[LayeredKeyStore, MemoryKeyStore, MemoryKeyStore],
) -> None:
    layered, primary, fallback = stores
    info = layered.generate("new", 2048)
    assert primary.get("new").key_id == info.key_id
    with pytest.raises(KeyNotFound):
        fallback.get("new")
    assert [k.name for k in layered.list()] == ["new", "old"]


def test_a_name_of_the_fallback_is_not_taken_again(
    stores: tuple[LayeredKeyStore, MemoryKeyStore, MemoryKeyStore], brand_key: VectorKey
) -> None:
    layered, primary, _ = stores
    with pytest.raises(KeyExists):
        layered.generate("old", 2048)
    with pytest.raises(KeyExists):
        layered.import_pem("old", brand_key.pem)
    assert primary.list() == []


def test_disable_and_delete_act_on_the_store_that_holds_the_key(
    stores: tuple[LayeredKeyStore, MemoryKeyStore, MemoryKeyStore],
) -> None:
    layered, primary, fallback = stores
    layered.generate("new", 2048)
    assert layered.disable("old").disabled
    assert fallback.get("old").disabled
    layered.delete("new")
    with pytest.raises(KeyNotFound):
        primary.get("new")
    with pytest.raises(KeyNotFound):
        layered.get("new")


def test_missing_everywhere_is_key_not_found(
    stores: tuple[LayeredKeyStore, MemoryKeyStore, MemoryKeyStore],
) -> None:
    layered, _, _ = stores
    for call in (layered.get, layered.signer, layered.disable, layered.delete):
        with pytest.raises(KeyNotFound):
            call("nowhere")
    with pytest.raises(KeyNotFound):
        layered.find_by_id(fixed_key("brand").public_key.id)
