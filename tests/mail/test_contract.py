"""One contract, every mailer: memory, outbox directory and SMTP (a real aiosmtpd server)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path

import pytest

from iotstore.mail import (
    MAX_BODY_CHARS,
    MAX_LINE_CHARS,
    MAX_SUBJECT_CHARS,
    DirectoryMailer,
    InvalidMail,
    MailError,
    MemoryMailer,
    OutgoingMail,
    SmtpMailer,
)
from iotstore.settings import SmtpSettings

from .conftest import SENDER_ADDRESS, Harness

MESSAGE_ID = re.compile(r"<[^<>@\s]+@iotstore\.test>")


def test_a_message_arrives_with_every_header(harness: Harness) -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    harness.mailer.send(OutgoingMail("alice@example.com", "Welcome", "Hello Alice.\nBye."))
    [got] = harness.delivered()
    m = got.message
    assert got.rcpt_tos == ("alice@example.com",)
    assert m["To"] == "alice@example.com"
    assert m["From"].addresses[0].addr_spec == SENDER_ADDRESS
    assert m["From"].addresses[0].display_name == "Test Store"
    assert m["Subject"] == "Welcome"
    sent_at = parsedate_to_datetime(m["Date"])
    assert sent_at.tzinfo is not None
    assert before - timedelta(seconds=1) <= sent_at <= datetime.now(UTC) + timedelta(seconds=1)
    assert MESSAGE_ID.fullmatch(m["Message-ID"])
    assert m["Auto-Submitted"] == "auto-generated"
    assert m.get_content_type() == "text/plain"
    assert m.get_content_charset() == "utf-8"
    assert m.get_content().splitlines() == ["Hello Alice.", "Bye."]
    assert not m.defects


def test_non_ascii_subject_and_body_survive(harness: Harness) -> None:
    harness.mailer.send(
        OutgoingMail("bob@example.com", "Einladung für Müller — 招待", "Grüße, Jürgen\n日本語")
    )
    [got] = harness.delivered()
    assert got.message["Subject"] == "Einladung für Müller — 招待"
    assert got.message.get_content().splitlines() == ["Grüße, Jürgen", "日本語"]


def test_a_long_link_stays_on_one_copyable_line(harness: Harness) -> None:
    link = "https://store.example.com/invitations/accept?token=" + "Ab-_9" * 40
    harness.mailer.send(OutgoingMail("c@example.com", "Link", f"Open:\n  {link}\n"))
    [got] = harness.delivered()
    # in the raw bytes, not only after decoding: a person copies it from an .eml file
    assert link.encode() in got.data
    assert f"  {link}" in got.message.get_content().splitlines()


def test_each_send_is_one_message_in_order_with_its_own_id(harness: Harness) -> None:
    for n in range(3):
        harness.mailer.send(OutgoingMail(f"user{n}@example.com", f"Message {n}", f"number {n}"))
    got = harness.delivered()
    assert [d.message["Subject"] for d in got] == ["Message 0", "Message 1", "Message 2"]
    assert [d.rcpt_tos for d in got] == [(f"user{n}@example.com",) for n in range(3)]
    assert len({d.message["Message-ID"] for d in got}) == 3


@pytest.mark.parametrize(
    ("to", "subject", "text", "problem"),
    [
        ("a@example.com\r\nBcc: evil@example.com", "s", "t", "recipient"),
        ("a@example.com, evil@example.com", "s", "t", "recipient"),
        ("a@example.com;evil@example.com", "s", "t", "recipient"),
        ("Alice <a@example.com>", "s", "t", "recipient"),
        (" a@example.com", "s", "t", "recipient"),
        ("a example.com", "s", "t", "recipient"),
        ("a@", "s", "t", "recipient"),
        ("@example.com", "s", "t", "recipient"),
        ("", "s", "t", "recipient"),
        ("a" * 250 + "@example.com", "s", "t", "recipient"),
        ("a@example.com", "line\r\nBcc: evil@example.com", "t", "subject"),
        ("a@example.com", "line\nbreak", "t", "subject"),
        ("a@example.com", "tab\there", "t", "subject"),
        ("a@example.com", "", "t", "subject"),
        ("a@example.com", "   ", "t", "subject"),
        ("a@example.com", "x" * (MAX_SUBJECT_CHARS + 1), "t", "subject"),
        ("a@example.com", "s", "x" * (MAX_LINE_CHARS + 1), "body lines"),
        ("a@example.com", "s", ("x" * 80 + "\n") * (MAX_BODY_CHARS // 80), "body must"),
    ],
)
def test_malformed_messages_are_refused_before_any_mailer(
    to: str, subject: str, text: str, problem: str
) -> None:
    with pytest.raises(InvalidMail, match=problem):
        OutgoingMail(to, subject, text)


@pytest.mark.parametrize(
    "sender", ["", "a@example.com, b@example.com", "x <a@example.com> y", "no-at", "a@b\r\nX: y"]
)
def test_every_mailer_refuses_a_bad_sender(sender: str) -> None:
    with pytest.raises(InvalidMail, match="sender"):
        MemoryMailer(sender)
    with pytest.raises(InvalidMail, match="sender"):
        DirectoryMailer(Path("unused"), sender)
    with pytest.raises(InvalidMail, match="sender"):
        SmtpMailer(SmtpSettings(sender=sender))


def test_invalid_mail_is_a_mail_error() -> None:
    assert issubclass(InvalidMail, MailError)
