"""WhatsApp: signed notifications POSTed to /webhooks/whatsapp → handler → calls recorded by a fake Graph API."""

from __future__ import annotations

import itertools
import json
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from api.deps import Services
from api.main import create_app
from bots.whatsapp.bot import WhatsAppBot
from bots.whatsapp.client import WhatsAppClient, WhatsAppConfig
from bots.whatsapp.inbound import signature
from bots.whatsapp.render import Media, buttons_payload, list_payload, render, template_payload
from core.channels import service as channels
from core.conversation.schemas import Attachment, Option, Reply
from core.db import Database
from core.ports import FixedClock
from tests import factories
from tests.bots.chat import PDF, PNG, EchoHandler, Waits, add_contact_point, point, windows
from tests.conftest import NOW
from tests.fakes.whatsapp import PHONE_NUMBER_ID, TOKEN, FakeWhatsAppApi, whatsapp_api

APP_SECRET = "app-secret-for-tests"
VERIFY = "verify-me-123"
WA_ID = "31612345678"
_ids = itertools.count(1)


def notification(
    messages: list[dict[str, Any]] | None = None,
    statuses: list[dict[str, Any]] | None = None,
    contact: dict[str, Any] | None = None,
) -> dict[str, Any]:
    value: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550001111", "phone_number_id": PHONE_NUMBER_ID},
    }
    if messages is not None:
        value["contacts"] = [contact if contact is not None else {"profile": {"name": "Jan"}, "wa_id": WA_ID}]
        value["messages"] = messages
    if statuses is not None:
        value["statuses"] = statuses
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": "WABA-1", "changes": [{"field": "messages", "value": value}]}],
    }


def wa_message(kind: str = "text", **content: Any) -> dict[str, Any]:
    return {"from": WA_ID, "id": f"wamid.IN{next(_ids)}", "timestamp": "1764000000", "type": kind, **content}


def text(body: str) -> dict[str, Any]:
    return wa_message("text", text={"body": body})


@pytest.fixture
async def fake() -> AsyncIterator[FakeWhatsAppApi]:
    async with whatsapp_api() as api:
        yield api


@pytest.fixture
async def whatsapp(
    fake: FakeWhatsAppApi, handler: EchoHandler, db: Database, clock: FixedClock, waits: Waits
) -> AsyncIterator[WhatsAppBot]:
    client = WhatsAppClient(WhatsAppConfig(fake.base, PHONE_NUMBER_ID, TOKEN))
    bot = WhatsAppBot(client, handler, db, clock=clock, sleep=waits.sleep)
    yield bot
    await bot.aclose()


@pytest.fixture
async def client(services: Services, whatsapp: WhatsAppBot) -> AsyncIterator[httpx.AsyncClient]:
    settings = services.settings.model_copy(
        update={"whatsapp_app_secret": SecretStr(APP_SECRET), "whatsapp_verify_token": SecretStr(VERIFY)}
    )
    app = create_app(services=replace(services, settings=settings))
    app.state.whatsapp = whatsapp
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://duebot.test") as c:
        yield c


async def post(
    client: httpx.AsyncClient, whatsapp: WhatsAppBot, payload: Any, *, sign_with: str | None = APP_SECRET
) -> httpx.Response:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    headers = {"content-type": "application/json"}
    if sign_with is not None:
        headers["X-Hub-Signature-256"] = signature(body, sign_with)
    response = await client.post("/webhooks/whatsapp", content=body, headers=headers)
    await whatsapp.drain()
    return response


# --------------------------------------------------------------------------- verification and signatures


async def test_the_verification_challenge_is_echoed_for_the_right_token(client: httpx.AsyncClient) -> None:
    params = {"hub.mode": "subscribe", "hub.verify_token": VERIFY, "hub.challenge": "1158201444"}
    ok = await client.get("/webhooks/whatsapp", params=params)
    assert (ok.status_code, ok.text) == (200, "1158201444")

    wrong = await client.get("/webhooks/whatsapp", params=params | {"hub.verify_token": "nope"})
    assert wrong.status_code == 403 and "1158201444" not in wrong.text
    assert (await client.get("/webhooks/whatsapp", params=params | {"hub.mode": "x"})).status_code == 403


