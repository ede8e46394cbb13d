"""The whole debtor side wired as in production (bots/conversation.py), every third party faked.

A :class:`Stack` is one debtor's Telegram chat and the staff's Slack workspace:

- Telegram updates are POSTed to ``/webhooks/telegram`` → aiogram → the conversation engine →
  the real aiogram client → the fake Bot API (tests/fakes/telegram.py);
- pay options come from the payments service with the real MollieProvider against the fake Mollie;
- staff notices go to the fake Slack Web API after the debtor's transaction commits; Slack events
  (a staff reply in a thread, a button) are signed and POSTed to ``/slack/events`` through bolt;
- staff answers on the outbox go out through the real TelegramSender in the real delivery run.
"""

from __future__ import annotations

import itertools
import json
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from pydantic import SecretStr
from redis.asyncio import Redis

from api.deps import Services
from api.main import create_app
from bots.conversation import EngineHandler, StaffNotices, conversation_deps
from bots.telegram.bot import TelegramBot, make_bot
from bots.telegram.sender import TelegramSender
from core.config import Settings
from core.conversation.engine import ConversationDeps
from core.db import Database
from core.messaging.delivery import DeliveryStats, deliver
from core.ports import FixedClock, PaymentProvider
from tests.bots.slack.conftest import signed, slack_settings
from tests.core.conversation.conftest import make_token
from tests.fakes.slack import FakeSlack, SlackCall, fake_slack
from tests.fakes.telegram import TOKEN, Call, FakeTelegramApi, telegram_api

TG_SECRET = "e2e-telegram-secret"
CHAT = 4242
_ids = itertools.count(50_000)


def message_update(text: str, chat_id: int = CHAT) -> dict[str, Any]:
    n = next(_ids)
    message: dict[str, Any] = {
        "message_id": n,
        "date": 1764000000,
        "chat": {"id": chat_id, "type": "private", "first_name": "Jan"},
        "from": {"id": chat_id, "is_bot": False, "first_name": "Jan", "language_code": "en"},
        "text": text,
    }
    if text.startswith("/"):
        message["entities"] = [{"type": "bot_command", "offset": 0, "length": len(text.split()[0])}]
    return {"update_id": n, "message": message}


def callback_update(data: str, chat_id: int = CHAT) -> dict[str, Any]:
    n = next(_ids)
    return {
        "update_id": n,
        "callback_query": {
            "id": f"cb-{n}",
            "from": {"id": chat_id, "is_bot": False, "first_name": "Jan", "language_code": "en"},
            "chat_instance": "ci-1",
            "data": data,
            "message": {"message_id": 7, "date": 1764000000, "chat": {"id": chat_id, "type": "private"}},
        },
    }


