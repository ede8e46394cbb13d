"""Exports for finance: payments received as an MT940 statement, and ledger mutations per invoice as CSV.

Both are produced page by page (keyset pagination), so a large range streams in constant memory.
"""

from __future__ import annotations

import csv
import io
import unicodedata
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from core.debtors.models import Debtor
from core.errors import FieldError, InvalidInput, NotFound
from core.invoices.models import Invoice
from core.ledger.models import CreditNote, LedgerEntry, Payment
from core.money import exponent, format_minor
from core.payments.bank.models import BankLine
from core.payments.models import PaymentReference

PAGE = 1000
INVOICES_PAGE = 200
MAX_DAYS = 3660
_SWIFT_X = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/-?().,'+ ")


def check_range(start: date, end: date) -> None:
    if end < start:
        raise InvalidInput(
            "the range ends before it starts",
            "invalid_range",
            [FieldError(("to",), "before from", "invalid")],
        )
    if (end - start).days > MAX_DAYS:
        raise InvalidInput(
            "the range is longer than ten years",
            "invalid_range",
            [FieldError(("to",), "too long", "invalid")],
        )


# --------------------------------------------------------------------------- MT940


def swift_text(value: str) -> str:
    """Text in the SWIFT x character set: accents dropped, anything else becomes a space."""
    ascii_text = unicodedata.normalize("NFKD", value).encode("ascii", "ignore").decode()
    return " ".join("".join(c if c in _SWIFT_X else " " for c in ascii_text).split())


def mt940_amount(minor: int, currency: str) -> str:
    """``1234,50``: a decimal comma always, no thousands separators (``1000,`` for JPY)."""
    digits = exponent(currency)
    whole, frac = divmod(abs(minor), 10**digits)
    return f"{whole},{frac:0{digits}d}" if digits else f"{whole},"


@dataclass
class ExportPayment:
    id: uuid.UUID
    received_on: date
    amount_minor: int
    currency: str
    reference: str | None
    debtor_name: str
    debtor_external_id: str
    invoice_numbers: list[str]
    rf: str | None
    iban: str | None


async def _payment_page(
    session: AsyncSession, start: date, end: date, currency: str | None, after: tuple[Any, ...] | None
) -> list[Any]:
    key = (col(Payment.currency), col(Payment.received_on), col(Payment.id))
    stmt = (
        select(
            col(Payment.id),
            col(Payment.received_on),
            col(Payment.amount_minor),
            col(Payment.currency),
            col(Payment.reference),
            col(Payment.debtor_id),
            col(Debtor.name),
            col(Debtor.external_id),
        )
        .join(Debtor, col(Debtor.id) == col(Payment.debtor_id))
        .where(col(Payment.received_on) >= start, col(Payment.received_on) <= end)
        .order_by(*key)
        .limit(PAGE)
    )
    if currency:
        stmt = stmt.where(col(Payment.currency) == currency)
    if after is not None:
        stmt = stmt.where(_after(key, after))
    return list((await session.execute(stmt)).all())


async def _enrich(session: AsyncSession, rows: Sequence[Any]) -> list[ExportPayment]:
    """Invoice numbers, the RF reference and the payer's IBAN for one page of payments."""
    ids = [r.id for r in rows]
    numbers: dict[uuid.UUID | None, list[str]] = defaultdict(list)
    refs: dict[uuid.UUID | None, str] = {}
    entries = await session.execute(
        select(col(LedgerEntry.payment_id), col(Invoice.number), col(PaymentReference.reference))
        .join(Invoice, col(Invoice.id) == col(LedgerEntry.invoice_id))
        .outerjoin(PaymentReference, col(PaymentReference.invoice_id) == col(Invoice.id))
        .where(col(LedgerEntry.payment_id).in_(ids))
        .order_by(col(Invoice.number))
    )
    for payment_id, number, ref in entries.all():
        if number not in numbers[payment_id]:
            numbers[payment_id].append(number)
        if ref and payment_id not in refs:
            refs[payment_id] = ref
    groups = await session.execute(
        select(col(PaymentReference.debtor_id), col(PaymentReference.reference)).where(
            col(PaymentReference.debtor_id).in_({r.debtor_id for r in rows}),
            col(PaymentReference.invoice_id).is_(None),
        )
    )
    group_ref = {d: ref for d, ref in groups.all()}
    lines = await session.execute(
        select(col(BankLine.payment_id), col(BankLine.counterparty_iban)).where(
            col(BankLine.payment_id).in_(ids)
        )
    )
    ibans = {p: iban for p, iban in lines.all()}
    out = []
    for r in rows:
        rf = refs.get(r.id)
        if rf is None and len(numbers.get(r.id, [])) != 1:
            rf = group_ref.get(r.debtor_id)  # a grouped payment: the debtor's reference
        out.append(
            ExportPayment(
                id=r.id,
                received_on=r.received_on,
                amount_minor=int(r.amount_minor),
                currency=r.currency,
                reference=r.reference,
                debtor_name=r.name,
                debtor_external_id=r.external_id,
                invoice_numbers=numbers.get(r.id, []),
                rf=rf,
                iban=ibans.get(r.id),
            )
        )
    return out