@pytest.mark.parametrize(("sign_with", "status"), [(None, 401), ("another-secret", 403)])
async def test_an_unsigned_or_badly_signed_notification_is_refused_and_nothing_happens(
    client: httpx.AsyncClient,
    whatsapp: WhatsAppBot,
    fake: FakeWhatsAppApi,
    handler: EchoHandler,
    db: Database,
    sign_with: str | None,
    status: int,
) -> None:
    response = await post(client, whatsapp, notification([text("hello")]), sign_with=sign_with)

    assert response.status_code == status
    assert handler.seen == [] and fake.requests == [] and await windows(db) == []


async def test_a_signature_over_a_different_body_is_refused(
    client: httpx.AsyncClient, whatsapp: WhatsAppBot, handler: EchoHandler
) -> None:
    body = json.dumps(notification([text("hello")])).encode()
    headers = {"X-Hub-Signature-256": signature(body + b" ", APP_SECRET), "content-type": "application/json"}
    response = await client.post("/webhooks/whatsapp", content=body, headers=headers)
    assert response.status_code == 403 and handler.seen == []


@pytest.mark.parametrize(
    "payload",
    [b"not json", b"[]", b'{"object": "x"}', b'{"entry": [{"changes": [{"value": {"messages": [{}]}}]}]}'],
)
async def test_a_malformed_signed_payload_gets_a_422_and_changes_nothing(
    client: httpx.AsyncClient,
    whatsapp: WhatsAppBot,
    fake: FakeWhatsAppApi,
    handler: EchoHandler,
    payload: bytes,
) -> None:
    response = await post(client, whatsapp, payload)
    assert response.status_code == 422
    assert handler.seen == [] and fake.requests == []


# --------------------------------------------------------------------------- inbound → Inbound → replies


async def test_a_text_reaches_the_handler_and_the_reply_has_reply_buttons(
    client: httpx.AsyncClient,
    whatsapp: WhatsAppBot,
    fake: FakeWhatsAppApi,
    handler: EchoHandler,
    db: Database,
) -> None:
    message = text("hello there")
    response = await post(client, whatsapp, notification([message]))

    assert response.status_code == 200
    [inbound] = handler.seen
    assert (inbound.channel, inbound.chat_id, inbound.text) == ("whatsapp", WA_ID, "hello there")
    assert (inbound.message_id, inbound.display_name) == (message["id"], "Jan")
    [sent] = fake.messages
    assert sent.headers["Authorization"] == f"Bearer {TOKEN}"
    assert sent.json == buttons_payload(
        WA_ID, "You said: hello there", (Option("yes", "Yes"), Option("no", "No"))
    )
    [window] = await windows(db)
    assert (window.channel, window.chat_id) == ("whatsapp", WA_ID)


@pytest.mark.parametrize(
    ("message", "choice", "typed"),
    [
        (
            wa_message(
                "interactive",
                interactive={"type": "button_reply", "button_reply": {"id": "yes", "title": "Yes"}},
            ),
            "yes",
            None,
        ),
        (
            wa_message(
                "interactive", interactive={"type": "list_reply", "list_reply": {"id": "inv-2", "title": "2"}}
            ),
            "inv-2",
            None,
        ),
        (wa_message("button", button={"payload": "pay", "text": "Pay now"}), "pay", None),
        (wa_message("button", button={"text": "Stop"}), None, "Stop"),
        (wa_message("sticker", sticker={"id": "st-1"}), None, ""),
    ],
)
async def test_buttons_list_rows_and_template_replies_arrive_as_choices(
    client: httpx.AsyncClient,
    whatsapp: WhatsAppBot,
    handler: EchoHandler,
    message: dict[str, Any],
    choice: str | None,
    typed: str | None,
) -> None:
    assert (await post(client, whatsapp, notification([message]))).status_code == 200
    [inbound] = handler.seen
    assert (inbound.choice, inbound.text) == (choice, typed)


async def test_a_user_without_a_phone_number_is_addressed_by_their_user_id(
    client: httpx.AsyncClient, whatsapp: WhatsAppBot, fake: FakeWhatsAppApi, handler: EchoHandler
) -> None:
    message = text("hi")
    del message["from"]
    contact = {"profile": {"name": "jan_dv"}, "user_id": "US.1234567890"}
    await post(client, whatsapp, notification([message], contact=contact))

    assert handler.seen[0].chat_id == "US.1234567890"
    assert fake.messages[0].json["to"] == "US.1234567890"


