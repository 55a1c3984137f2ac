"""snapd's own assertion code as a judge for conformance tests.

The Go program ``conformance/snapdcheck`` wraps snapd 2.57.6's exported
``asserts`` and ``asserts/signtool`` packages (Debian
``golang-github-snapcore-snapd-dev``).  This module builds it once and drives
it, so tests can ask snapd three questions:

* :meth:`SnapdCheck.verify` -- does snapd's assertion database, trusting our
  root, accept these assertion streams?  One :data:`VerifyLine` per assertion.
* :meth:`SnapdCheck.sign` -- what does ``snap sign`` (snapd's signer) produce
  for this JSON statement and key?
* :meth:`SnapdCheck.keyid` -- what are snapd's key id and public-key encoding
  for this key?

Typical use in a test (``snapdcheck`` is the session fixture from conftest)::

    lines = snapdcheck.verify(root_stream, chain_bytes, model_bytes)
    assert all(line["ok"] for line in lines), lines
    # or, with a readable failure message:
    snapdcheck.assert_accepted(root_stream, chain_bytes, model_bytes)

Missing tooling never skips: it raises :class:`SnapdToolingMissing` naming the
Debian packages to install, so the test fails loudly.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NotRequired, Required, TypedDict, cast

__all__ = [
    "DEBIAN_PACKAGES",
    "GOPATH",
    "REPO_ROOT",
    "SnapdCheck",
    "SnapdCheckError",
    "SnapdToolingMissing",
    "VerifyLine",
    "build_conformance_program",
    "build_snapdcheck",
]

REPO_ROOT = Path(__file__).resolve().parents[2]
"""Root of the iotstore checkout (``tests/conformance/`` is two levels down)."""

GOPATH = Path("/usr/share/gocode")
"""GOPATH tree shipped by Debian's Go library packages (snapd sources included)."""

_SNAPD_ASSERTS = GOPATH / "src/github.com/snapcore/snapd/asserts"

DEBIAN_PACKAGES = (
    "golang-go golang-github-snapcore-snapd-dev golang-github-boltdb-bolt-dev "
    "golang-github-coreos-go-systemd-dev golang-dbus-dev golang-github-juju-ratelimit-dev "
    "golang-github-mvo5-goconfigparser-dev golang-golang-x-crypto-dev golang-golang-x-sys-dev "
    "golang-golang-x-xerrors-dev golang-gopkg-macaroon.v1-dev golang-gopkg-mgo.v2-dev "
    "golang-gopkg-retry.v1-dev golang-gopkg-tomb.v2-dev golang-gopkg-yaml.v2-dev "
    "golang-gopkg-yaml.v3-dev"
)
"""What ``apt-get install -y`` needs for the build (the snapd -dev package declares no deps)."""

BUILD_TIMEOUT = 600.0
"""Seconds allowed for ``go build`` (a cold build takes 10-15 s on 2 cores)."""

RUN_TIMEOUT = 120.0
"""Default seconds allowed for one snapdcheck invocation."""


class SnapdToolingMissing(RuntimeError):
    """Go or snapd's sources are not installed; the message says what to install."""


class SnapdCheckError(RuntimeError):
    """snapdcheck failed or refused (not a per-assertion verdict).

    ``returncode`` is 1 when snapd refused the input (e.g. ``sign`` with an
    invalid statement; the message is snapd's) and 2 for usage/setup errors.
    """

    def __init__(self, message: str, returncode: int, stderr: str) -> None:
        super().__init__(message)
        self.returncode = returncode
        self.stderr = stderr


VerifyLine = TypedDict(
    "VerifyLine",
    {
        # Index of the stream in the ``*streams`` argument of verify().
        "stream": Required[int],
        # Position of the assertion inside that stream; absent on a decode error line.
        "index": NotRequired[int],
        # Assertion type and snapd's primary key ([] for serial-request); absent on
        # a decode error line.
        "type": NotRequired[str],
        "primary-key": NotRequired[list[str]],
        # snapd's verdict and, when not ok, its exact error text. A stream that
        # does not decode gets one extra line with ok false and
        # error "decode: <snapd's decoder error>".
        "ok": Required[bool],
        "error": Required[str],
        # Why an ok was not a plain Database.Add: "checked" (account-key-request,
        # Database.Check), "checked against its own device-key" (serial-request),
        # "checked against serial device-key" (device-session-request),
        # "already present" (byte-identical to an assertion added earlier),
        # "trusted" (byte-identical to a member of the trusted set).
        "note": NotRequired[str],
        # Only with verify(headers=True): snapd's decoded headers and body.
        "headers": NotRequired[dict[str, Any]],
        "body": NotRequired[str],
    },
)
"""One verdict line of :meth:`SnapdCheck.verify`."""


