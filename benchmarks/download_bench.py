"""Download throughput of the embedded default, as a ratio to nginx serving the same file.

Run: ``.venv/bin/python -m benchmarks.download_bench [--size-mib 64] [--seconds 10]
[--connections 4] [--workers 1]``

A snap-sized blob goes into a fresh deployment's file blob store; ``iotstore
serve --download-port`` answers the signed download URL snap action hands
out on both its paths: the download listener (sendfile(2),
``web/download_listener.py``: the figure) and the main port (ASGI
``pathsend``: granian reads the file in Rust and writes its buffers, which is
what a server without ``--download-port`` does). nginx (Debian's, its own
configuration in a temporary directory) serves the very same file (one
worker process per core, sendfile on). ``wrk`` reads each for ``--seconds``
with the same connections; the figure is iotstore's bytes/s divided by
nginx's (goal >= 0.8). A ranged read (``Range: bytes=N-``, snapd resuming)
is checked for the right bytes on both paths.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from iotstore.blobstore import FileBlobStore
from iotstore.deployment import Deployment
from iotstore.settings import Settings
from iotstore.web.device_api.downloads import download_url

from .vault_bench import free_port, seeded_server_dir, serving

__all__ = ["Figures", "main", "run"]

_TRANSFER = re.compile(r"Transfer/sec:\s+([0-9.]+)([KMG]?B)")
_UNITS = {"B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3}


def wrk_bytes_per_second(url: str, seconds: float, connections: int) -> float:
    """What wrk reports as Transfer/sec, in bytes."""
    binary = shutil.which("wrk")
    if binary is None:
        raise SystemExit("wrk is not installed: apt-get install -y wrk")
    out = subprocess.run(
        [binary, "-t", "2", "-c", str(connections), "-d", f"{max(1, round(seconds))}s",
         "--timeout", "60s", url],
        capture_output=True, text=True, check=True, timeout=seconds + 120,
    )  # fmt: skip
    match = _TRANSFER.search(out.stdout)
    if match is None:
        raise RuntimeError(f"cannot read wrk's output:\n{out.stdout}")
    return float(match.group(1)) * _UNITS[match.group(2)]


@contextlib.contextmanager
def nginx(directory: Path, file: Path) -> Iterator[str]:
    """nginx on a free loopback port serving ``file`` at ``/file``; yields its URL."""
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(binary).exists():
        raise SystemExit("nginx is not installed: apt-get install -y nginx")
    port = free_port()
    conf = directory / "nginx.conf"
    # as root, nginx's workers would drop to nobody, who cannot read the 0700 data dir
    user = "user root root;" if os.geteuid() == 0 else ""
    conf.write_text(
        f"""
{user}
worker_processes auto;
pid {directory}/nginx.pid;
error_log {directory}/error.log;
daemon off;
events {{ worker_connections 256; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    client_body_temp_path {directory}/body;
    proxy_temp_path {directory}/proxy;
    fastcgi_temp_path {directory}/fastcgi;
    uwsgi_temp_path {directory}/uwsgi;
    scgi_temp_path {directory}/scgi;
    server {{
        listen 127.0.0.1:{port};
        location = /file {{
            alias {file};
            default_type application/octet-stream;
        }}
    }}
}}
"""
    )
    proc = subprocess.Popen(
        [binary, "-c", str(conf), "-p", str(directory), "-e", str(directory / "error.log")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}/file"
    try:
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(httpx.TransportError):
                if httpx.head(url, timeout=2).status_code == 200:
                    break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"nginx did not start: {(directory / 'error.log').read_text()}")
            time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=20)


@dataclass
class Figures:
    """Bytes per second of iotstore's two paths and of nginx."""

    iotstore: float  # the download listener (sendfile)
    main_port: float  # pathsend on the main port
    nginx: float

    @property
    def ratio(self) -> float:
        """iotstore's download listener over nginx."""
        return self.iotstore / self.nginx


def run(base: Path, *, size: int, seconds: float, connections: int, workers: int) -> Figures:
    """Measure; see the module docstring."""
    server = seeded_server_dir(base, None)
    source = base / "blob.snap"
    with source.open("wb") as f:
        remaining = size
        while remaining > 0:
            chunk = os.urandom(min(remaining, 1 << 20))
            f.write(chunk)
            remaining -= len(chunk)
    blobs = FileBlobStore(server.data_dir / "blobs")
    info = blobs.put_file(source)
    deployment = Deployment.open(
        server.data_dir, Settings(data_dir=server.data_dir, base_url=server.url)
    )
    secret = deployment.secret
    deployment.close()
    listener = f"127.0.0.1:{free_port()}"
    urls = [
        download_url(base_url, secret, info.key, "bench_1.snap")
        for base_url in (f"http://{listener}", server.url)
    ]
    stored = blobs.path(info.key)
    rates = []
    extra = {"IOTSTORE_DOWNLOAD_LISTEN": listener}
    with serving(server, workers, base / "server.log", extra):
        for url in urls:
            whole = httpx.get(url, timeout=120)
            assert whole.status_code == 200 and len(whole.content) == size
            part = httpx.get(url, headers={"Range": f"bytes={size // 2}-"}, timeout=120)
            assert part.status_code == 206 and part.content == whole.content[size // 2 :]
            del whole, part
            rates.append(wrk_bytes_per_second(url, seconds, connections))
    (base / "nginx").mkdir()
    with nginx(base / "nginx", stored) as nginx_url:
        theirs = wrk_bytes_per_second(nginx_url, seconds, connections)
    return Figures(rates[0], rates[1], theirs)


def main(argv: list[str] | None = None) -> int:
    """Command line entry point; prints the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size-mib", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="download-bench-") as tmp:
        figures = run(
            Path(tmp), size=args.size_mib << 20, seconds=args.seconds,
            connections=args.connections, workers=args.workers,
        )  # fmt: skip
    mib = 1 << 20
    print(f"file: {args.size_mib} MiB, {args.connections} connections, {args.seconds:.0f} s each")
    print(f"iotstore download listener (sendfile): {figures.iotstore / mib:9.1f} MiB/s")
    print(f"iotstore main port (pathsend):         {figures.main_port / mib:9.1f} MiB/s")
    print(f"nginx, same file:                      {figures.nginx / mib:9.1f} MiB/s")
    print(f"ratio iotstore / nginx: {figures.ratio:.2f} (goal >= 0.8); "
          f"main port / nginx: {figures.main_port / figures.nginx:.2f}")  # fmt: skip
    print("load average (1, 5, 15 min): {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
