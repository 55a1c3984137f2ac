"""The one error hierarchy of :mod:`iotstore.keystore`.

Every failure a key store reports is a :class:`KeyStoreError` whose message is
fit to show an operator. Exceptions from the libraries underneath
(``pkcs11``, ``cryptography``, ``sqlite3``) are wrapped where they enter, with
the original kept as ``__cause__``. No message ever carries key material, a
PIN or a master key.
"""

from __future__ import annotations

__all__ = [
    "HSMError",
    "InvalidKeyName",
    "InvalidKeySize",
    "KeyDisabled",
    "KeyExists",
    "KeyImportError",
    "KeyIntegrityError",
    "KeyNotFound",
    "KeyStorageError",
    "KeyStoreError",
    "MasterKeyError",
]

# Several names below lack the "Error" suffix (ruff N818): they are the names
# the key-store issue and its callers use, and read as conditions ("except KeyNotFound").


class KeyStoreError(Exception):
    """Root of every error raised by :mod:`iotstore.keystore`."""


class KeyNotFound(KeyStoreError):
    """No key with the requested name or key id."""


class KeyExists(KeyStoreError):
    """A key with that name, or the same key under another name, is already stored."""


class KeyDisabled(KeyStoreError):
    """The key was disabled and can no longer sign."""


class InvalidKeyName(KeyStoreError):
    """A key name is not 1-64 characters of ``[a-z0-9][a-z0-9._-]*``."""


class InvalidKeySize(KeyStoreError):
    """A requested RSA modulus size is not supported."""


class KeyImportError(KeyStoreError):
    """A PEM key could not be imported (unreadable, wrong password, not RSA, too small)."""


class KeyIntegrityError(KeyStoreError):
    """A stored key record failed authentication: it was altered, swapped or corrupted."""


class KeyStorageError(KeyStoreError):
    """The database holding key records failed."""


class MasterKeyError(KeyStoreError):
    """The master key is missing, malformed, too widely readable, or not this store's."""


class HSMError(KeyStoreError):
    """The PKCS#11 module or token failed or refused an operation."""
