"""``iotstore init`` and ``iotstore root ...``: create a deployment and export its root."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from ._options import DEFAULT_DATA_DIR, DataDir, open_deployment

root_app = typer.Typer(help="The deployment's root of trust.", no_args_is_help=True)


def init(
    data_dir: DataDir = DEFAULT_DATA_DIR,
    root_id: Annotated[
        str | None, typer.Option(help="Root account id (default: a random 32-character id).")
    ] = None,
    root_key: Annotated[
        Path | None,
        typer.Option(help="Adopt this offline-generated RSA private key (PEM) as the root key."),
    ] = None,
    display_name: Annotated[str, typer.Option(help="Root account display name.")] = (
        "iotstore root"
    ),
    exist_ok: Annotated[
        bool, typer.Option("--exist-ok", help="Succeed if the deployment already exists.")
    ] = False,
) -> None:
    """Create a deployment: master key, key store, and the root account + account-key."""
    from iotstore.deployment import Deployment  # noqa: PLC0415 - lazy: keeps CLI start-up light

    if exist_ok and Deployment.exists(data_dir):
        deployment = Deployment.open(data_dir)
        typer.echo(f"deployment exists in {data_dir}; root account {deployment.root.account_id}")
        return
    pem = root_key.read_bytes() if root_key is not None else None
    deployment = Deployment.init(
        data_dir, root_id=root_id, root_key_pem=pem, display_name=display_name
    )
    typer.echo(f"initialised {data_dir}")
    typer.echo(f"root account {deployment.root.account_id}")
    typer.echo(f"root key {deployment.root.account_key.key_id}")
    typer.echo(f"trusted set written to {data_dir / 'root.assert'} (iotstore root export)")


@root_app.command("export")
def export(data_dir: DataDir = DEFAULT_DATA_DIR) -> None:
    """Print the root account + account-key stream that devices must trust."""
    sys.stdout.buffer.write(open_deployment(data_dir).root.stream())


def register(app: typer.Typer) -> None:
    """Attach these commands to the top-level app."""
    app.command("init")(init)
    app.add_typer(root_app, name="root")
