"""Settings of a running deployment, read once at start-up and validated.

Nothing reads the environment after start-up; ``create_app`` and the CLI get
a :class:`Settings` and pass plain values down.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

__all__ = [
    "BlobSettings",
    "KeystoreSettings",
    "OidcSettings",
    "Settings",
    "SettingsError",
    "SmtpSettings",
    "host_port",
]


class SettingsError(Exception):
    """A setting is missing, malformed or insecure."""


@dataclass(frozen=True)
class SmtpSettings:
    """Outgoing mail (invitations)."""

    host: str = "127.0.0.1"
    port: int = 25
    sender: str = "iotstore@localhost"
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    starttls: bool = False


@dataclass(frozen=True)
class OidcSettings:
    """The deployment's OpenID Connect identity provider."""

    issuer: str
    client_id: str
    client_secret: str = field(repr=False)
    name: str = "Single sign-on"


@dataclass(frozen=True)
class BlobSettings:
    """Where snap files live: files under the data directory, or S3-compatible storage."""

    backend: Literal["filesystem", "s3"] = "filesystem"
    s3_endpoint_url: str | None = None
    s3_bucket: str | None = None
    s3_access_key: str | None = None
    s3_secret_key: str | None = field(default=None, repr=False)
    s3_region: str = "us-east-1"
    # the address devices reach for presigned downloads, when it differs from the endpoint
    s3_public_endpoint_url: str | None = None


