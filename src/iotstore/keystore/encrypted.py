"""Private keys sealed with AES-256-GCM under a master key kept outside the records.

Each key is serialised as PKCS#8 DER and encrypted with a fresh random 96-bit
nonce; the key's name and key id are the associated data, so a record moved
to another row (or renamed) fails to decrypt. The master key comes from a
0600 file or an environment variable, never from the record storage: a
stolen database alone yields nothing.
"""

from __future__ import annotations

import base64
import binascii
import builtins
import os
import sqlite3
import stat
import threading
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa, utils
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from iotstore.asserts.keys import PrivateKey, PublicKey

from ._common import StoreSigner, check_bits, check_name, load_rsa_pem, utcnow
from .errors import (
    KeyDisabled,
    KeyExists,
    KeyIntegrityError,
    KeyNotFound,
    KeyStorageError,
    MasterKeyError,
)
from .interfaces import KeyInfo, KeyRecord, KeyRecords

__all__ = ["DEFAULT_MASTER_KEY_ENV", "EncryptedKeyStore", "MasterKey", "SqliteKeyRecords"]

DEFAULT_MASTER_KEY_ENV = "IOTSTORE_MASTER_KEY"

_BACKEND = "encrypted"
_MASTER_KEY_SIZE = 32
_NONCE_SIZE = 12
_PREHASHED_SHA512 = utils.Prehashed(hashes.SHA512())
# Domain-separation labels: the record key and the public master-key id are
# derived separately so publishing the id says nothing about the record key.
_RECORD_KEY_INFO = b"iotstore keystore v1 record encryption key"
_MASTER_KEY_ID_INFO = b"iotstore keystore v1 master key id"
_AAD_PREFIX = b"iotstore-keystore-v1\x00"


def _derive(master: bytes, info: bytes, length: int) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=info).derive(master)


def _decode_master_key(text: str | bytes, where: str) -> bytes:
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError) as e:
        raise MasterKeyError(f"{where} is not valid base64") from e
    if len(raw) != _MASTER_KEY_SIZE:
        raise MasterKeyError(
            f"{where} must hold {_MASTER_KEY_SIZE} random bytes in base64, not {len(raw)} bytes"
        )
    return raw


