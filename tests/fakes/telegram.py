"""A local Bot API server (aiohttp.web) for the real aiogram client; records calls, fails on request.

Point a Bot at it with ``TELEGRAM_API_BASE=fake.base`` (``make_bot(token, fake.base)``). Calls arrive as
``POST /bot<token>/<method>``, form-encoded or multipart when a file is attached::

    async with telegram_api() as fake:
        fake.fail_next(429, retry_after=3)        # the next send gets a 429 with retry_after 3
        fake.fail_next(500, count=2, method="sendMessage")
        fake.block(42)                            # chat 42 blocked the bot: every send there is a 403
        ...
        fake.calls_to("sendMessage")[0].params["text"], .markup(), .files["document"]

With ``enforce_limits=True`` the server behaves like Telegram's flood control: more than ``overall``
sends in any window of one second, or two sends to one chat within a second, are answered 429 with
``retry_after``. ``slack`` shortens the window a little (timing jitter between a client's rate limiter
and this server; Telegram tolerates short bursts too). ``too_many`` counts the 429s it gave.

``push_update()`` queues an update for ``getUpdates`` (long polling).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiohttp.web_request import FileField

from tests.fakes import LOOPBACK, AiohttpFake

BOT_ID = 123456
TOKEN = f"{BOT_ID}:TEST-token"
USERNAME = "duebot_test_bot"
SENDS = frozenset({"sendMessage", "sendDocument", "sendPhoto"})
DESCRIPTIONS = {
    400: "Bad Request: chat not found",
    401: "Unauthorized",
    403: "Forbidden: bot was blocked by the user",
    404: "Not Found",
    500: "Internal Server Error",
    502: "Bad Gateway",
}


@dataclass
class Upload:
    filename: str
    content: bytes
    content_type: str


@dataclass
class Call:
    method: str
    token: str
    params: dict[str, str]
    files: dict[str, Upload] = field(default_factory=dict)
    at: float = 0.0  # time.monotonic() on arrival
    status: int = 200

    @property
    def chat_id(self) -> str | None:
        return self.params.get("chat_id")

    def markup(self) -> Any:
        raw = self.params.get("reply_markup")
        return json.loads(raw) if raw else None

    def buttons(self) -> list[list[tuple[str, str]]]:
        """The inline keyboard as rows of (text, callback data or url)."""
        markup = self.markup() or {}
        return [
            [(b["text"], b.get("callback_data") or b.get("url")) for b in row]
            for row in markup.get("inline_keyboard", [])
        ]


@dataclass
class _Failure:
    status: int
    retry_after: int | None
    description: str | None
    method: str | None
    chat_id: str | None


class FakeTelegramApi(AiohttpFake):
    def __init__(
        self,
        *,
        enforce_limits: bool = False,
        overall: int = 30,
        per_chat: int = 1,
        slack: float = 0.05,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.clock = clock  # seconds; tests may freeze it
        self.calls: list[Call] = []
        self.enforce_limits = enforce_limits
        self.overall, self.per_chat, self.window = overall, per_chat, 1.0 - slack
        self.too_many = 0
        self.too_many_overall = self.too_many_per_chat = 0  # which limit said 429
        self.blocked: set[str] = set()
        self.webhook: dict[str, str] | None = None
        self._failures: list[_Failure] = []
        self._recent: deque[float] = deque()
        self._recent_per_chat: dict[str, deque[float]] = {}
        self._message_ids = itertools.count(1)
        self._updates: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.sent = asyncio.Condition()

    @property
    def base(self) -> str:
        """A ``TELEGRAM_API_BASE`` pointing here."""
        return f"http://{LOOPBACK}:{self.port}"

    # -- behaviour -------------------------------------------------------------------------
    def fail_next(
        self,
        status: int,
        count: int = 1,
        *,
        retry_after: int | None = None,
        description: str | None = None,
        method: str | None = None,
        chat_id: object | None = None,
    ) -> None:
        """Answer the next ``count`` matching calls (sends only unless ``method`` says) with an error."""
        chat = str(chat_id) if chat_id is not None else None
        self._failures += [_Failure(status, retry_after, description, method, chat) for _ in range(count)]

    def block(self, chat_id: object) -> None:
        """The user of this chat blocked the bot: every send to it answers 403 from now on."""
        self.blocked.add(str(chat_id))

    def push_update(self, update: dict[str, Any]) -> None:
        self._updates.put_nowait(update)

    # -- what happened -----------------------------------------------------------------------
    def calls_to(self, method: str) -> list[Call]:
        return [c for c in self.calls if c.method == method]

    @property
    def delivered(self) -> list[Call]:
        """Sends that were answered ok."""
        return [c for c in self.calls if c.method in SENDS and c.status == 200]

    async def wait_for(self, count: int, within: float = 10.0) -> list[Call]:
        """Wait until at least ``count`` sends were answered ok (polling tests)."""
        async with asyncio.timeout(within), self.sent:
            await self.sent.wait_for(lambda: len(self.delivered) >= count)
        return self.delivered

    # -- server ----------------------------------------------------------------------------
    def _error(
        self, call: Call, status: int, description: str | None, retry_after: int | None
    ) -> web.Response:
        call.status = status
        body: dict[str, Any] = {
            "ok": False,
            "error_code": status,
            "description": description or DESCRIPTIONS.get(status, f"Error {status}"),
        }
        if status == 429:
            wait = retry_after if retry_after is not None else 1
            body["description"] = description or f"Too Many Requests: retry after {wait}"
            body["parameters"] = {"retry_after": wait}
        return web.json_response(body, status=status)

    def _take_failure(self, call: Call) -> _Failure | None:
        for n, f in enumerate(self._failures):
            method_ok = call.method == f.method if f.method else call.method in SENDS
            if method_ok and (f.chat_id is None or f.chat_id == call.chat_id):
                return self._failures.pop(n)
        return None

    def _over_limit(self, call: Call) -> bool:
        now = call.at
        while self._recent and now - self._recent[0] >= self.window:
            self._recent.popleft()
        chat = self._recent_per_chat.setdefault(call.chat_id or "", deque())
        while chat and now - chat[0] >= self.window:
            chat.popleft()
        if len(self._recent) >= self.overall:
            self.too_many_overall += 1
            return True
        if len(chat) >= self.per_chat:
            self.too_many_per_chat += 1
            return True
        self._recent.append(now)
        chat.append(now)
        return False

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        token, method = request.match_info["token"], request.match_info["method"]
        params: dict[str, str] = {}
        files: dict[str, Upload] = {}
        form = await request.post()
        for key, value in form.items():
            if isinstance(value, str):
                params[key] = value
            elif isinstance(value, FileField):
                files[key] = Upload(value.filename, value.file.read(), value.content_type)
        for key, value in list(params.items()):  # aiogram sends files as "attach://<field>"
            if value.startswith("attach://") and value[9:] in files:
                files[key] = files.pop(value[9:])
        call = Call(method, token, params, files, at=self.clock())
        self.calls.append(call)
        try:
            return await self._answer(call, request)
        finally:
            if method in SENDS:
                async with self.sent:
                    self.sent.notify_all()

    async def _answer(self, call: Call, request: web.Request) -> web.StreamResponse:
        if not call.token.startswith(f"{BOT_ID}:"):
            return self._error(call, 401, None, None)
        failure = self._take_failure(call)
        if failure is not None:
            return self._error(call, failure.status, failure.description, failure.retry_after)
        if call.method in SENDS:
            if call.chat_id in self.blocked:
                return self._error(call, 403, None, None)
            if self.enforce_limits and self._over_limit(call):
                self.too_many += 1
                return self._error(call, 429, None, 1)
            return web.json_response({"ok": True, "result": self._message(call)})
        result = await self._other(call, request)
        return web.json_response({"ok": True, "result": result})

    def _message(self, call: Call) -> dict[str, Any]:
        chat_id = call.chat_id or "0"
        message: dict[str, Any] = {
            "message_id": next(self._message_ids),
            "date": int(time.time()),
            "chat": {"id": int(chat_id) if chat_id.lstrip("-").isdigit() else 0, "type": "private"},
            "from": {"id": BOT_ID, "is_bot": True, "first_name": "duebot", "username": USERNAME},
        }
        if "text" in call.params:
            message["text"] = call.params["text"]
        if "caption" in call.params:
            message["caption"] = call.params["caption"]
        n = len(self.calls)
        if call.method == "sendDocument":
            upload = call.files.get("document")
            message["document"] = {
                "file_id": f"doc-{n}",
                "file_unique_id": f"udoc-{n}",
                "file_name": upload.filename if upload else "file",
            }
        if call.method == "sendPhoto":
            message["photo"] = [
                {"file_id": f"photo-{n}", "file_unique_id": f"uphoto-{n}", "width": 1, "height": 1}
            ]
        return message

    async def _other(self, call: Call, request: web.Request) -> Any:
        if call.method == "getMe":
            return {"id": BOT_ID, "is_bot": True, "first_name": "duebot", "username": USERNAME}
        if call.method == "setWebhook":
            self.webhook = dict(call.params)
            return True
        if call.method == "deleteWebhook":
            self.webhook = None
            return True
        if call.method == "getUpdates":
            timeout = min(float(call.params.get("timeout") or 0), 1.0)
            updates: list[dict[str, Any]] = []
            try:
                updates.append(await asyncio.wait_for(self._updates.get(), timeout or 0.01))
            except TimeoutError:
                return []
            while not self._updates.empty():
                updates.append(self._updates.get_nowait())
            return updates
        return True  # answerCallbackQuery and anything else harmless

    async def start(self) -> FakeTelegramApi:
        app = web.Application(client_max_size=60 * 1024 * 1024)
        app.router.add_post("/bot{token}/{method}", self._handle)
        await self._serve(app)
        return self


@asynccontextmanager
async def telegram_api(**options: Any) -> AsyncIterator[FakeTelegramApi]:
    fake = await FakeTelegramApi(**options).start()
    try:
        yield fake
    finally:
        await fake.stop()
