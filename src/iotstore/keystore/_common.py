"""Rules every key store shares: names, sizes, PEM import, the signer object."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from iotstore.asserts.keys import PublicKey

from .errors import InvalidKeyName, InvalidKeySize, KeyImportError

MIN_BITS = 2048
MAX_BITS = 16384
SHA512_DIGEST_SIZE = 64

# DER DigestInfo header for SHA-512 (RFC 8017 section 9.2, note 1): raw
# CKM_RSA_PKCS over this prefix + digest is exactly PKCS#1 v1.5 with SHA-512.
SHA512_DIGEST_INFO_PREFIX = bytes.fromhex("3051300d060960864801650304020305000440")

_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")


def check_name(name: object) -> str:
    """Return ``name`` if it is a valid key name; raise :class:`InvalidKeyName`."""
    if not isinstance(name, str) or _NAME.fullmatch(name) is None:
        shown = repr(name)[:80]
        raise InvalidKeyName(
            f"invalid key name {shown}: use 1-64 characters from a-z, 0-9, '.', '_', '-',"
            " starting with a letter or digit"
        )
    return name


def check_bits(bits: object) -> int:
    """Return ``bits`` if the store may generate a key that size; raise :class:`InvalidKeySize`."""
    if (
        not isinstance(bits, int)
        or isinstance(bits, bool)
        or not MIN_BITS <= bits <= MAX_BITS
        or bits % 256
    ):
        raise InvalidKeySize(
            f"unsupported RSA key size {bits!r}: use a multiple of 256 from {MIN_BITS} to"
            f" {MAX_BITS} (4096 is what snapd expects)"
        )
    return bits


def check_digest(digest: bytes) -> None:
    """Raise ValueError unless ``digest`` is a SHA-512 digest (a caller's bug, not input)."""
    if len(digest) != SHA512_DIGEST_SIZE:
        raise ValueError(f"sign_digest needs a {SHA512_DIGEST_SIZE}-byte SHA-512 digest")


def utcnow() -> datetime:
    """Return the current time as an aware UTC datetime."""
    return datetime.now(UTC)


def load_rsa_pem(name: str, pem: bytes, password: bytes | None) -> rsa.RSAPrivateKey:
    """Return the RSA private key in ``pem``; raise :class:`KeyImportError`.

    The messages name the key and the reason, never the PEM text.
    """
    try:
        key = serialization.load_pem_private_key(pem, password=password)
    except TypeError as e:
        # cryptography's TypeError means "password given but not needed" or the reverse.
        need = "has no password" if password is not None else "is encrypted: give its password"
        raise KeyImportError(f'cannot import key "{name}": the PEM key {need}') from e
    except (ValueError, UnsupportedAlgorithm) as e:
        raise KeyImportError(
            f'cannot import key "{name}": not a readable PEM private key, or wrong password'
        ) from e
    if not isinstance(key, rsa.RSAPrivateKey):
        raise KeyImportError(f'cannot import key "{name}": only RSA keys are supported')
    if key.key_size < MIN_BITS:
        raise KeyImportError(
            f'cannot import key "{name}": {key.key_size}-bit RSA is too small'
            f" (at least {MIN_BITS} bits)"
        )
    return key


class StoreSigner:
    """A :class:`~iotstore.asserts.keys.PrivateKey` whose signatures a key store makes.

    It holds no key material, only a callback into its store, so a key
    disabled after the signer was handed out stops signing at once.
    """

    __slots__ = ("_backend", "_public", "_sign")

    def __init__(self, backend: str, public: PublicKey, sign: Callable[[bytes], bytes]) -> None:
        self._backend = backend
        self._public = public
        self._sign = sign

    @property
    def public_key(self) -> PublicKey:
        """The matching public key."""
        return self._public

    def sign_digest(self, digest: bytes) -> bytes:
        """Return the PKCS#1 v1.5 signature (modulus width) of a SHA-512 ``digest``.

        Raises :class:`~iotstore.keystore.errors.KeyDisabled` once the key is
        disabled, the store's own errors if it fails, ValueError for a digest
        that is not 64 bytes.
        """
        check_digest(digest)
        return self._sign(digest)

    def __repr__(self) -> str:
        return f"StoreSigner(backend={self._backend!r}, key_id={self._public.id!r})"
