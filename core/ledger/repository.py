"""Ledger queries: sums per invoice and per debtor. Every balance is computed from these rows."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import BigInteger, bindparam, case, cast, func, literal, null, select, union_all
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from core.base import table_of
from core.bulk import among, chunk_size, chunks
from core.invoices.models import PAYABLE_STATUSES, Invoice
from core.ledger.models import CreditNote, EntryKind, LedgerEntry

_fees = case(
    (
        col(LedgerEntry.kind).in_(
            [literal(k, table_of(LedgerEntry).c.kind.type) for k in (EntryKind.fee, EntryKind.interest)]
        ),
        LedgerEntry.amount_minor,
    ),
    else_=0,
)


def _invoice_sums_query(debtor_id: Any) -> Any:
    """Per invoice of the debtor (booked ones only): open amount and fees+interest, with its facts."""
    sums = (
        select(
            col(LedgerEntry.invoice_id).label("invoice_id"),
            func.sum(col(LedgerEntry.amount_minor)).label("open_minor"),
            func.sum(_fees).label("fees_minor"),
        )
        .where(col(LedgerEntry.debtor_id) == debtor_id, col(LedgerEntry.invoice_id).is_not(None))
        .group_by(col(LedgerEntry.invoice_id))
        .subquery()
    )
    return (
        select(
            col(Invoice.id),
            col(Invoice.external_id),
            col(Invoice.number),
            col(Invoice.status),
            col(Invoice.issue_date),
            col(Invoice.due_date),
            col(Invoice.currency),
            col(Invoice.amount_minor),
            sums.c.open_minor,
            sums.c.fees_minor,
        )
        .join(sums, sums.c.invoice_id == col(Invoice.id))
        .order_by(col(Invoice.due_date), col(Invoice.number))
    )


async def invoice_sums(session: AsyncSession, debtor_id: uuid.UUID) -> list[Any]:
    """Per invoice of the debtor (booked ones only): open amount and fees+interest, with its facts."""
    return list((await session.execute(_invoice_sums_query(debtor_id))).all())


@dataclass(frozen=True)
class BalanceRows:
    """What a debtor's balance is computed from, read in one statement (:func:`balance_rows`)."""

    invoices: list[Any]  # :func:`invoice_sums` rows with the invoice's live promise, due first
    unallocated: dict[str, int]  # per currency: money on no invoice (an overpayment is negative)
    in_plan: dict[str, int]  # per currency: open on invoices the debtor's active plan covers


async def balance_rows(session: AsyncSession, debtor_id: uuid.UUID) -> BalanceRows:
    """:func:`invoice_sums` with each invoice's live promise (``promised``: a promise date is set;
    ``promise_minor``: None for the whole open amount; the invoice's own ``invoice_debtor_id``),
    :func:`unallocated` and ``plans.repository.in_plan_by_currency``, in one statement (one round
    trip: the chat's /balance reads it on every update)."""
    out = BalanceRows([], {}, {})
    # On the session's connection: plain rows, without the ORM's result set-up (~50 µs a read). The
    # sessions here do not autoflush (core/db.py); one that does is flushed first, as execute would.
    if session.sync_session.autoflush:
        await session.flush()
    conn = await session.connection()
    for row in (await conn.execute(_balance_rows(), {"debtor_id": debtor_id})).all():
        if row.part == _INVOICE:
            out.invoices.append(row)
        elif row.part == _UNALLOCATED:
            out.unallocated[row.currency] = int(row.open_minor)
        else:
            out.in_plan[row.currency] = max(int(row.open_minor or 0), 0)
    return out


_INVOICE, _UNALLOCATED, _IN_PLAN = 0, 1, 2


# Built once with the debtor as a bound parameter (building it costs about a millisecond of Python
# per balance). The three parts share the invoice rows' columns (the others' columns are NULL but
# the currency and the sum, which goes in ``open_minor``) and are told apart by ``part``.
@functools.cache
def _balance_rows() -> Any:
    from core.dunning.models import DunningState
    from core.plans.repository import in_plan_query

    debtor_id: Any = bindparam("debtor_id")
    # Through the state's key: the invoices are the debtor's already (dunning_states.debtor_id has
    # no index of its own, migration 0015).
    promise = (col(DunningState.invoice_id) == col(Invoice.id)) & col(DunningState.promise_date).is_not(None)
    invoices = (
        _invoice_sums_query(debtor_id)
        .order_by(None)
        .outerjoin(DunningState, promise)
        .add_columns(
            col(Invoice.debtor_id).label("invoice_debtor_id"),
            col(DunningState.invoice_id).is_not(None).label("promised"),
            col(DunningState.promise_minor),
            literal(_INVOICE).label("part"),
        )
    )

    def per_currency(query: Any, part: int) -> Any:
        sums = query.subquery()
        blank = [null()] * 6
        tail = [null(), null(), null(), null(), literal(part)]
        return select(*blank, sums.c[0], null(), sums.c[1], *tail)

    rows = union_all(
        invoices,
        per_currency(_unallocated_query(debtor_id), _UNALLOCATED),
        per_currency(in_plan_query(debtor_id), _IN_PLAN),
    ).subquery()
    return select(rows).order_by(rows.c.part, rows.c.due_date, rows.c.number)


