"""The one error hierarchy of :mod:`iotstore.mail`.

Every failure a mailer reports is a :class:`MailError` whose message is fit to
show an operator. Exceptions from the libraries underneath (``smtplib``,
``ssl``, ``OSError``) are wrapped where they enter, with the original kept as
``__cause__``. No message ever carries an SMTP password or a message body
(which may hold a secret such as an invitation token).
"""

from __future__ import annotations

__all__ = ["InvalidMail", "MailError"]


class MailError(Exception):
    """A message could not be handed on: the relay refused it, was unreachable, or the
    outbox could not be written."""


class InvalidMail(MailError):
    """A message is malformed: a recipient that is not one address, a header with a line
    break (header injection), an empty or oversized field."""
