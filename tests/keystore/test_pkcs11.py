"""The PKCS#11 store beyond the contract, on a fresh SoftHSM2 token per test."""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Iterator
from typing import Any

import pkcs11
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, utils
from pkcs11.constants import Attribute, ObjectClass
from pkcs11.exceptions import AttributeSensitive, PKCS11Error
from pkcs11.mechanisms import KeyType, Mechanism
from pkcs11.types import Session

from iotstore.keystore import HSMError, KeyExists, KeyNotFound, PKCS11KeyStore

from .conftest import SoftHSMToken, VectorKey

pytestmark = pytest.mark.hsm

BITS = 2048
PREHASHED = utils.Prehashed(hashes.SHA512())
DIGEST_INFO_SHA512 = bytes.fromhex("3051300d060960864801650304020305000440")


def digest_of(data: bytes) -> bytes:
    return hashlib.sha512(data).digest()


@pytest.fixture
def store(softhsm_token: SoftHSMToken) -> Iterator[PKCS11KeyStore]:
    hsm_store = softhsm_token.open_store()
    yield hsm_store
    hsm_store.close()


@pytest.fixture
def raw_session(softhsm_token: SoftHSMToken, store: PKCS11KeyStore) -> Iterator[Session]:
    """A second, PIN-less session on the token: it shares the store's login (per process),
    so it sees private objects the way any code in this process could."""
    token = pkcs11.lib(softhsm_token.module).get_token(token_label=softhsm_token.label)
    session = token.open(rw=True)
    yield session
    session.close()


def private_object(session: Session, key_id: str) -> Any:
    """The raw private key object; Any because its methods depend on its flags."""
    return session.get_key(ObjectClass.PRIVATE_KEY, KeyType.RSA, id=key_id.encode())


def test_imported_key_signs_byte_for_byte_like_cryptography(
    store: PKCS11KeyStore, brand_key: VectorKey
) -> None:
    store.import_pem("brand", brand_key.pem)
    signer = store.signer("brand")
    for n in range(10):
        digest = digest_of(f"assertion {n}".encode())
        expected = brand_key.private.sign(digest, padding.PKCS1v15(), PREHASHED)
        assert signer.sign_digest(digest) == expected


def test_raw_rsa_pkcs_over_digest_info_is_sha512_rsa_pkcs(
    store: PKCS11KeyStore, raw_session: Session
) -> None:
    info = store.generate("k", bits=BITS)
    message = b"type: serial\n"
    signature = store.signer("k").sign_digest(digest_of(message))
    # The token's own hash-and-sign mechanism gives the same bytes.
    key = private_object(raw_session, info.key_id)
    assert key.sign(message, mechanism=Mechanism.SHA512_RSA_PKCS) == signature


def test_generated_private_key_never_leaves_the_token(
    store: PKCS11KeyStore, raw_session: Session
) -> None:
    info = store.generate("k", bits=BITS)
    key = private_object(raw_session, info.key_id)

    assert key[Attribute.TOKEN] is True
    assert key[Attribute.PRIVATE] is True
    assert key[Attribute.SENSITIVE] is True
    assert key[Attribute.EXTRACTABLE] is False
    assert key[Attribute.ALWAYS_SENSITIVE] is True
    assert key[Attribute.NEVER_EXTRACTABLE] is True
    assert key[Attribute.LOCAL] is True
    assert key[Attribute.DECRYPT] is False
    assert key[Attribute.UNWRAP] is False
    assert key[Attribute.LABEL] == "k"
    assert key[Attribute.ID] == info.key_id.encode("ascii")
    for secret in (Attribute.PRIVATE_EXPONENT, Attribute.PRIME_1, Attribute.PRIME_2):
        with pytest.raises(AttributeSensitive):
            key[secret]


def test_imported_private_key_is_not_extractable(
    store: PKCS11KeyStore, raw_session: Session, brand_key: VectorKey
) -> None:
    store.import_pem("brand", brand_key.pem)
    key = private_object(raw_session, brand_key.key_id)

    assert key[Attribute.SENSITIVE] is True
    assert key[Attribute.EXTRACTABLE] is False
    # Honest flags: the key existed outside the token before.
    assert key[Attribute.LOCAL] is False
    with pytest.raises(AttributeSensitive):
        key[Attribute.PRIVATE_EXPONENT]
    public = raw_session.get_key(ObjectClass.PUBLIC_KEY, KeyType.RSA, id=brand_key.key_id.encode())
    assert public[Attribute.LABEL] == "brand"


