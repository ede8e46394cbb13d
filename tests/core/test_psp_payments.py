"""Mollie payments end to end through the real client and the fake Mollie: checkouts, webhook
events, ledger postings exactly once, refunds and chargebacks reported by Mollie."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlmodel import col

from core.db import Database
from core.debtors import repository as debtor_repo
from core.invoices import repository as invoice_repo
from core.ledger import service as ledger
from core.ledger.models import LedgerEntry, Payment
from core.ledger.schemas import PaymentIn
from core.money import Money
from core.payments import events, service
from core.payments.models import PspEvent, PspPayment
from core.payments.providers.mollie import MollieProvider
from core.ports import FixedClock, PaymentProviderError
from tests import factories
from tests.fakes.mollie import FakeMollie

ACTOR = factories.TEST_ACTOR


async def checkout_for(
    db: Database, provider: MollieProvider, invoice_external_id: str, clock: FixedClock
) -> PspPayment:
    async with db.session_scope() as s:
        invoice = await invoice_repo.get_by_external_id(s, invoice_external_id)
        assert invoice is not None
        debtor = await debtor_repo.get_by_id(s, invoice.debtor_id)
        from core.ledger import repository as ledger_repo

        open_minor = await ledger_repo.open_amount(s, invoice.id)
        req = service.invoice_request(debtor, invoice, open_minor)
        return await service.get_or_create(s, provider, req, actor=ACTOR, now=clock.now())


async def webhook(db: Database, provider: MollieProvider, provider_id: str, clock: FixedClock) -> str:
    event_id = await events.record(db, "mollie", provider_id, clock)
    return (await events.process(db, provider, event_id, clock)).outcome


async def balance(db: Database, debtor_external_id: str) -> tuple[Any, list[Any]]:
    async with db.sessionmaker() as s:
        debtor = await debtor_repo.get_by_external_id(s, debtor_external_id)
        assert debtor is not None
        bal = await ledger.debtor_balance(s, debtor.id, factories.at("2026-11-24").date())
    return bal.currencies["EUR"], bal.invoices


async def count(db: Database, model: Any, *where: Any) -> int:
    async with db.sessionmaker() as s:
        return int((await s.execute(select(func.count()).select_from(model).where(*where))).scalar_one())


async def test_a_checkout_is_reused_while_open_and_replaced_when_expired_or_the_amount_changes(
    db: Database, provider: MollieProvider, mollie: FakeMollie, clock: FixedClock
) -> None:
    d = await factories.debtor(db)
    inv = await factories.invoice(db, d, amount_minor=12_050)
    first = await checkout_for(db, provider, inv, clock)
    assert first.checkout_url and first.checkout_url.startswith("https://www.mollie.com/checkout/")
    assert first.amount_minor == 12_050 and first.status == "open"
    created = mollie.creates[0]
    assert created.json["amount"] == {"currency": "EUR", "value": "120.50"}
    assert created.json["webhookUrl"].endswith("/webhooks/mollie")
    assert created.json["redirectUrl"].endswith("/pay/thanks")
    assert created.json["metadata"]["invoices"] == [inv]
    assert created.headers["Idempotency-Key"].startswith("duebot:invoice:")

    again = await checkout_for(db, provider, inv, clock)
    assert again.provider_id == first.provider_id and len(mollie.creates) == 1

    mollie.expire(first.provider_id)
    await webhook(db, provider, first.provider_id, clock)
    replaced = await checkout_for(db, provider, inv, clock)
    assert replaced.provider_id != first.provider_id and len(mollie.creates) == 2

    async with db.session_scope() as s:  # a partial bank payment changes what is open
        await ledger.record_payment(
            s,
            PaymentIn(debtor_external_id=d, invoice_external_id=inv, currency="EUR", amount="20.50"),
            actor=ACTOR,
            today=clock.today(),
        )
    smaller = await checkout_for(db, provider, inv, clock)
    assert smaller.amount_minor == 10_000 and smaller.provider_id != replaced.provider_id


async def test_paid_posts_once_and_the_invoice_is_paid(
    db: Database, provider: MollieProvider, mollie: FakeMollie, clock: FixedClock
) -> None:
    d = await factories.debtor(db)
    inv = await factories.invoice(db, d, amount_minor=5_000)
    psp = await checkout_for(db, provider, inv, clock)
    assert await webhook(db, provider, psp.provider_id, clock) == "unchanged"  # still open
    mollie.set_status(psp.provider_id, "paid")
    assert await webhook(db, provider, psp.provider_id, clock) == "status:paid,posted"
    assert await webhook(db, provider, psp.provider_id, clock) == "unchanged"
    assert await count(db, Payment, col(Payment.reference) == psp.provider_id) == 1
    eur, invoices = await balance(db, d)
    assert eur.open == 0 and invoices[0].status == "paid"


async def test_five_concurrent_webhooks_post_one_payment(
    committed: Database, provider: MollieProvider, mollie: FakeMollie, clock: FixedClock
) -> None:
    db = committed
    d = await factories.debtor(db)
    inv = await factories.invoice(db, d, amount_minor=7_500)
    psp = await checkout_for(db, provider, inv, clock)
    mollie.set_status(psp.provider_id, "paid")

    ids = await asyncio.gather(*(events.record(db, "mollie", psp.provider_id, clock) for _ in range(5)))
    assert len(set(ids)) == 1  # five calls, one waiting event
    results = await asyncio.gather(*(events.process(db, provider, i, clock) for i in [*ids, *ids]))
    assert sorted(r.outcome for r in results).count("status:paid,posted") == 1
    assert await count(db, Payment, col(Payment.reference) == psp.provider_id) == 1
    assert await count(db, LedgerEntry, col(LedgerEntry.kind) == "payment") == 1


async def test_two_events_for_one_payment_processed_concurrently_post_once(
    committed: Database, provider: MollieProvider, mollie: FakeMollie, clock: FixedClock
) -> None:
    db = committed
    d = await factories.debtor(db)
    inv = await factories.invoice(db, d, amount_minor=7_500)
    psp = await checkout_for(db, provider, inv, clock)
    mollie.set_status(psp.provider_id, "paid")
    first = await events.record(db, "mollie", psp.provider_id, clock)
    async with db.session_scope() as s:  # a worker holds the first event …
        from core.payments import repository as repo

        await repo.claim_event(s, first, clock.now() - repo.LEASE * 2)  # … with a claim gone stale
    second = await events.record(db, "mollie", psp.provider_id, clock)
    assert second != first
    results = await asyncio.gather(
        events.process(db, provider, first, clock), events.process(db, provider, second, clock)
    )
    assert sorted(r.outcome for r in results) == ["status:paid,posted", "unchanged"]
    assert await count(db, Payment, col(Payment.reference) == psp.provider_id) == 1


async def test_statuses_out_of_order_never_go_back(
    db: Database, provider: MollieProvider, mollie: FakeMollie, clock: FixedClock
) -> None:
    d = await factories.debtor(db)
    inv = await factories.invoice(db, d, amount_minor=4_000)
    psp = await checkout_for(db, provider, inv, clock)
    mollie.set_status(psp.provider_id, "pending")
    pending = await provider.get_payment(psp.provider_id)
    mollie.set_status(psp.provider_id, "paid")
    paid = await provider.get_payment(psp.provider_id)
    async with db.session_scope() as s:  # the later snapshot is applied first …
        assert await service.apply_state(s, paid, today=clock.today()) == "status:paid,posted"
    async with db.session_scope() as s:  # … and the stale one changes nothing
        assert await service.apply_state(s, pending, today=clock.today()) == "unchanged"
    async with db.sessionmaker() as s:
        row = await service.find_payment(s, psp.provider_id)
        assert row.status == "paid"
    assert await count(db, Payment, col(Payment.reference) == psp.provider_id) == 1


async def test_an_overpayment_becomes_credit_and_a_partial_payment_leaves_the_rest_open(
    db: Database, provider: MollieProvider, mollie: FakeMollie, clock: FixedClock
) -> None:
    d = await factories.debtor(db)
    inv = await factories.invoice(db, d, amount_minor=10_000)
    psp = await checkout_for(db, provider, inv, clock)  # 100.00
    async with db.session_scope() as s:  # meanwhile 30.00 arrives by bank
        await ledger.record_payment(
            s,
            PaymentIn(debtor_external_id=d, invoice_external_id=inv, currency="EUR", amount="30.00"),
            actor=ACTOR,
            today=clock.today(),
        )
    mollie.set_status(psp.provider_id, "paid")  # and the debtor pays the old 100.00 link
    await webhook(db, provider, psp.provider_id, clock)
    eur, invoices = await balance(db, d)
    assert invoices[0].status == "paid" and invoices[0].open.minor == 0
    assert eur.credit == 3_000

    d2 = await factories.debtor(db)
    inv2 = await factories.invoice(db, d2, amount_minor=10_000)
    async with db.session_scope() as s:
        debtor = await debtor_repo.get_by_external_id(s, d2)
        assert debtor is not None
        req = service.instalment_request(
            debtor, key="plan-1-1", amount=Money(4_000, "EUR"), description="Instalment 1 of 3"
        )
        part = await service.get_or_create(s, provider, req, actor=ACTOR, now=clock.now())
    mollie.set_status(part.provider_id, "paid")
    await webhook(db, provider, part.provider_id, clock)
    eur2, invoices2 = await balance(db, d2)
    assert invoices2[0].external_id == inv2 and invoices2[0].open.minor == 6_000
    assert invoices2[0].status == "open" and eur2.credit == 0


async def test_refunds_and_chargebacks_reported_by_mollie_are_posted_once(
    db: Database, provider: MollieProvider, mollie: FakeMollie, clock: FixedClock
) -> None:
    d = await factories.debtor(db)
    inv = await factories.invoice(db, d, amount_minor=10_000)
    psp = await checkout_for(db, provider, inv, clock)
    mollie.set_status(psp.provider_id, "paid")
    await webhook(db, provider, psp.provider_id, clock)

    mollie.refund_externally(psp.provider_id, 2_500)
    assert await webhook(db, provider, psp.provider_id, clock) == "refunded"
    assert await webhook(db, provider, psp.provider_id, clock) == "unchanged"
    assert await count(db, LedgerEntry, col(LedgerEntry.kind) == "refund") == 1

    mollie.charge_back(psp.provider_id, 7_500)
    assert await webhook(db, provider, psp.provider_id, clock) == "charged_back"
    assert await webhook(db, provider, psp.provider_id, clock) == "unchanged"
    eur, invoices = await balance(db, d)
    # the chargeback reopened the invoice for what was taken back; the earlier refund is owed too
    assert invoices[0].status == "open" and invoices[0].open.minor == 7_500
    assert eur.open == 10_000


async def test_an_id_mollie_does_not_know_is_dropped_and_nothing_changes(
    db: Database, provider: MollieProvider, clock: FixedClock
) -> None:
    assert await webhook(db, provider, "tr_doesnotexist", clock) == "unknown_payment"
    async with db.sessionmaker() as s:
        event = (await s.execute(select(PspEvent))).scalar_one()
        assert event.outcome == "unknown_payment" and event.processed_at is not None
    assert (
        await count(db, PspPayment) == 0
        and await count(db, LedgerEntry, col(LedgerEntry.kind) == "payment") == 0
    )


@pytest.mark.parametrize("fault", ["503", "timeout"])
async def test_mollie_down_keeps_the_event_for_a_retry(
    db: Database, provider: MollieProvider, mollie: FakeMollie, clock: FixedClock, fault: str
) -> None:
    d = await factories.debtor(db)
    inv = await factories.invoice(db, d, amount_minor=5_000)
    psp = await checkout_for(db, provider, inv, clock)
    mollie.set_status(psp.provider_id, "paid")
    event_id = await events.record(db, "mollie", psp.provider_id, clock)
    if fault == "503":
        mollie.fail_next(503)
    else:
        mollie.hang_next()
    with pytest.raises(PaymentProviderError) as err:
        await events.process(db, provider, event_id, clock)
    assert err.value.retryable
    async with db.sessionmaker() as s:
        event = await s.get(PspEvent, event_id)
        assert event is not None and event.processed_at is None and event.claimed_at is None
    assert (await events.process(db, provider, event_id, clock)).outcome == "status:paid,posted"


async def test_the_pick_up_finds_events_whose_job_was_never_enqueued(
    db: Database, provider: MollieProvider, mollie: FakeMollie, clock: FixedClock
) -> None:
    d = await factories.debtor(db)
    inv = await factories.invoice(db, d, amount_minor=5_000)
    psp = await checkout_for(db, provider, inv, clock)
    mollie.set_status(psp.provider_id, "paid")
    await events.record(db, "mollie", psp.provider_id, clock)  # stored; the enqueue got lost
    assert (await events.pick_up(db, provider, clock))["found"] == 0  # too fresh: its job may come
    later = FixedClock(clock.now() + events.PICK_UP_AFTER * 2)
    assert await events.pick_up(db, provider, later) == {"found": 1, "processed": 1, "retry_later": 0}
    eur, _ = await balance(db, d)
    assert eur.open == 0
