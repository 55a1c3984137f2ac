"""What a key store promises, whichever backend holds the keys.

:class:`KeyStore` is implemented by :class:`~iotstore.keystore.MemoryKeyStore`,
:class:`~iotstore.keystore.EncryptedKeyStore` and
:class:`~iotstore.keystore.PKCS11KeyStore`; one contract test suite runs
against all of them. :class:`KeyRecords` is the storage the encrypted store
writes its sealed records to.
"""

from __future__ import annotations

import builtins
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from iotstore.asserts.keys import PrivateKey, PublicKey

__all__ = ["KeyInfo", "KeyRecord", "KeyRecords", "KeyStore"]


@dataclass(frozen=True, slots=True)
class KeyInfo:
    """What a store tells about one key; never any private material.

    ``key_id`` is snapd's key id (``sign-key-sha3-384``), ``created`` a UTC
    datetime, ``backend`` the name of the store kind that holds the key.
    """

    name: str
    key_id: str
    bits: int
    created: datetime
    disabled: bool
    backend: str


class KeyStore(Protocol):
    """Custody of private signing keys: keys go in, signatures come out.

    No method returns private key material; there is no export. Names are
    1-64 characters of ``[a-z0-9][a-z0-9._-]*`` and unique per store; key ids
    are unique too, so one key cannot be stored under two names.
    """

    def generate(self, name: str, bits: int = 4096) -> KeyInfo:
        """Generate an RSA key (exponent 65537) of ``bits`` and store it as ``name``.

        Returns its :class:`KeyInfo`. Raises :class:`InvalidKeyName`,
        :class:`InvalidKeySize` (outside 2048-16384 or not a multiple of 256),
        :class:`KeyExists`, or the backend's storage error.
        """
        ...

    def import_pem(self, name: str, pem: bytes, password: bytes | None = None) -> KeyInfo:
        """Store an existing RSA private key (PEM, PKCS#1 or PKCS#8) as ``name``.

        Returns its :class:`KeyInfo`. Raises :class:`KeyImportError` when the
        PEM cannot be read (or ``password`` is wrong), is not RSA or is under
        2048 bits; :class:`InvalidKeyName`; :class:`KeyExists` when the name
        or the key itself is already stored.
        """
        ...

    def get(self, name: str) -> KeyInfo:
        """Return the key called ``name``; raise :class:`KeyNotFound` or :class:`InvalidKeyName`."""
        ...

    def find_by_id(self, key_id: str) -> KeyInfo:
        """Return the key whose snapd key id is ``key_id``; raise :class:`KeyNotFound`."""
        ...

    def list(self) -> builtins.list[KeyInfo]:
        """Return every key, disabled ones included, sorted by name."""
        ...

    def signer(self, name: str) -> PrivateKey:
        """Return a :class:`~iotstore.asserts.keys.PrivateKey` that signs with key ``name``.

        Its ``sign_digest`` goes through the store on every call, so it
        raises :class:`KeyDisabled` once the key is disabled. Raises
        :class:`KeyNotFound`, :class:`InvalidKeyName`, :class:`KeyDisabled`.
        """
        ...

    def disable(self, name: str) -> KeyInfo:
        """Disable key ``name``: it stays listed but can no longer sign.

        There is no enable. Returns the updated :class:`KeyInfo`; disabling
        twice is harmless.
        Raises :class:`KeyNotFound`, :class:`InvalidKeyName`.
        """
        ...

    def delete(self, name: str) -> None:
        """Remove key ``name`` for good.

        Only for a key nothing refers to yet: the undo of a generation or
        import whose database transaction failed (see :class:`TransactionKeys`).
        Raises :class:`KeyNotFound`, :class:`InvalidKeyName`.
        """
        ...

    def public_key(self, name: str) -> PublicKey:
        """Return the public half of key ``name`` (also for disabled keys).

        Raises :class:`KeyNotFound`, :class:`InvalidKeyName`.
        """
        ...

    def close(self) -> None:
        """Release sessions, connections and cached keys; the store is unusable afterwards."""
        ...


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """One sealed key as :class:`EncryptedKeyStore` stores it.

    ``ciphertext`` is the AES-256-GCM encryption of the PKCS#8 DER key,
    ``master_key_id`` names the master key that sealed it (so a wrong master
    key is told apart from a tampered record). Only ``disabled`` ever changes.
    """

    name: str
    key_id: str
    bits: int
    created: datetime
    disabled: bool
    master_key_id: str
    nonce: bytes = field(repr=False)
    ciphertext: bytes = field(repr=False)


class KeyRecords(Protocol):
    """Where :class:`EncryptedKeyStore` keeps its records: a table, nothing more.

    Implementations never see clear key material. Whether a write is durable
    at once (its own database) or with the caller's transaction (the app
    database) is the implementation's to document.
    """

    def put(self, record: KeyRecord) -> None:
        """Add a record; raise :class:`KeyExists` if its name or key id is taken."""
        ...

    def get(self, name: str) -> KeyRecord | None:
        """Return the record called ``name``, or None."""
        ...

    def get_by_key_id(self, key_id: str) -> KeyRecord | None:
        """Return the record whose key id is ``key_id``, or None."""
        ...

    def list(self) -> builtins.list[KeyRecord]:
        """Return every record, sorted by name."""
        ...

    def update(self, record: KeyRecord) -> None:
        """Replace the stored record with the same name; raise :class:`KeyNotFound` if none."""
        ...

    def delete(self, name: str) -> None:
        """Remove the record called ``name``; raise :class:`KeyNotFound` if none."""
        ...
