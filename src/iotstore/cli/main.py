"""Entry point: builds the command tree and renders every error in one place.

Command modules import their heavy dependencies (the web app, the database,
the key stores) inside the commands, so ``iotstore snap ...`` and ``--help``
start without them.
"""

from __future__ import annotations

import sys

import typer

from . import assert_cmds, blob_cmds, deploy_cmds, key_cmds, serve_cmd
from . import snap as snap_cmds

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
app.add_typer(blob_cmds.app, name="blobs")

# Failures a user can act on: one line on stderr, exit status 1, no traceback. Named by
# module so that checking for them imports nothing: an error class whose module was
# never imported cannot have been raised.
_USER_ERRORS = (
    ("iotstore.asserts", "AssertsError"),
    ("iotstore.keystore", "KeyStoreError"),
    ("iotstore.deployment", "DeploymentError"),
    ("iotstore.accounts", "RootAuthorityError"),
    ("iotstore.settings", "SettingsError"),
    ("iotstore.cli._store_client", "StoreClientError"),
)


def _is_user_error(e: BaseException) -> bool:
    if isinstance(e, (OSError, ValueError)):
        return True
    for module_name, class_name in _USER_ERRORS:
        module = sys.modules.get(module_name)
        kind = getattr(module, class_name, None) if module is not None else None
        if isinstance(kind, type) and isinstance(e, kind):
            return True
    return False


def main() -> None:
    """Run the command line; turn expected failures into one clear line."""
    try:
        app()
    except Exception as e:
        if not _is_user_error(e):
            raise
        print(f"iotstore: error: {e}", file=sys.stderr)  # noqa: T201 - the CLI's one error sink
        sys.exit(1)