def test_disable_is_enforced_by_the_token(store: PKCS11KeyStore, raw_session: Session) -> None:
    info = store.generate("k", bits=BITS)
    key = private_object(raw_session, info.key_id)
    store.disable("k")

    assert key[Attribute.SIGN] is False
    # Not only this store refuses: the token itself will not sign any more.
    with pytest.raises(PKCS11Error):
        key.sign(DIGEST_INFO_SHA512 + digest_of(b"x"), mechanism=Mechanism.RSA_PKCS)


def test_metadata_object_records_creation(store: PKCS11KeyStore, raw_session: Session) -> None:
    info = store.generate("k", bits=BITS)
    (meta,) = raw_session.get_objects(
        {Attribute.CLASS: ObjectClass.DATA, Attribute.APPLICATION: "iotstore-keystore"}
    )
    value = json.loads(bytes(meta[Attribute.VALUE]))
    assert meta[Attribute.LABEL] == "k"
    assert meta[Attribute.PRIVATE] is True
    assert value == {
        "v": 1,
        "key-id": info.key_id,
        "bits": BITS,
        "created": info.created.isoformat(),
    }


def test_foreign_token_objects_are_ignored_but_block_their_label(
    store: PKCS11KeyStore, raw_session: Session
) -> None:
    raw_session.generate_keypair(KeyType.RSA, BITS, store=True, label="foreign", id=b"\x01")
    store.generate("ours", bits=BITS)

    assert [info.name for info in store.list()] == ["ours"]
    with pytest.raises(KeyNotFound):
        store.get("foreign")
    with pytest.raises(KeyExists):
        store.generate("foreign", bits=BITS)


def test_keys_survive_reopening(softhsm_token: SoftHSMToken, brand_key: VectorKey) -> None:
    with contextlib.closing(softhsm_token.open_store()) as first:
        generated = first.generate("gen", bits=BITS)
        imported = first.import_pem("brand", brand_key.pem)
        first.generate("old", bits=BITS)
        old = first.disable("old")

    with contextlib.closing(softhsm_token.open_store()) as second:
        assert second.list() == [imported, generated, old]
        digest = digest_of(b"after restart")
        expected = brand_key.private.sign(digest, padding.PKCS1v15(), PREHASHED)
        assert second.signer("brand").sign_digest(digest) == expected
        second.public_key("gen").verify_digest(digest, second.signer("gen").sign_digest(digest))


def test_one_store_per_token_per_process(softhsm_token: SoftHSMToken) -> None:
    first = softhsm_token.open_store()
    try:
        with pytest.raises(HSMError, match="already open by another key store"):
            softhsm_token.open_store()
        first.generate("k", bits=BITS)  # the refused second store did not log the first out
    finally:
        first.close()
    with contextlib.closing(softhsm_token.open_store()) as again:
        assert [info.name for info in again.list()] == ["k"]


def test_wrong_pin(softhsm_token: SoftHSMToken) -> None:
    with pytest.raises(HSMError, match='token "test" refused the PIN') as raised:
        PKCS11KeyStore(softhsm_token.module, softhsm_token.label, "0000")
    assert "0000" not in str(raised.value)
    assert isinstance(raised.value.__cause__, PKCS11Error)
    # A failed login leaves the token free for the right PIN.
    softhsm_token.open_store().close()


def test_unknown_token(softhsm_token: SoftHSMToken) -> None:
    with pytest.raises(HSMError, match='no token labelled "nope"'):
        PKCS11KeyStore(softhsm_token.module, "nope", softhsm_token.pin)


def test_unloadable_module() -> None:
    with pytest.raises(HSMError, match="cannot use PKCS#11 module") as raised:
        PKCS11KeyStore("/nonexistent/libnothing.so", "test", "1234")
    assert isinstance(raised.value.__cause__, PKCS11Error)


def test_closed_store_refuses_work(softhsm_token: SoftHSMToken) -> None:
    hsm_store = softhsm_token.open_store()
    hsm_store.generate("k", bits=BITS)
    signer = hsm_store.signer("k")
    hsm_store.close()
    hsm_store.close()
    with pytest.raises(HSMError, match="closed"):
        hsm_store.list()
    with pytest.raises(HSMError, match="closed"):
        signer.sign_digest(digest_of(b"x"))


def test_repr_names_backend_and_token_only(store: PKCS11KeyStore) -> None:
    assert repr(store) == "PKCS11KeyStore(backend='pkcs11', token='test')"


def test_key_enabled_again_on_the_token_signs_again(
    store: PKCS11KeyStore, raw_session: Session
) -> None:
    # Documented limit: disable is CKA_SIGN, which a PIN holder can set back.
    info = store.generate("k", bits=BITS)
    store.disable("k")
    private_object(raw_session, info.key_id)[Attribute.SIGN] = True

    assert store.get("k").disabled is False
    digest = digest_of(b"x")
    store.public_key("k").verify_digest(digest, store.signer("k").sign_digest(digest))