class MasterKey:
    """The 256-bit key that seals every record of an :class:`EncryptedKeyStore`.

    Only a derived AES-GCM key and a public fingerprint (``id``) are kept;
    the ``repr`` shows the fingerprint alone.
    """

    __slots__ = ("_aead", "id")

    def __init__(self, key: bytes) -> None:
        """Wrap 32 raw bytes; raise :class:`MasterKeyError` for any other length."""
        if len(key) != _MASTER_KEY_SIZE:
            raise MasterKeyError(f"a master key is {_MASTER_KEY_SIZE} bytes, not {len(key)}")
        self._aead = AESGCM(_derive(key, _RECORD_KEY_INFO, 32))
        self.id: str = _derive(key, _MASTER_KEY_ID_INFO, 8).hex()

    @classmethod
    def generate(cls) -> MasterKey:
        """Return a fresh random master key that lives only in memory."""
        return cls(os.urandom(_MASTER_KEY_SIZE))

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> MasterKey:
        """Read a master key file (base64 text of 32 bytes) written by :meth:`create_file`.

        Returns the key. Raises :class:`MasterKeyError` when the file is
        missing, unreadable, not a regular file, malformed, or when its mode
        gives group or others any access (0600 or 0400 expected).
        """
        shown = os.fspath(path)
        try:
            # Symlinks are followed (Kubernetes mounts secrets that way); the mode checked
            # below is the target's.
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError as e:
            raise MasterKeyError(f"master key file {shown} does not exist") from e
        except OSError as e:
            raise MasterKeyError(f"cannot open master key file {shown}: {e.strerror}") from e
        # Check the opened file, not the path, so a swap between check and read cannot win.
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise MasterKeyError(f"master key file {shown} is not a regular file")
            mode = stat.S_IMODE(st.st_mode)
            if mode & 0o077:
                raise MasterKeyError(
                    f"master key file {shown} has mode {mode:04o}: group or others may access"
                    f" it; run: chmod 600 {shown}"
                )
            data = os.read(fd, 4096)
        except OSError as e:
            raise MasterKeyError(f"cannot read master key file {shown}: {e.strerror}") from e
        finally:
            os.close(fd)
        return cls(_decode_master_key(data, f"master key file {shown}"))

    @classmethod
    def from_env(
        cls, var: str = DEFAULT_MASTER_KEY_ENV, environ: Mapping[str, str] | None = None
    ) -> MasterKey:
        """Read the master key (base64 of 32 bytes) from environment variable ``var``.

        ``environ`` defaults to :data:`os.environ`. Returns the key. Raises
        :class:`MasterKeyError` when the variable is unset or malformed; the
        message never repeats its value.
        """
        env = os.environ if environ is None else environ
        value = env.get(var)
        if value is None:
            raise MasterKeyError(f"environment variable {var} is not set")
        return cls(_decode_master_key(value, f"environment variable {var}"))

    @classmethod
    def create_file(cls, path: str | os.PathLike[str]) -> MasterKey:
        """Create a new random master key file at ``path`` with mode 0600.

        Returns the new key. Raises :class:`MasterKeyError` if the file
        already exists (a master key is never overwritten) or cannot be written.
        """
        shown = os.fspath(path)
        raw = os.urandom(_MASTER_KEY_SIZE)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            # The mode is given at creation so the key is never readable by others, not even
            # between create and chmod; O_EXCL refuses to reuse an existing file or symlink.
            fd = os.open(path, flags, 0o600)
        except FileExistsError as e:
            raise MasterKeyError(f"master key file {shown} already exists; not overwriting") from e
        except OSError as e:
            raise MasterKeyError(f"cannot create master key file {shown}: {e.strerror}") from e
        try:
            with os.fdopen(fd, "wb") as f:
                os.fchmod(f.fileno(), 0o600)  # a restrictive umask must not leave it unreadable
                f.write(base64.b64encode(raw) + b"\n")
                f.flush()
                os.fsync(f.fileno())
        except OSError as e:
            Path(path).unlink(missing_ok=True)
            raise MasterKeyError(f"cannot write master key file {shown}: {e.strerror}") from e
        return cls(raw)

    def _seal(self, plaintext: bytes, aad: bytes) -> tuple[bytes, bytes]:
        nonce = os.urandom(_NONCE_SIZE)
        return nonce, self._aead.encrypt(nonce, plaintext, aad)

    def _unseal(self, nonce: bytes, ciphertext: bytes, aad: bytes) -> bytes:
        return self._aead.decrypt(nonce, ciphertext, aad)

    def __repr__(self) -> str:
        return f"MasterKey(id={self.id!r})"


def _aad(name: str, key_id: str) -> bytes:
    # Names never contain NUL, so the encoding is unambiguous.
    return _AAD_PREFIX + name.encode("utf-8") + b"\x00" + key_id.encode("utf-8")


def _info(record: KeyRecord) -> KeyInfo:
    return KeyInfo(
        name=record.name,
        key_id=record.key_id,
        bits=record.bits,
        created=record.created,
        disabled=record.disabled,
        backend=_BACKEND,
    )


