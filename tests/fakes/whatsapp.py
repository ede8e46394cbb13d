"""A local WhatsApp Cloud API (Graph) server (aiohttp.web) for the real httpx client.

Point the client at it with ``WHATSAPP_API_BASE=fake.base``::

    async with whatsapp_api() as fake:
        fake.fail_next(400, code=130429)            # the next call: throughput exceeded
        fake.fail_next(500, retry_after="2")
        fake.close_window("31612345678")            # free-form messages to them get 131047
        ...
        fake.messages[0].json["text"]["body"], fake.uploads[0].content

Messages are answered ``{"messages": [{"id": "wamid.<n>"}]}``, uploads ``{"id": "media-<n>"}``. A request
without ``Authorization: Bearer <token>`` gets a 401 with Graph error 190.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiohttp.web_request import FileField

from tests.fakes import LOOPBACK, AiohttpFake

VERSION = "v21.0"
PHONE_NUMBER_ID = "1098765432"
TOKEN = "EAAG-test-token"


@dataclass
class GraphRequest:
    path: str
    headers: dict[str, str]
    json: Any = None
    form: dict[str, str] = field(default_factory=dict)
    status: int = 200


@dataclass
class Upload:
    media_id: str
    filename: str
    content: bytes
    content_type: str
    form: dict[str, str]


@dataclass
class _Failure:
    status: int
    code: int | None
    message: str
    retry_after: str | None


class FakeWhatsAppApi(AiohttpFake):
    def __init__(self, *, token: str = TOKEN) -> None:
        self.token = token
        self.requests: list[GraphRequest] = []
        self.uploads: list[Upload] = []
        self.closed_windows: set[str] = set()
        self._failures: list[_Failure] = []
        self._ids = itertools.count(1)

    @property
    def base(self) -> str:
        """A ``WHATSAPP_API_BASE`` pointing here."""
        return f"http://{LOOPBACK}:{self.port}/{VERSION}"

    @property
    def messages(self) -> list[GraphRequest]:
        """Message sends answered ok."""
        return [r for r in self.requests if r.path.endswith("/messages") and r.status == 200]

    def fail_next(
        self,
        status: int,
        count: int = 1,
        *,
        code: int | None = None,
        message: str = "",
        retry_after: str | None = None,
    ) -> None:
        self._failures += [
            _Failure(status, code, message or f"fake Graph error {code or status}", retry_after)
            for _ in range(count)
        ]

    def close_window(self, to: str) -> None:
        """More than 24 hours since this user wrote: free-form messages to them answer 131047."""
        self.closed_windows.add(to)

    def _error(
        self, request: GraphRequest, status: int, code: int | None, message: str, retry_after: str | None
    ) -> web.Response:
        request.status = status
        error: dict[str, Any] = {"message": message, "type": "OAuthException", "fbtrace_id": "fake"}
        if code is not None:
            error["code"] = code
            error["error_data"] = {"messaging_product": "whatsapp", "details": message}
        headers = {"Retry-After": retry_after} if retry_after is not None else {}
        return web.json_response({"error": error}, status=status, headers=headers)

    def _check(self, request: web.Request, recorded: GraphRequest) -> web.Response | None:
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return self._error(recorded, 401, 190, "Invalid OAuth access token", None)
        if request.match_info["phone"] != PHONE_NUMBER_ID:
            return self._error(recorded, 400, 100, "Unsupported post request", None)
        if self._failures:
            f = self._failures.pop(0)
            return self._error(recorded, f.status, f.code, f.message, f.retry_after)
        return None

    async def _messages(self, request: web.Request) -> web.Response:
        body = await request.read()
        try:
            data: Any = json.loads(body)
        except ValueError:
            data = None
        recorded = GraphRequest(request.path, dict(request.headers), json=data)
        self.requests.append(recorded)
        refused = self._check(request, recorded)
        if refused is not None:
            return refused
        if not isinstance(data, dict) or data.get("messaging_product") != "whatsapp" or not data.get("to"):
            return self._error(recorded, 400, 100, "Invalid parameter", None)
        if data.get("type") != "template" and str(data["to"]) in self.closed_windows:
            return self._error(
                recorded, 400, 131047, "Message failed to send because more than 24 hours have passed", None
            )
        to = str(data["to"])
        return web.json_response(
            {
                "messaging_product": "whatsapp",
                "contacts": [{"input": to, "wa_id": to}],
                "messages": [{"id": f"wamid.FAKE{next(self._ids)}"}],
            }
        )

    async def _media(self, request: web.Request) -> web.Response:
        recorded = GraphRequest(request.path, dict(request.headers))
        self.requests.append(recorded)
        form = await request.post()
        files = [v for v in form.values() if isinstance(v, FileField)]
        recorded.form = {k: v for k, v in form.items() if isinstance(v, str)}
        refused = self._check(request, recorded)
        if refused is not None:
            return refused
        if len(files) != 1 or recorded.form.get("messaging_product") != "whatsapp":
            return self._error(recorded, 400, 100, "file and messaging_product are required", None)
        media_id = f"media-{next(self._ids)}"
        upload = files[0]
        self.uploads.append(
            Upload(media_id, upload.filename, upload.file.read(), upload.content_type, recorded.form)
        )
        return web.json_response({"id": media_id})

    async def start(self) -> FakeWhatsAppApi:
        app = web.Application(client_max_size=100 * 1024 * 1024)
        app.router.add_post(f"/{VERSION}/{{phone}}/messages", self._messages)
        app.router.add_post(f"/{VERSION}/{{phone}}/media", self._media)
        await self._serve(app)
        return self


@asynccontextmanager
async def whatsapp_api(**options: Any) -> AsyncIterator[FakeWhatsAppApi]:
    fake = await FakeWhatsAppApi(**options).start()
    try:
        yield fake
    finally:
        await fake.stop()
