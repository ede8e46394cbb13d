"""Debtor transcripts on WhatsApp through the real stacks: signed notifications → the engine → the
fake Graph API, with staff on the fake Slack and staff answers delivered by the WhatsAppSender."""

from __future__ import annotations

import itertools
import json
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from redis.asyncio import Redis

from api.deps import Services
from api.main import create_app
from bots.conversation import EngineHandler, StaffNotices, conversation_deps
from bots.whatsapp.bot import WhatsAppBot
from bots.whatsapp.client import WhatsAppClient, WhatsAppConfig
from bots.whatsapp.inbound import signature
from bots.whatsapp.sender import WhatsAppSender, window_in
from core.config import Settings
from core.conversation.engine import ConversationDeps
from core.db import Database
from core.messaging.delivery import deliver
from core.ports import FixedClock, PaymentProvider
from tests.bots.slack.conftest import ALLOWED, STAFF_CHANNEL, signed, slack_settings
from tests.core.conversation.conftest import make_token
from tests.e2e.test_telegram_flows import json_text, northwind
from tests.fakes.slack import FakeSlack
from tests.fakes.whatsapp import PHONE_NUMBER_ID, TOKEN, FakeWhatsAppApi, whatsapp_api

APP_SECRET = "e2e-app-secret"
WA_ID = "31612345678"
_ids = itertools.count(1)


def notification(message: dict[str, Any]) -> dict[str, Any]:
    value = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550001111", "phone_number_id": PHONE_NUMBER_ID},
        "contacts": [{"profile": {"name": "Jan"}, "wa_id": WA_ID}],
        "messages": [{"from": WA_ID, "id": f"wamid.E2E{next(_ids)}", "timestamp": "1764000000", **message}],
    }
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": "WABA-1", "changes": [{"field": "messages", "value": value}]}],
    }


def body_of(sent: dict[str, Any]) -> str:
    if sent["type"] == "text":
        return str(sent["text"]["body"])
    if sent["type"] == "interactive":
        return str(sent["interactive"]["body"]["text"])
    return str(sent.get(sent["type"], {}).get("caption", ""))


@dataclass
class WhatsAppChat:
    http: httpx.AsyncClient
    bot: WhatsAppBot
    fake: FakeWhatsAppApi
    deps: ConversationDeps
    seen: int = 0

    async def _post(self, message: dict[str, Any]) -> list[dict[str, Any]]:
        body = json.dumps(notification(message)).encode()
        headers = {"content-type": "application/json", "X-Hub-Signature-256": signature(body, APP_SECRET)}
        response = await self.http.post("/webhooks/whatsapp", content=body, headers=headers)
        assert response.status_code == 200, response.text
        await self.bot.drain()
        assert isinstance(self.deps.notify_staff, StaffNotices)
        await self.deps.notify_staff.drain()
        sent = [m.json for m in self.fake.messages]
        new, self.seen = sent[self.seen :], len(sent)
        return new

    async def say(self, text: str) -> list[dict[str, Any]]:
        return await self._post({"type": "text", "text": {"body": text}})

    async def tap(self, choice: str) -> list[dict[str, Any]]:
        reply = {"type": "button_reply", "button_reply": {"id": choice, "title": choice}}
        return await self._post({"type": "interactive", "interactive": reply})


@pytest.fixture
async def wa() -> AsyncIterator[FakeWhatsAppApi]:
    async with whatsapp_api() as api:
        yield api


@pytest.fixture
def wa_settings(settings: Settings, slack: FakeSlack) -> Settings:
    return slack_settings(settings, slack).model_copy(
        update={
            "creditor_name": "Acme B.V.",
            "creditor_iban": "NL91ABNA0417164300",
            "whatsapp_app_secret": SecretStr(APP_SECRET),
        }
    )


@pytest.fixture
async def chat(
    wa: FakeWhatsAppApi,
    wa_settings: Settings,
    db: Database,
    redis: Redis,
    clock: FixedClock,
    provider: PaymentProvider,
) -> AsyncIterator[WhatsAppChat]:
    deps = conversation_deps(wa_settings, db, clock, provider)
    client = WhatsAppClient(WhatsAppConfig(wa.base, PHONE_NUMBER_ID, TOKEN))
    bot = WhatsAppBot(client, EngineHandler(deps), db, clock=clock)
    app = create_app(services=Services(wa_settings, db, redis, clock, payments=provider))
    app.state.slack_process_before_response = True
    app.state.whatsapp = bot
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://duebot.test"
    ) as http:
        yield WhatsAppChat(http, bot, wa, deps)
    await bot.aclose()


async def test_link_pay_and_a_hand_off_with_slack_on_whatsapp(
    chat: WhatsAppChat,
    db: Database,
    clock: FixedClock,
    wa_settings: Settings,
    slack: FakeSlack,
    wa: FakeWhatsAppApi,
) -> None:
    ext = await northwind(db)
    token = await make_token(db, ext, clock, wa_settings)

    [linked] = await chat.say(f"/start {token}")
    assert linked["to"] == WA_ID and "Northwind" in body_of(linked)

    sent = await chat.tap("menu:pay")
    images = [m for m in sent if m["type"] == "image"]
    assert len(images) == 2 and len(wa.uploads) == 2  # checkout QR and SEPA QR, uploaded as media
    assert any("https://www.mollie.com/checkout/select-method/" in body_of(m) for m in sent)

    await chat.say("I want to talk to a person")
    [root] = slack.calls_to("chat.postMessage")
    assert root.body["channel"] == STAFF_CHANNEL
    await chat.say("Please call me back")
    [_, in_thread] = slack.calls_to("chat.postMessage")
    assert "Please call me back" in json_text(in_thread.body)

    event = {
        "type": "message",
        "channel": STAFF_CHANNEL,
        "user": ALLOWED,
        "text": "We will call you at 3 pm.",
        "ts": "3.000",
        "thread_ts": in_thread.body["thread_ts"],
    }
    body = json.dumps(
        {"type": "event_callback", "team_id": "T0TEST", "event": event, "event_id": "EvWA1"}
    ).encode()
    answer = await chat.http.post(
        "/slack/events", content=body, headers=signed(body) | {"Content-Type": "application/json"}
    )
    assert answer.status_code == 200

    client = WhatsAppClient(WhatsAppConfig(wa.base, PHONE_NUMBER_ID, TOKEN))
    sender = WhatsAppSender(client, window_open=window_in(db, clock))
    try:
        stats = await deliver(
            db,
            {"whatsapp": sender},
            clock=clock,
            limiter=None,
            creditor_name="Acme B.V.",
            rng=random.Random(7),
        )
    finally:
        await sender.aclose()
    assert stats.sent == 1
    [staff_answer] = [m.json for m in wa.messages if "We will call you at 3 pm." in body_of(m.json)]
    assert staff_answer["to"] == WA_ID
