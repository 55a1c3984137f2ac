"""A real SMTP server on loopback (aiosmtpd) that keeps what it receives.

Used by the mail contract tests and by the web tests that follow an invitation
from the admin API to the mailbox. It can require STARTTLS and a login, and
refuse recipients, so the SMTP mailer's error paths run against a real server.
"""

from __future__ import annotations

import datetime
import email
import ipaddress
import socket
import ssl
import threading
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from iotstore.settings import SmtpSettings

__all__ = ["Received", "SmtpSink", "TlsFiles", "free_port", "make_tls_files"]

HOST = "127.0.0.1"


def free_port() -> int:
    """A TCP port on loopback that nothing listened on a moment ago."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        port: int = s.getsockname()[1]
        return port


@dataclass(frozen=True)
class Received:
    """One message as the server got it: envelope and parsed content."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    data: bytes
    message: EmailMessage
    authenticated_as: str | None
    over_tls: bool


class _Handler:
    def __init__(self, sink: SmtpSink) -> None:
        self._sink = sink

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if address in self._sink.refuse:
            return "550 5.1.1 no such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        data = envelope.original_content or b""
        parsed = email.message_from_bytes(data, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        auth: Any = session.auth_data  # what _authenticate returned: a LoginPassword
        login = auth.login.decode() if session.authenticated and auth is not None else None
        self._sink.add(
            Received(
                mail_from=envelope.mail_from or "",
                rcpt_tos=tuple(envelope.rcpt_tos),
                data=data,
                message=parsed,
                authenticated_as=login,
                over_tls=session.ssl is not None,
            )
        )
        return "250 Message accepted for delivery"


class SmtpSink:
    """An aiosmtpd server on ``127.0.0.1:port`` collecting messages in :attr:`received`.

    ``tls`` (a server context) offers STARTTLS and requires it; ``credentials``
    requires a login with that user and password (only after STARTTLS when
    ``tls`` is set). Addresses in :attr:`refuse` are answered with 550.
    """

    def __init__(
        self, *, tls: ssl.SSLContext | None = None, credentials: tuple[str, str] | None = None
    ) -> None:
        self.port = free_port()
        self.host = HOST
        self.refuse: set[str] = set()
        self._received: list[Received] = []
        self._lock = threading.Lock()
        self._credentials = credentials
        kwargs: dict[str, Any] = {}
        if tls is not None:
            kwargs |= {"tls_context": tls, "require_starttls": True}
        if credentials is not None:
            kwargs |= {
                "authenticator": self._authenticate,
                "auth_required": True,
                "auth_require_tls": tls is not None,
            }
        # server_hostname: without it aiosmtpd asks the resolver for this host's FQDN
        self._controller = Controller(
            _Handler(self), hostname=HOST, port=self.port, server_hostname="sink.test", **kwargs
        )

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        ok = (
            isinstance(auth_data, LoginPassword)
            and self._credentials is not None
            and (auth_data.login.decode(), auth_data.password.decode()) == self._credentials
        )
        return AuthResult(success=ok, handled=False, auth_data=auth_data)

    def add(self, received: Received) -> None:
        with self._lock:
            self._received.append(received)

    @property
    def received(self) -> list[Received]:
        """Messages received so far, oldest first."""
        with self._lock:
            return list(self._received)

    def settings(self, **changes: Any) -> SmtpSettings:
        """SMTP settings pointing at this server."""
        return SmtpSettings(**{"host": self.host, "port": self.port, **changes})

    def start(self) -> SmtpSink:
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()


@dataclass(frozen=True)
class TlsFiles:
    """A self-signed certificate for 127.0.0.1 and contexts trusting it."""

    cert: Path
    key: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert, self.key)
        return context

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.cert))


def make_tls_files(directory: Path) -> TlsFiles:
    """A fresh P-256 key and a certificate for ``127.0.0.1`` valid for a day."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "smtp sink")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(HOST))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    files = TlsFiles(directory / "smtp-cert.pem", directory / "smtp-key.pem")
    files.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    files.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return files
