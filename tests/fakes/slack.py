"""A local fake Slack Web API (aiohttp.web) that the real slack_sdk AsyncWebClient talks to.

Web API calls arrive as ``POST /api/<method>`` (JSON or form body, Bearer token); ``respond()``
posts JSON to a payload's ``response_url``, which points at ``fake.response_url``::

    async with fake_slack() as fake:
        client = AsyncWebClient(token="xoxb-test", base_url=fake.api_base)
        fake.fail_next("chat.postMessage", 429, retry_after="1")
        ...
        await fake.wait_for("chat.postMessage", 2)     # no sleeps: wait for the calls to land
        fake.calls_to("chat.postMessage")[0].body["channel"]
        fake.responses[0]["text"]                      # what respond() sent

Answers: ``auth.test`` (ok, user_id, bot_id, team_id), ``chat.postMessage`` (a new ``ts`` per
message), ``chat.update``, ``chat.postEphemeral``, ``views.open`` and ``users.info``; any other
method answers ``{"ok": true}``.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web

from tests.fakes import LOOPBACK, AiohttpFake

BOT_USER = "UBOT"
TEAM = "T0TEST"


@dataclass
class SlackCall:
    method: str
    headers: dict[str, str]
    body: dict[str, Any]
    status: int = 200


@dataclass
class _Failure:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    error: str = "ratelimited"


class FakeSlack(AiohttpFake):
    def __init__(self) -> None:
        self.calls: list[SlackCall] = []
        self.responses: list[dict[str, Any]] = []  # JSON bodies posted to the response_url
        self._failures: dict[str, list[_Failure]] = {}
        self._ts = itertools.count(1)
        self._changed = asyncio.Condition()

    @property
    def api_base(self) -> str:
        return f"http://{LOOPBACK}:{self.port}/api/"

    @property
    def response_url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}/respond/hook"

    def calls_to(self, method: str, *, ok: bool = True) -> list[SlackCall]:
        """Calls of ``method``; only those answered 200 unless ``ok=False``."""
        return [c for c in self.calls if c.method == method and (c.status == 200 or not ok)]

    def fail_next(self, method: str, status: int, count: int = 1, *, retry_after: str | None = None) -> None:
        headers = {"Retry-After": retry_after} if retry_after is not None else {}
        self._failures.setdefault(method, []).extend(_Failure(status, headers) for _ in range(count))

    async def wait_for(self, method: str, count: int = 1, *, within: float = 10.0) -> list[SlackCall]:
        """Wait until ``count`` successful calls of ``method`` (``respond`` for the response_url)."""

        def done() -> bool:
            have = len(self.responses) if method == "respond" else len(self.calls_to(method))
            return have >= count

        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(done), within)
        return self.calls_to(method)

    async def _record(self, call: SlackCall | None = None, response: dict[str, Any] | None = None) -> None:
        async with self._changed:
            if call is not None:
                self.calls.append(call)
            if response is not None:
                self.responses.append(response)
            self._changed.notify_all()

    # -- server ----------------------------------------------------------------------------
    async def _api(self, request: web.Request) -> web.StreamResponse:
        method = request.match_info["method"]
        raw = await request.read()
        body: dict[str, Any]
        if request.content_type == "application/json":
            body = json.loads(raw or b"{}")
        else:
            body = dict(parse_qsl(raw.decode())) | dict(request.query)  # GET methods send query parameters
            for key in ("blocks", "view", "attachments"):
                if isinstance(body.get(key), str):
                    body[key] = json.loads(body[key])
        call = SlackCall(method, dict(request.headers.items()), body)
        failures = self._failures.get(method)
        if failures:
            failure = failures.pop(0)
            call.status = failure.status
            await self._record(call)
            return web.json_response(
                {"ok": False, "error": failure.error}, status=failure.status, headers=failure.headers
            )
        if request.headers.get("Authorization", "") != "Bearer xoxb-test":
            call.status = 401
            await self._record(call)
            return web.json_response({"ok": False, "error": "invalid_auth"})
        answer = self._answer(method, body)
        await self._record(call)
        return web.json_response(answer)

    def _answer(self, method: str, body: dict[str, Any]) -> dict[str, Any]:
        if method == "auth.test":
            return {"ok": True, "user_id": BOT_USER, "bot_id": "B0TEST", "team_id": TEAM, "user": "duebot"}
        if method == "chat.postMessage":
            ts = f"1764000000.{next(self._ts):06d}"
            return {"ok": True, "channel": body.get("channel"), "ts": ts, "message": {"ts": ts, **body}}
        if method == "chat.update":
            return {"ok": True, "channel": body.get("channel"), "ts": body.get("ts")}
        if method == "chat.postEphemeral":
            return {"ok": True, "message_ts": f"1764000000.{next(self._ts):06d}"}
        if method == "views.open":
            return {"ok": True, "view": {"id": "V0TEST", **(body.get("view") or {})}}
        if method == "users.info":
            return {"ok": True, "user": {"id": body.get("user"), "name": "someone", "real_name": "Some One"}}
        return {"ok": True}

    async def _respond(self, request: web.Request) -> web.StreamResponse:
        await self._record(response=json.loads(await request.read() or b"{}"))
        return web.Response(text="ok")

    async def start(self) -> FakeSlack:
        app = web.Application()
        app.router.add_post("/api/{method}", self._api)
        app.router.add_get("/api/{method}", self._api)  # users.info and other reads
        app.router.add_post("/respond/{name}", self._respond)
        await self._serve(app)
        return self


@asynccontextmanager
async def fake_slack() -> AsyncIterator[FakeSlack]:
    server = await FakeSlack().start()
    try:
        yield server
    finally:
        await server.stop()
