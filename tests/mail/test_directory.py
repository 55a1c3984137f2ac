"""The outbox directory: private files that appear whole, in time order."""

from __future__ import annotations

import email
import stat
from email import policy
from pathlib import Path

import pytest

from iotstore.mail import DirectoryMailer, MailError, OutgoingMail


def test_files_and_directory_are_private(tmp_path: Path) -> None:
    outbox = tmp_path / "data" / "outbox"
    DirectoryMailer(outbox).send(OutgoingMail("a@example.com", "s", "secret token"))
    assert stat.S_IMODE(outbox.stat().st_mode) == 0o700
    [file] = outbox.iterdir()
    assert file.suffix == ".eml"
    assert stat.S_IMODE(file.stat().st_mode) == 0o600


def test_names_sort_by_time_and_nothing_partial_is_left(tmp_path: Path) -> None:
    mailer = DirectoryMailer(tmp_path)
    for n in range(5):
        mailer.send(OutgoingMail("a@example.com", f"n{n}", "t"))
    names = sorted(p.name for p in tmp_path.iterdir())
    assert all(name.endswith(".eml") and not name.startswith(".") for name in names)
    subjects = [
        email.message_from_bytes((tmp_path / n).read_bytes(), policy=policy.default)["Subject"]
        for n in names
    ]
    assert subjects == [f"n{n}" for n in range(5)]


def test_an_unwritable_outbox_is_a_mail_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(MailError, match="cannot write to the outbox"):
        DirectoryMailer(blocker / "outbox").send(OutgoingMail("a@example.com", "s", "t"))
    assert blocker.read_text() == "not a directory"
