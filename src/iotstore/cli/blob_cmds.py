"""``iotstore blobs sweep``: delete snap files nothing refers to (``iotstore serve`` also
does it hourly in the background; run this from cron when the server is not always up)."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

import typer

from ._options import DEFAULT_DATA_DIR, DataDir

app = typer.Typer(help="The blob store holding snap files.", no_args_is_help=True)


@app.command("sweep")
def sweep(
    data_dir: DataDir = DEFAULT_DATA_DIR,
    older_than_hours: Annotated[
        float,
        typer.Option(
            "--older-than-hours",
            help="Only delete blobs older than this; at least 7 (the upload claim window + 1 h).",
        ),
    ] = 24.0,
) -> None:
    """Release refused and never-pushed uploads, then delete unreferenced blobs."""
    # imported here: the database and blob stores are heavy for every other command
    from iotstore.deployment import Deployment  # noqa: PLC0415
    from iotstore.snaps.sweep import sweep_orphan_blobs  # noqa: PLC0415

    deployment = Deployment.open(data_dir)
    try:
        result = sweep_orphan_blobs(
            deployment.database, deployment.blobs, older_than=timedelta(hours=older_than_hours)
        )
    finally:
        deployment.close()
    typer.echo(
        f"released {result.released} refused uploads, forgot {result.forgotten} unpushed "
        f"uploads, deleted {result.deleted} blobs"
    )
