"""Telegram: updates POSTed to /webhooks/telegram → aiogram → handler → calls recorded by a fake Bot API."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import httpx
import pytest
from aiogram.methods import SendDocument, SendMessage, SendPhoto
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup
from pydantic import SecretStr

from api.deps import Services
from api.main import create_app
from bots.telegram.bot import TelegramBot, call_with_retry, make_bot
from bots.telegram.render import keyboard, render, split_text
from core.conversation.schemas import Attachment, Option, Reply
from core.db import Database
from core.ports import FixedClock
from tests import factories
from tests.bots.chat import PDF, PNG, EchoHandler, Waits, add_contact_point, audit_actions, point, windows
from tests.fakes.telegram import TOKEN, FakeTelegramApi, telegram_api

SECRET = "s3cret_token-for-tests"
HEADER = "X-Telegram-Bot-Api-Secret-Token"
_ids = itertools.count(1000)


def user(chat_id: int = 42, language: str = "nl") -> dict[str, Any]:
    return {
        "id": chat_id,
        "is_bot": False,
        "first_name": "Jan",
        "last_name": "de Vries",
        "language_code": language,
    }


def message_update(text: str, chat_id: int = 42, **extra: Any) -> dict[str, Any]:
    n = next(_ids)
    message: dict[str, Any] = {
        "message_id": n,
        "date": 1764000000,
        "chat": {"id": chat_id, "type": "private", "first_name": "Jan"},
        "from": user(chat_id),
        "text": text,
        **extra,
    }
    if text.startswith("/"):
        message["entities"] = [{"type": "bot_command", "offset": 0, "length": len(text.split()[0])}]
    return {"update_id": n, "message": message}


def callback_update(data: str, chat_id: int = 42) -> dict[str, Any]:
    n = next(_ids)
    return {
        "update_id": n,
        "callback_query": {
            "id": f"cb-{n}",
            "from": user(chat_id),
            "chat_instance": "ci-1",
            "data": data,
            "message": {
                "message_id": 7,
                "date": 1764000000,
                "chat": {"id": chat_id, "type": "private"},
                "text": "?",
            },
        },
    }


@pytest.fixture
async def fake() -> AsyncIterator[FakeTelegramApi]:
    async with telegram_api() as api:
        yield api


@pytest.fixture
async def telegram(
    fake: FakeTelegramApi, handler: EchoHandler, db: Database, clock: FixedClock, waits: Waits
) -> AsyncIterator[TelegramBot]:
    bot = TelegramBot(make_bot(TOKEN, fake.base), handler, db, clock=clock, sleep=waits.sleep)
    yield bot
    await bot.aclose()


async def webhook_client(
    services: Services, telegram: TelegramBot | None, secret: str | None
) -> httpx.AsyncClient:
    settings = services.settings.model_copy(
        update={"telegram_webhook_secret": SecretStr(secret) if secret is not None else None}
    )
    app = create_app(services=replace(services, settings=settings))
    app.state.telegram = telegram
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://duebot.test")


@pytest.fixture
async def client(services: Services, telegram: TelegramBot) -> AsyncIterator[httpx.AsyncClient]:
    async with await webhook_client(services, telegram, SECRET) as c:
        yield c


async def post(
    client: httpx.AsyncClient, telegram: TelegramBot, update: Any, secret: str | None = SECRET
) -> httpx.Response:
    headers = {HEADER: secret} if secret is not None else {}
    response = await client.post("/webhooks/telegram", json=update, headers=headers)
    await telegram.drain()
    return response


# --------------------------------------------------------------------------- the secret token


@pytest.mark.parametrize("secret", [None, "", "wrong", SECRET + "x", SECRET.upper()])
async def test_a_wrong_or_missing_secret_is_refused_and_nothing_happens(
    client: httpx.AsyncClient,
    telegram: TelegramBot,
    fake: FakeTelegramApi,
    handler: EchoHandler,
    db: Database,
    secret: str | None,
) -> None:
    response = await post(client, telegram, message_update("hello"), secret=secret)

    assert response.status_code == 401
    assert response.headers["content-type"].startswith("application/problem+json")
    assert handler.seen == [] and fake.calls == [] and await windows(db) == []


async def test_without_a_configured_secret_every_update_is_refused(
    services: Services, telegram: TelegramBot, handler: EchoHandler
) -> None:
    async with await webhook_client(services, telegram, None) as c:
        response = await post(c, telegram, message_update("hello"), secret="")
    assert response.status_code == 401 and handler.seen == []


@pytest.mark.parametrize("body", ["not json", "[1, 2]", '{"update_id": "x"}', '{"message": {}}'])
async def test_a_body_that_is_no_update_gets_a_4xx_and_changes_nothing(
    client: httpx.AsyncClient, telegram: TelegramBot, fake: FakeTelegramApi, handler: EchoHandler, body: str
) -> None:
    response = await client.post(
        "/webhooks/telegram", content=body, headers={HEADER: SECRET, "content-type": "application/json"}
    )
    await telegram.drain()
    assert response.status_code == 422
    assert handler.seen == [] and fake.calls == []


# --------------------------------------------------------------------------- updates → Inbound


async def test_a_text_message_reaches_the_handler_and_the_reply_has_inline_buttons(
    client: httpx.AsyncClient,
    telegram: TelegramBot,
    fake: FakeTelegramApi,
    handler: EchoHandler,
    db: Database,
) -> None:
    response = await post(client, telegram, message_update("hello there"))

    assert response.status_code == 200
    [inbound] = handler.seen
    assert (inbound.channel, inbound.chat_id, inbound.text, inbound.choice) == (
        "telegram",
        "42",
        "hello there",
        None,
    )
    assert (inbound.locale_hint, inbound.display_name) == ("nl", "Jan de Vries")
    [sent] = fake.calls_to("sendMessage")
    assert sent.params["chat_id"] == "42" and sent.params["text"] == "You said: hello there"
    assert sent.buttons() == [[("Yes", "yes"), ("No", "no")]]
    [window] = await windows(db)
    assert (window.channel, window.chat_id) == ("telegram", "42")


async def test_commands_and_start_deep_links_arrive_as_command_text(
    client: httpx.AsyncClient, telegram: TelegramBot, handler: EchoHandler
) -> None:
    await post(client, telegram, message_update("/start abcDEF_123-xyz"))
    await post(client, telegram, message_update("/Balance@duebot_test_bot"))
    await post(client, telegram, message_update("/help"))

    assert [i.text for i in handler.seen] == ["/start abcDEF_123-xyz", "/balance", "/help"]


async def test_a_pressed_button_is_answered_and_reaches_the_handler_as_a_choice(
    client: httpx.AsyncClient, telegram: TelegramBot, fake: FakeTelegramApi, handler: EchoHandler
) -> None:
    update = callback_update("yes")
    await post(client, telegram, update)

    [answered] = fake.calls_to("answerCallbackQuery")
    assert answered.params["callback_query_id"] == update["callback_query"]["id"]
    [inbound] = handler.seen
    assert (inbound.chat_id, inbound.choice, inbound.text) == ("42", "yes", None)
    assert fake.calls_to("sendMessage")[0].params["text"] == "You chose: yes"
    assert [c.method for c in fake.calls] == ["answerCallbackQuery", "sendMessage"]  # answered first


async def test_a_photo_without_text_still_gets_a_reply(
    client: httpx.AsyncClient, telegram: TelegramBot, fake: FakeTelegramApi, handler: EchoHandler
) -> None:
    update = message_update("x")
    del update["message"]["text"]
    update["message"]["photo"] = [{"file_id": "p", "file_unique_id": "u", "width": 1, "height": 1}]
    await post(client, telegram, update)

    assert handler.seen[0].text == ""
    assert len(fake.calls_to("sendMessage")) == 1


async def test_invoice_pdfs_go_as_documents_and_qr_codes_as_photos(
    client: httpx.AsyncClient, telegram: TelegramBot, fake: FakeTelegramApi
) -> None:
    await post(client, telegram, message_update("/invoices"))

    assert [c.method for c in fake.calls] == ["sendMessage", "sendDocument", "sendPhoto"]
    document, photo = fake.calls_to("sendDocument")[0], fake.calls_to("sendPhoto")[0]
    assert document.files["document"].filename == "2026-00042.pdf"
    assert document.files["document"].content == PDF and document.params["caption"] == "Invoice 2026-00042"
    assert photo.files["photo"].content == PNG and photo.params["caption"] == "Scan to pay"


# --------------------------------------------------------------------------- sending faults


async def test_a_blocked_bot_marks_the_chats_contact_point_blocked(
    client: httpx.AsyncClient, telegram: TelegramBot, fake: FakeTelegramApi, db: Database, clock: FixedClock
) -> None:
    debtor = await factories.debtor(db)
    await add_contact_point(db, debtor, "telegram", "42")
    fake.block(42)

    response = await post(client, telegram, message_update("hello"))

    assert response.status_code == 200
    blocked = await point(db, "telegram", "42")
    assert (blocked.last_delivery_status, blocked.last_delivery_at) == ("blocked", clock.now())
    assert await audit_actions(db, blocked.id) == ["contact_point.blocked"]


async def test_a_chat_that_writes_again_after_blocking_is_reachable_again(
    client: httpx.AsyncClient, telegram: TelegramBot, fake: FakeTelegramApi, db: Database
) -> None:
    debtor = await factories.debtor(db)
    await add_contact_point(db, debtor, "telegram", "42")
    fake.block(42)
    await post(client, telegram, message_update("hello"))
    fake.blocked.clear()

    await post(client, telegram, message_update("/start"))

    again = await point(db, "telegram", "42")
    assert again.last_delivery_status == "unblocked"
    assert await audit_actions(db, again.id) == ["contact_point.blocked", "contact_point.unblocked"]
    assert fake.delivered[-1].params["text"] == "You said: /start"


async def test_a_429_on_a_reply_is_retried_after_retry_after(
    client: httpx.AsyncClient, telegram: TelegramBot, fake: FakeTelegramApi, waits: Waits
) -> None:
    fake.fail_next(429, retry_after=4)
    fake.fail_next(502)

    await post(client, telegram, message_update("hello"))

    assert [c.status for c in fake.calls_to("sendMessage")] == [429, 502, 200]
    assert waits[0] == 4.0 and len(waits) == 2


async def test_call_with_retry_gives_up_after_three_attempts(fake: FakeTelegramApi) -> None:
    from aiogram.exceptions import TelegramServerError

    bot = make_bot(TOKEN, fake.base)
    fake.fail_next(500, count=3)
    waited = Waits()
    with pytest.raises(TelegramServerError):
        await call_with_retry(bot, SendMessage(chat_id=1, text="x"), sleep=waited.sleep)
    await bot.session.close()
    assert len(fake.calls) == 3 and len(waited) == 2


# --------------------------------------------------------------------------- pure builders


def test_options_become_callback_buttons_two_short_ones_a_row() -> None:
    markup = keyboard(
        (
            Option("pay", "Pay now"),
            Option("plan", "Payment plan"),
            Option("dispute", "I dispute this invoice"),
        ),
        links=(("Open payment page", "https://pay.test/x"),),
    )
    assert markup == InlineKeyboardMarkup(
        inline_keyboard=[
            [
                InlineKeyboardButton(text="Pay now", callback_data="pay"),
                InlineKeyboardButton(text="Payment plan", callback_data="plan"),
            ],
            [InlineKeyboardButton(text="I dispute this invoice", callback_data="dispute")],
            [InlineKeyboardButton(text="Open payment page", url="https://pay.test/x")],
        ]
    )
    assert keyboard(()) is None


def test_callback_data_longer_than_64_bytes_is_refused() -> None:
    with pytest.raises(ValueError, match="64 bytes"):
        keyboard((Option("é" * 33, "too long"),))


def test_a_reply_renders_text_with_keyboard_then_its_files() -> None:
    reply = Reply(
        "invoice",
        "Your invoice",
        options=(Option("pay", "Pay"),),
        attachments=(
            Attachment("document", "a.pdf", PDF, "application/pdf", caption="A"),
            Attachment("image", "qr.png", PNG, "image/png"),
        ),
    )
    text, document, photo = render(42, reply)

    assert isinstance(text, SendMessage) and text.text == "Your invoice" and text.chat_id == 42
    assert text.reply_markup == keyboard((Option("pay", "Pay"),))
    assert isinstance(document, SendDocument) and document.caption == "A"
    assert document.document.filename == "a.pdf"  # type: ignore[union-attr]
    assert isinstance(photo, SendPhoto) and photo.caption is None


def test_a_long_text_is_split_and_the_keyboard_hangs_under_the_last_piece() -> None:
    text = "\n".join(f"Invoice {n:05d}: €100.00 due 1 December 2026" for n in range(200))
    calls = render(1, Reply("long", text, options=(Option("pay", "Pay"),)))

    assert len(calls) > 1 and all(isinstance(c, SendMessage) for c in calls)
    assert all(len(c.text) <= 4096 for c in calls if isinstance(c, SendMessage))
    assert [c.reply_markup is not None for c in calls if isinstance(c, SendMessage)][-1] is True
    assert sum(c.reply_markup is not None for c in calls if isinstance(c, SendMessage)) == 1
    assert "\n".join(c.text for c in calls if isinstance(c, SendMessage)) == text
    assert split_text("") == ["…"]


# --------------------------------------------------------------------------- polling


async def test_polling_answers_updates_without_a_webhook(
    telegram: TelegramBot, fake: FakeTelegramApi, handler: EchoHandler
) -> None:
    fake.push_update(message_update("polled"))
    polling = asyncio.create_task(telegram.run_polling())
    try:
        [sent] = await fake.wait_for(1)
    finally:
        await telegram.dispatcher.stop_polling()
        await polling
    assert sent.params["text"] == "You said: polled"
    assert fake.calls_to("deleteWebhook") and handler.seen[0].text == "polled"
