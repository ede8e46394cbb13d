"""Outbox delivery: real EmailSender and SmsSender against local fakes, a frozen clock, real limits."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from redis.asyncio import Redis
from sqlalchemy import select, update
from sqlmodel import col

from bots.email.sender import EmailSender, parse_smtp_url
from bots.sms.sender import SmsSender
from core.config import Settings
from core.db import Database
from core.debtors import service as debtors
from core.debtors.models import ContactPoint
from core.dunning.sweep import sweep
from core.ledger import service as ledger
from core.ledger.schemas import PaymentIn
from core.messaging import delivery
from core.messaging import repository as repo
from core.messaging.delivery import (
    NOTHING_LEFT,
    ContactRules,
    DeliveryStats,
    allowed_from,
    channel_plan,
    contact_status,
    deliver,
    quiet_until,
)
from core.messaging.models import Message, MessageStatus
from core.messaging.ratelimit import ChannelLimit, RateLimiter, backoff
from core.ports import DeliveryError, FixedClock, MessageSender
from tests import factories
from tests.conftest import NOW
from tests.fakes.sms import FakeSmsGateway, sms_gateway
from tests.fakes.smtp import FakeSmtpServer, smtp_server

CREDITOR = "Acme Supplies B.V."
DUE = date(2026, 11, 17)  # at NOW (24 Nov) the first reminder (+7) is due
AMS = ZoneInfo("Europe/Amsterdam")
NYC = ZoneInfo("America/New_York")


@dataclass
class Channels:
    smtp: FakeSmtpServer
    sms: FakeSmsGateway
    senders: dict[str, MessageSender]


@pytest.fixture
async def channels(clock: FixedClock) -> AsyncIterator[Channels]:
    async with smtp_server() as smtp, sms_gateway() as gateway:
        email = EmailSender(parse_smtp_url(smtp.url()), sender=f"{CREDITOR} <billing@acme.test>")
        async with SmsSender(gateway.url, clock=clock) as sms:
            yield Channels(smtp, gateway, {"email": email, "sms": sms})


@pytest.fixture
async def limiter(settings: Settings, redis: Redis) -> AsyncIterator[RateLimiter]:
    """Redis-backed when the suite has a Redis server (else in memory); keys of this test only."""
    lim = RateLimiter(settings.redis_url or "memory://", key_prefix=f"test:{uuid.uuid4()}")
    yield lim
    await lim.aclose()


async def run(
    db: Database, channels: Channels, clock: FixedClock, limiter: RateLimiter | None, **kw: object
) -> DeliveryStats:
    return await deliver(
        db,
        channels.senders,
        clock=clock,
        limiter=limiter,
        creditor_name=CREDITOR,
        rng=random.Random(7),
        **kw,  # type: ignore[arg-type]
    )


async def remind(
    db: Database, now: datetime = NOW, *, invoices: int = 1, **debtor_fields: Any
) -> tuple[str, list[str]]:
    """A debtor with ``invoices`` overdue invoices, swept into one queued message."""
    d = await factories.debtor(db, **debtor_fields)
    rows = [factories.invoice_row(d, due_date=DUE - timedelta(days=i)) for i in range(invoices)]
    await factories.batch(db, rows)
    async with db.session_scope() as s:
        await sweep(s, now=now)
    return d, [r.number for r in rows]


async def message_of(db: Database, debtor_external_id: str) -> Message:
    async with db.sessionmaker() as s:
        debtor = await debtors.get(s, debtor_external_id)
        reminders = select(Message).where(
            col(Message.debtor_id) == debtor.id, col(Message.kind) == "reminder"
        )
        return (await s.scalars(reminders)).one()


async def points_of(db: Database, debtor_external_id: str) -> dict[str, ContactPoint]:
    async with db.sessionmaker() as s:
        debtor = await debtors.get(s, debtor_external_id)
        found = await s.scalars(select(ContactPoint).where(col(ContactPoint.debtor_id) == debtor.id))
        return {p.kind: p for p in found.all()}


async def set_message(db: Database, debtor_external_id: str, **values: object) -> None:
    message = await message_of(db, debtor_external_id)
    async with db.session_scope() as s:
        await s.execute(update(Message).where(col(Message.id) == message.id).values(**values))


def plain(mail: object) -> str:
    body = mail.message.get_body(("plain",))  # type: ignore[attr-defined]
    return str(body.get_content())


# --------------------------------------------------------------------------- sending and fallback


async def test_a_due_message_is_rendered_and_arrives_by_email_with_its_invoices(
    db: Database, channels: Channels, clock: FixedClock, limiter: RateLimiter
) -> None:
    d, numbers = await remind(db, invoices=2)

    stats = await run(db, channels, clock, limiter)

    assert stats == DeliveryStats(claimed=1, sent=1)
    [mail] = channels.smtp.received
    assert mail.rcpt_tos == [f"{d.lower()}@example.com"]
    assert mail.message["Subject"] == "Payment reminder: 2 invoices are overdue"
    body = plain(mail)
    assert all(n in body for n in numbers) and CREDITOR in body and "Total to pay: €200.00" in body
    assert mail.message.get_body(("html",)) is not None
    message = await message_of(db, d)
    assert (message.status, message.channel, message.sent_at, message.error) == ("sent", "email", NOW, None)
    assert message.provider_id == mail.message["Message-ID"] and message.attempts == 1
    assert (await points_of(db, d))["email"].last_delivery_status == "sent"
    assert (await run(db, channels, clock, limiter)).claimed == 0  # nothing is sent twice


async def test_a_refused_address_falls_back_to_sms_in_the_same_pass(
    db: Database, channels: Channels, clock: FixedClock, limiter: RateLimiter
) -> None:
    d, numbers = await remind(db, phone="+31612345678", channel_order=["email", "sms"])
    channels.smtp.refuse(f"{d.lower()}@example.com")

    stats = await run(db, channels, clock, limiter)

    assert (stats.sent, stats.fell_back, stats.failed) == (1, 1, 0)
    assert channels.smtp.received == []
    [sms] = channels.sms.accepted
    message = await message_of(db, d)
    assert sms.json["to"] == "+31612345678" and numbers[0] in sms.json["text"]
    assert sms.json["reference"] == str(message.id)
    assert (message.status, message.channel, message.provider_id) == ("sent", "sms", "sms-1")
    points = await points_of(db, d)
    assert (points["email"].last_delivery_status, points["phone"].last_delivery_status) == ("bounced", "sent")


async def test_an_opted_out_address_is_never_tried(
    db: Database, channels: Channels, clock: FixedClock, limiter: RateLimiter
) -> None:
    d, _ = await remind(db, phone="+31612345678")
    async with db.session_scope() as s:
        await s.execute(update(ContactPoint).where(col(ContactPoint.kind) == "email").values(opted_out=True))

    stats = await run(db, channels, clock, limiter)

    assert (stats.sent, stats.fell_back) == (1, 0)
    assert channels.smtp.received == [] and len(channels.sms.accepted) == 1
    assert (await message_of(db, d)).channel == "sms"


async def test_no_usable_channel_fails_with_every_channels_reason(
    db: Database, channels: Channels, clock: FixedClock, limiter: RateLimiter
) -> None:
    d, _ = await remind(db)
    channels.smtp.refuse(f"{d.lower()}@example.com")

    stats = await run(db, channels, clock, limiter)

    assert (stats.sent, stats.failed) == (0, 1)
    message = await message_of(db, d)
    assert message.status == "failed"
    assert message.error is not None
    for part in ("email: 550", "whatsapp: no sender configured", "sms: no address"):
        assert part in message.error


async def test_a_permanent_sms_error_falls_back_to_email(
    db: Database, channels: Channels, clock: FixedClock, limiter: RateLimiter
) -> None:
    d, _ = await remind(db, phone="+31612345678", channel_order=["sms", "email"])
    channels.sms.fail_next(400, error="invalid number")

    stats = await run(db, channels, clock, limiter)

    assert (stats.sent, stats.fell_back) == (1, 1)
    assert (await message_of(db, d)).channel == "email"
    assert (await points_of(db, d))["phone"].last_delivery_status == "failed"


async def test_the_stage_fee_and_the_statutory_interest_reach_the_text(
    db: Database, channels: Channels, clock: FixedClock, limiter: RateLimiter
) -> None:
    second = await factories.debtor(db)
    final = await factories.debtor(db)
    # 14 days overdue: second reminder with its EUR 15 fee; 30 days: final notice with 8 % interest.
    rows = [
        factories.invoice_row(second, due_date=date(2026, 11, 10)),
        factories.invoice_row(final, due_date=date(2026, 10, 25)),
    ]
    await factories.batch(db, rows)
    async with db.session_scope() as s:
        await sweep(s, now=NOW)

    assert (await run(db, channels, clock, limiter)).sent == 2

    bodies = {m.rcpt_tos[0].split("@")[0]: plain(m) for m in channels.smtp.received}
    assert "Reminder fee: €15.00" in bodies[second.lower()]
    assert "Total to pay: €115.00" in bodies[second.lower()]  # the fee is on the ledger too
    assert "Statutory interest of 8% a year" in bodies[final.lower()]


async def test_a_crash_in_one_message_fails_it_and_the_batch_goes_on(
    db: Database,
    channels: Channels,
    clock: FixedClock,
    limiter: RateLimiter,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    crash, _ = await remind(db, name="Crash Test")
    fine, _ = await remind(db)
    real = delivery.render_context

    def flaky(job: repo.Job, creditor_name: str, today: date) -> dict[str, object]:
        if job.debtor.name == "Crash Test":
            raise RuntimeError("boom")
        return real(job, creditor_name, today)

    monkeypatch.setattr(delivery, "render_context", flaky)

    stats = await run(db, channels, clock, limiter)

    assert (stats.sent, stats.failed) == (1, 1)
    message = await message_of(db, crash)
    assert (message.status, message.error) == ("failed", "internal error: RuntimeError('boom')")
    assert (await message_of(db, fine)).status == "sent"


# --------------------------------------------------------------------------- retries


async def test_a_temporary_smtp_error_is_retried_with_backoff_then_sent(
    db: Database, channels: Channels, clock: FixedClock, limiter: RateLimiter
) -> None:
    d, _ = await remind(db, phone="+31612345678")
    channels.smtp.defer_next(1)

    first = await run(db, channels, clock, limiter)

    assert (first.sent, first.requeued) == (0, 1)
    message = await message_of(db, d)
    assert (message.status, message.channel, message.attempts) == ("queued", "email", 1)
    assert message.error is not None and "451" in message.error
    assert message.next_attempt_at is not None
    assert NOW + timedelta(seconds=15) <= message.next_attempt_at <= NOW + timedelta(seconds=30)
    assert channels.sms.requests == []  # a temporary error keeps the channel

    clock.current = NOW + timedelta(seconds=10)
    assert (await run(db, channels, clock, limiter)).claimed == 0  # not due yet
    clock.current = message.next_attempt_at
    second = await run(db, channels, clock, limiter)

    assert second.sent == 1 and len(channels.smtp.received) == 1
    message = await message_of(db, d)
    assert (message.status, message.channel, message.attempts, message.error) == ("sent", "email", 2, None)


async def test_sms_429_waits_at_least_retry_after(
    db: Database, channels: Channels, clock: FixedClock, limiter: RateLimiter
) -> None:
    d, _ = await remind(db, email=None, phone="+31612345678")
    channels.sms.fail_next(429, retry_after="30")

    stats = await run(db, channels, clock, limiter)

    assert stats.requeued == 1
    message = await message_of(db, d)
    assert message.status == "queued" and message.next_attempt_at is not None
    assert message.next_attempt_at >= NOW + timedelta(seconds=30)


async def test_after_too_many_temporary_errors_the_next_channel_is_tried(
    db: Database, channels: Channels, clock: FixedClock, limiter: RateLimiter
) -> None:
    d, _ = await remind(db, phone="+31612345678", channel_order=["email", "sms"])
    channels.smtp.defer_next(5)

    assert (await run(db, channels, clock, limiter, max_transient=2)).requeued == 1
    clock.current = NOW + timedelta(hours=1)
    stats = await run(db, channels, clock, limiter, max_transient=2)

    assert (stats.sent, stats.fell_back) == (1, 1)
    message = await message_of(db, d)
    assert (message.channel, message.attempts) == ("sms", 3)
    assert (await points_of(db, d))["email"].last_delivery_status == "failed"


# --------------------------------------------------------------------------- contact rules


async def test_quiet_hours_at_22_in_amsterdam_wait_for_8_while_new_york_is_awake(
    db: Database, channels: Channels, clock: FixedClock, limiter: RateLimiter
) -> None:
    ams, _ = await remind(db, timezone="Europe/Amsterdam")
    nyc, _ = await remind(db, timezone="America/New_York")
    clock.current = datetime(2026, 11, 24, 21, 0, tzinfo=UTC)  # 22:00 in Amsterdam, 16:00 in New York

    stats = await run(db, channels, clock, limiter)

    assert (stats.sent, stats.requeued) == (1, 1)
    waiting = await message_of(db, ams)
    assert (waiting.status, waiting.attempts) == ("queued", 0)
    assert waiting.next_attempt_at == datetime(2026, 11, 25, 8, 0, tzinfo=AMS)
    assert (await message_of(db, nyc)).status == "sent"


async def test_quiet_hours_end_at_8_local_in_each_timezone(
    db: Database, channels: Channels, clock: FixedClock, limiter: RateLimiter
) -> None:
    early = datetime(2026, 11, 24, 5, 0, tzinfo=UTC)  # 06:00 Amsterdam, 00:00 New York
    ams, _ = await remind(db, early, timezone="Europe/Amsterdam")
    nyc, _ = await remind(db, early, timezone="America/New_York")
    clock.current = early

    assert (await run(db, channels, clock, limiter)).requeued == 2
    assert (await message_of(db, ams)).next_attempt_at == datetime(2026, 11, 24, 8, 0, tzinfo=AMS)
    assert (await message_of(db, nyc)).next_attempt_at == datetime(2026, 11, 24, 8, 0, tzinfo=NYC)

    clock.current = datetime(2026, 11, 24, 8, 0, tzinfo=AMS)
    assert (await run(db, channels, clock, limiter)).sent == 1
    clock.current = datetime(2026, 11, 24, 8, 0, tzinfo=NYC)
    assert (await run(db, channels, clock, limiter)).sent == 1
    assert [m.rcpt_tos[0].split("@")[0] for m in channels.smtp.received] == [ams.lower(), nyc.lower()]


async def _sent_before(db: Database, debtor_external_id: str, *times: datetime) -> None:
    async with db.session_scope() as s:
        debtor = await debtors.get(s, debtor_external_id)
        for at in times:
            s.add(
                Message(
                    debtor_id=debtor.id,
                    kind="reminder",
                    template="reminder_overdue",
                    tone="neutral",
                    channels=["email"],
                    channel="email",
                    status=MessageStatus.delivered,
                    sent_at=at,
                    created_at=at,
                    updated_at=at,
                )
            )


async def test_the_minimum_gap_requeues_until_it_has_passed(
    db: Database, channels: Channels, clock: FixedClock, limiter: RateLimiter
) -> None:
    d, _ = await remind(db)
    last = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
    await _sent_before(db, d, last)

    assert (await run(db, channels, clock, limiter)).requeued == 1
    message = await next_message(db, d)
    assert message.next_attempt_at == last + timedelta(hours=48)  # 25 Nov 13:00 in Amsterdam
    assert channels.smtp.received == []


async def test_the_weekly_cap_requeues_until_the_oldest_send_leaves_the_week(
    db: Database, channels: Channels, clock: FixedClock, limiter: RateLimiter
) -> None:
    d, _ = await remind(db)
    oldest = datetime(2026, 11, 18, 12, 0, tzinfo=UTC)
    await _sent_before(db, d, oldest, oldest + timedelta(days=1), oldest + timedelta(days=3))

    assert (await run(db, channels, clock, limiter)).requeued == 1
    message = await next_message(db, d)
    assert message.next_attempt_at == oldest + timedelta(days=7)
    assert message.payload["delivery"]["deferred"]["reason"] == "at most 3 messages in 7 days"

    clock.current = oldest + timedelta(days=7)
    assert (await run(db, channels, clock, limiter)).sent == 1


async def next_message(db: Database, debtor_external_id: str) -> Message:
    async with db.sessionmaker() as s:
        debtor = await debtors.get(s, debtor_external_id)
        stmt = select(Message).where(col(Message.debtor_id) == debtor.id, col(Message.sent_at).is_(None))
        return (await s.scalars(stmt)).one()


# --------------------------------------------------------------------------- rate limits


async def test_a_reached_rate_limit_requeues_without_failing(
    db: Database, channels: Channels, clock: FixedClock, settings: Settings, redis: Redis
) -> None:
    first, _ = await remind(db)
    second, _ = await remind(db)
    tight = RateLimiter(
        settings.redis_url or "memory://",
        {"email": ChannelLimit("1/minute")},
        key_prefix=f"test:{uuid.uuid4()}",
    )
    try:
        stats = await run(db, channels, clock, tight)
    finally:
        await tight.aclose()

    assert (stats.sent, stats.requeued, stats.failed) == (1, 1, 0)
    waiting = next(
        m for m in [await message_of(db, first), await message_of(db, second)] if m.sent_at is None
    )
    assert (waiting.status, waiting.attempts, waiting.error) == ("queued", 0, None)
    assert waiting.next_attempt_at is not None
    assert NOW + timedelta(seconds=50) <= waiting.next_attempt_at <= NOW + timedelta(seconds=61)


async def test_the_limiter_holds_telegram_to_one_message_per_chat(settings: Settings, redis: Redis) -> None:
    limiter = RateLimiter(settings.redis_url or "memory://", key_prefix=f"test:{uuid.uuid4()}")
    try:
        assert await limiter.acquire("telegram", "chat-1") is None
        wait = await limiter.acquire("telegram", "chat-1")
        assert wait is not None and 0 < wait <= 1
        assert await limiter.acquire("telegram", "chat-2") is None
        assert await limiter.acquire("email", "a@example.com") is None
        assert await limiter.acquire("unknown", "x") is None  # no limit configured
    finally:
        await limiter.aclose()


# --------------------------------------------------------------------------- faults


async def test_a_broken_template_fails_only_its_own_message(
    db: Database, channels: Channels, clock: FixedClock, limiter: RateLimiter
) -> None:
    broken, _ = await remind(db)
    fine, _ = await remind(db)
    await set_message(db, broken, template="bogus")

    stats = await run(db, channels, clock, limiter)

    assert (stats.claimed, stats.sent, stats.failed) == (2, 1, 1)
    message = await message_of(db, broken)
    assert message.status == "failed" and message.error is not None
    assert "unknown template 'bogus'" in message.error
    assert (await message_of(db, fine)).status == "sent"


async def test_invoices_paid_since_the_sweep_are_left_out_or_nothing_is_sent(
    db: Database, channels: Channels, clock: FixedClock, limiter: RateLimiter
) -> None:
    all_paid, _ = await remind(db)
    partly, numbers = await remind(db, invoices=2)
    async with db.session_scope() as s:
        for debtor, amount in ((all_paid, "100.00"), (partly, "100.00")):
            payment = PaymentIn(debtor_external_id=debtor, currency="EUR", amount=amount)
            await ledger.record_payment(s, payment, actor=factories.TEST_ACTOR, today=NOW.date())

    stats = await run(db, channels, clock, limiter)

    assert (stats.sent, stats.failed) == (1, 1)
    gone = await message_of(db, all_paid)
    assert (gone.status, gone.error) == ("failed", NOTHING_LEFT)
    [mail] = channels.smtp.received
    body = plain(mail)
    # The oldest invoice took the payment; the reminder names the one still open.
    assert numbers[0] in body and numbers[1] not in body and "Total to pay: €100.00" in body


async def test_a_message_of_a_dead_worker_is_claimed_again_and_sent_once(
    db: Database, channels: Channels, clock: FixedClock, limiter: RateLimiter
) -> None:
    dead, _ = await remind(db)
    busy, _ = await remind(db)
    async with db.session_scope() as s:  # a worker claimed both and died; one claim is still fresh
        await s.execute(
            update(Message)
            .where(col(Message.kind) == "reminder")
            .values(status="sending", updated_at=NOW - timedelta(minutes=10))
        )
    await set_message(db, busy, updated_at=NOW - timedelta(minutes=1))

    stats = await run(db, channels, clock, limiter)

    assert (stats.claimed, stats.sent) == (1, 1)
    assert [m.rcpt_tos for m in channels.smtp.received] == [[f"{dead.lower()}@example.com"]]
    assert (await message_of(db, busy)).status == "sending"  # its lease has not run out
    assert (await run(db, channels, clock, limiter)).claimed == 0
    assert len(channels.smtp.received) == 1


async def test_a_worker_that_lost_its_claim_writes_nothing(db: Database, clock: FixedClock) -> None:
    await remind(db, NOW - timedelta(minutes=6))
    async with db.session_scope() as s:
        [mine] = await repo.claim(s, NOW - timedelta(minutes=6), 10)
    async with db.session_scope() as s:  # the lease ran out and another worker took it over
        [theirs] = await repo.claim(s, NOW, 10)
    assert mine.id == theirs.id
    async with db.session_scope() as s:
        assert await repo.transition(s, mine.id, mine.updated_at, status="sent") == 0
        assert await repo.transition(s, theirs.id, theirs.updated_at, status="sent") == 1


# --------------------------------------------------------------------------- pure rules


def test_quiet_hours_wrap_midnight_and_follow_daylight_saving() -> None:
    assert quiet_until(datetime(2026, 11, 24, 12, tzinfo=UTC), AMS, 21, 8) is None
    assert quiet_until(datetime(2026, 11, 24, 2, tzinfo=UTC), AMS, 21, 8) == datetime(
        2026, 11, 24, 8, tzinfo=AMS
    )
    # The night the clocks go back (25 Oct 2026): 08:00 local is 07:00 UTC, no longer 06:00.
    assert quiet_until(datetime(2026, 10, 24, 22, tzinfo=UTC), AMS, 21, 8) == datetime(
        2026, 10, 25, 7, tzinfo=UTC
    )
    assert quiet_until(datetime(2026, 11, 24, 13, tzinfo=UTC), AMS, 13, 15) == datetime(
        2026, 11, 24, 15, tzinfo=AMS
    )
    assert quiet_until(NOW, AMS, 0, 0) is None


def test_rules_combine_gap_cap_and_quiet_hours() -> None:
    rules = ContactRules(21, 8, max_per_week=3, min_gap=timedelta(hours=48))
    assert allowed_from(NOW, rules, AMS, []) is None
    late = datetime(2026, 11, 23, 20, 30, tzinfo=UTC)  # +48 h lands at 21:30 Amsterdam: quiet
    at, reason = allowed_from(NOW, rules, AMS, [late]) or (None, "")
    assert at == datetime(2026, 11, 26, 8, tzinfo=AMS)
    assert "between two messages" in reason and "quiet hours" in reason


def test_channel_order_puts_the_debtors_preference_first() -> None:
    assert channel_plan(["sms", "email"], ["email", "whatsapp", "telegram", "sms"]) == [
        "sms",
        "email",
        "whatsapp",
        "telegram",
    ]
    assert channel_plan(["telegram"], ["email", "sms"]) == ["email", "sms"]


def test_backoff_grows_with_jitter_up_to_the_cap() -> None:
    rng = random.Random(1)
    assert all(15 <= backoff(1, rng=rng) <= 30 for _ in range(50))
    assert all(60 <= backoff(3, rng=rng) <= 120 for _ in range(50))
    assert all(1800 <= backoff(40, rng=rng) <= 3600 for _ in range(50))


def test_permanent_errors_mark_addresses_by_their_code() -> None:
    assert contact_status(DeliveryError("550 no such user", permanent=True, code="550")) == "bounced"
    assert contact_status(DeliveryError("bot blocked", permanent=True, code="403")) == "blocked"
    assert contact_status(DeliveryError("invalid number", permanent=True, code="400")) == "failed"


# --------------------------------------------------------------------------- two workers


async def test_two_workers_racing_send_each_message_exactly_once(
    committed: Database, settings: Settings, channels: Channels, clock: FixedClock
) -> None:
    rows = []
    for _ in range(12):
        d = await factories.debtor(committed)
        rows.append(factories.invoice_row(d, due_date=DUE))
    await factories.batch(committed, rows)
    async with committed.session_scope() as s:
        assert (await sweep(s, now=NOW)).messages == 12
    other = Database.from_url(settings.database_url)
    try:
        results = await asyncio.gather(
            *(run(db, channels, clock, None, batch=4) for db in (committed, other, committed, other))
        )
    finally:
        await other.dispose()

    assert sum(r.claimed for r in results) == 12 and sum(r.sent for r in results) == 12
    recipients = [m.rcpt_tos[0] for m in channels.smtp.received]
    assert len(recipients) == 12 and len(set(recipients)) == 12
