"""The brand owner's real tools: the ``snap`` command's key and signing verbs.

``snap create-key``, ``snap export-key`` and ``snap sign`` work without
snapd's daemon; they keep their GnuPG keyring in ``$SNAP_GNUPG_HOME`` (not
``$HOME``) and use ``gpg1`` when it is installed.  :class:`SnapKeyring` runs
them against a private keyring directory, so a test can act exactly like a
brand owner::

    ring = SnapKeyring(tmp_path / "gnupg")
    key_id = ring.create_key("brand-key")              # RSA-4096, no passphrase
    request = ring.export_key("brand-key", "acme")    # account-key-request
    model = ring.sign("brand-key", {"type": "model", ...})

Every call has a timeout and raises :class:`SnapCliError` with the command's
output on failure.  Missing tools raise :class:`SnapCliMissing` naming the
Debian packages, so tests fail rather than skip.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["CREATE_KEY_TIMEOUT", "SnapCliError", "SnapCliMissing", "SnapKey", "SnapKeyring"]

CREATE_KEY_TIMEOUT = 300.0
"""Seconds allowed for ``snap create-key`` (RSA-4096 by gpg; ~2-30 s, entropy permitting)."""

RUN_TIMEOUT = 60.0
"""Seconds allowed for the other ``snap`` calls."""


class SnapCliMissing(RuntimeError):
    """``snap``, ``gpg1`` or ``script`` is not installed; the message says what to install."""


class SnapCliError(RuntimeError):
    """A ``snap`` command failed or timed out; ``output`` holds what it printed."""

    def __init__(self, message: str, output: str) -> None:
        super().__init__(message)
        self.output = output


def _which(tool: str, package: str) -> str:
    path = shutil.which(tool)
    if path is None:
        raise SnapCliMissing(
            f"`{tool}` not found: install the Debian package(s): apt-get install -y {package}"
        )
    return path


class SnapKeyring:
    """A GnuPG keyring at ``home`` used through the ``snap`` command.

    ``home`` is created (mode 0700, as gpg insists) if needed.  Key *names*
    are gpg's "Name-Real"; the snap key id (``sign-key-sha3-384``) is
    returned by :meth:`create_key` and listed by :meth:`keys`.
    """

    def __init__(self, home: Path, *, timeout: float = RUN_TIMEOUT) -> None:
        self.home = home
        self.timeout = timeout
        self._snap = _which("snap", "snapd")
        home.mkdir(parents=True, exist_ok=True)
        home.chmod(0o700)

    @property
    def env(self) -> dict[str, str]:
        """Environment for running ``snap`` against this keyring."""
        env = dict(os.environ)
        env["SNAP_GNUPG_HOME"] = str(self.home)
        env.pop("SNAP_GNUPG_CMD", None)  # let snap pick gpg1, as brand owners' hosts do
        return env

    def _run(self, args: list[str], stdin: bytes = b"") -> bytes:
        cmd = [self._snap, *args]
        try:
            proc = subprocess.run(
                cmd,
                input=stdin,
                env=self.env,
                capture_output=True,
                timeout=self.timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise SnapCliError(f"{shlex.join(cmd)} timed out after {self.timeout}s", "") from exc
        if proc.returncode != 0:
            err = proc.stderr.decode("utf-8", "replace").strip()
            raise SnapCliError(f"{shlex.join(cmd)} failed (exit {proc.returncode}): {err}", err)
        return proc.stdout

    def keys(self) -> dict[str, str]:
        """Return ``{key name: snap key id}`` (``snap keys --json``)."""
        listed = json.loads(self._run(["keys", "--json"]))
        return {entry["name"]: entry["sha3-384"] for entry in listed}

    def create_key(self, name: str, *, timeout: float = CREATE_KEY_TIMEOUT) -> str:
        """Create an RSA-4096 key with an empty passphrase; return its snap key id.

        ``snap create-key`` reads the passphrase and its confirmation from a
        terminal, so it runs under ``script`` (a pty) with two empty lines
        typed ahead.  It needs ``gpg1``: with only gpg 2 it opens a pinentry
        dialog that never completes, which here ends in a timeout.
        """
        script = _which("script", "util-linux")
        _which("gpg1", "gnupg1 (snap create-key hangs on gpg2's pinentry without it)")
        command = shlex.join([self._snap, "create-key", name])
        # -q: no banner; -e: exit with the child's status; output to /dev/null
        # (the typescript file) while the pty's text still comes on stdout.
        cmd = [script, "-qec", command, "/dev/null"]
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=self.env,
            start_new_session=True,  # so a hung gpg/pinentry can be killed as a group
        )
        try:
            out, _ = proc.communicate(b"\n\n", timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            os.killpg(proc.pid, signal.SIGKILL)
            out, _ = proc.communicate()
            self._stop_gpg_agent()
            text = out.decode("utf-8", "replace")
            raise SnapCliError(
                f"snap create-key {name} timed out after {timeout}s; it hangs on a "
                "passphrase dialog when gnupg1 is not installed (apt-get install -y gnupg1) "
                f"or SNAP_GNUPG_CMD points at gpg 2. Output:\n{text}",
                text,
            ) from exc
        text = out.decode("utf-8", "replace")
        if proc.returncode != 0:
            raise SnapCliError(
                f"snap create-key {name} failed (exit {proc.returncode}):\n{text}", text
            )
        key_id = self.keys().get(name)
        if key_id is None:
            raise SnapCliError(f"snap create-key {name} succeeded but the key is not listed", text)
        return key_id

    def _stop_gpg_agent(self) -> None:
        """Best effort: stop a gpg 2 agent that daemonised for this keyring only.

        It escapes the killed process group (``--daemon`` starts a new
        session); its pinentry may linger until the terminal goes away.
        """
        gpgconf = shutil.which("gpgconf")
        if gpgconf is not None:
            subprocess.run(
                [gpgconf, "--homedir", str(self.home), "--kill", "gpg-agent"],
                capture_output=True,
                timeout=10,
                check=False,
            )

    def export_key(self, name: str, account_id: str) -> bytes:
        """Return an ``account-key-request`` for the key (``snap export-key --account``).

        snap stamps ``since`` with the current time: an ``account-key`` that
        copies it cannot verify assertions timestamped earlier.
        """
        return self._run(["export-key", f"--account={account_id}", name])

    def public_key(self, name: str) -> bytes:
        """Return ``snap export-key NAME``: the snap-encoded public key plus a final newline.

        Without that newline it is the ``account-key`` / ``account-key-request`` body.
        """
        return self._run(["export-key", name])

    def sign(self, name: str, statement: Mapping[str, Any]) -> bytes:
        """Sign a JSON statement with ``snap sign -k NAME``; return the assertion.

        Header values must be strings, lists or maps; ``"body"`` becomes the
        body.  The signature is gpg's (issuer subpacket, exact MPI length).
        """
        return self._run(["sign", "-k", name], json.dumps(dict(statement)).encode("utf-8"))


@dataclass(frozen=True)
class SnapKey:
    """A key created in a :class:`SnapKeyring` (the ``snap_key`` fixture).

    ``name`` is what ``snap sign -k`` takes; ``key_id`` is the snap key id
    (``sign-key-sha3-384`` / ``public-key-sha3-384``).
    """

    keyring: SnapKeyring
    name: str
    key_id: str

    def export(self, account_id: str) -> bytes:
        """``snap export-key --account=ACCOUNT_ID``: an account-key-request."""
        return self.keyring.export_key(self.name, account_id)

    def sign(self, statement: Mapping[str, Any]) -> bytes:
        """``snap sign -k NAME`` over the JSON statement."""
        return self.keyring.sign(self.name, statement)
