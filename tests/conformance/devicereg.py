"""A device registering the way snapd does, for conformance tests of the serial vault.

The Go program ``conformance/devicereg`` reproduces snapd 2.57.6's device
registration (``overlord/devicestate/handlers_serial.go``: request-id, then a
serial-request signed with the device key plus the model, polling on 202)
with snapd's own ``asserts`` code, and accepts the answer into a snapd
assertion database that trusts the deployment's root. This module builds it
once (cached in ``conformance/.build``, like :mod:`.snapd`) and runs it.

Typical use::

    reg = DeviceReg().register(url=..., api_key=..., model=model_path, trusted=root_path)
    assert reg.ok, reg.error
    refused = DeviceReg().register(..., api_key="wrong")
    assert refused.status == 400 and refused.message == "unknown or revoked API key"

Missing tooling never skips: :class:`~.snapd.SnapdToolingMissing` names the
Debian packages to install.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .snapd import SnapdCheckError, build_conformance_program

__all__ = [
    "DeviceReg",
    "DeviceRegError",
    "Registration",
    "build_devicereg",
]

RUN_TIMEOUT = 180.0


class DeviceRegError(SnapdCheckError):
    """devicereg could not run (usage or setup error, exit 2): not a verdict on the vault."""


@dataclass(frozen=True)
class Registration:
    """What devicereg reports about one registration attempt (its JSON output)."""

    ok: bool
    stage: str
    """Where it stopped: ``request-id``, ``serial``, ``verify`` or ``done``."""
    status: int
    """HTTP status of the last answer (0 if the service was not reached)."""
    content_type: str
    message: str
    """The service's message as snapd reads it (only from exactly ``application/json``)."""
    error: str
    """The text snapd's registration task would fail with."""
    request_id: str
    device_key_id: str
    polls: int
    serial: str
    serial_revision: int
    serial_assertion: str
    serial_sign_key_id: str
    stream: list[str]
    """Assertion types of the answer, in order."""
    model_in_database: bool

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Registration:
        """Build from devicereg's output object."""
        return cls(
            ok=bool(data["ok"]),
            stage=str(data["stage"]),
            status=int(data["status"]),
            content_type=str(data["content-type"]),
            message=str(data["message"]),
            error=str(data["error"]),
            request_id=str(data["request-id"]),
            device_key_id=str(data["device-key-id"]),
            polls=int(data["polls"]),
            serial=str(data["serial"]),
            serial_revision=int(data["serial-revision"]),
            serial_assertion=str(data["serial-assertion"]),
            serial_sign_key_id=str(data["serial-sign-key-id"]),
            stream=[str(t) for t in data["stream"]],
            model_in_database=bool(data["model-in-database"]),
        )


def build_devicereg(build_dir: Path | None = None) -> Path:
    """Build ``conformance/devicereg`` if a source is newer than the cached binary."""
    return build_conformance_program("devicereg", build_dir)


class DeviceReg:
    """Run the devicereg binary; each :meth:`register` is one device's first boot."""

    def __init__(self, binary: Path | None = None, *, timeout: float = RUN_TIMEOUT) -> None:
        self.binary = binary if binary is not None else build_devicereg()
        self.timeout = timeout

    def register(
        self,
        *,
        url: str,
        model: Path,
        trusted: Path,
        api_key: str | None,
        key: Path | None = None,
        save_key: Path | None = None,
        bits: int | None = None,
        serial: str | None = None,
        body: str | None = None,
        request_id: str | None = None,
        serial_api_key: str | None = None,
        stream_model: Path | None = None,
        no_model: bool = False,
        poll_delay: float | None = None,
        max_polls: int | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Registration:
        """Register one device against the device service at ``url``.

        ``model`` is the device's model (optionally followed by its chain, as a
        seed carries it); ``trusted`` the deployment's root stream. ``key``
        loads the device key (PEM), else a fresh ``bits``-bit key (4096) is
        generated and optionally written to ``save_key``. ``serial`` and
        ``body`` are the gadget's ``registration.proposed-serial`` and
        ``registration.body``. For negative tests: ``request_id`` replays a
        request-id (no request-id call), ``serial_api_key`` sends another
        api-key on the serial call only, ``stream_model`` sends another model
        than the serial-request names, ``no_model`` sends none.
        ``poll_delay`` (seconds) replaces snapd's 60 s wait after a 202.

        Raises :class:`DeviceRegError` only for usage/setup errors.
        """
        args = ["-url", url, "-model", str(model), "-trusted", str(trusted)]
        options: list[tuple[str, object | None]] = [
            ("-api-key", api_key), ("-key", key), ("-save-key", save_key), ("-bits", bits),
            ("-serial", serial), ("-body", body), ("-request-id", request_id),
            ("-serial-api-key", serial_api_key), ("-stream-model", stream_model),
            ("-max-polls", max_polls),
            ("-poll-delay", f"{poll_delay}s" if poll_delay is not None else None),
        ]  # fmt: skip
        for flag, value in options:
            if value is not None:
                args += [flag, str(value)]
        if no_model:
            args.append("-no-model")
        for name, value in (headers or {}).items():
            args += ["-header", f"{name}={value}"]
        try:
            proc = subprocess.run(
                [str(self.binary), *args], capture_output=True, timeout=self.timeout, check=False
            )
        except subprocess.TimeoutExpired as exc:
            raise DeviceRegError(f"devicereg timed out after {self.timeout}s", 2, "") from exc
        stderr = proc.stderr.decode("utf-8", "replace").strip()
        if proc.returncode not in (0, 1):
            raise DeviceRegError(
                f"devicereg failed (exit {proc.returncode}): {stderr}", proc.returncode, stderr
            )
        reg = Registration.from_json(json.loads(proc.stdout))
        if reg.ok != (proc.returncode == 0):
            raise DeviceRegError(f"devicereg exit {proc.returncode} but ok={reg.ok}", 2, stderr)
        return reg
