"""What a mailer promises, whichever way the message leaves.

:class:`Mailer` is implemented by :class:`~iotstore.mail.SmtpMailer` (any SMTP
relay), :class:`~iotstore.mail.DirectoryMailer` (``.eml`` files in an outbox
directory, the embedded default) and :class:`~iotstore.mail.MemoryMailer`
(tests); one contract test suite (``tests/mail``) runs against all three.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from ._checks import check_address
from .errors import InvalidMail

__all__ = ["MAX_BODY_CHARS", "MAX_LINE_CHARS", "MAX_SUBJECT_CHARS", "Mailer", "OutgoingMail"]

MAX_SUBJECT_CHARS = 200
MAX_BODY_CHARS = 64 * 1024
MAX_LINE_CHARS = 990  # RFC 5322 allows 998 octets; leave room for the encoder


@dataclass(frozen=True, slots=True)
class OutgoingMail:
    """One plain-text message to one recipient; valid by construction.

    ``to`` is a bare address (``someone@example.com``), ``subject`` one line of
    at most :data:`MAX_SUBJECT_CHARS` characters, ``text`` the UTF-8 body of at
    most :data:`MAX_BODY_CHARS` characters in lines of at most
    :data:`MAX_LINE_CHARS`. Raises :class:`InvalidMail`
    otherwise. The sender, ``Date`` and ``Message-ID`` are the mailer's to add.
    """

    to: str
    subject: str
    text: str

    def __post_init__(self) -> None:
        check_address(self.to, "recipient")
        if not self.subject.strip() or len(self.subject) > MAX_SUBJECT_CHARS:
            raise InvalidMail(f"the subject must be 1-{MAX_SUBJECT_CHARS} characters")
        if any(ord(c) < 32 or c == "\x7f" for c in self.subject):
            raise InvalidMail("the subject must be one line without control characters")
        if len(self.text) > MAX_BODY_CHARS:
            raise InvalidMail(f"the body must be at most {MAX_BODY_CHARS} characters")
        if any(len(line) > MAX_LINE_CHARS for line in self.text.splitlines()):
            raise InvalidMail(f"body lines must be at most {MAX_LINE_CHARS} characters")


class Mailer(Protocol):
    """Hands plain-text messages on for delivery.

    ``send`` returns once the message is accepted by the next hop (the SMTP
    relay, the outbox directory, the in-memory list): delivery to the mailbox
    is not promised. Every message carries ``From``, ``To``, ``Subject``,
    ``Date``, ``Message-ID`` and a UTF-8 ``text/plain`` body. ``send`` is
    synchronous and safe to call from several threads.
    """

    def send(self, message: OutgoingMail) -> None:
        """Hand ``message`` on; raise :class:`MailError` when it could not be."""
        ...
