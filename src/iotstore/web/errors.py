"""The one place that turns errors into HTTP responses, in each audience's shape.

The admin API answers ``{"error": {"code", "message", "field"?}}``; snapd's
device API (``error-list``) and the publisher API register their own shapes
here as they arrive. Nothing else builds error responses; no traceback leaves.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from iotstore import errors
from iotstore.asserts import AssertsError
from iotstore.db import ConflictError, DatabaseError, InvalidDataError
from iotstore.keystore import KeyStoreError

from .publisher_api._shape import is_publisher_path, publisher_error

__all__ = ["error_response", "install_error_handlers"]

log = logging.getLogger("iotstore.web")

_STATUS: list[tuple[type[errors.IotstoreError], int]] = [
    (errors.InvalidInput, 400),
    (errors.Unauthenticated, 401),
    (errors.Forbidden, 403),
    (errors.NotFound, 404),
    (errors.Conflict, 409),
    (errors.Refused, 409),
    (errors.Unavailable, 503),
]
_HTTP_CODES = {
    400: "invalid-input", 401: "unauthorized", 403: "forbidden", 404: "not-found",
    405: "method-not-allowed", 409: "conflict", 413: "too-large", 415: "unsupported-media-type",
    422: "invalid-input", 429: "rate-limited",
}  # fmt: skip


VAULT_PREFIX = "/serial-vault/"
# snapd's store API (device-api.md): error-list bodies, exactly application/json
DEVICE_PREFIXES = ("/api/v1/snaps/", "/v2/snaps/", "/v2/assertions/", "/v2/cohorts", "/download/")


def error_response(
    status: int, code: str, message: str, field: str | None = None, path: str = ""
) -> JSONResponse:
    """The error body for the audience of ``path``: the admin shape, or snapd's vault shape."""
    if path.startswith(VAULT_PREFIX):
        # snapd shows "message" (or error_list[0].message) only for exactly application/json
        return JSONResponse(
            {
                "success": False,
                "error_code": code,
                "message": message,
                "error_list": [{"code": code, "message": message}],
            },
            status_code=status,
        )
    if path.startswith(DEVICE_PREFIXES):
        # an expired or unverifiable device session makes snapd fetch a new one and retry
        refresh = code == "device-authorization-needs-refresh"
        return JSONResponse(
            {"error-list": [{"code": code, "message": message}]},
            status_code=status,
            headers={"WWW-Authenticate": "Macaroon refresh_device_session=1" if refresh
                     else "Macaroon"} if status == 401 else None,
        )  # fmt: skip
    if is_publisher_path(path):
        # craft-store and snapcraft parse error_list (publisher_api/_shape.py)
        return JSONResponse(publisher_error(code, message, path), status_code=status)
    body: dict[str, str] = {"code": code, "message": message}
    if field:
        body["field"] = field
    headers = {"WWW-Authenticate": "Macaroon"} if status == 401 else None
    return JSONResponse({"error": body}, status_code=status, headers=headers)


def _status_of(exc: errors.IotstoreError) -> int:
    for kind, status in _STATUS:
        if isinstance(exc, kind):
            return status
    return 400


async def _iotstore_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, errors.IotstoreError)
    return error_response(_status_of(exc), exc.code, exc.message, exc.field, path=request.url.path)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    first = exc.errors()[0] if exc.errors() else {}
    location = [
        p for p in first.get("loc", ()) if isinstance(p, str) and p not in ("body", "query", "path")
    ]
    message = str(first.get("msg", "invalid request"))
    return error_response(
        400, "invalid-input", message, ".".join(location) if location else None,
        path=request.url.path,
    )  # fmt: skip


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    return error_response(
        exc.status_code, _HTTP_CODES.get(exc.status_code, "error"), str(exc.detail),
        path=request.url.path,
    )  # fmt: skip


async def _conflict(request: Request, exc: Exception) -> JSONResponse:
    return error_response(409, "conflict", str(exc), path=request.url.path)


async def _asserts_error(request: Request, exc: Exception) -> JSONResponse:
    return error_response(400, "invalid-assertion", str(exc), path=request.url.path)


async def _keystore_error(request: Request, exc: Exception) -> JSONResponse:
    # key-store messages never carry key material (see iotstore.keystore.errors)
    return error_response(409, "key-store", str(exc), path=request.url.path)


async def _invalid_data(request: Request, exc: Exception) -> JSONResponse:
    # the request carried a value the database cannot store (PostgreSQL: NUL in text)
    log.info("database refused a value: %s", exc)
    return error_response(
        400, "invalid-input", "the request holds a value that cannot be stored "
        "(text may not contain NUL characters)", path=request.url.path,
    )  # fmt: skip


async def _database_error(request: Request, exc: Exception) -> JSONResponse:
    log.error("database error: %s", exc)
    return error_response(
        503, "unavailable", "the database is unavailable; retry later", path=request.url.path
    )


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unexpected error", exc_info=exc)
    return error_response(
        500, "internal-error", "internal error; it has been logged", path=request.url.path
    )


def install_error_handlers(app: FastAPI) -> None:
    """Register every mapping on ``app``."""
    app.add_exception_handler(errors.IotstoreError, _iotstore_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(ConflictError, _conflict)
    app.add_exception_handler(AssertsError, _asserts_error)
    app.add_exception_handler(KeyStoreError, _keystore_error)
    app.add_exception_handler(InvalidDataError, _invalid_data)
    app.add_exception_handler(DatabaseError, _database_error)
    app.add_exception_handler(Exception, _unexpected)
