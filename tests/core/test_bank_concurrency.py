"""Statements imported concurrently, on separate committed connections, still post every payment once."""

from __future__ import annotations

import asyncio
from datetime import date

from sqlalchemy import func, select
from sqlmodel import col

from core.db import Database
from core.ledger.models import Payment
from core.payments.bank import service as bank
from core.payments.bank.models import BankLine, BankStatement
from tests import bank_scenario as sc
from tests.factories import TEST_ACTOR


async def _import(db: Database, data: bytes) -> bank.ImportResult:
    async with db.session_scope() as s:
        return await bank.import_statement(s, data, actor=TEST_ACTOR, today=date(2026, 11, 24))


async def _count(db: Database, model: type) -> int:
    async with db.sessionmaker() as s:
        return int((await s.execute(select(func.count()).select_from(model))).scalar_one())


async def test_one_file_uploaded_three_times_at_once_is_imported_once(committed: Database) -> None:
    await sc.build(committed)
    data = sc.read(sc.CAMT_DAY1)
    results = await asyncio.gather(*(_import(committed, data) for _ in range(3)))
    assert sorted(r.created for r in results) == [False, False, True]
    assert len({r.statement.id for r in results}) == 1
    assert (await _count(committed, BankStatement), await _count(committed, BankLine)) == (1, 7)
    assert await _count(committed, Payment) == 3


async def test_overlapping_statements_imported_at_once_post_the_shared_line_once(committed: Database) -> None:
    await sc.build(committed)
    camt, mt940 = await asyncio.gather(
        _import(committed, sc.read(sc.CAMT_DAY1)), _import(committed, sc.read(sc.MT940_DAY2))
    )
    duplicates = [d.bank_reference for d in camt.duplicates + mt940.duplicates]
    assert duplicates == ["ABNA2611230002"]
    async with committed.sessionmaker() as s:
        refs = (
            await s.execute(select(col(Payment.reference)).where(col(Payment.reference) == "ABNA2611230002"))
        ).all()
    assert len(refs) == 1
