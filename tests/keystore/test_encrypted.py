"""The encrypted store beyond the contract: nothing in clear, tamper evidence, master keys."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import sqlite3
import stat
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import serialization

from iotstore.keystore import (
    EncryptedKeyStore,
    KeyDisabled,
    KeyExists,
    KeyIntegrityError,
    KeyNotFound,
    KeyRecord,
    KeyStorageError,
    MasterKey,
    MasterKeyError,
    SqliteKeyRecords,
)

from .conftest import VectorKey

BITS = 2048


def digest_of(data: bytes) -> bytes:
    return hashlib.sha512(data).digest()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "keys.db"


@pytest.fixture
def master_key() -> MasterKey:
    return MasterKey.generate()


@contextlib.contextmanager
def opened(path: Path, master_key: MasterKey) -> Iterator[EncryptedKeyStore]:
    store = EncryptedKeyStore.open_sqlite(path, master_key)
    try:
        yield store
    finally:
        store.close()


def raw_files(directory: Path) -> bytes:
    """Every byte SQLite wrote under ``directory`` (database, journals)."""
    return b"".join(p.read_bytes() for p in sorted(directory.iterdir()) if p.is_file())


def execute(path: Path, sql: str, params: tuple[object, ...] = ()) -> None:
    with contextlib.closing(sqlite3.connect(path)) as conn, conn:
        conn.execute(sql, params)


# --- nothing in clear -----------------------------------------------------------------


def test_database_holds_no_private_key_bytes(
    tmp_path: Path, master_key: MasterKey, brand_key: VectorKey
) -> None:
    db_dir = tmp_path / "db"
    db_dir.mkdir()
    with opened(db_dir / "keys.db", master_key) as store:
        store.import_pem("brand", brand_key.pem)
        store.generate("generated", bits=BITS)
        store.signer("brand").sign_digest(digest_of(b"x"))
        store.disable("generated")

    raw = raw_files(db_dir)
    key = brand_key.private
    ders = [
        key.private_bytes(serialization.Encoding.DER, fmt, serialization.NoEncryption())
        for fmt in (
            serialization.PrivateFormat.PKCS8,
            serialization.PrivateFormat.TraditionalOpenSSL,
        )
    ]
    numbers = key.private_numbers()
    secrets = [*ders, brand_key.pem]
    secrets += brand_key.pem.splitlines()[1:-1]
    for n in (numbers.d, numbers.p, numbers.q, numbers.dmp1, numbers.dmq1, numbers.iqmp):
        big_endian = n.to_bytes((n.bit_length() + 7) // 8, "big")
        secrets += [big_endian, big_endian[:16], big_endian[-16:]]
    assert raw  # the search below must have something to search
    for secret in secrets:
        assert secret not in raw
    # The public data is there in clear, so the search does look at the right place.
    assert brand_key.key_id.encode() in raw


def test_database_file_is_private(db_path: Path, master_key: MasterKey) -> None:
    with opened(db_path, master_key):
        pass
    assert stat.S_IMODE(db_path.stat().st_mode) == 0o600


# --- tamper evidence ------------------------------------------------------------------


def test_keys_survive_reopening(db_path: Path, master_key: MasterKey, brand_key: VectorKey) -> None:
    with opened(db_path, master_key) as store:
        generated = store.generate("gen", bits=BITS)
        imported = store.import_pem("brand", brand_key.pem)
        store.generate("old", bits=BITS)
        old = store.disable("old")
        before = store.list()

    with opened(db_path, master_key) as store:
        assert store.list() == before
        assert store.get("gen") == generated
        assert store.find_by_id(brand_key.key_id) == imported
        assert store.get("old") == old
        digest = digest_of(b"after restart")
        signature = store.signer("gen").sign_digest(digest)
        store.public_key("gen").verify_digest(digest, signature)
        assert store.public_key("gen").id == generated.key_id
        with pytest.raises(KeyExists):
            store.generate("gen", bits=BITS)


def test_wrong_master_key_is_refused(db_path: Path, master_key: MasterKey) -> None:
    with opened(db_path, master_key) as store:
        store.generate("k", bits=BITS)

    other = MasterKey.generate()
    with pytest.raises(MasterKeyError, match=f"not by the configured master key {other.id}"):
        EncryptedKeyStore.open_sqlite(db_path, other)


def test_wrong_master_key_with_forged_id_still_fails(db_path: Path, master_key: MasterKey) -> None:
    with opened(db_path, master_key) as store:
        store.generate("k", bits=BITS)
    other = MasterKey.generate()
    execute(db_path, "UPDATE keystore_keys SET master_key_id = ?", (other.id,))

    with opened(db_path, other) as store, pytest.raises(KeyIntegrityError) as raised:
        store.signer("k")
    assert isinstance(raised.value.__cause__, InvalidTag)


def test_tampered_ciphertext_is_detected(db_path: Path, master_key: MasterKey) -> None:
    with opened(db_path, master_key) as store:
        store.generate("k", bits=BITS)
    with contextlib.closing(sqlite3.connect(db_path)) as conn, conn:
        (ciphertext,) = conn.execute("SELECT ciphertext FROM keystore_keys").fetchone()
        flipped = bytearray(ciphertext)
        flipped[len(flipped) // 2] ^= 0x01
        conn.execute("UPDATE keystore_keys SET ciphertext = ?", (bytes(flipped),))

    with opened(db_path, master_key) as store:
        assert store.get("k").name == "k"  # metadata still reads
        with pytest.raises(KeyIntegrityError, match='key record "k" failed authentication'):
            store.signer("k")
        with pytest.raises(KeyIntegrityError):
            store.public_key("k")


def test_tampered_nonce_is_detected(db_path: Path, master_key: MasterKey) -> None:
    with opened(db_path, master_key) as store:
        store.generate("k", bits=BITS)
    execute(db_path, "UPDATE keystore_keys SET nonce = ?", (os.urandom(12),))

    with opened(db_path, master_key) as store, pytest.raises(KeyIntegrityError):
        store.signer("k")


def test_swapped_records_are_detected(db_path: Path, master_key: MasterKey) -> None:
    with opened(db_path, master_key) as store:
        store.generate("a", bits=BITS)
        store.generate("b", bits=BITS)
    with contextlib.closing(sqlite3.connect(db_path)) as conn, conn:
        query = "SELECT name, nonce, ciphertext FROM keystore_keys"
        rows = {name: (nonce, ct) for name, nonce, ct in conn.execute(query)}
        for name, other in (("a", "b"), ("b", "a")):
            conn.execute(
                "UPDATE keystore_keys SET nonce = ?, ciphertext = ? WHERE name = ?",
                (*rows[other], name),
            )

    with opened(db_path, master_key) as store:
        for name in ("a", "b"):
            with pytest.raises(KeyIntegrityError, match=f'key record "{name}"'):
                store.signer(name)


def test_renamed_record_is_detected(db_path: Path, master_key: MasterKey) -> None:
    with opened(db_path, master_key) as store:
        store.generate("a", bits=BITS)
    execute(db_path, "UPDATE keystore_keys SET name = 'b' WHERE name = 'a'")

    with opened(db_path, master_key) as store, pytest.raises(KeyIntegrityError):
        store.signer("b")


def test_record_pointing_at_another_key_id_is_detected(
    db_path: Path, master_key: MasterKey, brand_key: VectorKey
) -> None:
    with opened(db_path, master_key) as store:
        store.generate("a", bits=BITS)
    execute(db_path, "UPDATE keystore_keys SET key_id = ?", (brand_key.key_id,))

    with opened(db_path, master_key) as store, pytest.raises(KeyIntegrityError):
        store.signer("a")


def test_disable_in_another_process_is_honoured(db_path: Path, master_key: MasterKey) -> None:
    with opened(db_path, master_key) as first, opened(db_path, master_key) as second:
        first.generate("k", bits=BITS)
        signer = first.signer("k")
        signer.sign_digest(digest_of(b"cached now"))
        second.disable("k")
        with pytest.raises(KeyDisabled):
            signer.sign_digest(digest_of(b"refused"))


# --- master keys ----------------------------------------------------------------------


def test_create_file_then_from_file(tmp_path: Path) -> None:
    path = tmp_path / "master.key"
    created = MasterKey.create_file(path)

    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(base64.b64decode(path.read_text().strip(), validate=True)) == 32
    assert MasterKey.from_file(path).id == created.id


def test_create_file_is_0600_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        MasterKey.create_file(tmp_path / "master.key")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "master.key").stat().st_mode) == 0o600


def test_create_file_never_overwrites(tmp_path: Path) -> None:
    path = tmp_path / "master.key"
    first = MasterKey.create_file(path)
    content = path.read_bytes()
    with pytest.raises(MasterKeyError, match="already exists"):
        MasterKey.create_file(path)
    assert path.read_bytes() == content
    assert MasterKey.from_file(path).id == first.id


def test_create_file_refuses_a_symlink(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    (tmp_path / "master.key").symlink_to(target)
    with pytest.raises(MasterKeyError):
        MasterKey.create_file(tmp_path / "master.key")
    assert not target.exists()


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660, 0o666, 0o601])
def test_from_file_refuses_group_or_other_access(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "master.key"
    MasterKey.create_file(path)
    path.chmod(mode)
    with pytest.raises(MasterKeyError, match=f"has mode {mode:04o}.*chmod 600"):
        MasterKey.from_file(path)


@pytest.mark.parametrize("mode", [0o600, 0o400])
def test_from_file_accepts_owner_only_modes(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "master.key"
    created = MasterKey.create_file(path)
    path.chmod(mode)
    assert MasterKey.from_file(path).id == created.id


@pytest.mark.parametrize(
    ("content", "message"),
    [
        pytest.param(b"", "not 0 bytes", id="empty"),
        pytest.param(b"not base64!!\n", "not valid base64", id="not-base64"),
        pytest.param(base64.b64encode(b"short"), "not 5 bytes", id="short"),
        pytest.param(base64.b64encode(b"\x07" * 33), "not 33 bytes", id="long"),
    ],
)
def test_from_file_refuses_malformed_keys(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "master.key"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(content)
    with pytest.raises(MasterKeyError, match=message):
        MasterKey.from_file(path)


def test_from_file_missing_or_not_a_file(tmp_path: Path) -> None:
    with pytest.raises(MasterKeyError, match="does not exist"):
        MasterKey.from_file(tmp_path / "absent")
    directory = tmp_path / "dir"
    directory.mkdir(mode=0o700)
    with pytest.raises(MasterKeyError, match="not a regular file"):
        MasterKey.from_file(directory)


def test_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    raw = os.urandom(32)
    monkeypatch.setenv("IOTSTORE_MASTER_KEY", base64.b64encode(raw).decode())
    assert MasterKey.from_env().id == MasterKey(raw).id
    monkeypatch.setenv("OTHER_VAR", base64.b64encode(raw).decode() + "\n")
    assert MasterKey.from_env("OTHER_VAR").id == MasterKey(raw).id
    assert MasterKey.from_env("X", environ={"X": base64.b64encode(raw).decode()}).id == (
        MasterKey(raw).id
    )


def test_from_env_errors_never_echo_the_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("IOTSTORE_MASTER_KEY", raising=False)
    with pytest.raises(MasterKeyError, match="IOTSTORE_MASTER_KEY is not set"):
        MasterKey.from_env()
    secret_ish = base64.b64encode(os.urandom(31)).decode()
    monkeypatch.setenv("IOTSTORE_MASTER_KEY", secret_ish)
    with pytest.raises(MasterKeyError) as raised:
        MasterKey.from_env()
    assert secret_ish not in str(raised.value)


def test_master_key_store_round_trip_from_env(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IOTSTORE_MASTER_KEY", base64.b64encode(os.urandom(32)).decode())
    with opened(db_path, MasterKey.from_env()) as store:
        info = store.generate("k", bits=BITS)
    with opened(db_path, MasterKey.from_env()) as store:
        assert store.get("k") == info
        store.signer("k").sign_digest(digest_of(b"ok"))


def test_master_key_repr_shows_only_its_id(tmp_path: Path) -> None:
    path = tmp_path / "master.key"
    key = MasterKey.create_file(path)
    encoded = path.read_text().strip()
    assert repr(key) == f"MasterKey(id={key.id!r})"
    assert encoded not in repr(key)
    assert not hasattr(key, "__dict__")
    with pytest.raises(MasterKeyError):
        MasterKey(b"\x00" * 16)


# --- records --------------------------------------------------------------------------


def test_records_hide_ciphertext_in_repr(db_path: Path, master_key: MasterKey) -> None:
    with opened(db_path, master_key) as store:
        store.generate("k", bits=BITS)
    with contextlib.closing(SqliteKeyRecords(db_path)) as records:
        record = records.get("k")
    assert isinstance(record, KeyRecord)
    assert "ciphertext" not in repr(record)
    assert "nonce" not in repr(record)
    assert len(record.nonce) == 12


def test_records_update_missing_and_duplicate(db_path: Path, master_key: MasterKey) -> None:
    with opened(db_path, master_key) as store:
        store.generate("k", bits=BITS)
    with contextlib.closing(SqliteKeyRecords(db_path)) as records:
        record = records.get("k")
        assert record is not None
        with pytest.raises(KeyExists):
            records.put(record)
        with pytest.raises(KeyNotFound):
            records.update(replace(record, name="other"))
        assert records.get("absent") is None
        assert records.get_by_key_id(record.key_id) == record


def test_unusable_database_is_a_storage_error(tmp_path: Path) -> None:
    path = tmp_path / "keys.db"
    path.write_bytes(b"this is not a sqlite database, not even close" * 100)
    with pytest.raises(KeyStorageError) as raised:
        SqliteKeyRecords(path)
    assert isinstance(raised.value.__cause__, sqlite3.Error)
