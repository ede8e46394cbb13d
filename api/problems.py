"""Every error leaves as application/problem+json (RFC 9457), translated here and only here."""

from __future__ import annotations

from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from core.errors import DomainError

log = structlog.get_logger(__name__)
PROBLEM = "application/problem+json"
TYPE_BASE = "https://duebot.dev/problems/"

_LOC_ROOTS = {"body", "query", "path", "header", "cookie"}


def problem(
    status: int,
    title: str,
    detail: str,
    code: str,
    errors: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": TYPE_BASE + code.replace("_", "-"),
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
    }
    if errors:
        body["errors"] = errors
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)


_TITLES = {
    400: "Bad request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "Payload too large",
    415: "Unsupported media type",
    422: "Unprocessable content",
    429: "Too many requests",
}


async def _domain(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DomainError)
    headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
    return problem(
        exc.status,
        _TITLES.get(exc.status, "Error"),
        exc.message,
        exc.code,
        [e.as_dict() for e in exc.errors] or None,
        headers,
    )


def _field(loc: tuple[Any, ...]) -> str:
    parts = list(loc)
    if parts and parts[0] in _LOC_ROOTS:
        parts = parts[1:]
    return ".".join(str(p) for p in parts) or "body"


async def _validation(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errs = list(exc.errors())
    if any(e.get("type") == "json_invalid" for e in errs):
        ctx = next(e for e in errs if e.get("type") == "json_invalid").get("ctx") or {}
        return problem(
            400,
            "Malformed JSON",
            f"the body is not valid JSON: {ctx.get('error', 'parse error')}",
            "malformed_json",
        )
    errors = [{"field": _field(tuple(e["loc"])), "message": e["msg"], "code": e["type"]} for e in errs]
    return problem(
        422,
        "Invalid input",
        f"{len(errors)} field(s) are invalid; nothing was changed",
        "invalid_input",
        errors,
    )


async def _http(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, f"http_{exc.status_code}")
    return problem(
        exc.status_code,
        _TITLES.get(exc.status_code, "Error"),
        str(exc.detail),
        code,
        headers=dict(exc.headers) if exc.headers else None,
    )


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error", path=request.url.path)
    return problem(
        500, "Internal error", "an unexpected error occurred; it has been logged", "internal_error"
    )


def install(app: FastAPI) -> None:
    app.add_exception_handler(DomainError, _domain)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(StarletteHTTPException, _http)
    app.add_exception_handler(Exception, _unexpected)
