"""``iotstore blobs sweep`` and the CLI's start-up: real processes, a real deployment."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from iotstore.blobstore import FileBlobStore
from iotstore.cli._options import DATA_DIR_ENV as CLI_DATA_DIR_ENV
from iotstore.deployment import DATA_DIR_ENV

from .test_cli import run


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = tmp_path_factory.mktemp("blobs") / "data"
    run("init", "--data-dir", str(data))
    return data


def _blob(data_dir: Path, content: bytes, age: timedelta) -> tuple[FileBlobStore, str]:
    store = FileBlobStore(data_dir / "blobs")
    source = data_dir.parent / "loose.snap"
    source.write_bytes(content)
    key = store.put_file(source).key
    then = (datetime.now(UTC) - age).timestamp()
    os.utime(store.path(key), (then, then))
    return store, key


def test_sweep_deletes_old_unreferenced_blobs_only(data_dir: Path) -> None:
    store, old = _blob(data_dir, b"nobody pushed this", timedelta(days=2))
    _, recent = _blob(data_dir, b"may still be pushed", timedelta(hours=1))
    proc = run("blobs", "sweep", "--data-dir", str(data_dir))
    assert "deleted 1 blobs" in proc.stdout.decode()
    assert not store.exists(old)
    assert store.exists(recent)


def test_sweep_refuses_a_grace_inside_the_claim_window(data_dir: Path) -> None:
    proc = run("blobs", "sweep", "--data-dir", str(data_dir), "--older-than-hours", "1", ok=False)
    assert "older_than" in proc.stderr.decode()


def test_cli_start_up_imports_neither_web_nor_database() -> None:
    # `iotstore snap ...` and --help build the command tree only; serve and the
    # deployment commands import the app, SQLAlchemy and Alembic when they run
    heavy = ("iotstore.web", "iotstore.deployment", "fastapi", "sqlalchemy", "alembic", "granian")
    code = (
        "import json, sys, iotstore.cli.main as m; m.app;"
        f"print(json.dumps(sorted(k for k in sys.modules if k.startswith({heavy!r}))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, check=True, timeout=120
    ).stdout
    assert json.loads(out) == []


def test_help_lists_every_command() -> None:
    text = run("--help").stdout.decode()
    for command in ("init", "root", "serve", "assert", "key", "snap", "blobs"):
        assert command in text


def test_the_data_dir_variable_is_the_deployments() -> None:
    assert CLI_DATA_DIR_ENV == DATA_DIR_ENV
