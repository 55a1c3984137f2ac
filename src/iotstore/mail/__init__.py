"""Outgoing email behind one protocol.

Pick an implementation in the composition root (``iotstore.deployment``) and
hand it around as a :class:`Mailer`: :class:`SmtpMailer` (any SMTP relay, from
:class:`~iotstore.settings.SmtpSettings`), :class:`DirectoryMailer` (``.eml``
files in the data directory's outbox, the embedded default) or
:class:`MemoryMailer` (tests). Every failure is a :class:`MailError`.
"""

from __future__ import annotations

from .directory import DirectoryMailer
from .errors import InvalidMail, MailError
from .interfaces import MAX_BODY_CHARS, MAX_LINE_CHARS, MAX_SUBJECT_CHARS, Mailer, OutgoingMail
from .memory import MemoryMailer
from .smtp import DEFAULT_TIMEOUT, SmtpMailer

__all__ = [
    "DEFAULT_TIMEOUT",
    "MAX_BODY_CHARS",
    "MAX_LINE_CHARS",
    "MAX_SUBJECT_CHARS",
    "DirectoryMailer",
    "InvalidMail",
    "MailError",
    "Mailer",
    "MemoryMailer",
    "OutgoingMail",
    "SmtpMailer",
]
