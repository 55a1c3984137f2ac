"""The RSA-1024 worked example of assertions.md §5, reproduced byte for byte.

TEST VECTOR ONLY: the key below is published in the spec and must never sign
anything real.
"""

from __future__ import annotations

import base64
import hashlib
import struct
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from iotstore import asserts
from iotstore.asserts import _openpgp
from iotstore.asserts.testing import fixed_key

P = int(
    "e095485aae046148ee7de9995998a2bbcb1f9167cf9c8b01a1e363777aa6558c643afc8ca866148578671d62"
    "a3a8c1371adc9435586e0258ea9bbda9619d43d1",
    16,
)
Q = int(
    "ca6d89ef49c229d322a892c146e20687360d6d69c02aff1100a3cad8a89e1806f50d2cdf7b2784a84df63406"
    "8c10bc7b786446f33aab13d6c0892c29ad275a17",
    16,
)
N = int(
    "b195e3a92bb787dd98c3bea55fa2648d4b91e1dda036b62e9b2a9e61c9733d6e902394d9e40c9d74c09f012c"
    "2f86a8737ebc0edcec5cae44b76036c6b392a3c560dda54ff707adf1f03cb8c7501ffb2941f843df54ff17a0"
    "23c58015274022ddc2f24833ec6dfcd7844c36aabc077161765b5f04dd4c5600e52184cba0cf91c7",
    16,
)
E = 65537

PACKET_HEX = (
    "c68d045685c180010400b195e3a92bb787dd98c3bea55fa2648d4b91e1dda036b62e9b2a9e61"
    "c9733d6e902394d9e40c9d74c09f012c2f86a8737ebc0edcec5cae44b76036c6b392a3c560dd"
    "a54ff707adf1f03cb8c7501ffb2941f843df54ff17a023c58015274022ddc2f24833ec6dfcd7"
    "844c36aabc077161765b5f04dd4c5600e52184cba0cf91c70011010001"
)
KEY_ID = "dAnpprFUWRyL2hBIXoP3KXMeszF2kkh9rYbSo74R9htEBwcAegd0qWZbvUpb0u1d"
ENCODED_KEY = (
    "AcaNBFaFwYABBACxleOpK7eH3ZjDvqVfomSNS5Hh3aA2ti6bKp5hyXM9bpAjlNnkDJ10wJ8BLC+G\n"
    "qHN+vA7c7FyuRLdgNsazkqPFYN2lT/cHrfHwPLjHUB/7KUH4Q99U/xegI8WAFSdAIt3C8kgz7G38\n"
    "14RMNqq8B3FhdltfBN1MVgDlIYTLoM+RxwARAQAB"
)
SIGNED_AT = datetime(2024, 1, 1, tzinfo=UTC)
CREATED = 0x65920080

ACCOUNT_CONTENT = (
    "type: account\n"
    "authority-id: example-root\n"
    "account-id: example-root\n"
    "display-name: Example Root\n"
    "timestamp: 2024-01-01T00:00:00Z\n"
    "validation: verified\n"
    f"sign-key-sha3-384: {KEY_ID}"
)
ACCOUNT_TEXT = (
    ACCOUNT_CONTENT
    + "\n\n"
    + "AcKSBAABCgAGBQJlkgCAAADO/wQAIegiyjnKWC4GYsAwhJnkJLHB7mExpXxSU3EHUeqn6+5l/waq\n"
    "M2HyE9V+sAOiAOCIn/EI9xgsEbO4bQkIX6tj/tad/NEZufnQ4l0jdD3JyQ4YYESUsNM1dOzjgg97\n"
    "IjW+Zg5JGwoLa39xXF5h5lvTI5G/4ogHgUsZEBRLV2RbK+8=\n"
)
ACCOUNT_KEY_TEXT = (
    "type: account-key\n"
    "authority-id: example-root\n"
    f"public-key-sha3-384: {KEY_ID}\n"
    "account-id: example-root\n"
    "name: root\n"
    "since: 2024-01-01T00:00:00Z\n"
    "body-length: 194\n"
    f"sign-key-sha3-384: {KEY_ID}\n"
    "\n"
    f"{ENCODED_KEY}\n"
    "\n"
    "AcKSBAABCgAGBQJlkgCAAADRQwQAkNtr8jd3l+Q8KZrFQkr8I9Vb+YLbXiP7azumbB3NHj7oJak8\n"
    "1p4W2UFNVWUDPicEvTk17Ae4CUFury2sh7Bb5wD2LuK2aU41V/zgM7JOp0QX9ACxuQhPvH/T4MNL\n"
    "RqtSovrnedqWg6zBSSJpSJKf9Z+iU3EwZjyIQSFR6pn4vxc=\n"
)
DIGEST_HEX = (
    "ceffdc6fe8e8d635a919deba70369a54924d7bbfd49e8af4bb230d972c1836704e5982e61cf1976d79331e99"
    "af1f4edca92fbb45fbcf566c4bf06db5186cc3cb"
)
RSA_SIGNATURE_HEX = (
    "21e822ca39ca582e0662c0308499e424b1c1ee6131a57c5253710751eaa7ebee65ff06aa3361f213d57eb003"
    "a200e0889ff108f7182c11b3b86d09085fab63fed69dfcd119b9f9d0e25d23743dc9c90e18604494b0d33574"
    "ece3820f7b2235be660e491b0a0b6b7f715c5e61e65bd32391bfe28807814b1910144b57645b2bef"
)


