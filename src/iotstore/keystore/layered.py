"""Two key stores as one: new keys go to the first, existing keys are used where they are.

A deployment that moves to an HSM keeps the keys it made before (the root's,
in the encrypted store) and generates every new brand and serial key in the
token. Each name lives in exactly one of the two: :meth:`generate` refuses a
name the other store holds already.
"""

from __future__ import annotations

import builtins

from iotstore.asserts.keys import PrivateKey, PublicKey

from .errors import KeyExists, KeyNotFound
from .interfaces import KeyInfo, KeyStore

__all__ = ["LayeredKeyStore"]


def _holds(store: KeyStore, name: str) -> bool:
    try:
        store.get(name)
    except KeyNotFound:
        return False
    return True


class LayeredKeyStore:
    """A :class:`KeyStore` over ``primary`` (new keys) and ``fallback`` (keys made before)."""

    def __init__(self, primary: KeyStore, fallback: KeyStore) -> None:
        self._primary = primary
        self._fallback = fallback

    def _holder(self, name: str) -> KeyStore:
        return self._primary if _holds(self._primary, name) else self._fallback

    def generate(self, name: str, bits: int = 4096) -> KeyInfo:
        """Generate key ``name`` in the primary store; see :meth:`KeyStore.generate`."""
        self._refuse_fallback_name(name)
        return self._primary.generate(name, bits)

    def import_pem(self, name: str, pem: bytes, password: bytes | None = None) -> KeyInfo:
        """Import key ``name`` into the primary store; see :meth:`KeyStore.import_pem`."""
        self._refuse_fallback_name(name)
        return self._primary.import_pem(name, pem, password)

    def _refuse_fallback_name(self, name: str) -> None:
        if _holds(self._fallback, name):
            raise KeyExists(f'a key named "{name}" already exists')

    def get(self, name: str) -> KeyInfo:
        """Key ``name`` from whichever store holds it."""
        return self._holder(name).get(name)

    def find_by_id(self, key_id: str) -> KeyInfo:
        """The key with snapd key id ``key_id`` from whichever store holds it."""
        try:
            return self._primary.find_by_id(key_id)
        except KeyNotFound:
            return self._fallback.find_by_id(key_id)

    def list(self) -> builtins.list[KeyInfo]:
        """Every key of both stores, sorted by name."""
        return sorted([*self._primary.list(), *self._fallback.list()], key=lambda k: k.name)

    def signer(self, name: str) -> PrivateKey:
        """A signer from whichever store holds ``name``."""
        return self._holder(name).signer(name)

    def disable(self, name: str) -> KeyInfo:
        """Disable ``name`` in whichever store holds it."""
        return self._holder(name).disable(name)

    def delete(self, name: str) -> None:
        """Delete ``name`` from whichever store holds it."""
        self._holder(name).delete(name)

    def public_key(self, name: str) -> PublicKey:
        """The public key of ``name`` from whichever store holds it."""
        return self._holder(name).public_key(name)

    def close(self) -> None:
        """Close both stores."""
        try:
            self._primary.close()
        finally:
            self._fallback.close()

    def __repr__(self) -> str:
        return f"LayeredKeyStore(primary={self._primary!r}, fallback={self._fallback!r})"
