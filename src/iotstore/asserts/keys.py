"""Public keys, private-key signers and key ids as snapd computes them."""

from __future__ import annotations

from functools import cached_property, lru_cache
from typing import Protocol, runtime_checkable

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa, utils

from . import _openpgp
from .errors import InvalidKeyError, SignatureError

__all__ = ["PrivateKey", "PublicKey", "RSAPrivateKey", "generate_rsa", "load_pem_private_key"]

_PREHASHED_SHA512 = utils.Prehashed(hashes.SHA512())
_PKCS1 = padding.PKCS1v15()


class PublicKey:
    """An RSA public key with snapd's encoding and id.

    Build one with :meth:`from_rsa` or :meth:`decode`; both are cheap to keep
    and compare (equality is by key id).
    """

    __slots__ = ("__dict__", "_key")

    def __init__(self, key: rsa.RSAPublicKey) -> None:
        self._key = key

    @classmethod
    def from_rsa(cls, key: rsa.RSAPublicKey) -> PublicKey:
        """Wrap a ``cryptography`` RSA public key."""
        return cls(key)

    @classmethod
    def decode(cls, encoded: str | bytes) -> PublicKey:
        """Decode snapd's "v1" encoding (account-key body, ``device-key`` header).

        Raises :class:`InvalidKeyError` when it is not exactly one RSA key packet.
        """
        return _decode(encoded)

    @property
    def rsa(self) -> rsa.RSAPublicKey:
        """The ``cryptography`` key object."""
        return self._key

    @property
    def bits(self) -> int:
        """Modulus size in bits."""
        return self._key.key_size

    @cached_property
    def _packet(self) -> bytes:
        numbers = self._key.public_numbers()
        return _openpgp.public_key_packet(numbers.n, numbers.e)

    @cached_property
    def id(self) -> str:
        """The key id carried by ``sign-key-sha3-384`` and ``public-key-sha3-384``."""
        return _openpgp.key_id(self._packet)

    @cached_property
    def encoded(self) -> str:
        """snapd's "v1" text encoding: 76-column base64 lines, no trailing newline."""
        return _openpgp.encode_v1(self._packet)

    def verify_digest(self, digest: bytes, signature: bytes) -> None:
        """Check a PKCS#1 v1.5 signature over a SHA-512 digest; raise :class:`SignatureError`."""
        size = (self._key.key_size + 7) // 8
        if len(signature) > size:
            raise SignatureError("RSA verification failure")
        # gpg strips leading zero bytes from the MPI; RSA needs the full width.
        try:
            self._key.verify(signature.rjust(size, b"\0"), digest, _PKCS1, _PREHASHED_SHA512)
        except InvalidSignature as e:
            raise SignatureError("RSA verification failure") from e

    def pem(self) -> bytes:
        """SubjectPublicKeyInfo PEM, for tools that want it."""
        return self._key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PublicKey) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    def __repr__(self) -> str:
        return f"PublicKey({self.id})"


@runtime_checkable
class PrivateKey(Protocol):
    """Anything that can make snapd signatures: an in-memory key, a key store, an HSM."""

    @property
    def public_key(self) -> PublicKey:
        """The matching public key."""
        ...

    def sign_digest(self, digest: bytes) -> bytes:
        """Return the RSASSA-PKCS1-v1_5 signature (modulus width) of a SHA-512 ``digest``."""
        ...


# A registration decodes its device key twice (the serial-request's header, then the
# serial's, checked before it is signed): the second costs nothing. Keys are immutable.
@lru_cache(maxsize=256)
def _decode(encoded: str | bytes) -> PublicKey:
    data = encoded.encode("utf-8") if isinstance(encoded, str) else encoded
    n, e = _openpgp.parse_public_key(data)
    try:
        return PublicKey(rsa.RSAPublicNumbers(e, n).public_key())
    except ValueError as err:
        raise InvalidKeyError(f"cannot decode public key: {err}") from err


class RSAPrivateKey:
    """A :class:`PrivateKey` over an in-memory ``cryptography`` RSA key.

    Its ``repr`` names only the key id: private material never reaches logs.
    """

    __slots__ = ("_key", "_public")

    def __init__(self, key: rsa.RSAPrivateKey) -> None:
        self._key = key
        self._public = PublicKey(key.public_key())

    @property
    def public_key(self) -> PublicKey:
        """The matching public key."""
        return self._public

    def sign_digest(self, digest: bytes) -> bytes:
        """PKCS#1 v1.5 over a SHA-512 digest."""
        return self._key.sign(digest, _PKCS1, _PREHASHED_SHA512)

    def __repr__(self) -> str:
        return f"RSAPrivateKey({self._public.id})"


def generate_rsa(bits: int = 4096) -> RSAPrivateKey:
    """Generate a fresh RSA key (exponent 65537), 4096 bits as snapd's tools do."""
    return RSAPrivateKey(rsa.generate_private_key(public_exponent=65537, key_size=bits))


def load_pem_private_key(data: bytes, password: bytes | None = None) -> RSAPrivateKey:
    """Load a PEM (PKCS#1 or PKCS#8) RSA private key; raise :class:`InvalidKeyError` otherwise."""
    try:
        key = serialization.load_pem_private_key(data, password=password)
    except (ValueError, TypeError) as e:
        raise InvalidKeyError("cannot load private key: not a readable PEM private key") from e
    if not isinstance(key, rsa.RSAPrivateKey):
        raise InvalidKeyError("cannot load private key: only RSA keys are supported")
    return RSAPrivateKey(key)
