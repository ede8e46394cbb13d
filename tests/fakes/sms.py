"""A local JSON SMS gateway (aiohttp.web) that records requests and fails on request.

It speaks the contract documented in ``bots/sms/sender.py``::

    async with sms_gateway() as fake:
        fake.fail_next(429, retry_after="7")      # the next request gets a 429 with Retry-After: 7
        fake.fail_next(400, error="invalid number")
        ...POST to fake.url with a real client...
        fake.requests[0].json, fake.requests[0].headers["Authorization"]

Accepted messages are answered ``200 {"id": "sms-<n>", "status": "queued"}``; ``id_field`` renames
the id key (``message_id``) or drops it (None).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.fakes import LOOPBACK, AiohttpFake

PATH = "/v1/messages"


@dataclass
class SmsRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    json: Any
    peer: tuple[str, int] | None = None


@dataclass
class _Failure:
    status: int
    body: dict[str, Any] | str
    headers: dict[str, str] = field(default_factory=dict)


class FakeSmsGateway(AiohttpFake):
    def __init__(self, *, id_field: str | None = "id", any_json: bool = False) -> None:
        self.id_field = id_field
        self.any_json = any_json  # accept any JSON object: a generic receiver (webhooks)
        self.requests: list[SmsRequest] = []
        self._failures: list[_Failure] = []
        self._outcomes: list[bool] = []

    @property
    def url(self) -> str:
        """An ``SMS_API_URL`` pointing at this gateway."""
        return f"http://{LOOPBACK}:{self.port}{PATH}"

    @property
    def accepted(self) -> list[SmsRequest]:
        """Requests that were answered 2xx."""
        return [r for r, ok in zip(self.requests, self._outcomes, strict=True) if ok]

    # -- behaviour -------------------------------------------------------------------------
    def fail_next(
        self,
        status: int,
        count: int = 1,
        *,
        retry_after: str | None = None,
        error: str | None = None,
        raw_body: str | None = None,
    ) -> None:
        """Answer the next ``count`` requests with ``status`` (e.g. 429, 500, 400).

        The body is ``{"error": error}`` (a default text when omitted), or ``raw_body`` verbatim.
        """
        headers = {"Retry-After": retry_after} if retry_after is not None else {}
        body: dict[str, Any] | str = (
            raw_body if raw_body is not None else {"error": error or f"fake gateway says {status}"}
        )
        self._failures.extend(_Failure(status, body, headers) for _ in range(count))

    # -- server ----------------------------------------------------------------------------
    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        try:
            parsed: Any = json.loads(body) if body else None
        except ValueError:
            parsed = None
        peer = request.transport.get_extra_info("peername") if request.transport else None
        self.requests.append(
            SmsRequest(
                request.method,
                request.path,
                dict(request.headers.items()),
                body,
                parsed,
                peer=(peer[0], peer[1]) if peer else None,
            )
        )
        if self._failures:
            failure = self._failures.pop(0)
            self._outcomes.append(False)
            if isinstance(failure.body, str):
                return web.Response(status=failure.status, text=failure.body, headers=failure.headers)
            return web.json_response(failure.body, status=failure.status, headers=failure.headers)
        if not isinstance(parsed, dict) or (
            not self.any_json and (not parsed.get("to") or not isinstance(parsed.get("text"), str))
        ):
            self._outcomes.append(False)
            return web.json_response({"error": "to and text are required"}, status=422)
        self._outcomes.append(True)
        answer: dict[str, Any] = {"status": "queued"}
        if self.id_field:
            answer[self.id_field] = f"sms-{len(self.requests)}"
        return web.json_response(answer)

    async def start(self) -> FakeSmsGateway:
        app = web.Application()
        app.router.add_post(PATH, self._handle)
        await self._serve(app)
        return self


@asynccontextmanager
async def sms_gateway(
    *, id_field: str | None = "id", any_json: bool = False
) -> AsyncIterator[FakeSmsGateway]:
    gateway = await FakeSmsGateway(id_field=id_field, any_json=any_json).start()
    try:
        yield gateway
    finally:
        await gateway.stop()
