"""Options shared by every command."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from iotstore.deployment import Deployment

# iotstore.deployment.DATA_DIR_ENV, spelt out: importing the deployment (SQLAlchemy,
# Alembic, the key stores) costs every command a second (tests/cli checks they agree)
DATA_DIR_ENV = "IOTSTORE_DATA_DIR"

DataDir = Annotated[
    Path,
    typer.Option(
        "--data-dir",
        envvar=DATA_DIR_ENV,
        help="Deployment data directory.",
        show_default=True,
    ),
]
DEFAULT_DATA_DIR = Path("iotstore-data")


def open_deployment(data_dir: Path) -> Deployment:
    """Open the deployment in ``data_dir`` (imported on first use: see above)."""
    from iotstore.deployment import Deployment  # noqa: PLC0415 - lazy on purpose

    return Deployment.open(data_dir)
