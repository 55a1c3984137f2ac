"""A mailer that writes each message as an ``.eml`` file: the embedded default.

Without an SMTP relay configured, invitations land in ``DATA_DIR/outbox`` where
an operator (or a newcomer trying the store out) opens them with any mail
reader or a pager. The files hold invitation tokens, so the directory is 0700
and every file 0600; a file appears complete or not at all (written beside,
then renamed).
"""

from __future__ import annotations

import os
import secrets
from datetime import UTC, datetime
from email import policy
from pathlib import Path

from ._checks import check_sender
from ._message import render
from .errors import MailError
from .interfaces import OutgoingMail

__all__ = ["DirectoryMailer"]


class DirectoryMailer:
    """A :class:`~iotstore.mail.Mailer` writing ``<UTC time>-<random>.eml`` files into
    ``path`` (created on first use, mode 0700; files 0600, names sort by time)."""

    def __init__(self, path: Path, sender: str = "iotstore@localhost") -> None:
        self.path = path
        self.sender, self._envelope_from = check_sender(sender)

    def send(self, message: OutgoingMail) -> None:
        """Write ``message``; raise :class:`MailError` when the file cannot be written."""
        data = render(message, self.sender, self._envelope_from).as_bytes(policy=policy.SMTP)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
        name = f"{stamp}-{secrets.token_hex(4)}.eml"
        partial = self.path / f".{name}.partial"
        try:
            self.path.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
                    f.flush()
                    os.fsync(f.fileno())
                partial.rename(self.path / name)
            except BaseException:
                partial.unlink(missing_ok=True)
                raise
        except OSError as e:
            raise MailError(f"cannot write to the outbox {self.path}: {e.strerror or e}") from e
