"""The sendfile download listener through real sockets: the main route's answers, HTTP/1.1 rules."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from iotstore.deployment import Deployment
from iotstore.web.device_api.downloads import download_url
from iotstore.web.download_listener import DownloadListener

from ._support import asgi_client, make_deployment

SIZE = 3 * 1024 * 1024 + 17  # over one sendfile chunk, not a whole number of pages


@dataclass
class Listening:
    deployment: Deployment
    url: str  # a valid signed download URL on the listener
    port: int
    data: bytes
    path: str  # the same URL's path, for the main route


@pytest.fixture(scope="module")
def listening(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Listening]:
    base = tmp_path_factory.mktemp("listener")
    deployment = make_deployment(base / "data", f"sqlite+pysqlite:///{base / 'db.sqlite'}")
    data = bytes(range(256)) * (SIZE // 256) + b"x" * (SIZE % 256)
    source = base / "hello.snap"
    source.write_bytes(data)
    key = deployment.blobs.put_file(source).key
    # the listener's loop runs in its own thread: a pytest worker that ran a browser test
    # keeps Playwright's loop running in its main thread, where no other loop may run
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        server = asyncio.run_coroutine_threadsafe(
            DownloadListener(deployment).start("127.0.0.1", 0), loop
        ).result(30)
        port = server.sockets[0].getsockname()[1]
        url = download_url(f"http://127.0.0.1:{port}", deployment.secret, key, "hello_1.snap")
        yield Listening(deployment, url, port, data, httpx.URL(url).raw_path.decode())
        asyncio.run_coroutine_threadsafe(_close(server), loop).result(30)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
        deployment.close()


async def _close(server: asyncio.Server) -> None:
    """Stop listening and end the connections still open (their handlers are tasks)."""
    server.close()
    await server.wait_closed()
    current = asyncio.current_task()
    others = [t for t in asyncio.all_tasks() if t is not current]
    for task in others:
        task.cancel()
    await asyncio.gather(*others, return_exceptions=True)


def raw_exchange(port: int, request: bytes, timeout: float = 10.0) -> bytes:
    """Send ``request`` as is and read until the server closes the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(request)
        s.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := s.recv(1 << 16):
            answer += chunk
    return answer


def test_whole_file_as_the_main_route_serves_it(listening: Listening) -> None:
    response = httpx.get(listening.url)
    assert response.status_code == 200
    assert response.content == listening.data
    with asgi_client(_app(listening.deployment)) as client:
        main = client.get(listening.path)
    assert main.status_code == 200
    for name in ("content-length", "content-type", "content-disposition", "accept-ranges", "etag"):
        assert response.headers[name] == main.headers[name], name


def test_ranges_head_and_416(listening: Listening) -> None:
    part = httpx.get(listening.url, headers={"Range": "bytes=100-"})
    assert part.status_code == 206
    assert part.content == listening.data[100:]
    assert part.headers["content-range"] == f"bytes 100-{SIZE - 1}/{SIZE}"
    head = httpx.head(listening.url)
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["content-length"] == str(SIZE)
    refused = httpx.get(listening.url, headers={"Range": f"bytes={SIZE}-"})
    assert refused.status_code == 416
    assert refused.headers["content-range"] == f"bytes */{SIZE}"


@pytest.mark.parametrize(
    "mangle",
    [
        lambda p: p.replace("/download/", "/download/0"),  # tampered token
        lambda p: p.rsplit("/", 1)[0] + "/other_1.snap",  # another file name
        lambda p: "/v2/snaps/refresh",  # not a download
        lambda p: p + "/extra",
    ],
    ids=["tampered", "renamed", "other-path", "extra-segment"],
)
def test_bad_links_are_404_in_the_device_error_shape(listening: Listening, mangle: object) -> None:
    assert callable(mangle)
    response = httpx.get(f"http://127.0.0.1:{listening.port}{mangle(listening.path)}")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/json"
    assert response.json()["error-list"][0]["code"] == "not-found"


def test_other_methods_are_405(listening: Listening) -> None:
    response = httpx.post(listening.url, content=b"x")
    assert response.status_code == 405
    assert response.json()["error-list"][0]["code"] == "method-not-allowed"


def test_keep_alive_and_pipelining(listening: Listening) -> None:
    with httpx.Client() as client:  # one pooled connection, reused
        for start in (0, 5, 10):
            part = client.get(listening.url, headers={"Range": f"bytes={start}-"})
            assert part.content == listening.data[start:]
    one = f"GET {listening.path} HTTP/1.1\r\nHost: x\r\nRange: bytes={SIZE - 3}-\r\n\r\n".encode()
    answer = raw_exchange(listening.port, one + one)
    assert answer.count(b"HTTP/1.1 206 ") == 2
    assert answer.endswith(listening.data[-3:])


def test_malformed_request_is_a_400_and_the_connection_closes(listening: Listening) -> None:
    answer = raw_exchange(listening.port, b"GET /download/x HTTP/1.1\r\nno colon here\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 400 ")
    assert b'"error-list"' in answer


def test_oversized_headers_are_refused(listening: Listening) -> None:
    answer = raw_exchange(
        listening.port, b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 40_000 + b"\r\n\r\n"
    )
    assert answer == b"" or answer.startswith(b"HTTP/1.1 4")


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(garbage=st.binary(max_size=600))
def test_any_bytes_get_a_4xx_or_a_close_and_the_listener_keeps_serving(
    listening: Listening, garbage: bytes
) -> None:
    answer = raw_exchange(listening.port, garbage)
    status_line = answer.split(b"\r\n", 1)[0]
    assert answer == b"" or status_line.startswith(b"HTTP/1.1 4"), status_line
    assert httpx.head(listening.url).status_code == 200


def test_a_file_removed_after_the_link_was_made_is_404(
    listening: Listening, tmp_path: Path
) -> None:
    source = tmp_path / "gone.snap"
    source.write_bytes(b"soon gone")
    key = listening.deployment.blobs.put_file(source).key
    url = download_url(
        f"http://127.0.0.1:{listening.port}", listening.deployment.secret, key, "gone_1.snap"
    )
    assert httpx.get(url).content == b"soon gone"
    listening.deployment.blobs.delete(key)
    assert httpx.get(url).status_code == 404


def test_idle_connections_do_not_stop_others(listening: Listening) -> None:
    idle = socket.create_connection(("127.0.0.1", listening.port))
    try:
        idle.sendall(b"GET ")  # and nothing more
        time.sleep(0.1)
        assert httpx.head(listening.url).status_code == 200
    finally:
        idle.close()


def _app(deployment: Deployment):  # type: ignore[no-untyped-def]
    from iotstore.web.app import create_app  # noqa: PLC0415 - only this test needs the app

    return create_app(deployment.settings, deployment)
