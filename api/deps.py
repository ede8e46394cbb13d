"""Dependencies: the services built at start-up, the API-key principal and its scopes."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request
from redis.asyncio import Redis

from core.access import service as access
from core.access.models import ApiKey
from core.audit import Actor
from core.config import Settings
from core.db import Database
from core.errors import DomainError, FieldError, Forbidden, InvalidInput, Unauthorized
from core.ports import Clock, PaymentProvider


@dataclass
class Services:
    settings: Settings
    db: Database
    redis: Redis
    clock: Clock
    payments: PaymentProvider | None = None  # Mollie when MOLLIE_API_KEY is set


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


async def _services_dependency(request: Request) -> Services:
    # async: FastAPI runs a plain ``def`` dependency in a worker thread, a thread hop per request.
    return get_services(request)


ServicesDep = Annotated[Services, Depends(_services_dependency)]


def require(scope: str) -> Callable[..., Awaitable[ApiKey]]:
    async def principal(request: Request, services: ServicesDep) -> ApiKey:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("send an API key as 'Authorization: Bearer <key>'", "missing_api_key")
        async with services.db.sessionmaker() as session:
            key = await access.authenticate(session, token.strip())
        if key is None:
            raise Unauthorized("the API key is unknown or revoked", "invalid_api_key")
        if not access.allows(key, scope):
            raise Forbidden(f"this API key lacks the scope {scope!r}", "missing_scope")
        request.state.api_key = key
        return key

    return principal


def actor_of(key: ApiKey) -> Actor:
    return Actor("api_key", key.prefix, key.name)


class UnsupportedMediaType(DomainError):
    status = 415


async def require_json(request: Request) -> None:
    """A body that is not JSON gets 415 before it is looked at."""
    if request.method not in ("POST", "PUT", "PATCH"):
        return
    has_body = (
        request.headers.get("content-length", "0") not in ("", "0") or "transfer-encoding" in request.headers
    )
    if not has_body:
        return
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "application/json" and not ctype.endswith("+json"):
        raise UnsupportedMediaType(
            f"send the body as application/json, not {ctype or 'an unnamed type'}", "unsupported_media_type"
        )


def _nul_at(value: Any, loc: tuple[str | int, ...] = ()) -> tuple[str | int, ...] | None:
    """The location of the first string holding a NUL character, if any."""
    if isinstance(value, str):
        return loc if "\x00" in value else None
    if isinstance(value, dict):
        for k, v in value.items():
            if (found := _nul_at(k, (*loc, k)) or _nul_at(v, (*loc, k))) is not None:
                return found
    if isinstance(value, list):
        for i, v in enumerate(value):
            if (found := _nul_at(v, (*loc, i))) is not None:
                return found
    return None


def _nul_error(loc: tuple[str | int, ...]) -> InvalidInput:
    return InvalidInput(
        "text must not contain NUL characters; nothing was changed",
        "invalid_input",
        [FieldError(loc or ("body",), "must not contain NUL (\\u0000) characters", "nul_character")],
    )


async def refuse_nul(request: Request) -> None:
    """PostgreSQL cannot store NUL in text: refuse it in the query or a JSON body as bad input."""
    for name, value in request.query_params.multi_items():
        if "\x00" in value:
            raise _nul_error((name,))
    if request.method not in ("POST", "PUT", "PATCH"):
        return
    body = await request.body()
    if b"\\u0000" not in body:  # JSON can carry NUL only as this escape
        return
    try:
        data = json.loads(body)
    except ValueError:
        return  # the malformed body gets its own answer
    if (loc := _nul_at(data)) is not None:
        raise _nul_error(loc)
