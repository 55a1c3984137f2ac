"""A mailer that hands messages to an SMTP relay (production).

One connection per message: invitations are rare, and a fresh connection
needs no keep-alive or reconnect logic. Credentials are only ever sent after
STARTTLS, or to a relay on the loopback interface.
"""

from __future__ import annotations

import ipaddress
import smtplib
import ssl

from iotstore.settings import SmtpSettings

from ._checks import check_sender
from ._message import render
from .errors import MailError
from .interfaces import OutgoingMail

__all__ = ["DEFAULT_TIMEOUT", "SmtpMailer"]

DEFAULT_TIMEOUT = 10.0


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class SmtpMailer:
    """A :class:`~iotstore.mail.Mailer` speaking SMTP to ``settings.host:settings.port``.

    With ``settings.starttls`` it upgrades the connection (verifying the relay's
    certificate against ``ssl_context``, the system's trust store by default)
    before anything else; with ``settings.username`` it logs in. ``timeout``
    bounds each network operation, so a dead relay fails a request in seconds
    instead of hanging it.
    """

    def __init__(
        self,
        settings: SmtpSettings,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.settings = settings
        self.sender, self._envelope_from = check_sender(settings.sender)
        self._timeout = timeout
        self._ssl_context = ssl_context

    def send(self, message: OutgoingMail) -> None:
        """Deliver ``message`` to the relay; raise :class:`MailError` on any failure."""
        rendered = render(message, self.sender, self._envelope_from)
        s = self.settings
        where = f"{s.host}:{s.port}"
        if s.username and not s.starttls and not _is_loopback(s.host):
            raise MailError(f"refusing to send SMTP credentials to {where} in clear: set STARTTLS")
        try:
            with smtplib.SMTP(s.host, s.port, timeout=self._timeout) as smtp:
                smtp.ehlo()
                if s.starttls:
                    context = self._ssl_context or ssl.create_default_context()
                    smtp.starttls(context=context)
                    smtp.ehlo()
                if s.username:
                    smtp.login(s.username, s.password or "")
                smtp.send_message(rendered, from_addr=self._envelope_from, to_addrs=[message.to])
        except smtplib.SMTPAuthenticationError as e:
            raise MailError(f"the SMTP relay {where} refused the credentials") from e
        except smtplib.SMTPRecipientsRefused as e:
            raise MailError(f"the SMTP relay {where} refused the recipient") from e
        except smtplib.SMTPResponseException as e:
            raise MailError(f"the SMTP relay {where} answered {e.smtp_code}") from e
        except (smtplib.SMTPException, ssl.SSLError) as e:
            raise MailError(f"SMTP with {where} failed: {type(e).__name__}") from e
        except OSError as e:
            raise MailError(f"cannot reach the SMTP relay {where}: {e.strerror or e}") from e
