"""Webhook events drained in batches (events.drain): claimed together, fetched from the fake Mollie
through the real client, posted in one transaction, each payment exactly once."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import select
from sqlmodel import col

import worker
from core.db import Database
from core.ledger import service as ledger
from core.ledger.models import LedgerEntry, Payment
from core.ledger.schemas import PaymentIn
from core.payments import events
from core.payments import repository as repo
from core.payments.models import PspEvent, PspPayment
from core.payments.providers.mollie import MollieProvider
from core.ports import FixedClock, PaymentNotFound, PaymentProviderError, ProviderPayment
from tests import factories
from tests.core.test_psp_payments import ACTOR, balance, checkout_for, count
from tests.fakes.mollie import FakeMollie


async def paid_checkout(
    db: Database, provider: MollieProvider, mollie: FakeMollie, clock: FixedClock, amount: int
) -> tuple[str, PspPayment]:
    d = await factories.debtor(db)
    inv = await factories.invoice(db, d, amount_minor=amount)
    psp = await checkout_for(db, provider, inv, clock)
    mollie.set_status(psp.provider_id, "paid")
    return d, psp


async def outcomes(db: Database) -> dict[str, list[str | None]]:
    async with db.sessionmaker() as s:
        rows = (await s.execute(select(PspEvent).order_by(col(PspEvent.received_at)))).scalars().all()
    out: dict[str, list[str | None]] = {}
    for e in rows:
        out.setdefault(e.resource_id, []).append(e.outcome)
    return out


async def test_one_batch_of_mixed_statuses_gives_what_one_event_at_a_time_gives(
    db: Database, provider: MollieProvider, mollie: FakeMollie, clock: FixedClock
) -> None:
    paid_d, paid = await paid_checkout(db, provider, mollie, clock, 5_000)
    _, pending = await paid_checkout(db, provider, mollie, clock, 6_000)
    mollie.set_status(pending.provider_id, "pending")
    refunded_d, refunded = await paid_checkout(db, provider, mollie, clock, 8_000)
    mollie.refund_externally(refunded.provider_id, 1_000)  # paid and refunded before we heard
    over_d, over = await paid_checkout(db, provider, mollie, clock, 10_000)
    async with db.session_scope() as s:  # 30.00 of it arrived by bank meanwhile
        await ledger.record_payment(
            s,
            PaymentIn(debtor_external_id=over_d, currency="EUR", amount="30.00"),
            actor=ACTOR,
            today=clock.today(),
        )
    # one debtor, two invoices, both paid by their own link in the same batch
    two_d = await factories.debtor(db)
    first = await checkout_for(db, provider, await factories.invoice(db, two_d, amount_minor=2_000), clock)
    second = await checkout_for(db, provider, await factories.invoice(db, two_d, amount_minor=3_000), clock)
    for p in (first, second):
        mollie.set_status(p.provider_id, "paid")
    ids = [p.provider_id for p in (paid, pending, refunded, over, first, second)] + ["tr_unknown1"]
    for provider_id in ids:
        await events.record(db, "mollie", provider_id, clock)

    assert await events.drain(db, provider, clock) == {"claimed": 7, "closed": 1, "processed": 6}

    assert await outcomes(db) == {
        paid.provider_id: ["status:paid,posted"],
        pending.provider_id: ["status:pending"],
        refunded.provider_id: ["status:paid,posted,refunded"],
        over.provider_id: ["status:paid,posted"],
        first.provider_id: ["status:paid,posted"],
        second.provider_id: ["status:paid,posted"],
        "tr_unknown1": ["unknown_payment"],
    }
    eur, invoices = await balance(db, paid_d)
    assert eur.open == 0 and invoices[0].status == "paid"
    eur, invoices = await balance(db, refunded_d)  # the refund is owed back on the account
    assert invoices[0].status == "paid" and eur.open == 1_000
    eur, invoices = await balance(db, over_d)
    assert invoices[0].status == "paid" and eur.credit == 3_000
    eur, invoices = await balance(db, two_d)
    assert [i.status for i in invoices] == ["paid", "paid"] and eur.open == 0 and eur.credit == 0
    assert await count(db, Payment, col(Payment.method) == "mollie") == 5
    async with db.sessionmaker() as s:
        row = await repo.by_provider_id(s, pending.provider_id)
        assert row is not None and row.status == "pending" and row.ledger_payment_id is None

    for provider_id in ids:  # the same webhooks again: nothing more is posted
        await events.record(db, "mollie", provider_id, clock)
    assert (await events.drain(db, provider, clock))["processed"] == 6
    assert await count(db, Payment, col(Payment.method) == "mollie") == 5


async def test_an_event_whose_fetch_fails_waits_and_the_next_drain_posts_it(
    db: Database, provider: MollieProvider, mollie: FakeMollie, clock: FixedClock
) -> None:
    made = [await paid_checkout(db, provider, mollie, clock, 1_000 + i) for i in range(3)]
    for _, psp in made:
        await events.record(db, "mollie", psp.provider_id, clock)
    mollie.fail_next(503)
    with pytest.raises(PaymentProviderError) as err:
        await events.drain(db, provider, clock)
    assert err.value.retryable
    # the other two are posted; the one Mollie failed on waits, unclaimed, for the retry
    assert await count(db, Payment) == 2
    async with db.sessionmaker() as s:
        waiting = (
            (await s.execute(select(PspEvent).where(col(PspEvent.processed_at).is_(None)))).scalars().all()
        )
    assert len(waiting) == 1 and waiting[0].claimed_at is None and waiting[0].error

    assert await events.drain(db, provider, clock) == {"claimed": 1, "closed": 0, "processed": 1}
    assert await count(db, Payment) == 3
    for d, _ in made:
        eur, _ = await balance(db, d)
        assert eur.open == 0


async def test_the_drain_job_retries_with_backoff_when_mollie_is_down(
    db: Database, provider: MollieProvider, mollie: FakeMollie, clock: FixedClock
) -> None:
    _, psp = await paid_checkout(db, provider, mollie, clock, 1_000)
    await events.record(db, "mollie", psp.provider_id, clock)
    mollie.fail_next(502)
    ctx = {"db": db, "clock": clock, "payments": provider, "job_try": 1}
    with pytest.raises(worker.Retry) as retry:
        await worker.drain_psp_events(ctx)
    assert retry.value.defer_score == 10_000  # 5 s * 2^1, in ms
    assert (await worker.drain_psp_events(ctx))["processed"] == 1
    assert await count(db, Payment) == 1


async def test_two_drainers_at_once_post_every_payment_exactly_once(
    committed: Database, provider: MollieProvider, mollie: FakeMollie, clock: FixedClock
) -> None:
    db = committed
    made = [await paid_checkout(db, provider, mollie, clock, 1_000 + i) for i in range(24)]
    for _, psp in made:
        await events.record(db, "mollie", psp.provider_id, clock)
    # a worker died holding the first payment's event; a new webhook for it waits as well
    async with db.session_scope() as s:
        stale = await s.execute(
            select(col(PspEvent.id)).where(col(PspEvent.resource_id) == made[0][1].provider_id)
        )
        await repo.claim_event(s, stale.scalar_one(), clock.now() - repo.LEASE * 2)
    await events.record(db, "mollie", made[0][1].provider_id, clock)

    results = await asyncio.gather(
        events.drain(db, provider, clock, batch=5, fetches=3),
        events.drain(db, provider, clock, batch=5, fetches=3),
    )
    assert sum(r.get("processed", 0) for r in results) == 25
    assert await count(db, Payment) == 24
    assert await count(db, LedgerEntry, col(LedgerEntry.kind) == "payment") == 24
    first = (await outcomes(db))[made[0][1].provider_id]
    assert sorted(first, key=str) == ["status:paid,posted", "unchanged"] or first == [
        "status:paid,posted",
        "status:paid,posted",
    ]
    for d, _ in made:
        eur, invoices = await balance(db, d)
        assert eur.open == 0 and invoices[0].status == "paid"


async def test_many_payments_fetched_in_shares_come_back_in_order_with_each_ones_error(
    db: Database, provider: MollieProvider, mollie: FakeMollie, clock: FixedClock
) -> None:
    made = [await paid_checkout(db, provider, mollie, clock, 1_000 + i) for i in range(5)]
    ids = [psp.provider_id for _, psp in made]
    ids.insert(2, "tr_unknown1")
    mollie.fail_next(503)  # whichever request comes first
    got = await provider.get_payments(ids, concurrency=2)
    assert len(got) == 6
    failed = [g for g in got if isinstance(g, PaymentProviderError)]
    assert any(isinstance(g, PaymentNotFound) for g in failed) and isinstance(got[2], PaymentNotFound)
    down = [g for g in failed if not isinstance(g, PaymentNotFound)]
    assert len(down) == 1 and down[0].retryable and down[0].status == 503
    fetched = {g.id: g for g in got if isinstance(g, ProviderPayment)}
    assert len(fetched) == 4
    for position, provider_id in enumerate(ids):
        if provider_id in fetched:
            assert got[position] is fetched[provider_id] and fetched[provider_id].status == "paid"


async def test_a_drain_asked_for_while_one_runs_joins_it_and_every_event_is_posted(
    committed: Database, provider: MollieProvider, mollie: FakeMollie, clock: FixedClock
) -> None:
    db = committed
    made = [await paid_checkout(db, provider, mollie, clock, 1_000 + i) for i in range(3)]
    await events.record(db, "mollie", made[0][1].provider_id, clock)
    drainer = events.Drainer()
    running = asyncio.create_task(drainer.drain(db, provider, clock))
    await asyncio.sleep(0)  # it has started: claiming, fetching or posting the first event
    assert drainer.running
    for _, psp in made[1:]:  # webhooks that arrive meanwhile, and the drain job they enqueued
        await events.record(db, "mollie", psp.provider_id, clock)
    assert await drainer.drain(db, provider, clock) == {"joined": 1}

    counts = await running  # it drained again for the joiner: nothing waits
    assert counts["processed"] == 3 and not drainer.running
    assert await count(db, Payment) == 3
    assert (await events.drain(db, provider, clock)) == {}


async def test_fetch_threads_grow_while_fetches_wait_for_the_network(
    db: Database, provider: MollieProvider, mollie: FakeMollie, clock: FixedClock
) -> None:
    made = [await paid_checkout(db, provider, mollie, clock, 1_000 + i) for i in range(12)]
    ids = [psp.provider_id for _, psp in made]
    mollie.latency = 0.1  # each answer waits 100 ms, as over the internet: the threads mostly wait
    assert provider.fetch_threads == 2  # where it starts
    got = await provider.get_payments(ids, concurrency=4)
    assert [g.id for g in got if isinstance(g, ProviderPayment)] == ids
    assert provider.fetch_threads == 3
    await provider.get_payments(ids, concurrency=4)
    await provider.get_payments(ids, concurrency=4)
    assert provider.fetch_threads == 4  # not above what the caller allows
