"""Credit on account: money that belongs to no invoice (an overpayment) pays later invoices.

When new invoices are booked, any credit of the same debtor and currency settles them, oldest due
first. The ledger stays append-only: the credit moves by a pair of entries that nets to zero for
the debtor, one off the account and one onto the invoice.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from core import audit
from core.audit import Actor
from core.base import utcnow
from core.debtors import repository as debtor_repo
from core.invoices import repository as invoice_repo
from core.invoices.models import InvoiceStatus
from core.ledger import repository as repo
from core.ledger.models import EntryKind
from core.ledger.service import entry_row, post
from core.money import Money


@dataclass(frozen=True)
class Applied:
    invoice_external_id: str
    amount: Money


async def apply_credit(
    session: AsyncSession, debtor_ids: Collection[uuid.UUID], *, actor: Actor, today: date
) -> list[Applied]:
    applied: list[Applied] = []
    rows: list[dict[str, Any]] = []
    settled: list[Any] = []
    for debtor_id, currency, available in await repo.credits(session, sorted(set(debtor_ids))):
        await debtor_repo.lock(session, debtor_id)
        left = int(available)
        for cand in await repo.payable_invoices(session, debtor_id, currency):
            if left == 0:
                break
            take = min(left, int(cand.open_minor))
            left -= take
            note = f"credit on account applied to {cand.external_id}"
            off_account = entry_row(
                kind=EntryKind.payment,
                debtor_id=debtor_id,
                amount_minor=take,
                currency=currency,
                effective_date=today,
                created_by=actor.label,
                description=note,
            )
            off_account["amount_minor"] = take  # the account gives the money back: positive
            rows += [
                off_account,
                entry_row(
                    kind=EntryKind.payment,
                    debtor_id=debtor_id,
                    amount_minor=take,
                    currency=currency,
                    effective_date=today,
                    created_by=actor.label,
                    invoice_id=cand.id,
                    description=note,
                ),
            ]
            applied.append(Applied(cand.external_id, Money(take, currency)))
            if take == int(cand.open_minor):
                settled.append(cand)
    if not rows:
        return applied
    await post(session, rows)
    await invoice_repo.set_status(session, [c.id for c in settled], InvoiceStatus.paid, utcnow())
    await audit.record_many(
        session,
        actor,
        "credit.applied",
        "invoice",
        (
            (a.invoice_external_id, None, {"amount": a.amount.decimal_str, "currency": a.amount.currency})
            for a in applied
        ),
    )
    await audit.record_many(
        session,
        actor,
        "invoice.paid",
        "invoice",
        (
            (
                c.external_id,
                {"status": c.status},
                {"status": InvoiceStatus.paid.value, "by": "credit on account"},
            )
            for c in settled
        ),
    )
    return applied
