"""Error vocabulary of the API and the handlers that keep every failure a JSON body."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from .models import json_bytes

log = logging.getLogger("pgha.errors")


class ErrorBody(BaseModel):
    error: str
    detail: Any = None


class ApiError(Exception):
    status_code = 500
    code = "internal_error"

    def __init__(self, detail: Any = None, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.headers = dict(headers or {})

    def __init_subclass__(cls, *, status: int, code: str, **kwargs: Any) -> None:
        # Each error is its status and its JSON `error` code, declared on the class line.
        super().__init_subclass__(**kwargs)
        cls.status_code = status
        cls.code = code


class NotFound(ApiError, status=404, code="not_found"):
    """No product has that id."""


class VersionMismatch(ApiError, status=412, code="version_mismatch"):
    """If-Match names a version the row no longer has."""


class IdempotencyConflict(ApiError, status=409, code="idempotency_key_reused"):
    """An Idempotency-Key came back with a different request body."""


class PrimaryUnavailable(ApiError, status=503, code="primary_unavailable"):
    """The write path (HAProxy's write port, the primary) does not answer."""


class ReplicaUnavailable(ApiError, status=503, code="replica_unavailable"):
    """The read path does not answer, and reads may not fall back to the primary."""


class WriteUnconfirmed(ApiError, status=503, code="write_unconfirmed"):
    """The write committed, but its cache fence reached neither Redis nor the fence log."""


class PayloadTooLarge(StarletteHTTPException):
    # An HTTPException subclass so FastAPI's body reader re-raises it instead of turning it
    # into a generic 400 "error parsing the body".
    def __init__(self, limit: int) -> None:
        super().__init__(status_code=413, detail=f"request body exceeds {limit} bytes")


_STATUS_CODES: dict[int, str] = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "too_many_requests",
}


def error_response(
    status_code: int, code: str, detail: Any = None, headers: Mapping[str, str] | None = None
) -> Response:
    body: dict[str, Any] = {"error": code}
    if detail is not None:
        body["detail"] = detail
    return Response(
        json_bytes(body), status_code=status_code, media_type="application/json", headers=headers
    )


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries documenting the shared error schema."""
    return {code: {"model": ErrorBody} for code in codes}


def _clean_validation_errors(errors: Any) -> list[dict[str, Any]]:
    # Drop "input"/"ctx": they echo client payloads (possibly megabytes) and may hold
    # exception objects that are not JSON serialisable.
    return [
        {"type": err.get("type"), "loc": list(err.get("loc", ())), "msg": err.get("msg")}
        for err in errors
    ]


async def _api_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return error_response(exc.status_code, exc.code, exc.detail, exc.headers)


async def _validation_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    return error_response(422, "validation_error", _clean_validation_errors(exc.errors()))


async def _http_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 400:
        # FastAPI answers 400 for a body it cannot even decode (e.g. not UTF-8); to
        # clients that is invalid JSON like any other, so it gets the same 422.
        invalid = [{"type": "json_invalid", "loc": ["body"], "msg": "body is not valid JSON"}]
        return error_response(422, "validation_error", invalid)
    code = _STATUS_CODES.get(exc.status_code, "http_error")
    detail = None if exc.status_code == 404 else exc.detail
    return error_response(exc.status_code, code, detail, exc.headers)


async def _unhandled(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(500, "internal_error", "unexpected server error")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unhandled)
