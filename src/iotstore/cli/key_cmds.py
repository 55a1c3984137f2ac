"""``iotstore key ...``: the signing keys held in the deployment's key store."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ._options import DEFAULT_DATA_DIR, DataDir, open_deployment

if TYPE_CHECKING:
    from iotstore.keystore import KeyInfo

app = typer.Typer(help="Signing keys in the key store.", no_args_is_help=True)


def _line(info: KeyInfo) -> str:
    state = "disabled" if info.disabled else "enabled"
    return f"{info.name:<20} {info.key_id}  {info.bits:>5}  {state}"


@app.command("list")
def list_keys(data_dir: DataDir = DEFAULT_DATA_DIR) -> None:
    """List keys: name, snapd key id, size, state."""
    for info in open_deployment(data_dir).keystore.list():
        typer.echo(_line(info))


@app.command("generate")
def generate(
    name: str,
    data_dir: DataDir = DEFAULT_DATA_DIR,
    bits: Annotated[int, typer.Option(help="RSA modulus size.")] = 4096,
) -> None:
    """Generate an RSA key in the key store."""
    typer.echo(_line(open_deployment(data_dir).keystore.generate(name, bits)))


@app.command("import")
def import_key(name: str, pem: Path, data_dir: DataDir = DEFAULT_DATA_DIR) -> None:
    """Import an existing RSA private key (PEM) into the key store."""
    typer.echo(_line(open_deployment(data_dir).keystore.import_pem(name, pem.read_bytes())))


@app.command("disable")
def disable(
    name: str,
    confirm: Annotated[str, typer.Option(help="Type the key name again to confirm.")],
    data_dir: DataDir = DEFAULT_DATA_DIR,
) -> None:
    """Disable a key for good: it stays listed but never signs again."""
    if confirm != name:
        raise ValueError(f"not disabled: --confirm must repeat the key name {name!r}")
    typer.echo(_line(open_deployment(data_dir).keystore.disable(name)))
