"""A payment books the same whichever way it arrives: the API (``record_payment``), a bank
statement (the payment book) or the PSP (``psp_batch``): the same ledger entries, the same invoices
paid, the same promises kept, the same events and the same audit trail."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

import pytest
from sqlalchemy import select
from sqlmodel import col

from core.audit import AuditEvent
from core.db import Database
from core.debtors import repository as debtor_repo
from core.dunning import holds
from core.dunning.models import Promise
from core.events.models import Event
from core.invoices.models import Invoice
from core.ledger import batch, psp_batch
from core.ledger import service as ledger
from core.ledger.models import LedgerEntry
from core.ledger.schemas import PaymentIn
from tests import factories
from tests.factories import TEST_ACTOR

TODAY = date(2026, 11, 24)
PATHS = ("api", "bank", "psp")


async def _debtor_with_three_invoices(db: Database, name: str) -> None:
    """Invoices of 30.00, 50.00 and 40.00, oldest due first, and a promise on the oldest."""
    await factories.debtor(db, name)
    for n, (amount, due) in enumerate([(3_000, 10), (5_000, 20), (4_000, 30)], start=1):
        await factories.invoice(
            db,
            name,
            external_id=f"{name}-{n}",
            number=f"{name}-{n}",
            amount_minor=amount,
            due_date=date(2026, 10, due),
        )
    async with db.session_scope() as s:
        await holds.promise(
            s,
            f"{name}-1",
            on=date(2026, 12, 1),
            amount_minor=None,
            today=TODAY,
            actor=TEST_ACTOR,
            source="test",
        )


async def _pay(db: Database, path: str, debtor: str, amount_minor: int, invoice: str | None) -> None:
    async with db.session_scope() as s:
        if path == "api":
            whole, cents = divmod(amount_minor, 100)
            data = PaymentIn(
                debtor_external_id=debtor,
                invoice_external_id=invoice,
                currency="EUR",
                amount=f"{whole}.{cents:02d}",
                received_on=TODAY,
                reference="R-1",
            )
            await ledger.record_payment(s, data, actor=TEST_ACTOR, today=TODAY)
            return
        d = await debtor_repo.get_by_external_id(s, debtor)
        assert d is not None
        invoice_id = None
        if invoice is not None:
            invoice_id = await s.scalar(select(col(Invoice.id)).where(col(Invoice.external_id) == invoice))
        if path == "bank":
            book = await batch.open_book(s, [d.id])
            book.pay(
                debtor_id=d.id,
                invoice_id=invoice_id,
                amount_minor=amount_minor,
                currency="EUR",
                received_on=TODAY,
                reference="R-1",
            )
            await batch.flush(s, book, actor=TEST_ACTOR, method="bank_transfer")
        else:
            item = psp_batch.NewPayment(d.id, amount_minor, "EUR", "bank_transfer", "R-1", TODAY, invoice_id)
            await psp_batch.record_payments(s, [item], actor=TEST_ACTOR)


async def _outcome(db: Database, debtor: str) -> Any:
    """What the debtor's payment left, with the debtor's name taken out so that paths compare."""
    async with db.sessionmaker() as s:
        d = await debtor_repo.get_by_external_id(s, debtor)
        assert d is not None
        numbers = dict((await s.execute(select(col(Invoice.id), col(Invoice.number)))).all())
        entries = (
            await s.execute(
                select(LedgerEntry)
                .where(col(LedgerEntry.debtor_id) == d.id, col(LedgerEntry.payment_id).is_not(None))
                .order_by(col(LedgerEntry.amount_minor))
            )
        ).scalars()
        invoices = (
            await s.execute(
                select(col(Invoice.number), col(Invoice.status))
                .where(col(Invoice.debtor_id) == d.id)
                .order_by(col(Invoice.number))
            )
        ).all()
        promises = (
            await s.execute(
                select(col(Promise.status))
                .join(Invoice, col(Invoice.id) == col(Promise.invoice_id))
                .where(col(Invoice.debtor_id) == d.id)
            )
        ).scalars()
        paid_events = (
            await s.execute(
                select(col(Event.subject))
                .where(col(Event.type) == "invoice.paid", col(Event.subject).startswith(f"{debtor}-"))
                .order_by(col(Event.subject))
            )
        ).scalars()
        trail = (
            await s.execute(
                select(col(AuditEvent.action), col(AuditEvent.entity_id), col(AuditEvent.after)).where(
                    col(AuditEvent.action).in_(("payment.recorded", "invoice.paid"))
                )
            )
        ).all()
    outcome = {
        "entries": [
            [
                e.kind,
                numbers.get(e.invoice_id) if e.invoice_id else None,
                e.amount_minor,
                e.description,
                e.effective_date.isoformat(),
            ]
            for e in entries
        ],
        "invoices": [[n, status] for n, status in invoices],
        "promises": sorted(str(getattr(p, "value", p)) for p in promises),
        "paid_events": list(paid_events),
        "audit": sorted(
            [
                action,
                entity if action == "invoice.paid" else None,
                {k: v for k, v in after.items() if k != "payment_id"},
            ]
            for action, entity, after in trail
            if after.get("debtor") == debtor
            or entity.startswith(f"{debtor}-")
            or any((a.get("invoice") or "").startswith(f"{debtor}-") for a in after.get("allocations", []))
        ),
    }
    return json.loads(json.dumps(outcome).replace(f'"{debtor}-', '"D-').replace(f'"{debtor}"', '"D"'))


@pytest.mark.parametrize(
    ("amount_minor", "named"),
    [
        (10_000, None),  # 30.00 and 50.00 paid, 20.00 of the third: oldest due first
        (15_000, None),  # all three paid and 30.00 of credit
        (2_000, 2),  # part of the named invoice only, though older ones are open
    ],
)
async def test_a_payment_books_the_same_through_the_api_a_bank_statement_and_the_psp(
    db: Database, amount_minor: int, named: int | None
) -> None:
    outcomes = {}
    for path in PATHS:
        await _debtor_with_three_invoices(db, path.upper())
        invoice = None if named is None else f"{path.upper()}-{named}"
        await _pay(db, path, path.upper(), amount_minor, invoice)
        outcomes[path] = await _outcome(db, path.upper())
    assert outcomes["bank"] == outcomes["api"]
    assert outcomes["psp"] == outcomes["api"]
    api = outcomes["api"]
    taken = sum(-amount for _, _, amount, _, _ in api["entries"])
    assert taken == amount_minor  # every cent is somewhere: on an invoice or as credit
    if amount_minor == 10_000:
        assert api["invoices"] == [["D-1", "paid"], ["D-2", "paid"], ["D-3", "open"]]
        assert api["promises"] == ["kept"]
        assert api["paid_events"] == ["D-1", "D-2"]
    if amount_minor == 15_000:
        assert any(
            e[1] is None and e[3] == "unallocated: credit on the debtor's account" for e in api["entries"]
        )
    if named is not None:
        assert api["invoices"] == [["D-1", "open"], ["D-2", "open"], ["D-3", "open"]]
        assert api["entries"] == [["payment", "D-2", -2_000, "R-1", TODAY.isoformat()]]
