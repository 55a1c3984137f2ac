"""A deployment on disk: where its data lives and which implementations it uses.

This is part of the composition root (with ``cli`` and ``web.app``): the one
place that turns settings into a key store and a trust database. The data
directory holds::

    deployment.json   root account id, key store kind, format version
    master.key        the key-store master key (0600), unless IOTSTORE_MASTER_KEY is set
    secret.key        the secret tokens and sessions are derived from (0600), unless
                      IOTSTORE_SECRET is set
    keys.sqlite       private keys, each sealed with AES-256-GCM under the master key
    root.assert       the trusted set devices must carry: root account + account-key
    iotstore.sqlite   the database (SQLite, WAL), unless IOTSTORE_DATABASE_URL is set
    outbox/           outgoing mail as .eml files (0600), unless an SMTP relay is set
    blobs/            snap files, unless IOTSTORE_BLOB_BACKEND=s3
"""

from __future__ import annotations

import base64
import json
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from iotstore import asserts
from iotstore.accounts import RootAuthority, adopt_root, create_root
from iotstore.blobstore import BlobStore, blobstore_for
from iotstore.db import SqlDatabase
from iotstore.keystore import (
    EncryptedKeyStore,
    KeyStore,
    KeyStoreError,
    LayeredKeyStore,
    MasterKey,
    PKCS11KeyStore,
)
from iotstore.mail import DirectoryMailer, Mailer, SmtpMailer
from iotstore.migrations import upgrade
from iotstore.settings import Settings

__all__ = ["DATA_DIR_ENV", "Deployment", "DeploymentError", "default_data_dir"]

DATA_DIR_ENV = "IOTSTORE_DATA_DIR"
MASTER_KEY_ENV = "IOTSTORE_MASTER_KEY"
SECRET_ENV = "IOTSTORE_SECRET"  # noqa: S105 - the variable's name, not a secret
_FORMAT = 1


class DeploymentError(Exception):
    """The data directory is missing, incomplete or already initialised."""


def default_data_dir(environ: Mapping[str, str] | None = None) -> Path:
    """``$IOTSTORE_DATA_DIR``, else ``./iotstore-data``."""
    env = os.environ if environ is None else environ
    return Path(env.get(DATA_DIR_ENV) or "iotstore-data")


def _secret(data_dir: Path, create: bool) -> bytes:
    """The deployment secret: 32 random bytes, from the environment or a 0600 file."""
    if os.environ.get(SECRET_ENV):
        return base64.b64decode(os.environ[SECRET_ENV])
    path = data_dir / "secret.key"
    if create and not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(base64.b64encode(secrets.token_bytes(32)).decode() + "\n")
    try:
        return base64.b64decode(path.read_text().strip())
    except (OSError, ValueError) as e:
        raise DeploymentError(f"cannot read the deployment secret {path}: {e}") from e


