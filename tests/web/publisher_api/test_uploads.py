"""Bad uploads and pushes against a live server: refused with a reason, never a 5xx."""

from __future__ import annotations

import os
import socket
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from benchmarks.upload_bench import MiB, measure

from iotstore.snaps.testing import build_snap
from tests.web._support import Person, bearer, unique

from .conftest import MAX_SNAP, Publisher


def _upload(p: Publisher, content: bytes, filename: str = "x.snap") -> httpx.Response:
    with p.http() as client:
        return client.post(
            "/unscanned-upload/",
            files={"binary": (filename, content, "application/octet-stream")},
        )


def _register(p: Publisher, person: Person, name: str | None = None) -> str:
    name = name or unique("up")
    with p.http() as client:
        r = client.post(
            "/dev/api/register-name/",
            json={"snap_name": name, "store": p.store},
            headers=bearer(person.token),
        )
    assert r.status_code == 201, r.text
    return name


def _push(p: Publisher, person: Person, name: str, upload_id: str) -> httpx.Response:
    with p.http() as client:
        return client.post(
            "/dev/api/snap-push/",
            json={"name": name, "series": "16", "updown_id": upload_id},
            headers=bearer(person.token),
        )


def _status(p: Publisher, person: Person, response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 202, response.text
    with p.http() as client:
        r = client.get(response.json()["status_details_url"], headers=bearer(person.token))
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def _errors(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error_list"][0]["message"], body
    return str(body["error_list"][0]["code"])


def test_oversized_upload_is_413_and_nothing_is_stored(publisher: Publisher) -> None:
    before = {k.key for k in publisher.blobs.list()}
    assert _errors(_upload(publisher, os.urandom(MAX_SNAP + 1)), 413) == "too-large"
    # streamed without a Content-Length: refused while it arrives
    with socket.create_connection(("127.0.0.1", publisher.server.port)) as s:
        s.sendall(
            b"POST /unscanned-upload/ HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        chunk = os.urandom(1 << 20)
        try:
            for _ in range(MAX_SNAP // len(chunk) + 2):
                s.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
            s.sendall(b"0\r\n\r\n")
        except OSError:
            pass  # the server may answer and close before it read everything
        answer = s.recv(4096)
    assert b" 413 " in answer.split(b"\r\n", 1)[0], answer[:200]
    assert {k.key for k in publisher.blobs.list()} == before


def test_truncated_multipart_is_refused_and_nothing_is_stored(publisher: Publisher) -> None:
    before = {k.key for k in publisher.blobs.list()}
    body = (
        b'--B\r\nContent-Disposition: form-data; name="binary"; filename="a.snap"\r\n'
        b"Content-Type: application/octet-stream\r\n\r\n" + os.urandom(100_000)
    )  # no closing boundary
    with publisher.http() as client:
        r = client.post(
            "/unscanned-upload/",
            content=body,
            headers={"content-type": "multipart/form-data; boundary=B"},
        )
    assert _errors(r, 400) == "invalid-input"
    assert "cut short" in r.text
    assert r.json()["successful"] is False
    assert {k.key for k in publisher.blobs.list()} == before


def test_wrong_media_type_and_empty_and_missing_field(publisher: Publisher) -> None:
    with publisher.http() as client:
        r = client.post("/unscanned-upload/", json={"binary": "x"})
        assert _errors(r, 415) == "unsupported-media-type"
        r = client.post("/unscanned-upload/", files={"other": ("a", b"abc")})
        assert "no 'binary' file part" in r.text and r.status_code == 400
    assert "empty" in _upload(publisher, b"").text


def test_non_squashfs_truncated_and_misnamed_snaps_are_refused_with_a_reason(
    publisher: Publisher, tmp_path: Path
) -> None:
    p = publisher
    name = _register(p, p.publisher)
    cases = {
        "garbage": os.urandom(4096),
        "truncated": _half(build_snap(tmp_path, name, "1.0").read_bytes()),
        "wrong name": build_snap(tmp_path, unique("other"), "1.0").read_bytes(),
    }
    for what, content in cases.items():
        up = _upload(p, content)
        assert up.status_code == 200, (what, up.text)
        status = _status(p, p.publisher, _push(p, p.publisher, name, up.json()["upload_id"]))
        assert status["processed"] is True, (what, status)
        assert status["code"] == "processing_error", (what, status)
        assert status["revision"] is None and status["errors"][0]["message"], (what, status)
    with p.http() as client:
        r = client.get(f"/api/v2/snaps/{name}/releases", headers=bearer(p.publisher.token))
    assert r.json()["revisions"] == []  # no half-revision of any of them


def test_an_upload_is_pushed_once_and_only_by_its_first_claimant(
    publisher: Publisher, tmp_path: Path
) -> None:
    p = publisher
    name = _register(p, p.publisher)
    upload_id = _upload(p, build_snap(tmp_path, name).read_bytes()).json()["upload_id"]
    # another publisher of the same store cannot push it into a snap it does not own
    assert _errors(_push(p, p.other, name, upload_id), 403) == "forbidden"
    first = _push(p, p.publisher, name, upload_id)
    assert _status(p, p.publisher, first)["revision"] == 1
    # a replay is refused, by the owner too
    assert _errors(_push(p, p.publisher, name, upload_id), 409) == "conflict"
    other_name = _register(p, p.other)
    assert _errors(_push(p, p.other, other_name, upload_id), 403) == "forbidden"
    # a forged or mangled id is unknown
    assert _errors(_push(p, p.publisher, name, upload_id[:-2] + "xx"), 404) == "not-found"
    # the status belongs to the uploader
    with p.http() as client:
        r = client.get(first.json()["status_details_url"], headers=bearer(p.other.token))
    assert r.status_code == 404


def test_killing_the_server_mid_upload_leaves_nothing_after_the_sweep(
    publisher: Publisher,
) -> None:
    p = publisher
    before_rows = p.referenced()
    with socket.create_connection(("127.0.0.1", p.server.port)) as s:
        head = (
            b'--B\r\nContent-Disposition: form-data; name="binary"; filename="k.snap"\r\n'
            b"Content-Type: application/octet-stream\r\n\r\n"
        )
        s.sendall(
            b"POST /unscanned-upload/ HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: multipart/form-data; boundary=B\r\n"
            + f"Content-Length: {len(head) + (6 << 20) + 8}\r\n\r\n".encode()
            + head
            + os.urandom(5 << 20)
        )
        time.sleep(1.0)  # the server is mid-stream, writing a temporary blob
        p.server.kill()
    p.server = p.server.restarted()
    assert p.referenced() == before_rows  # no row: nothing visible
    blob_dir = p.deployment.data_dir / "blobs"
    # (the file store buffers a few MiB before its first write, so there may be no
    # leftover at all; when there is one, the sweep removes it)
    time.sleep(1.1)  # file times have one-second steps on some file systems
    p.blobs.sweep_orphans(p.referenced(), older_than=timedelta(0))
    assert not list(blob_dir.rglob("*.tmp"))
    assert {e.key for e in p.blobs.list()} <= p.referenced()


def _half(content: bytes) -> bytes:
    # cut inside the image (mksquashfs pads the file to 4 KiB: cut before bytes_used)
    used = int.from_bytes(content[40:48], "little")
    return content[: used // 2]


def test_upload_benchmark_measures_against_the_live_server(publisher: Publisher) -> None:
    # benchmarks/upload_bench.py's measurement, small: figures come out, nothing is timed
    figures = measure(publisher.server.port, publisher.server.pid, 4 * MiB)
    assert figures.size == 4 * MiB
    assert figures.upload_seconds > 0 and figures.hash_seconds > 0
    assert figures.rss_growth >= 0
    assert "ratio" in figures.report()