def _details(p: ExportPayment) -> list[str]:
    parts = []
    if p.rf:
        parts.append(f"/EREF/{p.rf}")
    remittance = ",".join(swift_text(n) for n in p.invoice_numbers) or "ON ACCOUNT"
    parts.append(f"/REMI/{remittance}")
    parts.append(f"/NAME/{swift_text(p.debtor_name)[:70]}")
    if p.iban:
        parts.append(f"/IBAN/{p.iban}")
    return wrap_details("".join(parts))


def wrap_details(text: str, width: int = 65, lines: int = 6) -> list[str]:
    """``:86:`` is at most 6 lines of 65. Breaks go before a ``/field/`` or after a comma, so the
    lines joined without separator give the text back; no line starts with ``-`` (end of message)."""
    out: list[str] = []
    while text and len(out) < lines:
        if len(text) <= width:
            out.append(text)
            break
        cut = max((i for i in range(1, width + 1) if text[i] == "/" or text[i - 1] == ","), default=width)
        while cut > 1 and text[cut] == "-":
            cut -= 1
        out.append(text[:cut])
        text = text[cut:]
    return out


def _statement_header(n: int, iban: str, currency: str, start: date) -> list[str]:
    return [
        f":20:DUEBOT{start:%y%m%d}{n:02d}",
        f":25:{iban}",
        f":28C:{n:05d}",
        f":60F:C{start:%y%m%d}{currency}{mt940_amount(0, currency)}",
    ]


def _statement_line(p: ExportPayment) -> list[str]:
    customer = swift_text(p.reference or "")[:16].replace(" ", "") or "NONREF"
    bank_ref = p.id.hex[-16:].upper()
    day = p.received_on
    amount = mt940_amount(p.amount_minor, p.currency)
    details = _details(p)
    return [
        f":61:{day:%y%m%d}{day:%m%d}C{amount}NTRF{customer}//{bank_ref}",
        ":86:" + details[0],
        *details[1:],
    ]


async def payments_mt940(
    session: AsyncSession, *, start: date, end: date, account_iban: str, currency: str | None = None
) -> AsyncIterator[str]:
    """One MT940 statement per currency of the payments received from ``start`` to ``end``.

    Opening balance 0 on ``start``; closing balance the sum received, on ``end``.
    """
    check_range(start, end)
    after: tuple[Any, ...] | None = None
    current: str | None = None
    total = 0
    n = 0
    while True:
        rows = await _payment_page(session, start, end, currency, after)
        if not rows:
            break
        after = (rows[-1].currency, rows[-1].received_on, rows[-1].id)
        out: list[str] = []
        for p in await _enrich(session, rows):
            if p.currency != current:
                if current is not None:
                    out.append(_closing(current, total, end))
                n += 1
                current, total = p.currency, 0
                out.extend(_statement_header(n, account_iban, p.currency, start))
            out.extend(_statement_line(p))
            total += p.amount_minor
        yield "\r\n".join(out) + "\r\n"
    if current is None:  # nothing received: still a valid, empty statement
        cur = currency or "EUR"
        yield "\r\n".join(_statement_header(1, account_iban, cur, start)) + "\r\n" + _closing(cur, 0, end)
        return
    yield _closing(current, total, end)


def _closing(currency: str, total: int, end: date) -> str:
    return f":62F:C{end:%y%m%d}{currency}{mt940_amount(total, currency)}\r\n-\r\n"


# --------------------------------------------------------------------------- mutations CSV

CSV_COLUMNS = (
    "invoice_external_id",
    "invoice_number",
    "debtor_external_id",
    "entry_id",
    "kind",
    "effective_date",
    "amount",
    "currency",
    "reference",
    "payment_id",
    "credit_note",
    "description",
    "created_at",
)


