"""``iotstore serve``'s own decisions (the server itself runs in the end-to-end tests)."""

from __future__ import annotations

import pytest

from iotstore.cli.serve_cmd import listening_url, signing_hint


@pytest.mark.parametrize(
    ("host", "url"),
    [
        ("127.0.0.1", "http://127.0.0.1:8000"),
        ("store.example", "http://store.example:8000"),
        ("::1", "http://[::1]:8000"),
        ("fe80::1", "http://[fe80::1]:8000"),
    ],
)
def test_the_default_base_url_brackets_ipv6_hosts(host: str, url: str) -> None:
    assert listening_url(host, 8000) == url


def test_a_pkcs11_key_store_with_fewer_workers_than_cores_gets_a_hint() -> None:
    hint = signing_hint("pkcs11", 1, 4)
    assert hint is not None and "--workers 4" in hint
    assert signing_hint("pkcs11", 4, 4) is None
    assert signing_hint("encrypted", 1, 4) is None  # signs on every core from one process
