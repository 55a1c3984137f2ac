"""``iotstore snap ...``: publish to a store over its publisher API.

Talks to the server named by ``--url`` / ``IOTSTORE_URL`` with a token from
``--token`` / ``IOTSTORE_TOKEN`` (``POST /api/v1/tokens/password`` or the
dashboard makes one). Errors reach ``cli/main.py`` as
:class:`~iotstore.cli._store_client.StoreClientError` and are printed there.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from ._store_client import StoreClient, StoreClientError

__all__ = ["app"]

app = typer.Typer(help="Publish snaps: register, upload, release, status.", no_args_is_help=True)

Url = Annotated[
    str,
    typer.Option("--url", envvar="IOTSTORE_URL", help="The store's base URL."),
]
Token = Annotated[
    str,
    typer.Option(
        "--token", envvar="IOTSTORE_TOKEN", help="An API token of your account.", show_default=False
    ),
]


def _channels(text: str) -> list[str]:
    channels = [c.strip() for c in text.split(",") if c.strip()]
    if not channels:
        raise StoreClientError("name at least one channel (comma-separated)")
    return channels


@contextmanager
def _client(url: str, token: str) -> Iterator[StoreClient]:
    if not token:
        raise StoreClientError("no token: pass --token or set IOTSTORE_TOKEN")
    client = StoreClient(url, token)
    try:
        yield client
    finally:
        client.close()


def _console() -> Console:
    return Console(highlight=False)


@app.command("register")
def register(
    name: str,
    url: Url = "http://127.0.0.1:8000",
    token: Token = "",
    store: Annotated[str | None, typer.Option(help="The store to register in.")] = None,
    private: Annotated[bool, typer.Option(help="Register a private snap.")] = False,
    snap_type: Annotated[
        str, typer.Option("--type", help="app, or kernel/gadget (brand only).")
    ] = "app",
) -> None:
    """Register a snap name."""
    with _client(url, token) as client:
        answer = client.register(name, store, private, snap_type)
    _console().print(f"Registered {answer['snap_name']} ({answer['snap_id']}) in {answer['store']}")


@app.command("upload")
def upload(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
    url: Url = "http://127.0.0.1:8000",
    token: Token = "",
    release: Annotated[
        str | None, typer.Option(help="Channels to release to once accepted (comma-separated).")
    ] = None,
    name: Annotated[
        str | None, typer.Option(help="The snap's name (read from the file when omitted).")
    ] = None,
) -> None:
    """Upload a snap file (streamed, with progress), push it and wait for its revision."""
    channels = _channels(release) if release else None
    if name is None:
        name = _snap_name(file)
    size = file.stat().st_size
    with _client(url, token) as client:
        console = _console()
        with Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=True,
        ) as progress:
            task = progress.add_task(f"Uploading {file.name}", total=size)
            upload_id = client.upload_file(file, lambda n: progress.advance(task, n))
        console.print(f"Uploaded {file.name} ({size} bytes); processing...")
        status = client.push(name, upload_id, size, channels)
    if status.get("errors"):
        reasons = "; ".join(str(e.get("message")) for e in status["errors"])
        raise StoreClientError(f"the store refused {file.name}: {reasons}")
    revision = status.get("revision")
    if status.get("code") == "need_manual_review":
        console.print(f"Revision {revision} of {name} waits for a reviewer")
    else:
        released = f", released to {', '.join(channels)}" if channels else ""
        console.print(f"Revision {revision} of {name} created{released}")


def _snap_name(file: Path) -> str:
    from iotstore.snaps.inspection import InspectionError, inspect_snap  # noqa: PLC0415

    try:
        with file.open("rb") as f:
            return inspect_snap(f).name
    except InspectionError as e:
        raise StoreClientError(f"{file} is not a valid snap: {e.message}") from e


@app.command("release")
def release_revision(
    name: str,
    revision: int,
    channels: str,
    url: Url = "http://127.0.0.1:8000",
    token: Token = "",
    progressive: Annotated[
        float | None, typer.Option(help="Release to this percentage of devices first.")
    ] = None,
) -> None:
    """Release a revision to channels (comma-separated)."""
    with _client(url, token) as client:
        answer = client.release(name, revision, _channels(channels), progressive)
    opened = ", ".join(answer.get("opened_channels", []))
    _console().print(f"Released {name} revision {revision} to {opened}")


def _cell(value: Any) -> str:
    return "-" if value is None else str(value)


@app.command("status")
def status(name: str, url: Url = "http://127.0.0.1:8000", token: Token = "") -> None:
    """Show the snap's channel map."""
    with _client(url, token) as client:
        answer = client.channel_map(name)
    versions = {r["revision"]: r["version"] for r in answer.get("revisions", [])}
    table = Table(title=f"{name} channel map")
    for column in ("Channel", "Arch", "Revision", "Version", "Progressive", "Expires"):
        table.add_column(column)
    for entry in answer.get("channel-map", []):
        pct = entry.get("progressive", {}).get("percentage")
        table.add_row(
            entry["channel"],
            entry["architecture"],
            str(entry["revision"]),
            _cell(versions.get(entry["revision"])),
            f"{pct:g}%" if pct is not None else "-",
            _cell(entry.get("expiration-date")),
        )
    if not answer.get("channel-map"):
        _console().print(f"{name} is not released to any channel")
        return
    _console().print(table)


@app.command("revisions")
def revisions(name: str, url: Url = "http://127.0.0.1:8000", token: Token = "") -> None:
    """List the snap's revisions."""
    with _client(url, token) as client:
        answer = client.releases(name)
    table = Table(title=f"{name} revisions")
    for column in ("Revision", "Version", "Arch", "Status", "Created", "SHA3-384"):
        table.add_column(column)
    for rev in answer.get("revisions", []):
        table.add_row(
            str(rev["revision"]),
            rev["version"],
            ",".join(rev["architectures"]),
            _cell(rev.get("status")),
            _cell(rev.get("created-at")),
            str(rev.get("sha3-384", ""))[:16] + "…",
        )
    _console().print(table)
