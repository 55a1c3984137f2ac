"""Options shared by every command."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from iotstore.deployment import DATA_DIR_ENV

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
