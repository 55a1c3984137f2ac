"""A key store in process memory, for tests and embedded use.

Keys vanish with the process. Nothing is written anywhere.
"""

from __future__ import annotations

import builtins
import threading
from dataclasses import dataclass, replace

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa, utils

from iotstore.asserts.keys import PrivateKey, PublicKey

from ._common import StoreSigner, check_bits, check_name, load_rsa_pem, utcnow
from .errors import KeyDisabled, KeyExists, KeyNotFound
from .interfaces import KeyInfo

__all__ = ["MemoryKeyStore"]

_BACKEND = "memory"
_PREHASHED_SHA512 = utils.Prehashed(hashes.SHA512())


@dataclass(slots=True)
class _Entry:
    info: KeyInfo
    key: rsa.RSAPrivateKey
    public: PublicKey

    def __repr__(self) -> str:
        return f"_Entry(key_id={self.info.key_id!r})"


class MemoryKeyStore:
    """A :class:`~iotstore.keystore.KeyStore` holding ``cryptography`` keys in a dict.

    Thread safe. Meant for tests and single-process embedded use.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[str, _Entry] = {}

    def generate(self, name: str, bits: int = 4096) -> KeyInfo:
        """Generate and keep an RSA key; see :meth:`KeyStore.generate`."""
        check_name(name)
        check_bits(bits)
        with self._lock:
            self._refuse_name(name)
        key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
        return self._add(name, key)

    def import_pem(self, name: str, pem: bytes, password: bytes | None = None) -> KeyInfo:
        """Keep an existing RSA key; see :meth:`KeyStore.import_pem`."""
        check_name(name)
        return self._add(name, load_rsa_pem(name, pem, password))

    def get(self, name: str) -> KeyInfo:
        """Return key ``name``; see :meth:`KeyStore.get`."""
        return self._entry(name).info

    def find_by_id(self, key_id: str) -> KeyInfo:
        """Return the key with snapd key id ``key_id``; see :meth:`KeyStore.find_by_id`."""
        with self._lock:
            for entry in self._entries.values():
                if entry.info.key_id == key_id:
                    return entry.info
        raise KeyNotFound(f"no key with id {key_id!r}")

    def list(self) -> builtins.list[KeyInfo]:
        """Return every key sorted by name; see :meth:`KeyStore.list`."""
        with self._lock:
            return [self._entries[name].info for name in sorted(self._entries)]

    def signer(self, name: str) -> PrivateKey:
        """Return a signer for key ``name``; see :meth:`KeyStore.signer`."""
        entry = self._entry(name)
        if entry.info.disabled:
            raise KeyDisabled(f'key "{name}" is disabled and cannot sign')
        return StoreSigner(_BACKEND, entry.public, lambda digest: self._sign(name, digest))

    def disable(self, name: str) -> KeyInfo:
        """Disable key ``name``; see :meth:`KeyStore.disable`."""
        check_name(name)
        with self._lock:
            entry = self._locked_entry(name)
            entry.info = replace(entry.info, disabled=True)
            return entry.info

    def delete(self, name: str) -> None:
        """Remove key ``name``; see :meth:`KeyStore.delete`."""
        check_name(name)
        with self._lock:
            self._locked_entry(name)
            del self._entries[name]

    def public_key(self, name: str) -> PublicKey:
        """Return the public key of ``name``; see :meth:`KeyStore.public_key`."""
        return self._entry(name).public

    def close(self) -> None:
        """Forget every key."""
        with self._lock:
            self._entries.clear()

    def __repr__(self) -> str:
        with self._lock:
            ids = [entry.info.key_id for entry in self._entries.values()]
        return f"MemoryKeyStore(backend={_BACKEND!r}, key_ids={ids!r})"

    def _sign(self, name: str, digest: bytes) -> bytes:
        entry = self._entry(name)
        if entry.info.disabled:
            raise KeyDisabled(f'key "{name}" is disabled and cannot sign')
        return entry.key.sign(digest, padding.PKCS1v15(), _PREHASHED_SHA512)

    def _add(self, name: str, key: rsa.RSAPrivateKey) -> KeyInfo:
        public = PublicKey.from_rsa(key.public_key())
        info = KeyInfo(
            name=name,
            key_id=public.id,
            bits=key.key_size,
            created=utcnow(),
            disabled=False,
            backend=_BACKEND,
        )
        with self._lock:
            self._refuse_name(name)
            for other in self._entries.values():
                if other.info.key_id == info.key_id:
                    raise KeyExists(f'key {info.key_id} is already stored as "{other.info.name}"')
            self._entries[name] = _Entry(info, key, public)
        return info

    def _refuse_name(self, name: str) -> None:
        if name in self._entries:
            raise KeyExists(f'a key named "{name}" already exists')

    def _entry(self, name: str) -> _Entry:
        check_name(name)
        with self._lock:
            return self._locked_entry(name)

    def _locked_entry(self, name: str) -> _Entry:
        try:
            return self._entries[name]
        except KeyError:
            raise KeyNotFound(f'no key named "{name}"') from None
