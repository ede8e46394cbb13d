"""The real arq Worker, in burst mode, on the suite's Redis."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from arq import ArqRedis
from arq.worker import Worker
from sqlalchemy import func, select
from sqlmodel import col

import worker
from core.access.models import IdempotencyRecord
from core.access.service import claim, complete
from core.config import Settings
from core.db import Database
from core.ports import FixedClock
from tests import factories
from tests.conftest import NOW


def burst_worker(functions: list[Any], pool: ArqRedis, ctx: dict[str, Any]) -> Worker:
    """The real arq Worker in burst mode, with worker.py's start-up and shut-down around ``ctx``."""
    return Worker(
        functions=functions,
        redis_pool=pool,
        burst=True,
        poll_delay=0.05,
        handle_signals=False,
        on_startup=worker.startup,
        on_shutdown=worker.shutdown,
        ctx=ctx,
    )


async def test_purge_job_forgets_only_expired_idempotency_keys(
    db: Database, arq_pool: ArqRedis, settings: Settings, clock: FixedClock
) -> None:
    await factories.api_key(db, scopes=["*"])
    async with db.session_scope() as s:
        from core.access.service import list_keys

        key = (await list_keys(s))[0]
        old = await claim(s, key.id, "old", "POST", "/x", "h1")
        new = await claim(s, key.id, "new", "POST", "/x", "h2")
        assert old is not None and new is not None
        await complete(s, old, 201, "{}")
        await complete(s, new, 201, "{}")
        old.created_at = NOW - timedelta(hours=settings.idempotency_ttl_hours + 1)
        new.created_at = NOW - timedelta(hours=1)

    pool = arq_pool
    job = await pool.enqueue_job("purge_idempotency_keys")
    assert job is not None
    ctx = {"settings": settings, "db": db, "clock": clock, "owns_db": False}
    w = burst_worker([worker.purge_idempotency_keys], pool, ctx)
    try:
        await w.main()
        assert await job.result(timeout=5) == 1
    finally:
        await w.close()

    async with db.sessionmaker() as s:
        keys = (await s.execute(select(col(IdempotencyRecord.key)))).scalars().all()
        assert keys == ["new"]
        assert (await s.execute(select(func.count()).select_from(IdempotencyRecord))).scalar_one() == 1


async def test_the_sweep_job_records_due_reminders_once(
    db: Database, arq_pool: ArqRedis, settings: Settings
) -> None:
    from datetime import date

    from core.dunning.models import DunningAction
    from core.ports import FixedClock as Clock

    d = await factories.debtor(db)
    await factories.invoice(db, d, issue_date=date(2026, 10, 1), due_date=date(2026, 11, 1))
    ctx = {"settings": settings, "db": db, "clock": Clock(factories.at("2026-11-24")), "owns_db": False}
    w = burst_worker([worker.sweep_dunning, worker.deliver_messages], arq_pool, ctx)
    try:
        first = await arq_pool.enqueue_job("sweep_dunning")
        second = await arq_pool.enqueue_job("sweep_dunning")  # a retried or doubled job
        assert first is not None and second is not None
        await w.main()
        results = [await first.result(timeout=5), await second.result(timeout=5)]
    finally:
        await w.close()
    assert sorted(r["actions"] for r in results) == [0, 1]
    async with db.sessionmaker() as s:
        reminders = (
            select(func.count()).select_from(DunningAction).where(col(DunningAction.stage_key) != "issued")
        )
        assert (await s.execute(reminders)).scalar_one() == 1


async def test_the_webhook_job_fans_out_and_delivers(
    db: Database, arq_pool: ArqRedis, settings: Settings
) -> None:
    from core.events import service as events
    from core.ports import FixedClock as Clock
    from tests.fakes.sms import sms_gateway

    async with db.session_scope() as s:
        await events.emit_many(s, "invoice.paid", [("INV-W", {"invoice": "INV-W"})])
    async with sms_gateway(any_json=True) as receiver:
        configured = settings.model_copy(update={"webhook_urls": receiver.url})
        ctx = {"settings": configured, "db": db, "clock": Clock(factories.at("2026-11-24")), "owns_db": False}
        w = burst_worker([worker.deliver_webhooks], arq_pool, ctx)
        try:
            job = await arq_pool.enqueue_job("deliver_webhooks")
            assert job is not None
            await w.main()
            assert (await job.result(timeout=5))["delivered"] == 1
        finally:
            await w.close()
        assert [r.json["subject"] for r in receiver.requests] == ["INV-W"]


async def test_a_sweep_ends_as_an_email_in_the_debtors_inbox(
    db: Database, arq_pool: ArqRedis, settings: Settings
) -> None:
    from datetime import UTC, date, datetime

    from pydantic import SecretStr

    from core.ports import FixedClock as Clock
    from tests.fakes.smtp import smtp_server

    d = await factories.debtor(db, "INBOX-1")
    inv = await factories.invoice(
        db, d, number="2026-77777", issue_date=date(2026, 10, 1), due_date=date(2026, 11, 1)
    )
    async with smtp_server() as smtp:
        configured = settings.model_copy(
            update={"smtp_url": SecretStr(smtp.url()), "creditor_name": "Acme Supplies"}
        )
        clock = Clock(datetime(2026, 11, 24, 10, 0, tzinfo=UTC))  # 11:00 in Amsterdam: no quiet hours
        ctx = {"settings": configured, "db": db, "clock": clock, "owns_db": False}
        w = burst_worker([worker.sweep_dunning, worker.deliver_messages], arq_pool, ctx)
        try:
            job = await arq_pool.enqueue_job("sweep_dunning")
            assert job is not None
            await w.main()  # burst: runs the sweep, then the delivery it enqueued after its commit
            assert (await job.result(timeout=5))["messages"] == 1
        finally:
            await w.close()
        [mail] = smtp.received
    assert mail.rcpt_tos == ["inbox-1@example.com"]
    plain = mail.message.get_body(("plain",))
    assert plain is not None
    body = plain.get_content()
    assert "2026-77777" in body and "Acme Supplies" in body
    async with db.sessionmaker() as s:
        from core.invoices.repository import get_by_external_id
        from core.messaging.models import Message

        reminder = (await s.execute(select(Message).where(col(Message.kind) == "reminder"))).scalars().one()
        assert (reminder.status, reminder.channel) == ("sent", "email")
        assert (await get_by_external_id(s, inv)) is not None


async def test_with_redis_down_the_sweep_still_stands_and_delivery_catches_up(
    db: Database, settings: Settings
) -> None:
    from datetime import date

    from core.messaging.models import Message
    from core.ports import FixedClock as Clock
    from tests.fakes import free_port

    d = await factories.debtor(db)
    await factories.invoice(db, d, issue_date=date(2026, 10, 1), due_date=date(2026, 11, 1))
    down = ArqRedis.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=0.5)
    ctx = {"settings": settings, "db": db, "clock": Clock(factories.at("2026-11-24")), "redis": down}
    try:
        result = await worker.sweep_dunning(ctx)  # the enqueue after the commit fails; the job does not
    finally:
        await down.aclose()
    assert (result["actions"], result["messages"]) == (1, 1)
    async with db.sessionmaker() as s:
        queued = (
            select(func.count())
            .select_from(Message)
            .where(col(Message.kind) == "reminder", col(Message.status) == "queued")
        )
        assert (await s.execute(queued)).scalar_one() == 1  # waiting for the next delivery tick