async def test_invoice_pdfs_and_qr_images_are_uploaded_then_sent_by_media_id(
    client: httpx.AsyncClient, whatsapp: WhatsAppBot, fake: FakeWhatsAppApi
) -> None:
    await post(client, whatsapp, notification([text("/invoices")]))

    pdf, png = fake.uploads
    assert (pdf.filename, pdf.content, pdf.content_type) == ("2026-00042.pdf", PDF, "application/pdf")
    assert pdf.form == {"messaging_product": "whatsapp", "type": "application/pdf"}
    assert png.content == PNG
    body, document, image = (m.json for m in fake.messages)
    assert body["text"]["body"] == "Here is invoice 2026-00042."
    assert document["document"] == {
        "id": pdf.media_id,
        "filename": "2026-00042.pdf",
        "caption": "Invoice 2026-00042",
    }
    assert image["image"] == {"id": png.media_id, "caption": "Scan to pay"}


async def test_a_throttled_reply_is_retried_after_retry_after(
    client: httpx.AsyncClient, whatsapp: WhatsAppBot, fake: FakeWhatsAppApi, waits: Waits
) -> None:
    fake.fail_next(400, code=130429, retry_after="3")
    fake.fail_next(503)

    await post(client, whatsapp, notification([text("hello")]))

    assert [r.status for r in fake.requests] == [400, 503, 200]
    assert waits == [3.0, 2.0]


# --------------------------------------------------------------------------- pure builders


def test_three_options_are_reply_buttons_with_titles_of_at_most_20_characters() -> None:
    options = (Option("pay", "Pay now"), Option("plan", "A payment plan, please"), Option("help", "Help"))
    [payload] = render(WA_ID, Reply("menu", "What would you like?", options=options))
    assert payload == {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": WA_ID,
        "type": "interactive",
        "interactive": {
            "type": "button",
            "body": {"text": "What would you like?"},
            "action": {
                "buttons": [
                    {"type": "reply", "reply": {"id": "pay", "title": "Pay now"}},
                    {"type": "reply", "reply": {"id": "plan", "title": "A payment plan, ple…"}},
                    {"type": "reply", "reply": {"id": "help", "title": "Help"}},
                ]
            },
        },
    }


def test_more_than_three_options_become_a_list_of_at_most_ten_rows() -> None:
    options = tuple(Option(f"inv-{n}", f"Invoice 2026-{n:05d} of 1 December 2026") for n in range(12))
    first, second = render(WA_ID, Reply("invoices", "Which invoice?", options=options))

    assert isinstance(first, dict) and isinstance(second, dict)
    assert first == list_payload(WA_ID, "Which invoice?", options[:10])
    rows = first["interactive"]["action"]["sections"][0]["rows"]
    assert rows[0] == {
        "id": "inv-0",
        "title": "Invoice 2026-00000 of 1…",
        "description": "Invoice 2026-00000 of 1 December 2026",
    }
    assert len(second["interactive"]["action"]["sections"][0]["rows"]) == 2


def test_links_join_the_text_and_attachments_are_media_to_upload() -> None:
    attachment = Attachment("document", "a.pdf", PDF, "application/pdf")
    calls = render(
        WA_ID, Reply("pay", "Pay here", links=(("Pay", "https://pay.test/x"),), attachments=(attachment,))
    )
    assert calls == [
        {
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": WA_ID,
            "type": "text",
            "text": {"body": "Pay here\nPay: https://pay.test/x", "preview_url": True},
        },
        Media(WA_ID, attachment),
    ]


def test_a_template_fills_its_body_parameter_with_one_line() -> None:
    payload = template_payload(WA_ID, "payment_reminder", "nl", ["Hoi Jan,\n\nfactuur 42\tstaat open"])
    assert payload["template"] == {
        "name": "payment_reminder",
        "language": {"code": "nl"},
        "components": [
            {"type": "body", "parameters": [{"type": "text", "text": "Hoi Jan, factuur 42 staat open"}]}
        ],
    }


async def test_a_blocked_number_that_writes_again_is_usable_again(
    client: httpx.AsyncClient, whatsapp: WhatsAppBot, db: Database
) -> None:
    debtor = await factories.debtor(db)
    await add_contact_point(db, debtor, "whatsapp", f"+{WA_ID}")  # stored in E.164, reported without "+"
    async with db.session_scope() as s:
        await channels.mark_blocked(s, "whatsapp", WA_ID, NOW, reason="stopped our messages")
    assert (await point(db, "whatsapp", f"+{WA_ID}")).last_delivery_status == "blocked"

    await post(client, whatsapp, notification([text("hello again")]))

    assert (await point(db, "whatsapp", f"+{WA_ID}")).last_delivery_status == "unblocked"
