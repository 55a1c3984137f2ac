"""Sign, verify and decode rates of iotstore.asserts against raw RSA-4096 in the same run.

Run: ``.venv/bin/python -m benchmarks.asserts_bench [--seconds S]``

The physical limit for signing and verifying an assertion is one RSA-4096
PKCS#1 v1.5 SHA-512 operation; the ratios say how close the library's whole
path (header encoding, OpenPGP packet, checks) gets to it. Decoding has no
cryptography in it, so it is reported as assertions per second.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from iotstore import asserts
from iotstore.asserts.testing import mint_chain

from ._timing import best_rate


def _model_headers(brand_id: str) -> dict[str, object]:
    return {
        "authority-id": brand_id,
        "series": "16",
        "brand-id": brand_id,
        "model": "bench-model",
        "architecture": "amd64",
        "base": "core22",
        "snaps": [
            {"name": "pc", "id": "UqFziVZDHLSyO3TqSWgNBoAdHbLI4dAH", "type": "gadget"},
            {"name": "pc-kernel", "id": "pYVQrBcKmBa0mZ4CCN7ExT6jH8rY1hza", "type": "kernel"},
            {"name": "core22", "id": "amcUKQILKXHHTlmSa7NMdnXSx02dNeeT", "type": "base"},
        ],
        "timestamp": asserts.format_time(datetime.now(UTC)),
    }


def main(argv: list[str] | None = None) -> int:
    """Print the benchmark table; return 0."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="time per measurement")
    parser.add_argument("--stream", type=int, default=1000, help="assertions in the stream")
    args = parser.parse_args(argv)

    raw = rsa.generate_private_key(public_exponent=65537, key_size=4096)
    raw_pub = raw.public_key()
    key = asserts.RSAPrivateKey(raw)
    message = b"x" * 600  # about the size of a model assertion's content
    pkcs1, sha512 = padding.PKCS1v15(), hashes.SHA512()
    raw_sig = raw.sign(message, pkcs1, sha512)

    headers = _model_headers("bench-brand")
    model = asserts.sign("model", headers, key)

    raw_sign = best_rate(lambda: raw.sign(message, pkcs1, sha512), args.seconds)
    our_sign = best_rate(lambda: asserts.sign("model", headers, key), args.seconds)
    raw_verify = best_rate(lambda: raw_pub.verify(raw_sig, message, pkcs1, sha512), args.seconds)
    our_verify = best_rate(lambda: asserts.verify_signature(model, key.public_key), args.seconds)

    # A full Database.check: key lookup, validity windows, signature, consistency.
    chain = mint_chain()
    db = chain.database()
    serial = chain.serial
    check_rate = best_rate(lambda: db.check(serial), args.seconds)
    raw2048 = chain.brand_key
    raw2048_rate = best_rate(
        lambda: asserts.verify_signature(serial, raw2048.public_key), args.seconds
    )

    stream = asserts.encode_stream([model] * args.stream)
    decode_rate = best_rate(lambda: list(asserts.decode_stream(stream)), args.seconds)

    rows = [
        ("sign model (RSA-4096)", our_sign, raw_sign, "raw cryptography sign"),
        ("verify model (RSA-4096)", our_verify, raw_verify, "raw cryptography verify"),
        ("Database.check serial (RSA-2048)", check_rate, raw2048_rate, "verify_signature alone"),
    ]
    print(f"{'operation':<34} {'ours/s':>10} {'limit/s':>10} {'ratio':>6}  limit")
    for name, ours, limit, what in rows:
        print(f"{name:<34} {ours:>10.1f} {limit:>10.1f} {ours / limit:>6.2f}  {what}")
    per_assertion = decode_rate * args.stream
    print(
        f"{'decode stream':<34} {per_assertion:>10.1f} assertions/s "
        f"({args.stream}-assertion stream, {1e6 / per_assertion:.1f} us each)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
