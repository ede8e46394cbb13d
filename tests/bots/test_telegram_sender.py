"""Reminders over Telegram: the real TelegramSender in the real outbox delivery, against the fake Bot API."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from pydantic import SecretStr

import worker
from bots.telegram.bot import make_bot
from bots.telegram.sender import TelegramSender
from core.config import Settings
from core.db import Database
from core.dunning.sweep import sweep
from core.messaging.ratelimit import ChannelLimit, RateLimiter
from core.ports import DeliveryError, FixedClock, MessageSender, OutboundMessage
from tests import factories
from tests.bots.chat import PDF, PNG, audit_actions, point
from tests.bots.reminders import CREDITOR, DUE, email_sender, remind_on, reminder_of, run
from tests.conftest import NOW
from tests.fakes.smtp import FakeSmtpServer
from tests.fakes.telegram import TOKEN, FakeTelegramApi, telegram_api


@pytest.fixture
async def fake() -> AsyncIterator[FakeTelegramApi]:
    async with telegram_api() as api:
        yield api


@pytest.fixture
async def sender(fake: FakeTelegramApi, db: Database, clock: FixedClock) -> AsyncIterator[TelegramSender]:
    built = TelegramSender(make_bot(TOKEN, fake.base), db=db, clock=clock)
    yield built
    await built.aclose()


@pytest.fixture
def senders(sender: TelegramSender, smtp: FakeSmtpServer) -> dict[str, MessageSender]:
    email = email_sender(smtp)
    return {"telegram": sender, "email": email}


async def remind_on_telegram(db: Database, chat_id: str) -> str:
    return await remind_on(db, "telegram", chat_id)


def outbound(text: str = "Invoice 2026-00042 is overdue.", **kw: object) -> OutboundMessage:
    return OutboundMessage(channel="telegram", address="42", subject=None, body=text, **kw)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- the sender alone


async def test_a_reminder_arrives_as_a_message_then_its_files(
    sender: TelegramSender, fake: FakeTelegramApi
) -> None:
    result = await sender.send(
        outbound(attachments=[("2026-00042.pdf", PDF, "application/pdf"), ("qr.png", PNG, "image/png")])
    )

    assert result.provider_id == "42:1"
    assert [c.method for c in fake.calls] == ["sendMessage", "sendDocument", "sendPhoto"]
    assert fake.calls[0].params == {"chat_id": "42", "text": "Invoice 2026-00042 is overdue."}
    assert fake.calls[1].files["document"].content == PDF and fake.calls[2].files["photo"].content == PNG


@pytest.mark.parametrize(
    ("status", "permanent", "code"),
    [(500, False, "error"), (502, False, "error"), (400, True, "invalid_address"), (401, False, "error")],
)
async def test_errors_map_to_temporary_or_permanent(
    sender: TelegramSender, fake: FakeTelegramApi, status: int, permanent: bool, code: str
) -> None:
    fake.fail_next(status)
    with pytest.raises(DeliveryError) as caught:
        await sender.send(outbound())
    assert (caught.value.permanent, caught.value.code) == (permanent, code)


async def test_a_429_carries_telegrams_retry_after(sender: TelegramSender, fake: FakeTelegramApi) -> None:
    fake.fail_next(429, retry_after=17)
    with pytest.raises(DeliveryError) as caught:
        await sender.send(outbound())
    assert (caught.value.permanent, caught.value.retry_after, caught.value.code) == (False, 17, "429")


# --------------------------------------------------------------------------- through the outbox


async def test_a_due_reminder_goes_out_on_telegram(
    db: Database,
    senders: dict[str, MessageSender],
    fake: FakeTelegramApi,
    clock: FixedClock,
    limiter: RateLimiter,
) -> None:
    d = await remind_on_telegram(db, "42")

    stats = await run(db, senders, clock, limiter)

    assert (stats.sent, stats.fell_back) == (1, 0)
    [sent] = fake.delivered
    message = await reminder_of(db, d)
    assert sent.params["chat_id"] == "42" and CREDITOR in sent.params["text"]
    assert (message.status, message.channel, message.provider_id) == ("sent", "telegram", "42:1")


async def test_a_blocked_bot_marks_the_point_blocked_and_the_reminder_falls_back_to_email(
    db: Database,
    senders: dict[str, MessageSender],
    fake: FakeTelegramApi,
    smtp: FakeSmtpServer,
    clock: FixedClock,
    limiter: RateLimiter,
) -> None:
    d = await remind_on_telegram(db, "42")
    fake.block(42)

    stats = await run(db, senders, clock, limiter)

    assert (stats.sent, stats.fell_back, stats.failed) == (1, 1, 0)
    [mail] = smtp.received
    assert mail.rcpt_tos == [f"{d.lower()}@example.com"]
    message = await reminder_of(db, d)
    assert (message.status, message.channel) == ("sent", "email")
    blocked = await point(db, "telegram", "42")
    assert blocked.last_delivery_status == "blocked"
    assert "contact_point.blocked" in await audit_actions(db, blocked.id)

    # The next reminder does not try Telegram again.
    await factories.batch(db, [factories.invoice_row(d, due_date=DUE - timedelta(days=1))])
    calls = len(fake.calls)
    async with db.session_scope() as s:
        await sweep(s, now=NOW + timedelta(days=8))
    await run(db, senders, FixedClock(NOW + timedelta(days=8)), limiter)
    assert len(fake.calls) == calls and len(smtp.received) == 2


async def test_a_429_requeues_the_reminder_for_after_retry_after(
    db: Database,
    senders: dict[str, MessageSender],
    fake: FakeTelegramApi,
    clock: FixedClock,
    limiter: RateLimiter,
) -> None:
    d = await remind_on_telegram(db, "42")
    fake.fail_next(429, retry_after=120)

    stats = await run(db, senders, clock, limiter)

    assert (stats.sent, stats.requeued) == (0, 1)
    message = await reminder_of(db, d)
    assert message.status == "queued" and message.next_attempt_at == NOW + timedelta(seconds=120)
    assert "Too Many Requests" in (message.error or "")
    assert (await run(db, senders, clock, limiter)).claimed == 0  # not before the 120 s

    later = FixedClock(NOW + timedelta(seconds=120))  # (the limiter's per-chat second is wall-clock time)
    assert (await run(db, senders, later, None)).sent == 1
    assert (await reminder_of(db, d)).channel == "telegram"


async def test_delivery_takes_telegram_sends_through_the_rate_limiter(
    db: Database, senders: dict[str, MessageSender], fake: FakeTelegramApi, clock: FixedClock
) -> None:
    for n in range(4):
        await remind_on_telegram(db, str(100 + n))
    strict = RateLimiter(
        "memory://", {"telegram": ChannelLimit("3/minute", "1/second")}, key_prefix=str(uuid.uuid4())
    )
    try:
        stats = await run(db, senders, clock, strict)
    finally:
        await strict.aclose()

    assert (stats.sent, stats.requeued) == (3, 1)
    assert len(fake.delivered) == 3


# --------------------------------------------------------------------------- wiring


def test_the_worker_has_a_telegram_sender_when_a_token_is_set(db: Database) -> None:
    bare = Settings(_env_file=None)  # type: ignore[call-arg]
    assert "telegram" not in worker.build_senders(bare, db)
    configured = bare.model_copy(update={"telegram_bot_token": SecretStr(TOKEN)})
    built = worker.build_senders(configured, db)
    assert isinstance(built["telegram"], TelegramSender)


async def test_the_fake_enforces_flood_control_like_telegram() -> None:
    """The benchmark's referee: beyond 30 sends a second, or a second send to one chat, is a 429."""
    async with telegram_api(enforce_limits=True, clock=lambda: 100.0) as strict:  # all in one instant
        flood = TelegramSender(make_bot(TOKEN, strict.base))
        try:
            for chat in range(30):
                await flood.send(OutboundMessage("telegram", str(chat), None, "hi"))
            with pytest.raises(DeliveryError) as overall:
                await flood.send(OutboundMessage("telegram", "30", None, "hi"))
        finally:
            await flood.aclose()
    assert overall.value.retry_after == 1 and strict.too_many == 1

    async with telegram_api(enforce_limits=True, clock=lambda: 100.0) as strict:
        flood = TelegramSender(make_bot(TOKEN, strict.base))
        try:
            await flood.send(OutboundMessage("telegram", "7", None, "one"))
            with pytest.raises(DeliveryError):
                await flood.send(OutboundMessage("telegram", "7", None, "two"))
            await flood.send(OutboundMessage("telegram", "8", None, "another chat is fine"))
        finally:
            await flood.aclose()
    assert strict.too_many == 1 and len(strict.delivered) == 2


async def test_a_chats_one_second_is_waited_out_in_the_same_pass(
    db: Database,
    senders: dict[str, MessageSender],
    fake: FakeTelegramApi,
    clock: FixedClock,
    limiter: RateLimiter,
) -> None:
    """Two reminders to one chat (two debtors share it): the second goes a second later, not a pass later."""
    first = await remind_on_telegram(db, "42")
    second = await remind_on_telegram(db, "42")

    stats = await run(db, senders, clock, limiter)

    assert (stats.sent, stats.requeued) == (2, 0)
    one, two = fake.delivered
    assert two.at - one.at >= 0.95  # Telegram's one message a second per chat
    assert {(await reminder_of(db, d)).status for d in (first, second)} == {"sent"}
