"""Ledger logic: booking invoices, payments and credit notes, and balances derived from the entries."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import date

from sqlalchemy.ext.asyncio import AsyncSession

from core import audit
from core.audit import Actor
from core.base import utcnow
from core.debtors import repository as debtor_repo
from core.debtors.models import Debtor
from core.dunning.lifecycle import follow_invoice_status
from core.errors import Conflict, FieldError, InvalidInput
from core.invoices import repository as invoice_repo
from core.invoices.models import PAYABLE_STATUSES, InvoiceStatus
from core.ledger import repository as repo
from core.ledger.allocation import Booked, Settled, allocate, settle
from core.ledger.entries import entry_row as entry_row  # callers book through the service
from core.ledger.entries import post as post
from core.ledger.models import CreditNote, EntryKind, Payment
from core.ledger.schemas import CreditNoteIn, PaymentIn
from core.money import Money, parse_minor

# --------------------------------------------------------------------------- balances


@dataclass
class InvoiceBalance:
    external_id: str
    number: str
    status: str
    issue_date: date
    due_date: date
    amount: Money
    open: Money
    fees_and_interest: Money
    overdue: bool
    days_overdue: int
    invoice_id: uuid.UUID | None = None  # None when the invoice is not (or no longer) the debtor's


@dataclass
class CurrencyBalance:
    currency: str
    open: int = 0
    overdue: int = 0
    fees_and_interest: int = 0
    promised: int = 0
    in_plan: int = 0
    credit: int = 0  # unallocated money in the debtor's favour


@dataclass
class DebtorBalance:
    currencies: dict[str, CurrencyBalance] = field(default_factory=dict)
    invoices: list[InvoiceBalance] = field(default_factory=list)


async def debtor_balance(session: AsyncSession, debtor_id: uuid.UUID, today: date) -> DebtorBalance:
    """Everything from the ledger: nothing here is stored, so it is always in step with the entries."""
    out = DebtorBalance()

    def cur(code: str) -> CurrencyBalance:
        return out.currencies.setdefault(code, CurrencyBalance(code))

    rows = await repo.balance_rows(session, debtor_id)
    for row in rows.invoices:
        open_minor = int(row.open_minor or 0)
        fees = int(row.fees_minor or 0)
        overdue = open_minor > 0 and repo.is_overdue(row.due_date, today)
        bal = cur(row.currency)
        bal.open += open_minor
        bal.fees_and_interest += fees if open_minor > 0 else 0
        if overdue:
            bal.overdue += open_minor
        if row.promised and open_minor > 0:
            # A promise of part of the amount counts that part; one without an amount, all that is open.
            amount = row.promise_minor
            bal.promised += min(open_minor, int(amount)) if amount is not None else open_minor
        out.invoices.append(
            InvoiceBalance(
                external_id=row.external_id,
                number=row.number,
                status=row.status,
                issue_date=row.issue_date,
                due_date=row.due_date,
                amount=Money(int(row.amount_minor), row.currency),
                open=Money(open_minor, row.currency),
                fees_and_interest=Money(fees, row.currency),
                overdue=overdue,
                days_overdue=(today - row.due_date).days if overdue else 0,
                invoice_id=row.id if row.invoice_debtor_id == debtor_id else None,
            )
        )
    for code, amount in rows.in_plan.items():
        cur(code).in_plan += amount
    for code, amount in rows.unallocated.items():
        bal = cur(code)
        bal.open += amount
        if amount < 0:
            bal.credit += -amount
    return out


# --------------------------------------------------------------------------- payments


@dataclass
class Allocation:
    invoice_external_id: str | None
    amount: Money


@dataclass
class PaymentResult:
    payment: Payment
    allocations: list[Allocation]


async def _locked_debtor(session: AsyncSession, external_id: str, loc: tuple[str, ...]) -> Debtor:
    """Lock the debtor row: money operations on one debtor run one at a time."""
    debtor = await debtor_repo.get_by_external_id(session, external_id, for_update=True)
    if debtor is None:
        raise InvalidInput(
            f"unknown debtor {external_id!r}",
            "unknown_debtor",
            [FieldError(loc, f"unknown debtor {external_id!r}", "unknown_debtor")],
        )
    return debtor


async def record_payment(
    session: AsyncSession, data: PaymentIn, *, actor: Actor, today: date
) -> PaymentResult:
    debtor = await _locked_debtor(session, data.debtor_external_id, ("debtor_external_id",))
    amount = parse_minor(data.amount, data.currency)
    candidates = await repo.payable_invoices(session, debtor.id, data.currency)
    if data.invoice_external_id is not None:
        invoice = await invoice_repo.get_by_external_id(session, data.invoice_external_id)
        if invoice is None or invoice.debtor_id != debtor.id:
            raise InvalidInput(
                "the invoice does not exist for this debtor",
                "unknown_invoice",
                [
                    FieldError(
                        ("invoice_external_id",),
                        f"unknown invoice {data.invoice_external_id!r} for this debtor",
                        "unknown_invoice",
                    )
                ],
            )
        if invoice.currency != data.currency:
            raise InvalidInput(
                "currency differs from the invoice",
                "currency_mismatch",
                [FieldError(("currency",), f"the invoice is in {invoice.currency}", "currency_mismatch")],
            )
        if invoice.status not in PAYABLE_STATUSES and invoice.status != InvoiceStatus.paid:
            raise InvalidInput(
                "the invoice cannot take payments",
                "invoice_not_payable",
                [
                    FieldError(
                        ("invoice_external_id",), f"the invoice is {invoice.status}", "invoice_not_payable"
                    )
                ],
            )
        candidates = [c for c in candidates if c.id == invoice.id]

    payment = Payment(
        debtor_id=debtor.id,
        amount_minor=amount,
        currency=data.currency,
        method=data.method,
        reference=data.reference,
        received_on=data.received_on or today,
        created_by=actor.label,
    )
    session.add(payment)
    await session.flush()

    shares, rest = allocate(amount, ((c, int(c.open_minor)) for c in candidates))
    booked = Booked(
        payment_id=payment.id,
        debtor_id=debtor.id,
        debtor=debtor.external_id,
        amount_minor=amount,
        currency=data.currency,
        method=data.method,
        reference=data.reference,
        received_on=payment.received_on,
        created_by=actor.label,
        shares=[(s.invoice.id, s.invoice.external_id, s.take) for s in shares],
        rest=rest,
    )
    await post(session, booked.entries())
    await audit.record(session, actor, "payment.recorded", "payment", payment.id, after=booked.audit())
    paid = [
        Settled(s.invoice.id, s.invoice.external_id, s.invoice.status, payment.id)
        for s in shares
        if s.settles
    ]
    await settle(session, paid, actor=actor, now=utcnow())
    allocations = [Allocation(s.invoice.external_id, Money(s.take, data.currency)) for s in shares]
    if rest:
        allocations.append(Allocation(None, Money(rest, data.currency)))
    return PaymentResult(payment, allocations)


async def record_credit_note(
    session: AsyncSession, data: CreditNoteIn, *, actor: Actor, today: date
) -> CreditNote:
    invoice = await invoice_repo.get_by_external_id(session, data.invoice_external_id)
    if invoice is None:
        raise InvalidInput(
            "unknown invoice",
            "unknown_invoice",
            [
                FieldError(
                    ("invoice_external_id",),
                    f"unknown invoice {data.invoice_external_id!r}",
                    "unknown_invoice",
                )
            ],
        )
    await debtor_repo.lock(session, invoice.debtor_id)  # serialise with payments on the same debtor
    if invoice.currency != data.currency:
        raise InvalidInput(
            "currency differs from the invoice",
            "currency_mismatch",
            [FieldError(("currency",), f"the invoice is in {invoice.currency}", "currency_mismatch")],
        )
    if invoice.status not in PAYABLE_STATUSES:
        raise InvalidInput(
            "the invoice cannot be credited",
            "invoice_not_creditable",
            [
                FieldError(
                    ("invoice_external_id",), f"the invoice is {invoice.status}", "invoice_not_creditable"
                )
            ],
        )
    amount = parse_minor(data.amount, data.currency)
    open_minor = await repo.open_amount(session, invoice.id)
    if amount > open_minor:
        raise InvalidInput(
            "a credit note cannot exceed the open amount",
            "credit_exceeds_open",
            [
                FieldError(
                    ("amount",),
                    f"at most {Money(open_minor, invoice.currency).decimal_str} is open",
                    "exceeds_open",
                )
            ],
        )
    number = data.number or f"CN-{invoice.number}-{await repo.count_credit_notes(session, invoice.id) + 1}"
    if await repo.credit_note_exists(session, number):
        raise Conflict(
            "credit note number already used",
            "credit_note_exists",
            [FieldError(("number",), f"credit note {number!r} already exists", "exists")],
        )
    note = CreditNote(
        number=number,
        invoice_id=invoice.id,
        debtor_id=invoice.debtor_id,
        amount_minor=amount,
        currency=data.currency,
        reason=data.reason,
        issued_on=data.issued_on or today,
        created_by=actor.label,
    )
    session.add(note)
    await session.flush()
    await post(
        session,
        [
            entry_row(
                kind=EntryKind.credit_note,
                debtor_id=invoice.debtor_id,
                amount_minor=amount,
                currency=data.currency,
                effective_date=note.issued_on,
                created_by=actor.label,
                invoice_id=invoice.id,
                credit_note_id=note.id,
                description=data.reason,
            )
        ],
    )
    await audit.record(
        session,
        actor,
        "credit_note.issued",
        "credit_note",
        note.number,
        after={
            "invoice": invoice.external_id,
            "amount": Money(amount, data.currency).decimal_str,
            "currency": data.currency,
            "reason": data.reason,
        },
    )
    if amount == open_minor:
        before = invoice.status
        invoice.status = InvoiceStatus.paid
        invoice.updated_at = utcnow()
        await session.flush()
        await follow_invoice_status(session, [invoice.id], InvoiceStatus.paid, invoice.updated_at)
        await audit.record(
            session,
            actor,
            "invoice.settled",
            "invoice",
            invoice.external_id,
            before={"status": before},
            after={"status": invoice.status, "credit_note": note.number},
        )
    return note
