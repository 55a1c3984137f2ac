"""Fixtures for the mail tests: every mailer behind one ``harness`` fixture."""

from __future__ import annotations

import email
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from pathlib import Path

import pytest

from iotstore.mail import DirectoryMailer, Mailer, MemoryMailer, SmtpMailer

from .smtp_server import SmtpSink, TlsFiles, make_tls_files

SENDER = "Test Store <store@iotstore.test>"
SENDER_ADDRESS = "store@iotstore.test"


@dataclass(frozen=True)
class Delivered:
    """What reached the far side of a mailer: envelope recipients and the message."""

    rcpt_tos: tuple[str, ...]
    data: bytes
    message: EmailMessage


@dataclass(frozen=True)
class Harness:
    """A mailer and a way to read what it handed on."""

    name: str
    mailer: Mailer
    delivered: Callable[[], list[Delivered]]


def _parse(data: bytes) -> EmailMessage:
    parsed = email.message_from_bytes(data, policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


@pytest.fixture
def smtp_sink() -> Iterator[SmtpSink]:
    """A running aiosmtpd server on a free loopback port."""
    sink = SmtpSink().start()
    yield sink
    sink.stop()


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    """A self-signed certificate for 127.0.0.1."""
    return make_tls_files(tmp_path_factory.mktemp("tls"))


def _memory() -> Harness:
    mailer = MemoryMailer(SENDER)

    def delivered() -> list[Delivered]:
        out = []
        for sent, message in zip(mailer.sent, mailer.messages, strict=True):
            data = message.as_bytes(policy=policy.SMTP)
            out.append(Delivered((sent.to,), data, _parse(data)))
        return out

    return Harness("memory", mailer, delivered)


def _directory(path: Path) -> Harness:
    mailer = DirectoryMailer(path, SENDER)

    def delivered() -> list[Delivered]:
        if not path.exists():
            return []
        out = []
        for file in sorted(path.glob("*.eml")):
            data = file.read_bytes()
            message = _parse(data)
            out.append(Delivered((str(message["To"]),), data, message))
        return out

    return Harness("directory", mailer, delivered)


def _smtp(sink: SmtpSink) -> Harness:
    mailer = SmtpMailer(sink.settings(sender=SENDER), timeout=5)

    def delivered() -> list[Delivered]:
        return [Delivered(r.rcpt_tos, r.data, r.message) for r in sink.received]

    return Harness("smtp", mailer, delivered)


@pytest.fixture(params=["memory", "directory", "smtp"])
def harness(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Harness]:
    """Each mailer in turn (the SMTP one against a real server on loopback)."""
    if request.param == "memory":
        yield _memory()
    elif request.param == "directory":
        yield _directory(tmp_path / "outbox")
    else:
        sink = SmtpSink().start()
        try:
            yield _smtp(sink)
        finally:
            sink.stop()
