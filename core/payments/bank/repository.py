"""Queries for statements, lines and learned bank accounts."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from core.base import new_id, table_of, utcnow
from core.bulk import insert_ignore, upsert_insert
from core.debtors.models import Debtor
from core.invoices.models import Invoice
from core.payments.bank.models import BankLine, BankStatement, DebtorBankAccount


async def statement_by_hash(session: AsyncSession, sha256: str) -> BankStatement | None:
    stmt = select(BankStatement).where(col(BankStatement.content_sha256) == sha256)
    return (await session.scalars(stmt)).first()


async def claim_statement(session: AsyncSession, row: dict[str, Any]) -> bool:
    """Insert the statement unless a file with the same bytes is already there (or racing in)."""
    return await insert_ignore(session, table_of(BankStatement), [row]) == 1


async def claim_line(session: AsyncSession, row: dict[str, Any]) -> bool:
    """Insert the line unless its key is taken: the line was imported before, maybe in another file."""
    return await insert_ignore(session, table_of(BankLine), [row]) == 1


async def settle_line(session: AsyncSession, line_id: uuid.UUID, **values: Any) -> None:
    await session.execute(
        update(table_of(BankLine)).where(table_of(BankLine).c.id == line_id).values(**values)
    )


async def line_for_update(session: AsyncSession, line_id: uuid.UUID) -> BankLine | None:
    stmt = select(BankLine).where(col(BankLine.id) == line_id).with_for_update()
    return (await session.scalars(stmt)).first()


async def lines_of(session: AsyncSession, statement_id: uuid.UUID) -> Sequence[BankLine]:
    stmt = select(BankLine).where(col(BankLine.statement_id) == statement_id).order_by(col(BankLine.position))
    return (await session.scalars(stmt)).all()


async def list_lines(
    session: AsyncSession, status: str | None, limit: int, statement_id: uuid.UUID | None = None
) -> Sequence[BankLine]:
    stmt = select(BankLine)
    if status:
        stmt = stmt.where(col(BankLine.status) == status)
    if statement_id:
        stmt = stmt.where(col(BankLine.statement_id) == statement_id)
    stmt = stmt.order_by(col(BankLine.created_at), col(BankLine.position)).limit(limit)
    return (await session.scalars(stmt)).all()


async def external_ids(
    session: AsyncSession, debtor_ids: Sequence[uuid.UUID], invoice_ids: Sequence[uuid.UUID]
) -> tuple[dict[uuid.UUID, str], dict[uuid.UUID, str]]:
    """External ids for the views: debtor id → external id, invoice id → external id."""
    debtors: dict[uuid.UUID, str] = {}
    invoices: dict[uuid.UUID, str] = {}
    if debtor_ids:
        rows = await session.execute(
            select(col(Debtor.id), col(Debtor.external_id)).where(col(Debtor.id).in_(set(debtor_ids)))
        )
        debtors = {i: e for i, e in rows.all()}
    if invoice_ids:
        rows = await session.execute(
            select(col(Invoice.id), col(Invoice.external_id)).where(col(Invoice.id).in_(set(invoice_ids)))
        )
        invoices = {i: e for i, e in rows.all()}
    return debtors, invoices


async def learn_account(
    session: AsyncSession, *, debtor_id: uuid.UUID, iban: str, holder: str | None, source: str
) -> bool:
    """Remember (or refresh) the IBAN a debtor paid from; answers whether it was new."""
    exists = await session.execute(
        select(col(DebtorBankAccount.id)).where(
            col(DebtorBankAccount.debtor_id) == debtor_id, col(DebtorBankAccount.iban) == iban
        )
    )
    new = exists.first() is None
    now = utcnow()
    table = table_of(DebtorBankAccount)
    insert = upsert_insert(session, table).values(
        id=new_id(),
        debtor_id=debtor_id,
        iban=iban,
        holder_name=holder,
        learned_from=source,
        created_at=now,
        last_seen_at=now,
    )
    refresh: dict[str, Any] = {"last_seen_at": now}
    if holder:
        refresh["holder_name"] = holder
    await session.execute(insert.on_conflict_do_update(index_elements=["debtor_id", "iban"], set_=refresh))
    return new


async def accounts_of(session: AsyncSession, debtor_id: uuid.UUID) -> Sequence[DebtorBankAccount]:
    stmt = (
        select(DebtorBankAccount)
        .where(col(DebtorBankAccount.debtor_id) == debtor_id)
        .order_by(col(DebtorBankAccount.created_at))
    )
    return (await session.scalars(stmt)).all()
