"""The error body publisher clients parse (``web/errors.py`` calls this for their paths).

craft-store reads ``error-list`` and then ``error_list``: a list of
``{"code", "message"}`` shown as "Store operation failed" lines, with the
codes ``twofactor-required`` and ``macaroon-needs-refresh`` acted on.
snapd's and snapcraft's SSO clients (``…/tokens/discharge``) read a
top-level ``code`` in the SSO's own vocabulary, so SSO paths carry both.
"""

from __future__ import annotations

from typing import Any

__all__ = ["PUBLISHER_PREFIXES", "SSO_PREFIX", "is_publisher_path", "publisher_error"]

PUBLISHER_PREFIXES = ("/dev/api/", "/api/v2/", "/unscanned-upload/")
SSO_PREFIX = "/api/v2/tokens/"

# our error codes -> the SSO's (snapd's store/auth.go reads these)
_SSO_CODES = {
    "unauthorized": "INVALID_CREDENTIALS",
    "invalid-input": "INVALID_DATA",
    "twofactor-required": "TWOFACTOR_REQUIRED",
}


def is_publisher_path(path: str) -> bool:
    """Whether ``path`` belongs to the craft-store compatible API."""
    return path.startswith(PUBLISHER_PREFIXES)


def publisher_error(code: str, message: str, path: str) -> dict[str, Any]:
    """The JSON error body for ``path``."""
    body: dict[str, Any] = {"error_list": [{"code": code, "message": message}]}
    if path.startswith(SSO_PREFIX):
        body |= {"code": _SSO_CODES.get(code, code.upper()), "message": message, "extra": {}}
    if path.startswith("/unscanned-upload/"):
        body["successful"] = False
    return body
