"""``iotstore serve``: initialise if needed, seed the demo, and run the HTTP server."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ._options import DEFAULT_DATA_DIR, DataDir

if TYPE_CHECKING:
    from granian.server.common import AbstractServer


def serve(
    data_dir: DataDir = DEFAULT_DATA_DIR,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option(help="Server processes.")] = 1,
    demo: Annotated[bool, typer.Option(help="Seed the demo brand on first start.")] = True,
    download_port: Annotated[
        int | None,
        typer.Option(
            help="Also serve snap downloads on this port with sendfile(2), near a static "
            "file server's speed; download URLs then point there (IOTSTORE_DOWNLOAD_URL "
            "overrides the URL, for a proxy in front)."
        ),
    ] = None,
) -> None:
    """Run the store (embedded default: SQLite and files under the data directory)."""
    # imported here, not at the top: the web app, the database and the server cost every
    # other command seconds of start-up
    from iotstore.demo import seed_demo  # noqa: PLC0415
    from iotstore.deployment import Deployment  # noqa: PLC0415
    from iotstore.settings import Settings, host_port  # noqa: PLC0415

    configured = os.environ.get("IOTSTORE_BASE_URL")
    url = configured or listening_url(host, port)
    if not configured and host in WILDCARDS:
        typer.echo(
            f"{host} listens on every address: set IOTSTORE_BASE_URL to the URL devices and"
            " clients reach (it goes into download links, the demo's device-service URL and"
            " OpenID redirects)",
            err=True,
        )
    os.environ["IOTSTORE_BASE_URL"] = url
    os.environ["IOTSTORE_DATA_DIR"] = str(Path(data_dir).resolve())
    if download_port is not None:
        # read by every server process: each listens there too (SO_REUSEPORT)
        os.environ["IOTSTORE_DOWNLOAD_LISTEN"] = host_port(host, download_port)
    if not Deployment.exists(data_dir):
        Deployment.init(data_dir).close()
        typer.echo(f"initialised a new deployment in {data_dir}")
    deployment = Deployment.open(data_dir, Settings.from_env(Path(data_dir)))
    try:
        if demo:
            seed_demo(deployment, url)
            typer.echo(f"demo brand, store and administrator: {Path(data_dir) / 'demo.json'}")
    finally:
        deployment.close()
    typer.echo(f"iotstore listening on {url} (root account {deployment.root.account_id})")
    hint = signing_hint(deployment.settings.keystore.backend, workers, os.cpu_count() or 1)
    if hint:
        typer.echo(hint, err=True)
    if download_port is not None:
        typer.echo(f"snap downloads on {deployment.settings.download_base_url}")
    http_server("iotstore.web.app:app_from_env", host, port, workers).serve()


# addresses that listen everywhere: no URL a client could use
WILDCARDS = frozenset({"0.0.0.0", "::", ""})  # noqa: S104


def listening_url(host: str, port: int) -> str:
    """The base URL ``serve`` uses when IOTSTORE_BASE_URL is unset (IPv6 in brackets)."""
    from iotstore.settings import host_port  # noqa: PLC0415

    return f"http://{host_port(host, port)}"


def signing_hint(keystore: str, workers: int, cores: int) -> str | None:
    """A start-up hint when a PKCS#11 key store would leave cores idle, else None.

    A PKCS#11 key store signs one digest at a time per process (python-pkcs11 initialises
    the module without OS locking); the encrypted store signs on every core from one.
    """
    if keystore != "pkcs11" or workers >= cores:
        return None
    return (
        f"the PKCS#11 key store signs on one core per server process: --workers {cores}"
        f" lets serials be signed on all {cores} cores"
    )


def http_server(target: str, host: str, port: int, workers: int) -> AbstractServer[Any]:
    """The HTTP server ``serve`` runs, for the ASGI app factory ``target`` ("module:name").

    The vault benchmark serves its ceiling (an app that only signs) with it too, so that
    both run on the same server settings.
    """
    from granian.constants import Interfaces  # noqa: PLC0415
    from granian.http import HTTP1Settings  # noqa: PLC0415
    from granian.server import Server  # noqa: PLC0415

    return Server(
        target,
        address=host,
        port=port,
        interface=Interfaces.ASGI,
        factory=True,
        workers=workers,
        log_access=False,
        # snap uploads arrive in chunks of up to this size (hyper's default is 408 KiB):
        # measured per GiB, the event loop's CPU 1.3 s -> 0.7 s, granian's 0.6 s -> 0.4 s (4 MiB
        # saved no more and held 47 MiB instead of 29 MiB during a 1 GiB upload)
        http1_settings=HTTP1Settings(max_buffer_size=2 << 20),
    )
