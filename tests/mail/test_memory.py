"""The in-memory mailer's test hooks."""

from __future__ import annotations

import pytest

from iotstore.mail import MailError, MemoryMailer, OutgoingMail


def test_a_set_failure_is_raised_and_nothing_is_kept() -> None:
    mailer = MemoryMailer()
    mailer.failure = MailError("relay down")
    with pytest.raises(MailError, match="relay down"):
        mailer.send(OutgoingMail("a@example.com", "s", "t"))
    assert mailer.sent == []
    assert mailer.messages == []
    mailer.failure = None
    mailer.send(OutgoingMail("a@example.com", "s", "t"))
    assert [m.to for m in mailer.sent] == ["a@example.com"]
