"""``iotstore serve``'s own decisions (the server itself runs in the end-to-end tests)."""

from __future__ import annotations

import pytest

from iotstore.cli.serve_cmd import listening_url


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
