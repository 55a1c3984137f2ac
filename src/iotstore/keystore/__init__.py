"""Custody of private signing keys behind one protocol.

Pick an implementation in the composition root and hand it around as a
:class:`KeyStore`: :class:`MemoryKeyStore` (tests, embedded),
:class:`EncryptedKeyStore` (AES-GCM sealed records, master key outside the
database) or :class:`PKCS11KeyStore` (an HSM). Signing goes through
:meth:`KeyStore.signer`, which returns an :class:`iotstore.asserts.keys.PrivateKey`;
private key material never comes back out.
"""

from __future__ import annotations

from .encrypted import DEFAULT_MASTER_KEY_ENV, EncryptedKeyStore, MasterKey, SqliteKeyRecords
from .errors import (
    HSMError,
    InvalidKeyName,
    InvalidKeySize,
    KeyDisabled,
    KeyExists,
    KeyImportError,
    KeyIntegrityError,
    KeyNotFound,
    KeyStorageError,
    KeyStoreError,
    MasterKeyError,
)
from .interfaces import KeyInfo, KeyRecord, KeyRecords, KeyStore
from .layered import LayeredKeyStore
from .memory import MemoryKeyStore
from .pkcs11 import PKCS11KeyStore
from .transaction import TransactionKeys

__all__ = [
    "DEFAULT_MASTER_KEY_ENV",
    "EncryptedKeyStore",
    "HSMError",
    "InvalidKeyName",
    "InvalidKeySize",
    "KeyDisabled",
    "KeyExists",
    "KeyImportError",
    "KeyInfo",
    "KeyIntegrityError",
    "KeyNotFound",
    "KeyRecord",
    "KeyRecords",
    "KeyStorageError",
    "KeyStore",
    "KeyStoreError",
    "LayeredKeyStore",
    "MasterKey",
    "MasterKeyError",
    "MemoryKeyStore",
    "PKCS11KeyStore",
    "SqliteKeyRecords",
    "TransactionKeys",
]
