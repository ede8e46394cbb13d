"""Reminders over WhatsApp: the real WhatsAppSender in the real outbox delivery against the fake Graph API,
the 24-hour window, and statuses coming back as delivery receipts."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import timedelta

import httpx
import pytest
from pydantic import SecretStr

import worker
from api.deps import Services
from api.main import create_app
from bots.whatsapp.bot import WhatsAppBot
from bots.whatsapp.client import WhatsAppClient, WhatsAppConfig
from bots.whatsapp.inbound import signature
from bots.whatsapp.sender import WhatsAppSender, window_in
from core.channels import service as channels
from core.config import Settings
from core.db import Database
from core.messaging.ratelimit import RateLimiter
from core.ports import DeliveryError, FixedClock, MessageSender, OutboundMessage
from tests.bots.chat import PDF, EchoHandler, point
from tests.bots.reminders import email_sender, remind_on, reminder_of, run
from tests.conftest import NOW
from tests.fakes.smtp import FakeSmtpServer
from tests.fakes.whatsapp import PHONE_NUMBER_ID, TOKEN, FakeWhatsAppApi, whatsapp_api

WA_ID = "31612345678"
APP_SECRET = "app-secret-for-tests"
TEMPLATE = "payment_reminder"


@pytest.fixture
async def fake() -> AsyncIterator[FakeWhatsAppApi]:
    async with whatsapp_api() as api:
        yield api


def make_sender(
    fake: FakeWhatsAppApi, db: Database, clock: FixedClock, template: str | None = TEMPLATE
) -> WhatsAppSender:
    client = WhatsAppClient(WhatsAppConfig(fake.base, PHONE_NUMBER_ID, TOKEN))
    return WhatsAppSender(client, window_open=window_in(db, clock), template=template, language="nl")


@pytest.fixture
async def sender(fake: FakeWhatsAppApi, db: Database, clock: FixedClock) -> AsyncIterator[WhatsAppSender]:
    built = make_sender(fake, db, clock)
    yield built
    await built.aclose()


@pytest.fixture
def senders(sender: WhatsAppSender, smtp: FakeSmtpServer) -> dict[str, MessageSender]:
    email = email_sender(smtp)
    return {"whatsapp": sender, "email": email}


async def wrote_at(db: Database, chat_id: str, hours_ago: float) -> None:
    async with db.session_scope() as s:
        await channels.record_inbound(s, "whatsapp", chat_id, NOW - timedelta(hours=hours_ago))


async def remind_on_whatsapp(db: Database, chat_id: str = WA_ID) -> str:
    return await remind_on(db, "whatsapp", chat_id)


def outbound(attachments: list[tuple[str, bytes, str]] | None = None) -> OutboundMessage:
    return OutboundMessage(
        "whatsapp", f"+{WA_ID}", None, "Invoice 42 is overdue.", attachments=attachments or []
    )


# --------------------------------------------------------------------------- the 24-hour window


async def test_inside_the_window_the_reminder_goes_as_free_text_with_its_pdf(
    sender: WhatsAppSender, fake: FakeWhatsAppApi, db: Database
) -> None:
    await wrote_at(db, WA_ID, hours_ago=23)

    result = await sender.send(outbound(attachments=[("42.pdf", PDF, "application/pdf")]))

    text, document = (m.json for m in fake.messages)
    assert result.provider_id == "wamid.FAKE1"
    assert (text["to"], text["type"], text["text"]["body"]) == (WA_ID, "text", "Invoice 42 is overdue.")
    assert document["type"] == "document" and document["document"]["id"] == fake.uploads[0].media_id


@pytest.mark.parametrize("hours_ago", [None, 24, 200])
async def test_outside_the_window_the_approved_template_is_sent_instead(
    sender: WhatsAppSender, fake: FakeWhatsAppApi, db: Database, hours_ago: float | None
) -> None:
    if hours_ago is not None:
        await wrote_at(db, WA_ID, hours_ago=hours_ago)

    result = await sender.send(outbound())

    [sent] = fake.messages
    assert result.provider_id == "wamid.FAKE1"
    assert sent.json["type"] == "template"
    assert sent.json["template"] == {
        "name": TEMPLATE,
        "language": {"code": "nl"},
        "components": [{"type": "body", "parameters": [{"type": "text", "text": "Invoice 42 is overdue."}]}],
    }


async def test_a_131047_answer_falls_back_to_the_template(
    sender: WhatsAppSender, fake: FakeWhatsAppApi, db: Database
) -> None:
    await wrote_at(db, WA_ID, hours_ago=1)  # we think the window is open; WhatsApp knows better
    fake.close_window(WA_ID)

    result = await sender.send(outbound())

    assert [r.status for r in fake.requests] == [400, 200]
    assert fake.messages[0].json["type"] == "template" and result.provider_id == "wamid.FAKE1"


async def test_outside_the_window_without_a_template_the_reminder_falls_back_to_email(
    db: Database, fake: FakeWhatsAppApi, smtp: FakeSmtpServer, clock: FixedClock, limiter: RateLimiter
) -> None:
    d = await remind_on_whatsapp(db)
    no_template = make_sender(fake, db, clock, template=None)
    email = email_sender(smtp)

    stats = await run(db, {"whatsapp": no_template, "email": email}, clock, limiter)
    await no_template.aclose()

    assert (stats.sent, stats.fell_back) == (1, 1)
    assert fake.requests == [] and len(smtp.received) == 1
    message = await reminder_of(db, d)
    assert message.channel == "email" and "24-hour window" in str(message.payload)


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("status", "code", "permanent"),
    [
        (400, 130429, False),
        (400, 131056, False),
        (429, None, False),
        (500, None, False),
        (400, 131026, True),
        (400, 100, True),
    ],
)
async def test_errors_map_to_temporary_or_permanent(
    sender: WhatsAppSender,
    fake: FakeWhatsAppApi,
    db: Database,
    status: int,
    code: int | None,
    permanent: bool,
) -> None:
    await wrote_at(db, WA_ID, hours_ago=1)
    fake.fail_next(status, code=code, retry_after="9" if code == 130429 else None)

    with pytest.raises(DeliveryError) as caught:
        await sender.send(outbound())

    assert caught.value.permanent is permanent
    if code == 130429:
        assert (caught.value.retry_after, caught.value.code) == (9.0, "130429")


async def test_a_throttled_reminder_is_requeued_after_retry_after(
    db: Database,
    senders: dict[str, MessageSender],
    fake: FakeWhatsAppApi,
    clock: FixedClock,
    limiter: RateLimiter,
) -> None:
    d = await remind_on_whatsapp(db)
    await wrote_at(db, WA_ID, hours_ago=2)
    fake.fail_next(400, code=130429, retry_after="600")

    stats = await run(db, senders, clock, limiter)

    assert stats.requeued == 1
    message = await reminder_of(db, d)
    assert message.status == "queued" and message.next_attempt_at == NOW + timedelta(seconds=600)


# --------------------------------------------------------------------------- statuses → receipts


@pytest.fixture
async def client(
    services: Services, fake: FakeWhatsAppApi, db: Database, clock: FixedClock
) -> AsyncIterator[httpx.AsyncClient]:
    settings = services.settings.model_copy(update={"whatsapp_app_secret": SecretStr(APP_SECRET)})
    app = create_app(services=replace(services, settings=settings))
    bot = WhatsAppBot(
        WhatsAppClient(WhatsAppConfig(fake.base, PHONE_NUMBER_ID, TOKEN)), EchoHandler(), db, clock=clock
    )
    app.state.whatsapp = bot
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://duebot.test") as c:
        yield c
    await bot.aclose()


async def post_statuses(client: httpx.AsyncClient, *statuses: dict[str, object]) -> httpx.Response:
    payload = {
        "object": "whatsapp_business_account",
        "entry": [
            {"id": "WABA-1", "changes": [{"field": "messages", "value": {"statuses": list(statuses)}}]}
        ],
    }
    body = json.dumps(payload).encode()
    headers = {"X-Hub-Signature-256": signature(body, APP_SECRET), "content-type": "application/json"}
    return await client.post("/webhooks/whatsapp", content=body, headers=headers)


def status(wamid: str, value: str, **extra: object) -> dict[str, object]:
    return {"id": wamid, "status": value, "timestamp": "1764000100", "recipient_id": WA_ID, **extra}


async def test_statuses_move_the_reminder_to_delivered_then_read(
    db: Database,
    senders: dict[str, MessageSender],
    client: httpx.AsyncClient,
    clock: FixedClock,
    limiter: RateLimiter,
) -> None:
    d = await remind_on_whatsapp(db)
    await wrote_at(db, WA_ID, hours_ago=1)
    await run(db, senders, clock, limiter)
    wamid = (await reminder_of(db, d)).provider_id
    assert wamid == "wamid.FAKE1"

    assert (await post_statuses(client, status(wamid, "delivered"))).status_code == 200
    assert (await reminder_of(db, d)).status == "delivered"
    await post_statuses(client, status(wamid, "read"), status(wamid, "delivered"))  # a late one is ignored
    assert (await reminder_of(db, d)).status == "read"
    assert (await post_statuses(client, status("wamid.UNKNOWN", "read"))).status_code == 200


async def test_a_failed_status_fails_the_reminder_and_marks_the_number(
    db: Database,
    senders: dict[str, MessageSender],
    client: httpx.AsyncClient,
    clock: FixedClock,
    limiter: RateLimiter,
) -> None:
    d = await remind_on_whatsapp(db)
    await wrote_at(db, WA_ID, hours_ago=1)
    await run(db, senders, clock, limiter)
    wamid = (await reminder_of(db, d)).provider_id
    assert wamid is not None

    error = {
        "code": 131050,
        "title": "User stopped marketing messages",
        "message": "User stopped marketing messages",
    }
    await post_statuses(client, status(wamid, "failed", errors=[error]))

    message = await reminder_of(db, d)
    assert message.status == "failed" and "stopped marketing" in (message.error or "")
    assert (await point(db, "whatsapp", WA_ID)).last_delivery_status == "blocked"


# --------------------------------------------------------------------------- wiring


def test_the_worker_has_a_whatsapp_sender_when_configured(db: Database) -> None:
    bare = Settings(_env_file=None)  # type: ignore[call-arg]
    assert "whatsapp" not in worker.build_senders(bare, db)
    configured = bare.model_copy(
        update={"whatsapp_token": SecretStr(TOKEN), "whatsapp_phone_number_id": PHONE_NUMBER_ID}
    )
    built = worker.build_senders(configured, db)
    assert isinstance(built["whatsapp"], WhatsAppSender)