def _mutation_query() -> Any:
    return (
        select(
            col(LedgerEntry.id),
            col(LedgerEntry.invoice_id),
            col(LedgerEntry.kind),
            col(LedgerEntry.effective_date),
            col(LedgerEntry.amount_minor),
            col(LedgerEntry.currency),
            col(LedgerEntry.description),
            col(LedgerEntry.payment_id),
            col(LedgerEntry.created_at),
            col(Invoice.external_id).label("invoice_external_id"),
            col(Invoice.number).label("invoice_number"),
            col(Debtor.external_id).label("debtor_external_id"),
            col(Payment.reference).label("payment_reference"),
            col(CreditNote.number).label("credit_note"),
        )
        .join(Debtor, col(Debtor.id) == col(LedgerEntry.debtor_id))
        .outerjoin(Invoice, col(Invoice.id) == col(LedgerEntry.invoice_id))
        .outerjoin(Payment, col(Payment.id) == col(LedgerEntry.payment_id))
        .outerjoin(CreditNote, col(CreditNote.id) == col(LedgerEntry.credit_note_id))
    )


def _csv_rows(rows: Sequence[Any]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    for r in rows:
        writer.writerow(
            (
                r.invoice_external_id or "",
                r.invoice_number or "",
                r.debtor_external_id,
                str(r.id),
                r.kind,
                r.effective_date.isoformat(),
                format_minor(int(r.amount_minor), r.currency),
                r.currency,
                r.payment_reference or r.credit_note or "",
                str(r.payment_id) if r.payment_id else "",
                r.credit_note or "",
                r.description or "",
                r.created_at.isoformat(),
            )
        )
    return buf.getvalue()


async def invoice_id_of(session: AsyncSession, external_id: str) -> uuid.UUID:
    found = (
        await session.execute(select(col(Invoice.id)).where(col(Invoice.external_id) == external_id))
    ).scalar_one_or_none()
    if found is None:
        raise NotFound(f"invoice {external_id!r} does not exist", "invoice_not_found")
    return found


def check_mutation_filter(start: date | None, end: date | None, invoice_external_id: str | None) -> None:
    if invoice_external_id is not None:
        return
    if start is None or end is None:
        raise InvalidInput(
            "name an invoice, or a range with from and to",
            "missing_range",
            [FieldError(("from",), "required without invoice", "missing")],
        )
    check_range(start, end)


async def mutations_csv(
    session: AsyncSession,
    *,
    start: date | None = None,
    end: date | None = None,
    invoice_id: uuid.UUID | None = None,
) -> AsyncIterator[str]:
    """Every ledger entry, grouped per invoice (entries on no invoice, such as credit on account, last).

    With ``invoice_id`` only that invoice's entries; otherwise those effective from ``start`` to ``end``.
    """
    base = _mutation_query()
    if invoice_id is not None:
        base = base.where(col(LedgerEntry.invoice_id) == invoice_id)
    elif start is not None and end is not None:
        base = base.where(col(LedgerEntry.effective_date) >= start, col(LedgerEntry.effective_date) <= end)
    else:
        raise InvalidInput("name an invoice, or a range with from and to", "missing_range")
    yield ",".join(CSV_COLUMNS) + "\r\n"
    # Invoices a page at a time, walking the invoice index; then their entries in one query.
    last_invoice: uuid.UUID | None = None
    while True:
        ids_stmt = base.with_only_columns(col(LedgerEntry.invoice_id)).where(
            col(LedgerEntry.invoice_id).is_not(None)
        )
        if last_invoice is not None:
            ids_stmt = ids_stmt.where(col(LedgerEntry.invoice_id) > last_invoice)
        ids_stmt = (
            ids_stmt.group_by(col(LedgerEntry.invoice_id))
            .order_by(col(LedgerEntry.invoice_id))
            .limit(INVOICES_PAGE)
        )
        invoice_ids = list((await session.execute(ids_stmt)).scalars().all())
        if not invoice_ids:
            break
        last_invoice = invoice_ids[-1]
        entries = base.where(col(LedgerEntry.invoice_id).in_(invoice_ids)).order_by(
            col(LedgerEntry.invoice_id), col(LedgerEntry.created_at), col(LedgerEntry.id)
        )
        yield _csv_rows(list((await session.execute(entries)).all()))
    if invoice_id is not None:
        return
    # Then what belongs to no invoice (credit on account), along the primary key.
    last_entry: uuid.UUID | None = None
    while True:
        stmt = base.where(col(LedgerEntry.invoice_id).is_(None))
        if last_entry is not None:
            stmt = stmt.where(col(LedgerEntry.id) > last_entry)
        rows = list((await session.execute(stmt.order_by(col(LedgerEntry.id)).limit(PAGE))).all())
        if not rows:
            break
        last_entry = rows[-1].id
        yield _csv_rows(rows)


def _after(key: Sequence[Any], values: Sequence[Any]) -> Any:
    """``key > values`` as explicit ORs (row-value comparison with typed columns on every engine)."""
    clauses = []
    for i in range(len(key)):
        equal = [key[j] == values[j] for j in range(i)]
        clauses.append(and_(*equal, key[i] > values[i]))
    return or_(*clauses)
