"""Turning an :class:`OutgoingMail` into the RFC 5322 message every mailer hands on."""

from __future__ import annotations

from email import policy
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from .interfaces import OutgoingMail

__all__ = ["render"]


def render(mail: OutgoingMail, sender: str, sender_address: str) -> EmailMessage:
    """The complete message: headers, UTF-8 text body, SMTP line endings.

    ``sender`` is the ``From`` header (see :func:`check_sender`), ``sender_address``
    its bare address.
    """
    message = EmailMessage(policy=policy.SMTP)
    message["From"] = sender
    message["To"] = mail.to
    message["Subject"] = mail.subject
    message["Date"] = formatdate(usegmt=True)
    # An explicit domain: make_msgid's default asks the resolver for this host's
    # FQDN, which can block for seconds on a machine without DNS.
    message["Message-ID"] = make_msgid(domain=sender_address.rpartition("@")[2])
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation replies
    # 7bit/8bit rather than quoted-printable: the accept link stays one line that
    # a person can copy from an .eml file in the outbox (lines are at most 998
    # characters, see OutgoingMail). Relays without 8BITMIME are long gone.
    message.set_content(mail.text, charset="utf-8", cte="7bit" if mail.text.isascii() else "8bit")
    return message
