"""Upload ids: what ``/unscanned-upload/`` hands out and ``snap-push`` redeems.

The storage endpoint is anonymous (craft-store sends no credentials to it),
so it writes no database row: the id it answers with carries the blob's key,
size, digest and time, sealed with an HMAC under the deployment secret. The
first account to push it binds it (an ``Upload`` row); an id older than
:data:`CLAIM_WINDOW` is refused, so blobs nobody claimed in time can be swept
(``UploadService.referenced_blob_keys`` with ``older_than`` above the window).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from iotstore.blobstore import BlobInfo
from iotstore.errors import InvalidInput, NotFound

__all__ = ["CLAIM_WINDOW", "ID_PREFIX", "ClaimedBlob", "open_upload_id", "upload_id"]

CLAIM_WINDOW = timedelta(hours=6)
ID_PREFIX = "iu1."


@dataclass(frozen=True)
class ClaimedBlob:
    """A blob an upload id names, with the file name the client sent."""

    info: BlobInfo
    filename: str


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _tag(secret: bytes, payload: str) -> str:
    return _b64(hmac.new(secret, b"upload-id:" + payload.encode(), hashlib.sha256).digest())


def upload_id(secret: bytes, info: BlobInfo, filename: str) -> str:
    """The sealed id of a blob just stored."""
    payload = _b64(
        json.dumps(
            {
                "k": info.key,
                "s": info.size,
                "h": info.sha3_384_hex,
                "t": int(info.created.timestamp()),
                "f": filename[:255],
            },
            separators=(",", ":"),
        ).encode()
    )
    return f"{ID_PREFIX}{payload}.{_tag(secret, payload)}"


def open_upload_id(secret: bytes, value: str, now: datetime | None = None) -> ClaimedBlob:
    """The blob ``value`` names; :class:`NotFound` unless we issued it within the window."""
    unknown = NotFound("unknown or expired upload id: upload the file again")
    if not value.startswith(ID_PREFIX) or len(value) > 2048:
        raise unknown
    payload, _, tag = value[len(ID_PREFIX) :].partition(".")
    if not hmac.compare_digest(tag.encode(), _tag(secret, payload).encode()):
        raise unknown
    try:
        data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        created = datetime.fromtimestamp(int(data["t"]), UTC)
        info = BlobInfo(
            key=str(data["k"]),
            size=int(data["s"]),
            sha3_384=bytes.fromhex(data["h"]),
            created=created,
        )
        filename = str(data["f"])
    except (binascii.Error, ValueError, KeyError, TypeError) as e:
        raise InvalidInput("malformed upload id", field="updown_id") from e
    if (now or datetime.now(UTC)) - created > CLAIM_WINDOW:
        raise unknown
    return ClaimedBlob(info, filename)
