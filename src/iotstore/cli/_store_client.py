"""A small HTTP client of a store's publisher API, for ``iotstore snap``.

It speaks the same endpoints snapcraft uses (``web/publisher_api``), with a
token of ours as ``Authorization: Bearer``. Every failure becomes one
:class:`StoreClientError` whose message is what the user reads (the server's
``error_list`` messages, or the network problem).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, BinaryIO, cast
from urllib.parse import quote

import httpx

__all__ = ["ProgressReader", "StoreClient", "StoreClientError"]

_POLL_SECONDS = 0.5


class StoreClientError(Exception):
    """The store refused a request, or could not be reached."""


class ProgressReader:
    """A binary file whose reads report how many bytes went out (httpx streams it)."""

    def __init__(self, f: BinaryIO, advance: Callable[[int], None]) -> None:
        self._f = f
        self._advance = advance

    def read(self, size: int = -1) -> bytes:
        """Read and report."""
        data = self._f.read(size)
        self._advance(len(data))
        return data

    def fileno(self) -> int:
        """The file's descriptor (httpx sizes the body from it: a Content-Length, no chunks)."""
        return self._f.fileno()

    def tell(self) -> int:
        """Current offset."""
        return self._f.tell()

    def seek(self, offset: int, whence: int = 0) -> int:
        """Move (httpx seeks back to the start before sending)."""
        return self._f.seek(offset, whence)


def _message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        entries = body.get("error_list") or body.get("error-list")
        if isinstance(entries, list) and entries:
            return "; ".join(str(e.get("message", e)) for e in entries if isinstance(e, dict))
        error = body.get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
    return f"the store answered {response.status_code} {response.reason_phrase}"


class StoreClient:
    """Calls one store as one account."""

    def __init__(self, url: str, token: str | None, *, timeout: float = 300) -> None:
        if not url.startswith(("http://", "https://")):
            raise StoreClientError("the store URL must start with http:// or https://")
        headers = {"Accept": "application/json", "User-Agent": "iotstore-cli"}
        if token:
            headers["Authorization"] = f"Bearer {token.strip()}"
        self.url = url.rstrip("/")
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout)

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """The JSON answer of a request; :class:`StoreClientError` for any failure."""
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as e:
            raise StoreClientError(f"cannot reach the store at {self.url}: {e}") from e
        if response.status_code >= 400:
            raise StoreClientError(_message(response))
        try:
            return response.json()
        except ValueError as e:
            raise StoreClientError("the store answered something that is not JSON") from e

    def register(self, name: str, store: str | None, private: bool, snap_type: str) -> Any:
        """Register a snap name."""
        body: dict[str, Any] = {"snap_name": name, "is_private": private, "series": "16"}
        if store:
            body["store"] = store
        if snap_type != "app":
            body["type"] = snap_type
        return self.request("POST", "/dev/api/register-name/", json=body)

    def upload_file(self, path: Path, advance: Callable[[int], None]) -> str:
        """Stream ``path`` to the storage endpoint; returns the upload id."""
        with path.open("rb") as f:
            # httpx only reads, sizes and seeks it: the file protocol it relies on
            reader = cast("IO[bytes]", ProgressReader(f, advance))
            files = {"binary": (path.name, reader, "application/octet-stream")}
            # no credentials: the upload binds to the account that pushes it (as snapcraft)
            try:
                response = httpx.post(
                    f"{self.url}/unscanned-upload/", files=files, timeout=self._http.timeout
                )
            except httpx.HTTPError as e:
                raise StoreClientError(f"the upload failed: {e}") from e
        if response.status_code >= 400:
            raise StoreClientError(_message(response))
        result = response.json()
        if not result.get("successful"):
            raise StoreClientError(f"the store did not accept the upload: {result}")
        return str(result["upload_id"])

    def push(
        self, name: str, upload_id: str, size: int, channels: list[str] | None
    ) -> dict[str, Any]:
        """Push an upload as the snap's next revision and wait until it is processed."""
        self.request("POST", "/dev/api/snap-push/", json={"name": name, "dry_run": True})
        body: dict[str, Any] = {
            "name": name,
            "series": "16",
            "updown_id": upload_id,
            "binary_filesize": size,
        }
        if channels:
            body["channels"] = channels
        answer = self.request("POST", "/dev/api/snap-push/", json=body)
        status_url = str(answer["status_details_url"])
        while True:
            status: dict[str, Any] = self.request("GET", status_url)
            if status.get("processed"):
                return status
            time.sleep(_POLL_SECONDS)

    def release(
        self, name: str, revision: int, channels: list[str], progressive: float | None
    ) -> Any:
        """Release a revision to channels."""
        body: dict[str, Any] = {"name": name, "revision": str(revision), "channels": channels}
        if progressive is not None:
            body["progressive"] = {"percentage": progressive, "paused": False}
        return self.request("POST", "/dev/api/snap-release/", json=body)

    def channel_map(self, name: str) -> Any:
        """The snap's channel map."""
        return self.request("GET", f"/api/v2/snaps/{quote(name, safe='')}/channel-map")

    def releases(self, name: str) -> Any:
        """The snap's revisions and release history."""
        return self.request("GET", f"/api/v2/snaps/{quote(name, safe='')}/releases")
