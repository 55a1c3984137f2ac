"""The SMTP mailer against real servers: STARTTLS, login, refusals, dead and silent relays."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from iotstore.mail import MailError, OutgoingMail, SmtpMailer
from iotstore.settings import SmtpSettings

from .smtp_server import HOST, SmtpSink, TlsFiles, free_port

MAIL = OutgoingMail("alice@example.com", "Invitation", "token inside")
PASSWORD = "s3cret-relay-password"


@pytest.fixture
def tls_sink(tls_files: TlsFiles) -> Iterator[SmtpSink]:
    """A server that requires STARTTLS, then a login."""
    sink = SmtpSink(tls=tls_files.server_context(), credentials=("relay-user", PASSWORD)).start()
    yield sink
    sink.stop()


def test_starttls_then_login(tls_sink: SmtpSink, tls_files: TlsFiles) -> None:
    settings = tls_sink.settings(username="relay-user", password=PASSWORD, starttls=True)
    SmtpMailer(settings, ssl_context=tls_files.client_context()).send(MAIL)
    [got] = tls_sink.received
    assert got.over_tls
    assert got.authenticated_as == "relay-user"
    assert got.mail_from == "iotstore@localhost"
    assert got.rcpt_tos == ("alice@example.com",)


def test_an_untrusted_certificate_fails_before_the_password_is_sent(tls_sink: SmtpSink) -> None:
    settings = tls_sink.settings(username="relay-user", password=PASSWORD, starttls=True)
    with pytest.raises(MailError, match="SMTP with") as caught:
        SmtpMailer(settings).send(MAIL)  # the system trust store does not know the sink
    assert PASSWORD not in str(caught.value)
    assert tls_sink.received == []


def test_a_wrong_password_is_a_mail_error_without_the_password(
    tls_sink: SmtpSink, tls_files: TlsFiles
) -> None:
    settings = tls_sink.settings(username="relay-user", password="wrong-password", starttls=True)
    with pytest.raises(MailError, match="refused the credentials") as caught:
        SmtpMailer(settings, ssl_context=tls_files.client_context()).send(MAIL)
    assert "wrong-password" not in str(caught.value)
    assert tls_sink.received == []


def test_without_starttls_a_relay_requiring_it_refuses(tls_sink: SmtpSink) -> None:
    with pytest.raises(MailError, match="answered 530"):
        SmtpMailer(tls_sink.settings()).send(MAIL)
    assert tls_sink.received == []


def test_credentials_never_go_in_clear_to_a_remote_relay() -> None:
    settings = SmtpSettings(host="192.0.2.1", username="u", password=PASSWORD, starttls=False)
    started = time.monotonic()
    with pytest.raises(MailError, match="in clear"):
        SmtpMailer(settings, timeout=30).send(MAIL)
    assert time.monotonic() - started < 1  # refused before connecting


def test_a_refused_recipient_is_a_mail_error(smtp_sink: SmtpSink) -> None:
    smtp_sink.refuse.add("alice@example.com")
    with pytest.raises(MailError, match="refused the recipient"):
        SmtpMailer(smtp_sink.settings()).send(MAIL)
    assert smtp_sink.received == []


def test_a_relay_that_is_down_fails_fast() -> None:
    settings = SmtpSettings(host=HOST, port=free_port())
    with pytest.raises(MailError, match="cannot reach the SMTP relay"):
        SmtpMailer(settings).send(MAIL)


def test_a_silent_relay_fails_after_the_timeout() -> None:
    listener = socket.socket()
    listener.bind((HOST, 0))
    listener.listen()
    accepted: list[socket.socket] = []

    def accept() -> None:
        conn, _ = listener.accept()  # accept, then never say a word
        accepted.append(conn)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        settings = SmtpSettings(host=HOST, port=listener.getsockname()[1])
        started = time.monotonic()
        with pytest.raises(MailError):
            SmtpMailer(settings, timeout=0.3).send(MAIL)
        assert time.monotonic() - started < 3
    finally:
        thread.join(timeout=5)
        for conn in accepted:
            conn.close()
        listener.close()
