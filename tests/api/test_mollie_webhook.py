"""POST /webhooks/mollie: stored, answered fast, processed by the real arq worker; the thank-you page."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from arq import ArqRedis, Retry
from redis.asyncio import Redis
from sqlalchemy import func, select
from sqlmodel import col

import worker
from api.deps import Services
from api.main import create_app
from core.config import Settings
from core.db import Database
from core.ledger.models import Payment
from core.payments.models import PspEvent
from core.payments.providers.mollie import MollieProvider
from core.ports import FixedClock
from tests import factories
from tests.api.helpers import assert_problem
from tests.core.test_psp_payments import checkout_for
from tests.fakes.mollie import FakeMollie
from tests.worker.test_worker import burst_worker

FORM = {"content-type": "application/x-www-form-urlencoded"}


@asynccontextmanager
async def app_client(services: Services) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(services=services))
    async with httpx.AsyncClient(transport=transport, base_url="http://duebot.test") as c:
        yield c


@pytest.fixture
async def psp_client(
    settings: Settings, db: Database, redis: Redis, clock: FixedClock, provider: MollieProvider
) -> AsyncIterator[httpx.AsyncClient]:
    async with app_client(Services(settings, db, redis, clock, payments=provider)) as c:
        yield c


async def rows(db: Database, model: Any, *where: Any) -> int:
    async with db.sessionmaker() as s:
        return int((await s.execute(select(func.count()).select_from(model).where(*where))).scalar_one())


async def test_five_concurrent_deliveries_of_one_webhook_post_one_payment_through_the_worker(
    committed: Database,
    provider: MollieProvider,
    mollie: FakeMollie,
    clock: FixedClock,
    arq_pool: ArqRedis,
    settings: Settings,
) -> None:
    db = committed
    d = await factories.debtor(db)
    inv = await factories.invoice(db, d, amount_minor=9_900)
    psp = await checkout_for(db, provider, inv, clock)
    mollie.set_status(psp.provider_id, "paid")

    # the webhook enqueues on the worker's own pool (one server also when it is fakeredis)
    async with app_client(Services(settings, db, arq_pool, clock, payments=provider)) as psp_client:
        answers = await asyncio.gather(
            *(psp_client.post("/webhooks/mollie", data={"id": psp.provider_id}) for _ in range(5))
        )
        assert [r.status_code for r in answers] == [200] * 5
        r = await psp_client.get("/api/v1/invoices/" + inv, headers={"Authorization": "Bearer x"})
        assert r.status_code == 401  # the webhook needs no key, the API still does
    assert await rows(db, PspEvent) == 1

    ctx = {"settings": settings, "db": db, "clock": clock, "owns_db": False, "payments": provider}
    w = burst_worker([worker.drain_psp_events], arq_pool, ctx)
    try:
        await w.main()
    finally:
        await w.close()
    assert await rows(db, Payment, col(Payment.reference) == psp.provider_id) == 1
    async with db.sessionmaker() as s:
        event = (await s.execute(select(PspEvent))).scalar_one()
        assert event.outcome == "status:paid,posted"


@pytest.mark.parametrize(
    ("body", "headers"),
    [
        ("id=", FORM),
        ("id=re_123", FORM),
        ("id=tr_abc%00", FORM),
        ("nothing=here", FORM),
        ('{"id": "tr_abc"}', {"content-type": "application/json"}),
        ("id=tr_" + "a" * 5000, FORM),
    ],
)
async def test_a_malformed_webhook_body_gets_a_4xx_and_stores_nothing(
    psp_client: httpx.AsyncClient, db: Database, body: str, headers: dict[str, str]
) -> None:
    r = await psp_client.post("/webhooks/mollie", content=body, headers=headers)
    assert_problem(r, 422)
    assert await rows(db, PspEvent) == 0


async def test_an_unknown_id_is_answered_200_then_dropped(
    psp_client: httpx.AsyncClient,
    db: Database,
    provider: MollieProvider,
    clock: FixedClock,
    settings: Settings,
) -> None:
    r = await psp_client.post("/webhooks/mollie", data={"id": "tr_unknown42"})
    assert r.status_code == 200
    async with db.sessionmaker() as s:
        event = (await s.execute(select(PspEvent))).scalar_one()
    ctx = {"db": db, "clock": clock, "payments": provider, "job_try": 1}
    assert await worker.process_psp_event(ctx, str(event.id)) == "unknown_payment"
    assert await rows(db, Payment) == 0


async def test_mollie_failing_makes_the_job_retry_and_keeps_the_event(
    psp_client: httpx.AsyncClient,
    db: Database,
    provider: MollieProvider,
    mollie: FakeMollie,
    clock: FixedClock,
) -> None:
    d = await factories.debtor(db)
    inv = await factories.invoice(db, d, amount_minor=1_000)
    psp = await checkout_for(db, provider, inv, clock)
    mollie.set_status(psp.provider_id, "paid")
    assert (await psp_client.post("/webhooks/mollie", data={"id": psp.provider_id})).status_code == 200
    async with db.sessionmaker() as s:
        event = (await s.execute(select(PspEvent))).scalar_one()
    ctx: dict[str, Any] = {"db": db, "clock": clock, "payments": provider, "job_try": 2}
    mollie.fail_next(502)
    with pytest.raises(Retry) as retry:
        await worker.process_psp_event(ctx, str(event.id))
    assert retry.value.defer_score == 20_000  # 5 s * 2^2, in ms
    async with db.sessionmaker() as s:
        kept = await s.get(PspEvent, event.id)
        assert kept is not None and kept.processed_at is None
    ctx["job_try"] = 3
    assert await worker.process_psp_event(ctx, str(event.id)) == "status:paid,posted"


async def test_the_thank_you_page_speaks_the_debtors_language(psp_client: httpx.AsyncClient) -> None:
    r = await psp_client.get("/pay/thanks", headers={"accept-language": "nl-NL,nl;q=0.9"})
    assert r.status_code == 200 and "Bedankt" in r.text
    r = await psp_client.get("/pay/thanks")
    assert r.status_code == 200 and "Thank you" in r.text


async def test_a_burst_of_webhooks_enqueues_one_drain_that_posts_them_all(
    committed: Database,
    provider: MollieProvider,
    mollie: FakeMollie,
    clock: FixedClock,
    arq_pool: ArqRedis,
    settings: Settings,
) -> None:
    db = committed
    await arq_pool.flushdb()  # drains earlier tests enqueued
    paid = []
    for amount in (1_000, 2_000, 3_000, 4_000, 5_000):
        inv = await factories.invoice(db, await factories.debtor(db), amount_minor=amount)
        psp = await checkout_for(db, provider, inv, clock)
        mollie.set_status(psp.provider_id, "paid")
        paid.append(psp.provider_id)
    async with app_client(Services(settings, db, arq_pool, clock, payments=provider)) as c:
        answers = await asyncio.gather(*(c.post("/webhooks/mollie", data={"id": p}) for p in paid))
    assert [r.status_code for r in answers] == [200] * 5
    assert 1 <= len(await arq_pool.queued_jobs()) <= 2  # one per debounce slot, not one per webhook

    ctx = {"settings": settings, "db": db, "clock": clock, "owns_db": False, "payments": provider}
    w = burst_worker([worker.drain_psp_events], arq_pool, ctx)
    try:
        await w.main()
    finally:
        await w.close()
    assert await rows(db, Payment, col(Payment.reference).in_(paid)) == 5
    assert await rows(db, PspEvent, col(PspEvent.outcome) == "status:paid,posted") == 5
