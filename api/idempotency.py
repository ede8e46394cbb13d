"""Idempotency-Key for POSTs: the same key and body replay the first answer; another body gets 409."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession

from api.deps import Services
from core.access import service as access
from core.access.models import ApiKey
from core.errors import Conflict, FieldError, InvalidInput

Work = Callable[[AsyncSession], Awaitable[tuple[int, dict[str, Any]]]]
HEADER = "Idempotency-Key"


def _fingerprint(request: Request, body: bytes) -> str:
    try:
        canonical = (
            json.dumps(json.loads(body), sort_keys=True, separators=(",", ":")).encode() if body else b""
        )
    except ValueError:
        canonical = body
    h = hashlib.sha256()
    for part in (request.method.encode(), request.url.path.encode(), canonical):
        h.update(part)
        h.update(b"\0")
    return h.hexdigest()


def _replayed(status: int, body: str) -> Response:
    return Response(
        body, status_code=status, media_type="application/json", headers={"Idempotent-Replayed": "true"}
    )


async def run(request: Request, services: Services, key: ApiKey, work: Work) -> Response:
    """Run ``work`` in one committed unit, at most once per (API key, Idempotency-Key)."""
    idem = request.headers.get(HEADER)
    if idem is None:
        async with services.db.session_scope() as session:
            status, payload = await work(session)
        return JSONResponse(payload, status_code=status)

    idem = idem.strip()
    if not idem or len(idem) > 255 or not idem.isprintable():
        raise InvalidInput(
            "Idempotency-Key must be 1 to 255 printable characters",
            "invalid_idempotency_key",
            [FieldError(("header", HEADER), "1 to 255 printable characters", "invalid")],
        )
    fingerprint = _fingerprint(request, await request.body())
    async with services.db.session_scope() as session:
        found = await access.find(session, key.id, idem, fingerprint)
        record = None
        if found is None:
            record = await access.claim(session, key.id, idem, request.method, request.url.path, fingerprint)
            if record is None:  # a concurrent twin committed first
                found = await access.find(session, key.id, idem, fingerprint)
        if found is not None:
            if not found.matches:
                raise Conflict(
                    "this Idempotency-Key was already used with a different request", "idempotency_key_reused"
                )
            return _replayed(found.status_code, found.body)
        assert record is not None
        status, payload = await work(session)
        body = json.dumps(payload, separators=(",", ":"))
        await access.complete(session, record, status, body)
    return Response(body, status_code=status, media_type="application/json")
