"""How the chat adapters are built and guarded: no handler, no bot; a full backlog answers 503."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import replace

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncSession

from api.deps import Services
from api.main import create_app
from bots.conversation import EngineHandler
from bots.telegram.bot import TelegramBot, make_bot
from bots.whatsapp.inbound import signature
from bots.wiring import ChatBots, build_chat_bots
from core.conversation.schemas import Inbound, Reply
from core.db import Database
from core.ports import FixedClock
from tests.bots.chat import EchoHandler
from tests.fakes.telegram import TOKEN, FakeTelegramApi, telegram_api
from tests.fakes.whatsapp import PHONE_NUMBER_ID
from tests.fakes.whatsapp import TOKEN as WA_TOKEN

SECRET = "tg-secret"
APP_SECRET = "wa-secret"


def app_client(services: Services, telegram: TelegramBot | None = None) -> httpx.AsyncClient:
    settings = services.settings.model_copy(
        update={"telegram_webhook_secret": SecretStr(SECRET), "whatsapp_app_secret": SecretStr(APP_SECRET)}
    )
    app = create_app(services=replace(services, settings=settings))
    app.state.telegram = telegram
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://duebot.test")


async def test_without_a_running_bot_the_webhooks_answer_503_after_the_checks(services: Services) -> None:
    body = json.dumps({"object": "whatsapp_business_account", "entry": [{"changes": []}]}).encode()
    async with app_client(services) as c:
        telegram = await c.post(
            "/webhooks/telegram", json={"update_id": 1}, headers={"X-Telegram-Bot-Api-Secret-Token": SECRET}
        )
        whatsapp = await c.post(
            "/webhooks/whatsapp",
            content=body,
            headers={"X-Hub-Signature-256": signature(body, APP_SECRET), "content-type": "application/json"},
        )
        refused = await c.post("/webhooks/telegram", json={"update_id": 1})
    assert (telegram.status_code, whatsapp.status_code, refused.status_code) == (503, 503, 401)


async def test_the_adapters_start_with_the_conversation_engine_when_configured(
    services: Services, db: Database, clock: FixedClock
) -> None:
    settings = services.settings.model_copy(
        update={
            "telegram_bot_token": SecretStr(TOKEN),
            "whatsapp_token": SecretStr(WA_TOKEN),
            "whatsapp_phone_number_id": PHONE_NUMBER_ID,
        }
    )
    assert build_chat_bots(services.settings, db, clock) == ChatBots()  # no tokens: nothing started
    engine_bots = build_chat_bots(settings, db, clock)  # the engine is bound: both start
    try:
        assert engine_bots.telegram is not None and engine_bots.whatsapp is not None
        assert isinstance(engine_bots.telegram.handler, EngineHandler)
    finally:
        await engine_bots.aclose()

    bots = build_chat_bots(settings, db, clock, handler=EchoHandler())
    try:
        assert bots.telegram is not None and bots.whatsapp is not None
    finally:
        await bots.aclose()
    assert build_chat_bots(services.settings, db, clock, handler=EchoHandler()).telegram is None


@pytest.fixture
async def fake() -> AsyncIterator[FakeTelegramApi]:
    async with telegram_api() as api:
        yield api


async def test_a_full_backlog_answers_503_so_that_telegram_retries_later(
    services: Services, db: Database, clock: FixedClock, fake: FakeTelegramApi
) -> None:
    release = asyncio.Event()
    started = asyncio.Event()

    async def slow(session: AsyncSession, inbound: Inbound) -> list[Reply]:
        started.set()
        await release.wait()
        return [Reply("echo", f"You said: {inbound.text}")]

    bot = TelegramBot(make_bot(TOKEN, fake.base), slow, db, clock=clock, concurrency=1, backlog=1)
    update = {
        "update_id": 1,
        "message": {"message_id": 1, "date": 1, "chat": {"id": 5, "type": "private"}, "text": "hi"},
    }
    async with app_client(services, bot) as c:
        headers = {"X-Telegram-Bot-Api-Secret-Token": SECRET}
        first = await c.post("/webhooks/telegram", json=update, headers=headers)
        await started.wait()
        second = await c.post("/webhooks/telegram", json=update | {"update_id": 2}, headers=headers)
        release.set()
        await bot.drain()
    await bot.aclose()

    assert first.status_code == 200
    assert second.status_code == 503 and second.headers["Retry-After"] == "5"
    assert [c.params["text"] for c in fake.delivered] == ["You said: hi"]