def example_key() -> asserts.RSAPrivateKey:
    """The §5 key rebuilt from p, q and e."""
    d = pow(E, -1, (P - 1) * (Q - 1))
    numbers = rsa.RSAPrivateNumbers(
        p=P,
        q=Q,
        d=d,
        dmp1=rsa.rsa_crt_dmp1(d, P),
        dmq1=rsa.rsa_crt_dmq1(d, Q),
        iqmp=rsa.rsa_crt_iqmp(P, Q),
        public_numbers=rsa.RSAPublicNumbers(E, N),
    )
    return asserts.RSAPrivateKey(numbers.private_key())


KEY = example_key()
T0 = "2024-01-01T00:00:00Z"


def sign_root_account() -> asserts.Assertion:
    return asserts.sign(
        "account",
        {
            "authority-id": "example-root",
            "account-id": "example-root",
            "display-name": "Example Root",
            "timestamp": T0,
            "validation": "verified",
        },
        KEY,
        signed_at=SIGNED_AT,
    )


def sign_root_account_key() -> asserts.Assertion:
    return asserts.sign(
        "account-key",
        {
            "authority-id": "example-root",
            "account-id": "example-root",
            "name": "root",
            "public-key-sha3-384": KEY_ID,
            "since": T0,
        },
        KEY,
        KEY.public_key.encoded,
        signed_at=SIGNED_AT,
    )


def test_modulus_is_p_times_q() -> None:
    assert P * Q == N
    assert KEY.public_key.bits == 1024


def test_public_key_packet() -> None:
    packet = _openpgp.public_key_packet(N, E)
    assert packet.hex() == PACKET_HEX
    assert len(packet) == 2 + 141
    assert packet[:2] == b"\xc6\x8d"
    assert packet[2:8] == b"\x04\x56\x85\xc1\x80\x01"  # version, fixed 2016 time, RSA
    assert packet[-5:] == b"\x00\x11\x01\x00\x01"  # MPI e: 17 bits, 65537


def test_key_id() -> None:
    assert KEY.public_key.id == KEY_ID
    digest = hashlib.sha3_384(b"\x01" + bytes.fromhex(PACKET_HEX)).digest()
    assert base64.urlsafe_b64encode(digest).decode().rstrip("=") == KEY_ID


def test_encoded_public_key() -> None:
    assert KEY.public_key.encoded == ENCODED_KEY
    assert len(ENCODED_KEY) == 194
    assert asserts.PublicKey.decode(ENCODED_KEY) == KEY.public_key


def test_signing_digest_and_signature_packet() -> None:
    content = ACCOUNT_CONTENT.encode()
    assert len(content) == 229
    prefix, digest = _openpgp.signing_digest(content, CREATED)
    assert prefix.hex() == "0400010a0006050265920080"
    trailer = b"\x04\xff" + struct.pack(">I", len(prefix))
    assert trailer.hex() == "04ff0000000c"
    assert digest.hex() == DIGEST_HEX
    assert hashlib.sha512(content + prefix + trailer).hexdigest() == DIGEST_HEX
    rsa_signature = KEY.sign_digest(digest)
    assert rsa_signature.hex() == RSA_SIGNATURE_HEX
    packet = _openpgp.signature_packet(prefix, digest, rsa_signature)
    assert packet.hex() == (
        "c292" + "0400010a" + "0006" + "050265920080" + "0000" + "ceff" + "0400" + RSA_SIGNATURE_HEX
    )