@dataclass(frozen=True)
class KeystoreSettings:
    """Where new signing keys (brand and serial keys) are generated and held.

    ``encrypted``: the AES-GCM sealed SQLite store in the data directory.
    ``pkcs11``: a PKCS#11 token (an HSM, or SoftHSM2); keys made before the
    switch (the root's) stay in the encrypted store and keep signing from it.
    """

    backend: Literal["encrypted", "pkcs11"] = "encrypted"
    pkcs11_module: str | None = None
    pkcs11_token: str | None = None
    pkcs11_pin: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Settings:
    """Everything a deployment is configured with."""

    data_dir: Path
    base_url: str = "http://127.0.0.1:8000"
    database_url: str | None = None
    smtp: SmtpSettings | None = None
    oidc: OidcSettings | None = None
    max_body_bytes: int = 1024 * 1024
    session_hours: int = 12
    invitation_days: int = 7
    development: bool = False
    blobs: BlobSettings = field(default_factory=BlobSettings)
    # largest snap an upload may carry (bytes)
    max_snap_bytes: int = 4 * 1024**3
    keystore: KeystoreSettings = field(default_factory=KeystoreSettings)
    # the sendfile download listener (web/download_listener.py): where it listens, and
    # the base URL the snap action's download URLs then use
    download_listen: tuple[str, int] | None = None
    download_url: str | None = None

    @property
    def download_base_url(self) -> str:
        """Where download URLs point: the listener's URL when there is one, else the base URL."""
        if self.download_url:
            return self.download_url
        if self.download_listen is not None:
            host = urlsplit(self.base_url).hostname or "127.0.0.1"
            return f"http://{host_port(host, self.download_listen[1])}"
        return self.base_url

    @property
    def resolved_database_url(self) -> str:
        """The configured URL, else SQLite in the data directory."""
        return self.database_url or f"sqlite+pysqlite:///{self.data_dir / 'iotstore.sqlite'}"

    @classmethod
    def from_env(cls, data_dir: Path, environ: Mapping[str, str] | None = None) -> Settings:
        """Read ``IOTSTORE_*`` variables; raise :class:`SettingsError` on bad values."""
        env = os.environ if environ is None else environ
        smtp = None
        if env.get("IOTSTORE_SMTP_HOST"):
            smtp = SmtpSettings(
                host=env["IOTSTORE_SMTP_HOST"],
                port=_int(env, "IOTSTORE_SMTP_PORT", 25),
                sender=env.get("IOTSTORE_SMTP_FROM", "iotstore@localhost"),
                username=env.get("IOTSTORE_SMTP_USER") or None,
                password=env.get("IOTSTORE_SMTP_PASSWORD") or None,
                starttls=env.get("IOTSTORE_SMTP_STARTTLS", "") == "1",
            )
        oidc = None
        if env.get("IOTSTORE_OIDC_ISSUER"):
            secret = env.get("IOTSTORE_OIDC_CLIENT_SECRET", "")
            if not secret:
                raise SettingsError("IOTSTORE_OIDC_CLIENT_SECRET is required with an OIDC issuer")
            oidc = OidcSettings(
                issuer=env["IOTSTORE_OIDC_ISSUER"],
                client_id=env.get("IOTSTORE_OIDC_CLIENT_ID", "iotstore"),
                client_secret=secret,
                name=env.get("IOTSTORE_OIDC_NAME", "Single sign-on"),
            )
        base_url = env.get("IOTSTORE_BASE_URL", "http://127.0.0.1:8000").rstrip("/")
        if not base_url.startswith(("http://", "https://")):
            raise SettingsError("IOTSTORE_BASE_URL must be an http(s) URL")
        backend = env.get("IOTSTORE_BLOB_BACKEND", "filesystem")
        if backend not in {"filesystem", "s3"}:
            raise SettingsError("IOTSTORE_BLOB_BACKEND must be 'filesystem' or 's3'")
        blobs = BlobSettings(
            backend="s3" if backend == "s3" else "filesystem",
            s3_endpoint_url=env.get("IOTSTORE_S3_ENDPOINT_URL") or None,
            s3_bucket=env.get("IOTSTORE_S3_BUCKET") or None,
            s3_access_key=env.get("IOTSTORE_S3_ACCESS_KEY") or None,
            s3_secret_key=env.get("IOTSTORE_S3_SECRET_KEY") or None,
            s3_region=env.get("IOTSTORE_S3_REGION", "us-east-1"),
            s3_public_endpoint_url=env.get("IOTSTORE_S3_PUBLIC_ENDPOINT_URL") or None,
        )
        keystore = env.get("IOTSTORE_KEYSTORE", "encrypted")
        if keystore not in {"encrypted", "pkcs11"}:
            raise SettingsError("IOTSTORE_KEYSTORE must be 'encrypted' or 'pkcs11'")
        keys = KeystoreSettings()
        if keystore == "pkcs11":
            missing = [
                name
                for name in (
                    "IOTSTORE_PKCS11_MODULE",
                    "IOTSTORE_PKCS11_TOKEN",
                    "IOTSTORE_PKCS11_PIN",
                )
                if not env.get(name)
            ]
            if missing:
                raise SettingsError(f"IOTSTORE_KEYSTORE=pkcs11 needs {', '.join(missing)}")
            keys = KeystoreSettings(
                backend="pkcs11",
                pkcs11_module=env["IOTSTORE_PKCS11_MODULE"],
                pkcs11_token=env["IOTSTORE_PKCS11_TOKEN"],
                pkcs11_pin=env["IOTSTORE_PKCS11_PIN"],
            )
        download_url = env.get("IOTSTORE_DOWNLOAD_URL", "").rstrip("/") or None
        if download_url is not None and not download_url.startswith(("http://", "https://")):
            raise SettingsError("IOTSTORE_DOWNLOAD_URL must be an http(s) URL")
        listen = env.get("IOTSTORE_DOWNLOAD_LISTEN") or None
        return cls(
            data_dir=data_dir,
            download_listen=_listen_address(listen) if listen else None,
            download_url=download_url,
            keystore=keys,
            blobs=blobs,
            max_snap_bytes=_int(env, "IOTSTORE_MAX_SNAP_BYTES", 4 * 1024**3),
            base_url=base_url,
            database_url=env.get("IOTSTORE_DATABASE_URL") or None,
            smtp=smtp,
            oidc=oidc,
            max_body_bytes=_int(env, "IOTSTORE_MAX_BODY_BYTES", 1024 * 1024),
            development=env.get("IOTSTORE_DEVELOPMENT", "") == "1",
        )


def host_port(host: str, port: int) -> str:
    """``host:port`` as URLs and IOTSTORE_DOWNLOAD_LISTEN write it (``[::1]:port`` for IPv6)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _listen_address(value: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:PORT`` for IPv6) as a pair."""
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise SettingsError(f"IOTSTORE_DOWNLOAD_LISTEN must be HOST:PORT, not {value!r}")
    return host.removeprefix("[").removesuffix("]"), int(port)


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    value = env.get(name)
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError as e:
        raise SettingsError(f"{name} must be an integer") from e
    if number <= 0:
        raise SettingsError(f"{name} must be positive")
    return number