@dataclass
class Stack:
    http: httpx.AsyncClient
    telegram: TelegramBot
    tg: FakeTelegramApi
    slack: FakeSlack
    deps: ConversationDeps
    settings: Settings
    db: Database
    clock: FixedClock
    seen: int = 0
    _slack_events: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    async def _settle(self) -> None:
        await self.telegram.drain()
        assert isinstance(self.deps.notify_staff, StaffNotices)
        await self.deps.notify_staff.drain()

    def _new(self) -> list[Call]:
        calls = [c for c in self.tg.calls if c.method != "answerCallbackQuery"]
        new, self.seen = calls[self.seen :], len(calls)
        return new

    async def say(self, text: str) -> list[Call]:
        """The debtor types ``text``; the calls the bot made in answer."""
        response = await self.http.post(
            "/webhooks/telegram",
            json=message_update(text),
            headers={"X-Telegram-Bot-Api-Secret-Token": TG_SECRET},
        )
        assert response.status_code == 200, response.text
        await self._settle()
        return self._new()

    async def tap(self, data: str) -> list[Call]:
        """The debtor taps the inline button with callback data ``data``."""
        response = await self.http.post(
            "/webhooks/telegram",
            json=callback_update(data),
            headers={"X-Telegram-Bot-Api-Secret-Token": TG_SECRET},
        )
        assert response.status_code == 200, response.text
        await self._settle()
        return self._new()

    async def tap_label(self, label: str) -> list[Call]:
        """Tap the button labelled ``label`` on the bot's latest message that has it."""
        for call in reversed(self.tg.calls):
            for row in call.buttons():
                for text, data in row:
                    if text == label:
                        return await self.tap(data)
        raise AssertionError(f"no button {label!r}")

    async def link(self, external_id: str) -> list[Call]:
        token = await make_token(self.db, external_id, self.clock, self.settings)
        return await self.say(f"/start {token}")

    async def slack_event(self, event: dict[str, Any]) -> httpx.Response:
        body = json.dumps(
            {
                "type": "event_callback",
                "team_id": "T0TEST",
                "api_app_id": "A0TEST",
                "event": event,
                "event_id": f"Ev{next(self._slack_events)}",
            }
        ).encode()
        return await self.http.post(
            "/slack/events", content=body, headers=signed(body) | {"Content-Type": "application/json"}
        )

    async def slack_click(self, action_id: str, value: str, user: str, message: SlackCall) -> httpx.Response:
        payload = {
            "type": "block_actions",
            "team": {"id": "T0TEST"},
            "user": {"id": user, "name": user.lower()},
            "api_app_id": "A0TEST",
            "trigger_id": "trig-1",
            "response_url": self.slack.response_url,
            "container": {"type": "message", "channel_id": message.body["channel"], "message_ts": "1.000"},
            "channel": {"id": message.body["channel"]},
            "message": {"ts": "1.000", "blocks": message.body.get("blocks", [])},
            "actions": [{"action_id": action_id, "value": value, "type": "button", "action_ts": "1.1"}],
        }
        body = urlencode({"payload": json.dumps(payload)}).encode()
        return await self.http.post(
            "/slack/events",
            content=body,
            headers=signed(body) | {"Content-Type": "application/x-www-form-urlencoded"},
        )

    async def deliver(self) -> DeliveryStats:
        """One delivery run of the outbox with the real TelegramSender (staff answers, plan news)."""
        sender = TelegramSender(make_bot(TOKEN, self.tg.base), db=self.db, clock=self.clock)
        try:
            return await deliver(
                self.db,
                {"telegram": sender},
                clock=self.clock,
                limiter=None,
                creditor_name="Acme B.V.",
                rng=random.Random(7),
            )
        finally:
            await sender.aclose()


def texts(calls: list[Call]) -> list[str]:
    return [c.params.get("text") or c.params.get("caption") or "" for c in calls]


@pytest.fixture
async def tg() -> AsyncIterator[FakeTelegramApi]:
    async with telegram_api() as api:
        yield api


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    async with fake_slack() as server:
        yield server


@pytest.fixture
async def stack(
    settings: Settings,
    db: Database,
    redis: Redis,
    clock: FixedClock,
    tg: FakeTelegramApi,
    slack: FakeSlack,
    provider: PaymentProvider,
) -> AsyncIterator[Stack]:
    configured = slack_settings(settings, slack).model_copy(
        update={
            "creditor_name": "Acme B.V.",
            "creditor_iban": "NL91ABNA0417164300",
            "telegram_bot_username": "acme_bot",
            "telegram_webhook_secret": SecretStr(TG_SECRET),
        }
    )
    deps = conversation_deps(configured, db, clock, provider)
    bot = TelegramBot(make_bot(TOKEN, tg.base), EngineHandler(deps), db, clock=clock)
    services = Services(settings=configured, db=db, redis=redis, clock=clock, payments=provider)
    app = create_app(services=services)
    app.state.telegram = bot
    app.state.slack_process_before_response = True
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://duebot.test"
    ) as http:
        yield Stack(http, bot, tg, slack, deps, configured, db, clock)
    await bot.aclose()
