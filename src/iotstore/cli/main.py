"""Entry point: builds the command tree and renders every error in one place."""

from __future__ import annotations

import sys

import typer

from iotstore.accounts import RootAuthorityError
from iotstore.asserts import AssertsError
from iotstore.deployment import DeploymentError
from iotstore.keystore import KeyStoreError
from iotstore.settings import SettingsError

from . import assert_cmds, deploy_cmds, key_cmds, serve_cmd
from . import snap as snap_cmds
from ._store_client import StoreClientError

app = typer.Typer(
    name="iotstore",
    help="A self-hosted IoT app store with its own serial vault.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
deploy_cmds.register(app)
app.command("serve")(serve_cmd.serve)
app.add_typer(assert_cmds.app, name="assert")
app.add_typer(key_cmds.app, name="key")
app.add_typer(snap_cmds.app, name="snap")

# Failures a user can act on: one line on stderr, exit status 1, no traceback.
_USER_ERRORS = (
    AssertsError,
    KeyStoreError,
    DeploymentError,
    RootAuthorityError,
    SettingsError,
    StoreClientError,
    OSError,
    ValueError,
)


def main() -> None:
    """Run the command line; turn expected failures into one clear line."""
    try:
        app()
    except _USER_ERRORS as e:
        print(f"iotstore: error: {e}", file=sys.stderr)  # noqa: T201 - the CLI's one error sink
        sys.exit(1)
