"""Oversized JSON bodies get a 413 in the error shape each audience's client parses.

One rule picks the shape by path (``web/errors.py``), for the request-size limit
(``web/limits.py``) as for every other error: craft-store reads ``error_list``,
snapd's store client ``error-list``, the admin API ``error``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from tests.web._support import asgi_client, throwaway_app

LIMIT: int = 0


@pytest.fixture(scope="module")
def client() -> Iterator[httpx.Client]:
    """The real app on a throwaway SQLite deployment (no request here reaches the DB)."""
    global LIMIT  # noqa: PLW0603 - read by _too_large; one app per module
    with throwaway_app() as app:
        LIMIT = app.state.settings.max_body_bytes
        with asgi_client(app) as c:
            yield c


class _Chunks(httpx.AsyncByteStream, httpx.SyncByteStream):
    # a body of unknown length, in 64 KiB pieces (the in-process transport is async)
    def __init__(self, data: bytes) -> None:
        self._pieces = [data[i : i + 65536] for i in range(0, len(data), 65536)]

    def __iter__(self) -> Iterator[bytes]:
        yield from self._pieces

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for piece in self._pieces:
            yield piece


def _too_large(client: httpx.Client, path: str, *, chunked: bool) -> Any:
    limit = LIMIT
    big = b'{"name": "' + b"x" * limit + b'"}'
    headers = {"content-type": "application/json"}
    # a declared Content-Length is refused before reading; without one (chunked) the
    # middleware counts what arrives and stops the app reading
    request = client.build_request("POST", path, content=big, headers=headers)
    if chunked:
        request.stream = _Chunks(big)
        request.headers.pop("content-length")
        request.headers["transfer-encoding"] = "chunked"
    r = client.send(request)
    assert r.status_code == 413, (path, r.text)
    assert r.headers["content-type"] == "application/json"
    return r.json()


PUBLISHER_PATHS = ["/dev/api/snap-release/", "/dev/api/register-name/", "/dev/api/snaps/x/close"]
DEVICE_PATHS = ["/v2/snaps/refresh", "/api/v1/snaps/auth/sessions", "/v2/cohorts"]


@pytest.mark.parametrize("chunked", [False, True])
@pytest.mark.parametrize("path", PUBLISHER_PATHS)
def test_publisher_paths_answer_in_error_list(
    client: httpx.Client, path: str, chunked: bool
) -> None:
    body = _too_large(client, path, chunked=chunked)
    assert body["error_list"][0]["code"] == "too-large"
    assert "error" not in body and "error-list" not in body


def test_sso_discharge_also_carries_the_sso_code(client: httpx.Client) -> None:
    body = _too_large(client, "/api/v2/tokens/discharge", chunked=False)
    assert body["error_list"][0]["code"] == "too-large"
    assert body["code"] == "TOO-LARGE" and body["message"]


@pytest.mark.parametrize("chunked", [False, True])
@pytest.mark.parametrize("path", DEVICE_PATHS)
def test_device_paths_answer_in_snapds_error_list(
    client: httpx.Client, path: str, chunked: bool
) -> None:
    body = _too_large(client, path, chunked=chunked)
    assert body == {
        "error-list": [{"code": "too-large", "message": body["error-list"][0]["message"]}]
    }


def test_admin_paths_keep_the_admin_shape(client: httpx.Client) -> None:
    body = _too_large(client, "/api/v1/stores/x/substores", chunked=False)
    assert body["error"]["code"] == "too-large"