class EncryptedKeyStore:
    """A :class:`~iotstore.keystore.KeyStore` of AES-GCM sealed keys in :class:`KeyRecords`.

    Decrypted keys are cached in memory once used, since signing is a hot
    path; they are never written anywhere in clear. Whether a key is
    disabled is read from the records on every signature, so a key disabled
    by another process stops signing here too.
    """

    def __init__(self, records: KeyRecords, master_key: MasterKey) -> None:
        """Open a store over ``records``.

        Raises :class:`MasterKeyError` if any record was sealed by another
        master key, and the records' storage error if they cannot be read.
        """
        self._records = records
        self._master = master_key
        self._lock = threading.Lock()
        self._cache: dict[str, rsa.RSAPrivateKey] = {}
        self._on_close: builtins.list[Callable[[], None]] = []
        for record in records.list():
            self._check_master_key(record)

    @classmethod
    def open_sqlite(cls, path: str | os.PathLike[str], master_key: MasterKey) -> EncryptedKeyStore:
        """Open (or create) a store in its own SQLite file; :meth:`close` closes the file.

        Raises :class:`KeyStorageError` or :class:`MasterKeyError`.
        """
        records = SqliteKeyRecords(path)
        try:
            store = cls(records, master_key)
        except BaseException:
            records.close()
            raise
        store._on_close.append(records.close)
        return store

    def generate(self, name: str, bits: int = 4096) -> KeyInfo:
        """Generate, seal and store an RSA key; see :meth:`KeyStore.generate`."""
        check_name(name)
        check_bits(bits)
        # Refuse early: a 4096-bit key takes a while to generate.
        if self._records.get(name) is not None:
            raise KeyExists(f'a key named "{name}" already exists')
        return self._add(name, rsa.generate_private_key(public_exponent=65537, key_size=bits))

    def import_pem(self, name: str, pem: bytes, password: bytes | None = None) -> KeyInfo:
        """Seal and store an existing RSA key; see :meth:`KeyStore.import_pem`."""
        check_name(name)
        return self._add(name, load_rsa_pem(name, pem, password))

    def get(self, name: str) -> KeyInfo:
        """Return key ``name``; see :meth:`KeyStore.get`."""
        return _info(self._record(name))

    def find_by_id(self, key_id: str) -> KeyInfo:
        """Return the key with snapd key id ``key_id``; see :meth:`KeyStore.find_by_id`."""
        record = self._records.get_by_key_id(key_id)
        if record is None:
            raise KeyNotFound(f"no key with id {key_id!r}")
        return _info(record)

    def list(self) -> builtins.list[KeyInfo]:
        """Return every key sorted by name; see :meth:`KeyStore.list`."""
        return [_info(record) for record in self._records.list()]

    def signer(self, name: str) -> PrivateKey:
        """Return a signer for key ``name``; see :meth:`KeyStore.signer`.

        Also raises :class:`MasterKeyError` or :class:`KeyIntegrityError`
        when the record cannot be decrypted.
        """
        record = self._record(name)
        if record.disabled:
            raise KeyDisabled(f'key "{name}" is disabled and cannot sign')
        key = self._private_key(record)
        public = PublicKey.from_rsa(key.public_key())
        return StoreSigner(_BACKEND, public, lambda digest: self._sign(name, digest))

    def disable(self, name: str) -> KeyInfo:
        """Disable key ``name`` and drop it from the cache; see :meth:`KeyStore.disable`."""
        record = self._record(name)
        if not record.disabled:
            record = replace(record, disabled=True)
            self._records.update(record)
        with self._lock:
            self._cache.pop(record.key_id, None)
        return _info(record)

    def delete(self, name: str) -> None:
        """Remove key ``name`` and its cached copy; see :meth:`KeyStore.delete`."""
        record = self._record(name)
        self._records.delete(name)
        with self._lock:
            self._cache.pop(record.key_id, None)

    def public_key(self, name: str) -> PublicKey:
        """Return the public key of ``name``; see :meth:`KeyStore.public_key`.

        The public half is recomputed from the sealed key, so this also raises
        :class:`MasterKeyError` or :class:`KeyIntegrityError`.
        """
        return PublicKey.from_rsa(self._private_key(self._record(name)).public_key())

    def close(self) -> None:
        """Drop the decrypted keys and close storage this store opened itself."""
        with self._lock:
            self._cache.clear()
        while self._on_close:
            self._on_close.pop()()

    def __repr__(self) -> str:
        return f"EncryptedKeyStore(backend={_BACKEND!r}, master_key_id={self._master.id!r})"

    def _sign(self, name: str, digest: bytes) -> bytes:
        record = self._record(name)
        if record.disabled:
            raise KeyDisabled(f'key "{name}" is disabled and cannot sign')
        key = self._private_key(record)
        return key.sign(digest, padding.PKCS1v15(), _PREHASHED_SHA512)

    def _add(self, name: str, key: rsa.RSAPrivateKey) -> KeyInfo:
        key_id = PublicKey.from_rsa(key.public_key()).id
        if self._records.get(name) is not None:
            raise KeyExists(f'a key named "{name}" already exists')
        other = self._records.get_by_key_id(key_id)
        if other is not None:
            raise KeyExists(f'key {key_id} is already stored as "{other.name}"')
        der = key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        nonce, ciphertext = self._master._seal(der, _aad(name, key_id))
        record = KeyRecord(
            name=name,
            key_id=key_id,
            bits=key.key_size,
            created=utcnow(),
            disabled=False,
            master_key_id=self._master.id,
            nonce=nonce,
            ciphertext=ciphertext,
        )
        self._records.put(record)
        return _info(record)

    def _record(self, name: str) -> KeyRecord:
        check_name(name)
        record = self._records.get(name)
        if record is None:
            raise KeyNotFound(f'no key named "{name}"')
        return record

    def _check_master_key(self, record: KeyRecord) -> None:
        if record.master_key_id != self._master.id:
            raise MasterKeyError(
                f'key "{record.name}" was sealed by master key {record.master_key_id},'
                f" not by the configured master key {self._master.id}"
            )

    def _private_key(self, record: KeyRecord) -> rsa.RSAPrivateKey:
        with self._lock:
            cached = self._cache.get(record.key_id)
        if cached is not None:
            return cached
        self._check_master_key(record)
        broken = f'key record "{record.name}" failed authentication: it was altered or swapped'
        try:
            der = self._master._unseal(
                record.nonce, record.ciphertext, _aad(record.name, record.key_id)
            )
        except InvalidTag as e:
            raise KeyIntegrityError(broken) from e
        try:
            key = serialization.load_der_private_key(der, password=None)
        except (ValueError, TypeError) as e:
            raise KeyIntegrityError(broken) from e
        # Authenticated but still checked: the sealed key must be the one the row names.
        if (
            not isinstance(key, rsa.RSAPrivateKey)
            or PublicKey.from_rsa(key.public_key()).id != record.key_id
        ):
            raise KeyIntegrityError(broken)
        with self._lock:
            self._cache[record.key_id] = key
        return key


