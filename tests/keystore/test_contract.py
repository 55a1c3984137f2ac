"""One contract, every key store: memory, encrypted SQLite and PKCS#11 (SoftHSM2)."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils

from iotstore.asserts.keys import PrivateKey, PublicKey
from iotstore.keystore import (
    InvalidKeyName,
    InvalidKeySize,
    KeyDisabled,
    KeyExists,
    KeyImportError,
    KeyInfo,
    KeyNotFound,
    KeyStore,
    KeyStoreError,
)

from .conftest import VectorKey

BITS = 2048  # small keys keep the suite fast; one test covers the 4096 default
PREHASHED = utils.Prehashed(hashes.SHA512())


def digest_of(data: bytes) -> bytes:
    return hashlib.sha512(data).digest()


def verify_both_ways(public: PublicKey, digest: bytes, signature: bytes) -> None:
    """Check a signature with cryptography directly and with the asserts library."""
    public.rsa.verify(signature, digest, padding.PKCS1v15(), PREHASHED)
    public.verify_digest(digest, signature)


# --- generate -------------------------------------------------------------------------


def test_generate_returns_key_info(keystore: KeyStore, backend_name: str) -> None:
    before = datetime.now(UTC) - timedelta(seconds=1)
    info = keystore.generate("model-signing", bits=BITS)
    after = datetime.now(UTC) + timedelta(seconds=1)

    assert isinstance(info, KeyInfo)
    assert info.name == "model-signing"
    assert info.bits == BITS
    assert info.disabled is False
    assert info.backend == backend_name
    assert info.created.tzinfo is not None
    assert info.created.utcoffset() == timedelta(0)
    assert before <= info.created <= after
    public = keystore.public_key("model-signing")
    assert info.key_id == public.id
    assert public.bits == BITS
    assert keystore.get("model-signing") == info


def test_generate_default_is_4096_bits(keystore: KeyStore) -> None:
    info = keystore.generate("serials")
    assert info.bits == 4096
    assert keystore.public_key("serials").bits == 4096
    digest = digest_of(b"serial assertion")
    signature = keystore.signer("serials").sign_digest(digest)
    assert len(signature) == 512
    verify_both_ways(keystore.public_key("serials"), digest, signature)


def test_generated_keys_are_distinct(keystore: KeyStore) -> None:
    a = keystore.generate("a", bits=BITS)
    b = keystore.generate("b", bits=BITS)
    assert a.key_id != b.key_id


@pytest.mark.parametrize("bits", [1024, 2047, 2100, 16640, 0, -4096, True, "4096", 4096.0])
def test_generate_refuses_bad_sizes(keystore: KeyStore, bits: object) -> None:
    with pytest.raises(InvalidKeySize, match="unsupported RSA key size"):
        keystore.generate("k", bits=bits)  # type: ignore[arg-type]
    assert keystore.list() == []


# --- import ---------------------------------------------------------------------------


def test_import_pem_matches_published_key_id(
    keystore: KeyStore, brand_key: VectorKey, backend_name: str
) -> None:
    info = keystore.import_pem("brand", brand_key.pem)

    assert info.key_id == brand_key.key_id
    assert info.bits == brand_key.bits == 2048
    assert info.name == "brand"
    assert info.disabled is False
    assert info.backend == backend_name
    public = keystore.public_key("brand")
    assert public.id == brand_key.key_id
    assert public.encoded == brand_key.public_key


def test_imported_key_signs_exactly_like_cryptography(
    keystore: KeyStore, brand_key: VectorKey
) -> None:
    keystore.import_pem("brand", brand_key.pem)
    digest = digest_of(b"type: account-key\n")
    expected = brand_key.private.sign(digest, padding.PKCS1v15(), PREHASHED)

    assert keystore.signer("brand").sign_digest(digest) == expected


def test_import_encrypted_pem(keystore: KeyStore, brand_key: VectorKey) -> None:
    encrypted = brand_key.private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"s3cret"),
    )
    with pytest.raises(KeyImportError, match="is encrypted"):
        keystore.import_pem("brand", encrypted)
    with pytest.raises(KeyImportError, match="wrong password") as raised:
        keystore.import_pem("brand", encrypted, password=b"wrong")
    assert isinstance(raised.value.__cause__, ValueError)

    assert keystore.import_pem("brand", encrypted, password=b"s3cret").key_id == brand_key.key_id


def test_import_pkcs1_pem(keystore: KeyStore, brand_key: VectorKey) -> None:
    pkcs1 = brand_key.private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    assert keystore.import_pem("brand", pkcs1).key_id == brand_key.key_id


def test_import_refuses_password_for_plain_pem(keystore: KeyStore, brand_key: VectorKey) -> None:
    with pytest.raises(KeyImportError, match="has no password"):
        keystore.import_pem("brand", brand_key.pem, password=b"unneeded")


@pytest.mark.parametrize(
    "pem",
    [
        b"",
        b"not a key",
        b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    ],
)
def test_import_refuses_garbage(keystore: KeyStore, pem: bytes) -> None:
    with pytest.raises(KeyImportError, match='cannot import key "k"'):
        keystore.import_pem("k", pem)
    assert keystore.list() == []


def test_import_refuses_non_rsa_keys(keystore: KeyStore) -> None:
    pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    with pytest.raises(KeyImportError, match="only RSA"):
        keystore.import_pem("k", pem)


def test_import_refuses_small_rsa_keys(keystore: KeyStore) -> None:
    pem = rsa.generate_private_key(65537, 1024).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    with pytest.raises(KeyImportError, match="too small"):
        keystore.import_pem("k", pem)


def test_import_refuses_the_same_key_under_another_name(
    keystore: KeyStore, brand_key: VectorKey
) -> None:
    keystore.import_pem("brand", brand_key.pem)
    with pytest.raises(KeyExists, match='already stored as "brand"'):
        keystore.import_pem("brand-again", brand_key.pem)
    assert [info.name for info in keystore.list()] == ["brand"]


# --- list, get, find_by_id ------------------------------------------------------------


def test_list_is_sorted_and_keeps_disabled_keys(keystore: KeyStore, brand_key: VectorKey) -> None:
    assert keystore.list() == []
    keystore.generate("zeta", bits=BITS)
    keystore.import_pem("alpha", brand_key.pem)
    keystore.generate("mid.key_1-x", bits=BITS)
    keystore.disable("zeta")

    listed = keystore.list()
    assert [info.name for info in listed] == ["alpha", "mid.key_1-x", "zeta"]
    assert [info.disabled for info in listed] == [False, False, True]
    assert listed == [keystore.get(info.name) for info in listed]


def test_find_by_id(keystore: KeyStore, brand_key: VectorKey) -> None:
    generated = keystore.generate("gen", bits=BITS)
    imported = keystore.import_pem("brand", brand_key.pem)

    assert keystore.find_by_id(brand_key.key_id) == imported
    assert keystore.find_by_id(generated.key_id) == generated
    with pytest.raises(KeyNotFound):
        keystore.find_by_id("0" * 64)
    with pytest.raises(KeyNotFound):
        keystore.find_by_id("")


# --- sign -----------------------------------------------------------------------------


def test_signer_is_a_private_key(keystore: KeyStore) -> None:
    info = keystore.generate("k", bits=BITS)
    signer = keystore.signer("k")

    assert isinstance(signer, PrivateKey)
    assert signer.public_key == keystore.public_key("k")
    assert signer.public_key.id == info.key_id


def test_sign_verifies(keystore: KeyStore) -> None:
    keystore.generate("k", bits=BITS)
    signer = keystore.signer("k")
    digest = digest_of(b"some assertion content")

    signature = signer.sign_digest(digest)

    assert len(signature) == BITS // 8
    verify_both_ways(signer.public_key, digest, signature)
    with pytest.raises(InvalidSignature):
        signer.public_key.rsa.verify(
            signature, digest_of(b"other content"), padding.PKCS1v15(), PREHASHED
        )


@pytest.mark.parametrize("size", [0, 32, 48, 63, 65])
def test_sign_refuses_digests_that_are_not_sha512(keystore: KeyStore, size: int) -> None:
    keystore.generate("k", bits=BITS)
    with pytest.raises(ValueError, match="64-byte SHA-512 digest"):
        keystore.signer("k").sign_digest(b"\x01" * size)


def test_concurrent_signing(keystore: KeyStore, brand_key: VectorKey) -> None:
    keystore.import_pem("brand", brand_key.pem)
    signer = keystore.signer("brand")
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(5):
                digest = digest_of(f"{n}/{i}".encode())
                expected = brand_key.private.sign(digest, padding.PKCS1v15(), PREHASHED)
                assert signer.sign_digest(digest) == expected
                keystore.get("brand")
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []


# --- disable --------------------------------------------------------------------------


def test_disable_stops_signing(keystore: KeyStore) -> None:
    created = keystore.generate("k", bits=BITS)
    early_signer = keystore.signer("k")

    info = keystore.disable("k")

    assert info.disabled is True
    assert info.key_id == created.key_id
    assert info.created == created.created
    assert keystore.get("k").disabled is True
    assert keystore.find_by_id(created.key_id).disabled is True
    with pytest.raises(KeyDisabled, match='key "k" is disabled'):
        keystore.signer("k")
    # A signer handed out before the key was disabled is refused too.
    with pytest.raises(KeyDisabled):
        early_signer.sign_digest(digest_of(b"late"))
    # The public half stays available, to verify what the key signed before.
    assert keystore.public_key("k").id == created.key_id


def test_disable_is_idempotent_and_leaves_other_keys_alone(keystore: KeyStore) -> None:
    keystore.generate("a", bits=BITS)
    keystore.generate("b", bits=BITS)
    keystore.disable("a")

    assert keystore.disable("a").disabled is True
    assert keystore.get("b").disabled is False
    digest = digest_of(b"still fine")
    verify_both_ways(keystore.public_key("b"), digest, keystore.signer("b").sign_digest(digest))


def test_disabled_name_cannot_be_reused(keystore: KeyStore) -> None:
    keystore.generate("k", bits=BITS)
    keystore.disable("k")
    with pytest.raises(KeyExists):
        keystore.generate("k", bits=BITS)


# --- names ----------------------------------------------------------------------------


def test_duplicate_names_are_refused(keystore: KeyStore, brand_key: VectorKey) -> None:
    first = keystore.generate("k", bits=BITS)
    with pytest.raises(KeyExists, match='a key named "k" already exists'):
        keystore.generate("k", bits=BITS)
    with pytest.raises(KeyExists, match='a key named "k" already exists'):
        keystore.import_pem("k", brand_key.pem)
    assert keystore.list() == [first]


GOOD_NAMES = ["a", "0", "a" * 64, "a.b_c-d", "9-lives", "x..", "serial-vault.2025"]
BAD_NAMES: list[object] = [
    "",
    "A",
    "Key",
    "-a",
    ".a",
    "_a",
    "a b",
    "a/b",
    "a:b",
    "é",
    "a" * 65,
    "a\n",
    "a\x00",
    None,
    42,
    b"a",
]


@pytest.mark.parametrize("name", GOOD_NAMES)
def test_good_names(keystore: KeyStore, name: str) -> None:
    assert keystore.generate(name, bits=BITS).name == name
    assert keystore.get(name).name == name


@pytest.mark.parametrize("name", BAD_NAMES, ids=repr)
def test_bad_names_are_refused_everywhere(
    keystore: KeyStore, brand_key: VectorKey, name: object
) -> None:
    bad: str = name  # type: ignore[assignment]
    calls: list[Callable[[], object]] = [
        lambda: keystore.generate(bad, bits=BITS),
        lambda: keystore.import_pem(bad, brand_key.pem),
        lambda: keystore.get(bad),
        lambda: keystore.signer(bad),
        lambda: keystore.disable(bad),
        lambda: keystore.public_key(bad),
        lambda: keystore.delete(bad),
    ]
    for call in calls:
        with pytest.raises(InvalidKeyName, match="invalid key name"):
            call()
    assert keystore.list() == []


# --- missing keys ---------------------------------------------------------------------


def test_missing_keys(keystore: KeyStore) -> None:
    keystore.generate("present", bits=BITS)
    calls = (keystore.get, keystore.signer, keystore.disable, keystore.public_key, keystore.delete)
    for call in calls:
        with pytest.raises(KeyNotFound, match='no key named "absent"'):
            call("absent")
    assert [info.name for info in keystore.list()] == ["present"]


def test_delete_removes_a_key_and_frees_its_name(keystore: KeyStore) -> None:
    kept = keystore.generate("kept", bits=BITS)
    gone = keystore.generate("gone", bits=BITS)
    signer = keystore.signer("gone")
    keystore.delete("gone")
    assert [info.name for info in keystore.list()] == ["kept"]
    with pytest.raises(KeyNotFound):
        keystore.find_by_id(gone.key_id)
    with pytest.raises(KeyStoreError):
        signer.sign_digest(hashlib.sha512(b"x").digest())  # a signer handed out before
    again = keystore.generate("gone", bits=BITS)  # the name is free again
    assert again.key_id != gone.key_id
    assert keystore.get("kept") == kept


def test_errors_share_one_root(keystore: KeyStore) -> None:
    with pytest.raises(KeyStoreError):
        keystore.get("absent")
    with pytest.raises(KeyStoreError):
        keystore.get("Bad")


# --- no private material out ----------------------------------------------------------


STORE_METHODS = {
    "generate",
    "import_pem",
    "get",
    "find_by_id",
    "list",
    "signer",
    "disable",
    "delete",
    "public_key",
    "close",
}
EXTRA_CONSTRUCTORS = {"open_sqlite"}


def public_names(obj: object) -> set[str]:
    return {name for name in dir(obj) if not name.startswith("_")}


def test_no_method_exports_private_material(keystore: KeyStore, brand_key: VectorKey) -> None:
    keystore.import_pem("brand", brand_key.pem)
    signer = keystore.signer("brand")

    # The whole public surface is the protocol: there is no export of any kind.
    assert public_names(keystore) - EXTRA_CONSTRUCTORS == STORE_METHODS
    assert public_names(signer) == {"public_key", "sign_digest"}


def test_reprs_name_only_backend_and_key_ids(keystore: KeyStore, brand_key: VectorKey) -> None:
    keystore.import_pem("brand", brand_key.pem)
    signer = keystore.signer("brand")
    numbers = brand_key.private.private_numbers()
    secrets = [format(n, "x")[:32] for n in (numbers.d, numbers.p, numbers.q)]
    secrets += [str(n)[:32] for n in (numbers.d, numbers.p, numbers.q)]
    pem_lines = [line.decode() for line in brand_key.pem.splitlines()[1:-1]]

    assert (
        repr(signer)
        == f"StoreSigner(backend={keystore.get('brand').backend!r}, key_id={brand_key.key_id!r})"
    )
    for text in (repr(keystore), str(keystore), repr(signer), repr(keystore.get("brand"))):
        for secret in secrets + pem_lines:
            assert secret not in text
