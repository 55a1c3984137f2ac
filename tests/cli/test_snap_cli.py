"""``iotstore snap ...`` against a live server: a real process per command, a real HTTP server."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from iotstore.cli.main import main
from iotstore.settings import BlobSettings
from iotstore.snaps.testing import build_snap
from tests.web._support import unique
from tests.web.publisher_api.conftest import Publisher, start_publisher


@pytest.fixture(scope="module")
def publisher(
    module_database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Publisher]:
    """A live server with snaps on disk."""
    p = start_publisher(tmp_path_factory.mktemp("cli"), module_database_url, BlobSettings())
    yield p
    p.server.stop()
    p.deployment.close()


@dataclass
class Result:
    """What one command printed and its exit status."""

    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def snap_cli(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Callable[..., Result]:
    """Run ``iotstore snap ARGS`` in this process (``cli.main.main``, its one error sink) with
    IOTSTORE_URL and IOTSTORE_TOKEN set; the process start-up is what a subprocess would add
    (``test_the_installed_command_runs`` covers it once)."""

    def run(p: Publisher, *args: str, token: str | None = None, ok: bool = True) -> Result:
        monkeypatch.setenv("IOTSTORE_URL", p.url)
        monkeypatch.setenv("IOTSTORE_TOKEN", p.publisher.token if token is None else token)
        monkeypatch.setenv("COLUMNS", "200")
        monkeypatch.setattr(sys, "argv", ["iotstore", "snap", *args])
        capsys.readouterr()
        with pytest.raises(SystemExit) as exited:
            main()
            raise SystemExit(0)
        captured = capsys.readouterr()
        code = exited.value.code
        result = Result(code if isinstance(code, int) else 1, captured.out, captured.err)
        if ok:
            assert result.returncode == 0, result.stderr
        else:
            assert result.returncode != 0, result.stdout
            lines = result.stderr.strip().splitlines()
            assert len(lines) == 1 and lines[0].startswith("iotstore: error: "), result.stderr
        return result

    return run


def test_the_installed_command_runs(publisher: Publisher) -> None:
    name = unique("proc")
    proc = subprocess.run(
        [sys.executable, "-m", "iotstore", "snap", "register", name, "--store", publisher.store],
        capture_output=True,
        text=True,
        timeout=120,
        env={
            **os.environ,
            "IOTSTORE_URL": publisher.url,
            "IOTSTORE_TOKEN": publisher.publisher.token,
        },
        check=False,
    )
    assert proc.returncode == 0 and f"Registered {name}" in proc.stdout, proc.stderr


def test_register_upload_release_status_revisions(
    publisher: Publisher, tmp_path: Path, snap_cli: Callable[..., Result]
) -> None:
    p = publisher
    name = unique("cli")
    out = snap_cli(p, "register", name, "--store", p.store).stdout
    assert f"Registered {name}" in out

    first = build_snap(tmp_path, name, "1.0")
    out = snap_cli(p, "upload", str(first), "--release", "edge,beta").stdout
    assert f"Revision 1 of {name} created, released to edge, beta" in out
    second = build_snap(tmp_path, name, "2.0")
    assert f"Revision 2 of {name} created" in snap_cli(p, "upload", str(second)).stdout

    snap_cli(p, "release", name, "1", "stable")
    out = snap_cli(p, "release", name, "2", "stable", "--progressive", "25").stdout
    assert f"Released {name} revision 2 to latest/stable" in out

    table = snap_cli(p, "status", name).stdout
    rows = {line.split("│")[1].strip(): line for line in table.splitlines() if "│" in line}
    assert "latest/edge" in rows and " 1 " in rows["latest/edge"]
    assert (
        "latest/stable" in rows
        and " 2 " in rows["latest/stable"]
        and "25%" in rows["latest/stable"]
    )

    listing = snap_cli(p, "revisions", name).stdout
    assert "1.0" in listing and "2.0" in listing and "Published" in listing


def test_errors_are_one_line_and_fail(
    publisher: Publisher, tmp_path: Path, snap_cli: Callable[..., Result]
) -> None:
    p = publisher
    out = snap_cli(p, "status", "no-such-snap", ok=False)
    assert "no snap named" in out.stderr
    snap_cli(p, "register", unique("x"), "--store", p.store, token="", ok=False)
    bad = snap_cli(p, "status", "anything", token="not-a-token", ok=False)
    assert "malformed" in bad.stderr
    garbage = tmp_path / "garbage.snap"
    garbage.write_bytes(os.urandom(1000))
    assert "not a valid snap" in snap_cli(p, "upload", str(garbage), ok=False).stderr
    # another publisher's snap: refused by the store, with its reason
    name = unique("owned")
    snap_cli(p, "register", name, "--store", p.store)
    other = snap_cli(p, "upload", str(build_snap(tmp_path, name)), token=p.other.token, ok=False)
    assert "publisher or a collaborator" in other.stderr
    unreachable = snap_cli(p, "status", "x", "--url", "http://127.0.0.1:9", ok=False)
    assert "cannot reach the store" in unreachable.stderr