def _require_tooling() -> str:
    go = shutil.which("go")
    if go is None or not _SNAPD_ASSERTS.is_dir():
        missing = "the `go` command" if go is None else f"snapd's Go sources ({_SNAPD_ASSERTS})"
        raise SnapdToolingMissing(
            f"snapd conformance tests need {missing}. Install the Debian packages: "
            f"apt-get install -y {DEBIAN_PACKAGES}"
        )
    return go


def _newest_source_mtime(source_dir: Path) -> float:
    sources = list(source_dir.glob("*.go"))
    if not sources:
        raise SnapdToolingMissing(f"no Go sources in {source_dir}")
    return max(p.stat().st_mtime for p in sources)


SHARED_GO_PACKAGES = ("assertstream",)
"""Packages under ``conformance/`` that the programs import as ``"../NAME"`` (GOPATH mode
allows relative imports outside GOPATH): a change to one rebuilds every program."""

_built: dict[tuple[str, Path], Path] = {}
"""Binaries already checked in this process, by program and build directory."""


def build_conformance_program(name: str, build_dir: Path | None = None) -> Path:
    """Build ``conformance/NAME`` if needed and return the binary's path.

    The binary is cached in ``build_dir`` (default: ``$IOTSTORE_SNAPDCHECK_DIR``
    or ``<repo>/conformance/.build``) and rebuilt only when a ``.go`` source is
    newer; within one process the check runs once per directory.  Safe to
    call from several pytest-xdist workers at once: builds are serialised by
    a lock file and the binary is replaced atomically.

    Raises :class:`SnapdToolingMissing` if Go or snapd's sources are absent,
    and :class:`SnapdCheckError` (with the compiler output) if the build fails.
    """
    if build_dir is None:
        env_dir = os.environ.get("IOTSTORE_SNAPDCHECK_DIR")
        build_dir = Path(env_dir) if env_dir else REPO_ROOT / "conformance" / ".build"
    cached = _built.get((name, build_dir))
    if cached is not None and cached.exists():
        return cached
    go = _require_tooling()
    build_dir.mkdir(parents=True, exist_ok=True)
    binary = build_dir / name
    newest = max(
        _newest_source_mtime(REPO_ROOT / "conformance" / src) for src in (name, *SHARED_GO_PACKAGES)
    )
    with (build_dir / "build.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not binary.exists() or binary.stat().st_mtime < newest:
            _go_build(go, name, binary)
    _built[(name, build_dir)] = binary
    return binary


def build_snapdcheck(build_dir: Path | None = None) -> Path:
    """Build ``conformance/snapdcheck`` (see :func:`build_conformance_program`)."""
    return build_conformance_program("snapdcheck", build_dir)


def _go_build(go: str, name: str, binary: Path) -> None:
    env = dict(os.environ)
    env.update(GO111MODULE="off", GOPATH=str(GOPATH), CGO_ENABLED="0", GOFLAGS="")
    if "GOCACHE" not in env and "HOME" not in env and "XDG_CACHE_HOME" not in env:
        env["GOCACHE"] = str(binary.parent / "go-cache")
    tmp = binary.with_name(f".{name}.{os.getpid()}.tmp")
    # GOPATH mode builds a directory outside GOPATH fine; the nosecboot tag
    # keeps snapd's TPM/secboot dependencies (not packaged) out of the build.
    cmd = [go, "build", "-tags", "nosecboot", "-o", str(tmp), f"./conformance/{name}"]
    try:
        proc = subprocess.run(
            cmd,
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=BUILD_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise SnapdCheckError(f"go build timed out after {BUILD_TIMEOUT}s", 2, "") from exc
    if proc.returncode != 0:
        tmp.unlink(missing_ok=True)
        raise SnapdCheckError(
            f"building {name} failed ({' '.join(cmd)}):\n{proc.stderr}\n"
            "If a Go package is missing, install the Debian packages: "
            f"apt-get install -y {DEBIAN_PACKAGES}",
            proc.returncode,
            proc.stderr,
        )
    tmp.replace(binary)


def _format_now(now: datetime | str) -> str:
    if isinstance(now, str):
        return now
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class SnapdCheck:
    """Drive the snapdcheck binary; every method runs one short-lived process.

    ``SnapdCheck()`` builds the binary on first use (see
    :func:`build_snapdcheck`); pass ``binary`` to use a prebuilt one.
    """

    def __init__(self, binary: Path | None = None, *, timeout: float = RUN_TIMEOUT) -> None:
        self.binary = binary if binary is not None else build_snapdcheck()
        self.timeout = timeout

    def _run(self, args: list[str], stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
        try:
            return subprocess.run(
                [str(self.binary), *args],
                input=stdin,
                capture_output=True,
                timeout=self.timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise SnapdCheckError(
                f"snapdcheck {args[0]} timed out after {self.timeout}s", 2, ""
            ) from exc

    @staticmethod
    def _fail(what: str, proc: subprocess.CompletedProcess[bytes]) -> SnapdCheckError:
        stderr = proc.stderr.decode("utf-8", "replace").strip()
        return SnapdCheckError(
            f"snapdcheck {what} failed (exit {proc.returncode}): {stderr}", proc.returncode, stderr
        )

    def verify(
        self,
        trusted: bytes,
        *streams: bytes,
        now: datetime | str | None = None,
        headers: bool = False,
    ) -> list[VerifyLine]:
        """Let snapd's ``asserts.Database`` judge assertion streams.

        ``trusted`` is a stream of the root ``account`` + ``account-key``
        (our trusted set, e.g. ``root.assert``).  Each of ``streams`` is
        decoded with snapd's stream decoder; all assertions then go into one
        database (trusting ``trusted``), retried in passes so their order
        does not matter.  Returns one line per assertion in input order (see
        :data:`VerifyLine`), plus a decode-error line for a stream that does
        not decode to its end.  Assertions decoded before the error are
        still judged.

        No-authority types are checked as a store/vault would: an
        ``account-key-request`` with ``Database.Check`` (its own key, its
        account must be present), a ``serial-request`` against its own
        ``device-key``, a ``device-session-request`` against the device key
        of the matching ``serial`` (which must be among the inputs).

        snapd only accepts signing keys valid *now*; ``now`` (aware datetime
        or RFC 3339 text) pins the clock the database sees.  ``headers=True``
        adds snapd's decoded ``headers`` and ``body`` to every line.

        Raises :class:`SnapdCheckError` only for usage/setup problems (for
        example a trusted stream that does not decode); refusals are lines
        with ``ok`` false.
        """
        with tempfile.TemporaryDirectory(prefix="snapdcheck-") as tmp:
            tmpdir = Path(tmp)
            trusted_path = tmpdir / "trusted"
            trusted_path.write_bytes(trusted)
            names: dict[str, int] = {}
            for i, data in enumerate(streams):
                path = tmpdir / f"stream-{i}"
                path.write_bytes(data)
                names[str(path)] = i
            args = ["verify", "-trusted", str(trusted_path)]
            if now is not None:
                args += ["-now", _format_now(now)]
            if headers:
                args.append("-headers")
            args += ["--", *names]
            proc = self._run(args)
        if proc.returncode not in (0, 1):
            raise self._fail("verify", proc)
        lines: list[VerifyLine] = []
        for raw in proc.stdout.decode("utf-8").splitlines():
            obj = json.loads(raw)
            obj["stream"] = names[obj.pop("file")]
            lines.append(cast(VerifyLine, obj))
        return lines

    def assert_accepted(
        self, trusted: bytes, *streams: bytes, now: datetime | str | None = None
    ) -> list[VerifyLine]:
        """Like :meth:`verify`, but raise ``AssertionError`` listing every refusal."""
        lines = self.verify(trusted, *streams, now=now)
        bad = [line for line in lines if not line["ok"]]
        if bad:
            detail = "\n".join(
                f"  stream {b['stream']} #{b.get('index', '-')} {b.get('type', '')} "
                f"{b.get('primary-key', '')}: {b['error']}"
                for b in bad
            )
            raise AssertionError(f"snapd refused {len(bad)} of {len(lines)}:\n{detail}")
        return lines

    def sign(self, statement: Mapping[str, Any], key_pem: bytes) -> bytes:
        """Sign a ``snap sign`` JSON statement with snapd's signer; return the assertion.

        ``statement`` maps header names to strings, lists or maps (no numbers
        or booleans, as for ``snap sign``) plus an optional ``"body"`` string.
        ``authority-id`` is not filled in; ``sign-key-sha3-384`` and
        ``body-length`` are.  ``key_pem`` is an unencrypted RSA private key,
        PKCS#8 or PKCS#1 PEM.  Raises :class:`SnapdCheckError` carrying
        snapd's message if it refuses the statement.
        """
        with tempfile.TemporaryDirectory(prefix="snapdcheck-") as tmp:
            key_path = Path(tmp) / "key.pem"
            key_path.write_bytes(key_pem)
            key_path.chmod(0o600)
            proc = self._run(
                ["sign", "-key", str(key_path)], json.dumps(dict(statement)).encode("utf-8")
            )
        if proc.returncode != 0:
            raise self._fail("sign", proc)
        return proc.stdout

    def keyid(self, key_pem: bytes) -> tuple[str, str]:
        """Return snapd's key id and encoded public key (the ``account-key`` body).

        ``key_pem`` is an unencrypted RSA private key, PKCS#8 or PKCS#1 PEM.
        """
        with tempfile.TemporaryDirectory(prefix="snapdcheck-") as tmp:
            key_path = Path(tmp) / "key.pem"
            key_path.write_bytes(key_pem)
            key_path.chmod(0o600)
            proc = self._run(["keyid", "-key", str(key_path)])
        if proc.returncode != 0:
            raise self._fail("keyid", proc)
        key_id, encoded = proc.stdout.decode("utf-8").splitlines()
        public_key = json.loads(encoded)
        assert isinstance(public_key, str)
        return key_id, public_key
