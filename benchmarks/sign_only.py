"""The vault benchmark's ceiling: the vault's HTTP server with nothing to do but sign.

Run: ``.venv/bin/python -m benchmarks.sign_only --port P [--workers W]``

Served as ``iotstore serve`` serves the store (:func:`iotstore.cli.serve_cmd.http_server`:
granian, the same settings and worker count), every request is answered with one
RSA-4096 PKCS#1 v1.5 signature of the SHA-512 digest of its body, made in a pool of one
thread per core, as ``POST serial`` signs. No parsing, no checks, no database: what this
serves per second over what raw signing does is the most any Python vault on this
server can reach; what the vault loses beyond it is its own work.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import sys
from concurrent.futures import ThreadPoolExecutor

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa, utils
from starlette.types import ASGIApp, Receive, Scope, Send

from iotstore.cli.serve_cmd import http_server


def app() -> ASGIApp:
    """The ASGI app (a factory, as granian calls it in each worker): one key per worker."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=4096)
    pool = ThreadPoolExecutor(max(2, os.cpu_count() or 2), thread_name_prefix="sign-only")
    pkcs1, prehashed = padding.PKCS1v15(), utils.Prehashed(hashes.SHA512())

    def sign(body: bytes) -> bytes:
        return key.sign(hashlib.sha512(body).digest(), pkcs1, prehashed)

    async def serve(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return  # lifespan: nothing to start or stop
        parts: list[bytes] = []
        more = True
        while more:
            message = await receive()
            parts.append(message.get("body", b""))
            more = bool(message.get("more_body"))
        signature = await asyncio.get_running_loop().run_in_executor(pool, sign, b"".join(parts))
        headers = [(b"content-type", b"application/octet-stream")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": signature})

    return serve


def main(argv: list[str] | None = None) -> int:
    """Serve the ceiling app until stopped."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args(argv)
    http_server("benchmarks.sign_only:app", args.host, args.port, args.workers).serve()
    return 0


if __name__ == "__main__":
    sys.exit(main())