@dataclass
class Deployment:
    """An initialised data directory, opened: key store, root, database, secret."""

    data_dir: Path
    keystore: KeyStore
    root: RootAuthority
    settings: Settings
    database: SqlDatabase
    secret: bytes
    # outgoing mail (invitations); tests may replace it
    mailer: Mailer
    # snap files
    blobs: BlobStore

    @staticmethod
    def _paths(data_dir: Path) -> tuple[Path, Path, Path, Path]:
        return (
            data_dir / "deployment.json",
            data_dir / "master.key",
            data_dir / "keys.sqlite",
            data_dir / "root.assert",
        )

    @staticmethod
    def exists(data_dir: Path) -> bool:
        """Whether ``data_dir`` already holds a deployment."""
        return (data_dir / "deployment.json").exists()

    @classmethod
    def _master_key(cls, data_dir: Path, create: bool) -> MasterKey:
        if os.environ.get(MASTER_KEY_ENV):
            return MasterKey.from_env(MASTER_KEY_ENV)
        path = cls._paths(data_dir)[1]
        if create:
            return MasterKey.create_file(path)
        if not path.exists():
            raise DeploymentError(
                f"no master key: {path} is missing and {MASTER_KEY_ENV} is not set"
            )
        return MasterKey.from_file(path)

    @classmethod
    def init(
        cls,
        data_dir: Path,
        *,
        settings: Settings | None = None,
        root_id: str | None = None,
        root_key_pem: bytes | None = None,
        display_name: str = "iotstore root",
        now: datetime | None = None,
    ) -> Deployment:
        """Create a deployment: master key, key store and the root authority.

        With ``root_key_pem`` (and ``root_id``) it adopts a root generated
        offline. Raises :class:`DeploymentError` when ``data_dir`` is in use.
        """
        if cls.exists(data_dir):
            raise DeploymentError(f"{data_dir} already holds a deployment")
        if root_key_pem is not None and not root_id:
            raise DeploymentError("adopting a root key needs its account id (--root-id)")
        data_dir.mkdir(parents=True, exist_ok=True)
        data_dir.chmod(0o700)
        meta, _, keys_path, root_path = cls._paths(data_dir)
        keystore = EncryptedKeyStore.open_sqlite(keys_path, cls._master_key(data_dir, True))
        if root_key_pem is not None:
            assert root_id is not None
            root = adopt_root(keystore, root_id, root_key_pem, display_name=display_name, now=now)
        else:
            root = create_root(keystore, root_id, display_name=display_name, now=now)
        root_path.write_bytes(root.stream())
        _secret(data_dir, create=True)
        # written last: its presence means the deployment is complete
        meta.write_text(
            json.dumps(
                {
                    "format": _FORMAT,
                    "root-id": root.account_id,
                    "keystore": "encrypted-sqlite",
                    "created": asserts.format_time(now or datetime.now(UTC)),
                },
                indent=2,
            )
            + "\n"
        )
        keystore.close()
        return cls.open(data_dir, settings)

    @classmethod
    def open(cls, data_dir: Path, settings: Settings | None = None) -> Deployment:
        """Open an initialised data directory; raise :class:`DeploymentError` otherwise."""
        meta, _, keys_path, root_path = cls._paths(data_dir)
        if not meta.exists():
            raise DeploymentError(
                f"{data_dir} holds no deployment: run 'iotstore init --data-dir {data_dir}'"
            )
        try:
            info = json.loads(meta.read_text())
        except (OSError, ValueError) as e:
            raise DeploymentError(f"cannot read {meta}: {e}") from e
        if info.get("format") != _FORMAT:
            raise DeploymentError(f"{meta}: unsupported deployment format {info.get('format')}")
        root = RootAuthority.from_stream(root_path.read_bytes())
        settings = settings or Settings.from_env(data_dir)
        keystore = cls._keystore(
            EncryptedKeyStore.open_sqlite(keys_path, cls._master_key(data_dir, False)), settings
        )
        database = SqlDatabase.from_url(settings.resolved_database_url)
        upgrade(database.engine)
        return cls(
            data_dir,
            keystore,
            root,
            settings,
            database,
            _secret(data_dir, create=False),
            cls._mailer(data_dir, settings),
            cls._blobs(data_dir, settings),
        )

    @staticmethod
    def _keystore(encrypted: EncryptedKeyStore, settings: Settings) -> KeyStore:
        """The encrypted store, or a PKCS#11 token for new keys in front of it."""
        config = settings.keystore
        if config.backend != "pkcs11":
            return encrypted
        assert config.pkcs11_module and config.pkcs11_token and config.pkcs11_pin
        try:
            hsm = PKCS11KeyStore(config.pkcs11_module, config.pkcs11_token, config.pkcs11_pin)
        except KeyStoreError as e:
            encrypted.close()
            raise DeploymentError(f"cannot open the PKCS#11 key store: {e}") from e
        # the root (and keys made before the switch) keep signing from the encrypted store
        return LayeredKeyStore(hsm, encrypted)

    @staticmethod
    def _blobs(data_dir: Path, settings: Settings) -> BlobStore:
        """Files under ``blobs/`` by default, else the configured S3 bucket."""
        config = settings.blobs
        if config.backend == "filesystem":
            return blobstore_for("filesystem", root=data_dir / "blobs")
        try:
            return blobstore_for(
                "s3",
                endpoint_url=config.s3_endpoint_url,
                bucket=config.s3_bucket,
                access_key=config.s3_access_key,
                secret_key=config.s3_secret_key,
                region=config.s3_region,
                public_endpoint_url=config.s3_public_endpoint_url,
            )
        except ValueError as e:
            raise DeploymentError(f"blob store settings: {e}") from e

    @staticmethod
    def _mailer(data_dir: Path, settings: Settings) -> Mailer:
        """The SMTP relay when one is configured, else ``.eml`` files in ``outbox/``."""
        if settings.smtp is None:
            return DirectoryMailer(data_dir / "outbox")
        return SmtpMailer(settings.smtp)

    def close(self) -> None:
        """Release the key store and the database connections."""
        self.keystore.close()
        self.database.dispose()

    def trust_database(self) -> asserts.Database:
        """A fresh in-memory trust database rooted at this deployment's root."""
        return asserts.Database(self.root.trusted)