_SCHEMA = """
CREATE TABLE IF NOT EXISTS keystore_keys (
    name TEXT PRIMARY KEY,
    key_id TEXT NOT NULL UNIQUE,
    bits INTEGER NOT NULL,
    created TEXT NOT NULL,
    disabled INTEGER NOT NULL DEFAULT 0,
    master_key_id TEXT NOT NULL,
    nonce BLOB NOT NULL,
    ciphertext BLOB NOT NULL
)
"""
# Whole statements as literals: nothing is ever spliced into SQL text.
_SELECT = "SELECT name, key_id, bits, created, disabled, master_key_id, nonce, ciphertext"
_SELECT_ALL = _SELECT + " FROM keystore_keys ORDER BY name"
_SELECT_BY_NAME = _SELECT + " FROM keystore_keys WHERE name = ?"
_SELECT_BY_KEY_ID = _SELECT + " FROM keystore_keys WHERE key_id = ?"
_INSERT = (
    "INSERT INTO keystore_keys"
    " (name, key_id, bits, created, disabled, master_key_id, nonce, ciphertext)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
_UPDATE = (
    "UPDATE keystore_keys SET key_id = ?, bits = ?, created = ?, disabled = ?,"
    " master_key_id = ?, nonce = ?, ciphertext = ? WHERE name = ?"
)
_DELETE = "DELETE FROM keystore_keys WHERE name = ?"
_Row = tuple[str, str, int, str, int, str, bytes, bytes]


def _from_row(row: _Row) -> KeyRecord:
    name, key_id, bits, created, disabled, master_key_id, nonce, ciphertext = row
    return KeyRecord(
        name=name,
        key_id=key_id,
        bits=bits,
        created=datetime.fromisoformat(created),
        disabled=bool(disabled),
        master_key_id=master_key_id,
        nonce=bytes(nonce),
        ciphertext=bytes(ciphertext),
    )


class SqliteKeyRecords:
    """:class:`KeyRecords` in a SQLite file of its own (stdlib :mod:`sqlite3`).

    Every write commits at once. The file is created with mode 0600; it only
    ever holds sealed keys. Thread safe: one connection behind a lock.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        """Open or create the database at ``path``; raise :class:`KeyStorageError`."""
        self._path = os.fspath(path)
        self._lock = threading.Lock()
        if self._path != ":memory:":
            try:
                os.close(os.open(self._path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            except FileExistsError:
                pass
            except OSError as e:
                raise KeyStorageError(f"cannot create key database {self._path}: {e}") from e
        try:
            self._conn = sqlite3.connect(self._path, check_same_thread=False)
        except sqlite3.Error as e:
            raise KeyStorageError(f"cannot open key database {self._path}: {e}") from e
        try:
            with self._conn:
                self._conn.execute(_SCHEMA)
        except sqlite3.Error as e:
            self._conn.close()
            raise KeyStorageError(f"cannot open key database {self._path}: {e}") from e

    def put(self, record: KeyRecord) -> None:
        """Insert ``record``; raise :class:`KeyExists` or :class:`KeyStorageError`."""
        with self._lock:
            try:
                with self._conn:
                    self._conn.execute(
                        _INSERT,
                        (
                            record.name,
                            record.key_id,
                            record.bits,
                            record.created.isoformat(),
                            int(record.disabled),
                            record.master_key_id,
                            record.nonce,
                            record.ciphertext,
                        ),
                    )
            except sqlite3.IntegrityError as e:
                raise KeyExists(
                    f'a key named "{record.name}" or with id {record.key_id} already exists'
                ) from e
            except sqlite3.Error as e:
                raise KeyStorageError(f"cannot store key record: {e}") from e

    def get(self, name: str) -> KeyRecord | None:
        """Return the record called ``name`` or None; raise :class:`KeyStorageError`."""
        return self._one(_SELECT_BY_NAME, name)

    def get_by_key_id(self, key_id: str) -> KeyRecord | None:
        """Return the record with ``key_id`` or None; raise :class:`KeyStorageError`."""
        return self._one(_SELECT_BY_KEY_ID, key_id)

    def list(self) -> builtins.list[KeyRecord]:
        """Return every record sorted by name; raise :class:`KeyStorageError`."""
        rows = self._query(_SELECT_ALL, ())
        return [_from_row(row) for row in rows]

    def update(self, record: KeyRecord) -> None:
        """Rewrite the record named ``record.name``.

        Raises :class:`KeyNotFound` if there is none, :class:`KeyStorageError`.
        """
        with self._lock:
            try:
                with self._conn:
                    cursor = self._conn.execute(
                        _UPDATE,
                        (
                            record.key_id,
                            record.bits,
                            record.created.isoformat(),
                            int(record.disabled),
                            record.master_key_id,
                            record.nonce,
                            record.ciphertext,
                            record.name,
                        ),
                    )
            except sqlite3.Error as e:
                raise KeyStorageError(f"cannot update key record: {e}") from e
        if cursor.rowcount != 1:
            raise KeyNotFound(f'no key named "{record.name}"')

    def delete(self, name: str) -> None:
        """Remove the record ``name``; raise :class:`KeyNotFound` or :class:`KeyStorageError`."""
        with self._lock:
            try:
                with self._conn:
                    cursor = self._conn.execute(_DELETE, (name,))
            except sqlite3.Error as e:
                raise KeyStorageError(f"cannot delete key record: {e}") from e
        if cursor.rowcount != 1:
            raise KeyNotFound(f'no key named "{name}"')

    def close(self) -> None:
        """Close the database connection."""
        with self._lock:
            self._conn.close()

    def __repr__(self) -> str:
        return f"SqliteKeyRecords(backend='sqlite', path={self._path!r})"

    def _one(self, sql: str, value: str) -> KeyRecord | None:
        rows = self._query(sql, (value,))
        return _from_row(rows[0]) if rows else None

    def _query(self, sql: str, params: tuple[str, ...]) -> builtins.list[_Row]:
        with self._lock:
            try:
                rows: builtins.list[_Row] = self._conn.execute(sql, params).fetchall()
            except sqlite3.Error as e:
                raise KeyStorageError(f"cannot read key records: {e}") from e
        return rows
