"""``iotstore assert sign|verify``: sign like ``snap sign``, verify against the deployment."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ._options import DEFAULT_DATA_DIR, DataDir, open_deployment

if TYPE_CHECKING:
    from iotstore import asserts

app = typer.Typer(help="Sign and verify assertions.", no_args_is_help=True)


@app.command("sign")
def sign(
    key: Annotated[str, typer.Option(help="Name of the signing key in the key store.")],
    data_dir: DataDir = DEFAULT_DATA_DIR,
    authority: Annotated[
        str | None, typer.Option(help="authority-id, when the input does not set it.")
    ] = None,
) -> None:
    """Read JSON headers on stdin (a "body" member is the body); print the signed assertion."""
    from iotstore import asserts  # noqa: PLC0415 - lazy: keeps CLI start-up light

    try:
        statement = json.loads(sys.stdin.buffer.read())
    except ValueError as e:
        raise asserts.SigningError(f"cannot parse the assertion input as JSON: {e}") from e
    if not isinstance(statement, dict):
        raise asserts.SigningError("the assertion input must be a JSON object of headers")
    type_name = statement.get("type")
    if not isinstance(type_name, str):
        raise asserts.SigningError("missing assertion type header")
    body = statement.pop("body", "")
    if not isinstance(body, str):
        raise asserts.SigningError("body if specified must be a string")
    if authority is not None and statement.setdefault("authority-id", authority) != authority:
        raise asserts.SigningError("--authority clashes with the input's authority-id")
    signer = open_deployment(data_dir).keystore.signer(key)
    sys.stdout.buffer.write(asserts.sign(type_name, statement, signer, body).to_bytes())


def _describe(a: asserts.Assertion) -> str:
    key = "/".join(a.primary_key) or "-"
    return f"{a.type_name} {key}"


@app.command("verify")
def verify(
    files: Annotated[list[Path], typer.Argument(help="Assertion files or streams ('-': stdin).")],
    data_dir: DataDir = DEFAULT_DATA_DIR,
) -> None:
    """Check every assertion against the deployment's root; one line per assertion."""
    from iotstore import asserts  # noqa: PLC0415 - lazy: keeps CLI start-up light

    db = open_deployment(data_dir).trust_database()
    found: list[asserts.Assertion] = []
    for path in files:
        data = sys.stdin.buffer.read() if str(path) == "-" else path.read_bytes()
        try:
            found.extend(asserts.decode_stream(data))
        except asserts.DecodeError as e:
            raise asserts.DecodeError(f"{path}: {e}", e.header) from e
    trusted = set(db.trusted)
    storable = [
        a for a in found if a not in trusted and a.type_name not in _CHECK_ONLY and a.primary_key
    ]
    errors = db.add_many(storable)
    failed = False
    for a in found:
        problem = _problem(db, a, trusted, errors)
        failed = failed or problem is not None
        status = "FAIL" if problem else "OK"
        typer.echo(f"{status:<4} {_describe(a)}" + (f": {problem}" if problem else ""))
    if failed:
        raise typer.Exit(1)


_CHECK_ONLY = ("serial-request", "account-key-request", "device-session-request")


def _problem(
    db: asserts.Database,
    a: asserts.Assertion,
    trusted: set[asserts.Assertion],
    errors: dict[asserts.Assertion, Exception],
) -> str | None:
    from iotstore import asserts  # noqa: PLC0415 - lazy: keeps CLI start-up light

    if a in trusted:
        return None
    try:
        if a.type_name == "device-session-request":
            serial = db.find("serial", a.primary_key)
            assert isinstance(serial, asserts.Serial)
            asserts.verify_signature(a, serial.device_key)
        elif a.type_name in _CHECK_ONLY or not a.primary_key:
            db.check(a)
        elif a in errors:
            return str(errors[a])
    except asserts.NotFoundError:
        return "no matching serial assertion to verify the device key"
    except asserts.AssertsError as e:
        return str(e)
    return None