def _unallocated_query(debtor_id: Any) -> Any:
    return (
        select(col(LedgerEntry.currency), cast(func.sum(col(LedgerEntry.amount_minor)), BigInteger))
        .where(col(LedgerEntry.debtor_id) == debtor_id, col(LedgerEntry.invoice_id).is_(None))
        .group_by(col(LedgerEntry.currency))
    )


async def unallocated(session: AsyncSession, debtor_id: uuid.UUID) -> dict[str, int]:
    """Money on the debtor's account that belongs to no invoice (an overpayment is negative)."""
    rows = (await session.execute(_unallocated_query(debtor_id))).all()
    return {cur: int(total) for cur, total in rows}


async def open_amount(session: AsyncSession, invoice_id: uuid.UUID) -> int:
    stmt = select(func.coalesce(func.sum(col(LedgerEntry.amount_minor)), 0)).where(
        col(LedgerEntry.invoice_id) == invoice_id
    )
    return int((await session.execute(stmt)).scalar_one())


async def payable_invoices(session: AsyncSession, debtor_id: uuid.UUID, currency: str) -> list[Any]:
    """The debtor's payable invoices in a currency with their open amount, oldest due first."""
    sums = (
        select(
            col(LedgerEntry.invoice_id).label("invoice_id"),
            func.sum(col(LedgerEntry.amount_minor)).label("open_minor"),
        )
        .where(col(LedgerEntry.debtor_id) == debtor_id, col(LedgerEntry.currency) == currency)
        .group_by(col(LedgerEntry.invoice_id))
        .subquery()
    )
    stmt = (
        select(
            col(Invoice.id),
            col(Invoice.external_id),
            col(Invoice.status),
            col(Invoice.due_date),
            sums.c.open_minor,
        )
        .join(sums, sums.c.invoice_id == col(Invoice.id))
        .where(col(Invoice.status).in_(PAYABLE_STATUSES), sums.c.open_minor > 0)
        .order_by(col(Invoice.due_date), col(Invoice.number))
    )
    return list((await session.execute(stmt)).all())


async def entries_for_invoice(session: AsyncSession, invoice_id: uuid.UUID) -> Sequence[LedgerEntry]:
    stmt = (
        select(LedgerEntry)
        .where(col(LedgerEntry.invoice_id) == invoice_id)
        .order_by(col(LedgerEntry.created_at), col(LedgerEntry.id))
    )
    return (await session.scalars(stmt)).all()


async def count_credit_notes(session: AsyncSession, invoice_id: uuid.UUID) -> int:
    stmt = select(func.count()).select_from(CreditNote).where(col(CreditNote.invoice_id) == invoice_id)
    return int((await session.execute(stmt)).scalar_one())


def is_overdue(due: date, today: date) -> bool:
    return due < today


async def credit_note_exists(session: AsyncSession, number: str) -> bool:
    stmt = select(col(CreditNote.id)).where(col(CreditNote.number) == number)
    return (await session.execute(stmt)).first() is not None


async def credits(session: AsyncSession, debtor_ids: Sequence[uuid.UUID]) -> list[Any]:
    """(debtor_id, currency, amount) of money on account that belongs to no invoice, amount > 0."""
    out: list[Any] = []
    for chunk in chunks(debtor_ids, chunk_size(session)):
        total = func.sum(LedgerEntry.amount_minor)
        stmt = (
            select(col(LedgerEntry.debtor_id), col(LedgerEntry.currency), (-total).label("amount"))
            .where(col(LedgerEntry.invoice_id).is_(None), among(session, col(LedgerEntry.debtor_id), chunk))
            .group_by(col(LedgerEntry.debtor_id), col(LedgerEntry.currency))
            .having(total < 0)
        )
        out.extend((await session.execute(stmt)).all())
    return out
