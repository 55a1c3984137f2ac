"""Key-store writes made to follow a database transaction they cannot join.

A key store is not in the database: a request that generates a key and then
fails (the root cannot sign its certificate, a later check refuses, the
commit fails) would leave the key behind with no row naming it, and a retry
under the same name would be refused. :class:`TransactionKeys` remembers what
the request wrote: :meth:`~TransactionKeys.rolled_back` deletes the keys it
created, and disabling waits for :meth:`~TransactionKeys.committed`, so a
rolled-back "disable" never disables a key the database still calls active.

What it cannot cover is a process killed between the key-store write and the
commit: the key stays, unreferenced (``iotstore key list`` shows it).
"""

from __future__ import annotations

import builtins
import threading
from dataclasses import replace

from iotstore.asserts.keys import PrivateKey, PublicKey

from .interfaces import KeyInfo, KeyStore

__all__ = ["TransactionKeys"]


class TransactionKeys:
    """A :class:`KeyStore` view for one unit of work over ``store``."""

    def __init__(self, store: KeyStore) -> None:
        self.store = store
        self._lock = threading.Lock()
        self._created: builtins.list[str] = []
        self._to_disable: builtins.list[str] = []

    def generate(self, name: str, bits: int = 4096) -> KeyInfo:
        """Generate now; deleted again if the transaction rolls back."""
        info = self.store.generate(name, bits)
        with self._lock:
            self._created.append(name)
        return info

    def import_pem(self, name: str, pem: bytes, password: bytes | None = None) -> KeyInfo:
        """Import now; deleted again if the transaction rolls back."""
        info = self.store.import_pem(name, pem, password)
        with self._lock:
            self._created.append(name)
        return info

    def disable(self, name: str) -> KeyInfo:
        """Disable once the transaction commits; returns the key as it will be then."""
        info = self.store.get(name)
        with self._lock:
            self._to_disable.append(name)
        return replace(info, disabled=True)

    def delete(self, name: str) -> None:
        """Delete at once (deleting is itself an undo)."""
        self.store.delete(name)

    def get(self, name: str) -> KeyInfo:
        """See :meth:`KeyStore.get`."""
        return self.store.get(name)

    def find_by_id(self, key_id: str) -> KeyInfo:
        """See :meth:`KeyStore.find_by_id`."""
        return self.store.find_by_id(key_id)

    def list(self) -> builtins.list[KeyInfo]:
        """See :meth:`KeyStore.list`."""
        return self.store.list()

    def signer(self, name: str) -> PrivateKey:
        """See :meth:`KeyStore.signer`."""
        return self.store.signer(name)

    def public_key(self, name: str) -> PublicKey:
        """See :meth:`KeyStore.public_key`."""
        return self.store.public_key(name)

    def close(self) -> None:
        """Nothing to release: the underlying store belongs to the deployment."""

    def committed(self) -> None:
        """The transaction committed: keep what was created, apply the disables."""
        with self._lock:
            names, self._to_disable, self._created = self._to_disable, [], []
        for name in names:
            self.store.disable(name)

    def rolled_back(self) -> None:
        """The transaction rolled back: delete the keys it created, forget the disables."""
        with self._lock:
            names, self._created, self._to_disable = self._created, [], []
        for name in reversed(names):
            self.store.delete(name)

    def __repr__(self) -> str:
        return f"TransactionKeys({self.store!r})"
