"""A mailer that keeps messages in process memory, for tests."""

from __future__ import annotations

import threading
from email.message import EmailMessage

from ._checks import check_sender
from ._message import render
from .errors import MailError
from .interfaces import OutgoingMail

__all__ = ["MemoryMailer"]


class MemoryMailer:
    """A :class:`~iotstore.mail.Mailer` that appends to :attr:`messages`.

    ``messages`` holds the rendered messages exactly as another mailer would
    hand them on (headers included); ``sent`` the :class:`OutgoingMail` values.
    Set ``failure`` to a :class:`MailError` to make every ``send`` raise it
    (how tests simulate an unreachable relay). Thread safe.
    """

    def __init__(self, sender: str = "iotstore@localhost") -> None:
        self.sender, self._envelope_from = check_sender(sender)
        self.sent: list[OutgoingMail] = []
        self.messages: list[EmailMessage] = []
        self.failure: MailError | None = None
        self._lock = threading.Lock()

    def send(self, message: OutgoingMail) -> None:
        """Keep ``message``; raise :attr:`failure` if one is set."""
        if self.failure is not None:
            raise self.failure
        rendered = render(message, self.sender, self._envelope_from)
        with self._lock:
            self.sent.append(message)
            self.messages.append(rendered)
