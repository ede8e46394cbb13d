"""Dunning and PSP payments: no reminders while a payment is on its way, none after it is paid."""

from __future__ import annotations

from datetime import date

from core.db import Database
from core.dunning.sweep import sweep
from core.payments.providers.mollie import MollieProvider
from core.ports import FixedClock
from tests import factories
from tests.core.test_psp_payments import checkout_for, webhook
from tests.fakes.mollie import FakeMollie


async def due_actions(db: Database, day: str) -> int:
    async with db.session_scope() as s:
        return (await sweep(s, now=factories.at(day))).actions


async def test_the_sweep_skips_invoices_with_a_psp_payment_pending_until_it_fails(
    db: Database, provider: MollieProvider, mollie: FakeMollie, clock: FixedClock
) -> None:
    d = await factories.debtor(db)
    held = await factories.invoice(db, d, due_date=date(2026, 11, 10))
    other = await factories.invoice(db, d, due_date=date(2026, 11, 10))
    psp = await checkout_for(db, provider, held, clock)
    await checkout_for(db, provider, other, clock)  # merely open: a link in a message, no hold
    mollie.set_status(psp.provider_id, "pending")
    await webhook(db, provider, psp.provider_id, clock)

    assert await due_actions(db, "2026-11-18") == 1  # only the other invoice is reminded

    mollie.set_status(psp.provider_id, "failed")
    await webhook(db, provider, psp.provider_id, clock)
    assert await due_actions(db, "2026-11-18") == 1  # the payment failed: the held one is due again


async def test_a_paid_invoice_stops_dunning_at_once(
    db: Database, provider: MollieProvider, mollie: FakeMollie, clock: FixedClock
) -> None:
    d = await factories.debtor(db)
    inv = await factories.invoice(db, d, due_date=date(2026, 11, 10))
    assert await due_actions(db, "2026-11-10") == 1  # due today
    psp = await checkout_for(db, provider, inv, clock)
    mollie.set_status(psp.provider_id, "paid")
    await webhook(db, provider, psp.provider_id, clock)
    for day in ("2026-11-17", "2026-11-24", "2026-12-10", "2027-01-10"):
        assert await due_actions(db, day) == 0, day