def test_signer_reproduces_the_root_account() -> None:
    a = sign_root_account()
    assert a.content.decode() == ACCOUNT_CONTENT
    assert a.to_bytes().decode() == ACCOUNT_TEXT


def test_signer_reproduces_the_root_account_key() -> None:
    a = sign_root_account_key()
    assert a.to_bytes().decode() == ACCOUNT_KEY_TEXT
    assert a.headers["body-length"] == "194"


@pytest.mark.parametrize("text", [ACCOUNT_TEXT, ACCOUNT_KEY_TEXT], ids=["account", "account-key"])
def test_example_texts_decode_and_verify(text: str) -> None:
    data = text.encode()
    a = asserts.decode(data)
    assert a.to_bytes() == data
    assert a.authority_id == "example-root"
    assert a.sign_key_id == KEY_ID
    asserts.verify_signature(a, KEY.public_key)
    (b,) = asserts.decode_stream(data)
    assert b == a


def test_decoded_examples_have_the_expected_fields() -> None:
    account = asserts.decode(ACCOUNT_TEXT.encode())
    assert isinstance(account, asserts.Account)
    assert account.account_id == "example-root"
    assert account.display_name == "Example Root"
    assert account.validation == "verified"
    assert account.timestamp == SIGNED_AT
    key = asserts.decode(ACCOUNT_KEY_TEXT.encode())
    assert isinstance(key, asserts.AccountKey)
    assert key.key_id == KEY_ID
    assert key.name == "root"
    assert key.validity.since == SIGNED_AT
    assert key.validity.until is None
    assert key.public_key == KEY.public_key
    assert key.body == ENCODED_KEY.encode()


def test_the_two_examples_root_a_database() -> None:
    trusted = [asserts.decode(ACCOUNT_TEXT.encode()), asserts.decode(ACCOUNT_KEY_TEXT.encode())]
    now = datetime(2024, 6, 1, tzinfo=UTC)
    db = asserts.Database(trusted, clock=lambda: now)
    assert db.is_trusted_account("example-root")
    brand = fixed_key("brand")
    ts = "2024-02-01T00:00:00Z"
    account = asserts.sign(
        "account",
        {
            "authority-id": "example-root",
            "account-id": "example-brand",
            "display-name": "Example Brand",
            "validation": "verified",
            "timestamp": ts,
        },
        KEY,
        signed_at=now,
    )
    account_key = asserts.sign(
        "account-key",
        {
            "authority-id": "example-root",
            "account-id": "example-brand",
            "name": "models",
            "public-key-sha3-384": brand.public_key.id,
            "since": ts,
        },
        KEY,
        brand.public_key.encoded,
        signed_at=now,
    )
    model = asserts.sign(
        "model",
        {
            "authority-id": "example-brand",
            "series": "16",
            "brand-id": "example-brand",
            "model": "example-gw",
            "architecture": "amd64",
            "gadget": "pc",
            "kernel": "pc-kernel",
            "timestamp": ts,
        },
        brand,
        signed_at=now,
    )
    for a in (account, account_key, model):
        db.add(a)
        assert db.find(a.type_name, a.primary_key).to_bytes() == a.to_bytes()
    # the example pair cannot be added again: it is the trusted set
    with pytest.raises(asserts.CheckError) as caught:
        db.add(sign_root_account())
    assert str(caught.value).startswith(
        'cannot add "account" assertion with primary key clashing with a trusted assertion'
    )
    # and a model signed before the key's since is refused
    early = asserts.sign(
        "model",
        {
            "authority-id": "example-brand",
            "series": "16",
            "brand-id": "example-brand",
            "model": "early",
            "architecture": "amd64",
            "gadget": "pc",
            "kernel": "pc-kernel",
            "timestamp": asserts.format_time(
                datetime(2024, 2, 1, tzinfo=UTC) - timedelta(seconds=1)
            ),
        },
        brand,
        signed_at=now,
    )
    with pytest.raises(asserts.CheckError) as refused:
        db.add(early)
    assert str(refused.value) == (
        'model assertion timestamp "2024-01-31 23:59:59 +0000 UTC" outside of signing key '
        'validity (key valid since "2024-02-01 00:00:00 +0000 UTC")'
    )
