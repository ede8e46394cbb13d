"""RF creditor references: valid ISO 11649, stable per invoice and per debtor, resolvable from a bank line."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import select
from sqlmodel import col

from core.db import Database
from core.debtors.models import Debtor
from core.invoices.models import Invoice
from core.payments import reference
from tests import factories


def test_reference_matches_the_iso_11649_example() -> None:
    assert reference.make_reference("539007547034") == "RF18539007547034"
    assert reference.printable("RF18539007547034") == "RF18 5390 0754 7034"


@pytest.mark.parametrize("bad", ["", "x" * 22, "AB-12"])
def test_a_bad_body_is_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        reference.make_reference(bad)


def test_typed_references_are_forgiven_spaces_and_case_but_not_wrong_digits() -> None:
    assert reference.normalize("rf18 5390 0754 7034") == "RF18539007547034"
    assert reference.normalize("RF19539007547034") is None
    assert reference.normalize("invoice 2026-001") is None


async def _ids(db: Database, invoice_external_id: str) -> tuple[object, object]:
    async with db.session_scope() as s:
        row = (
            await s.execute(
                select(col(Invoice.id), col(Invoice.debtor_id)).where(
                    col(Invoice.external_id) == invoice_external_id
                )
            )
        ).one()
    return row[0], row[1]


async def test_each_invoice_and_each_debtor_keeps_one_reference(db: Database) -> None:
    debtor = await factories.debtor(db)
    first = await factories.invoice(db, debtor)
    second = await factories.invoice(db, debtor)
    (inv1, debtor_id), (inv2, _) = await _ids(db, first), await _ids(db, second)
    async with db.session_scope() as s:
        r1 = await reference.for_invoice(s, invoice_id=inv1, debtor_id=debtor_id)  # type: ignore[arg-type]
        again = await reference.for_invoice(s, invoice_id=inv1, debtor_id=debtor_id)  # type: ignore[arg-type]
        r2 = await reference.for_invoice(s, invoice_id=inv2, debtor_id=debtor_id)  # type: ignore[arg-type]
        group = await reference.for_debtor(s, debtor_id=debtor_id)  # type: ignore[arg-type]
        assert await reference.for_debtor(s, debtor_id=debtor_id) == group  # type: ignore[arg-type]
        found = await reference.resolve(s, reference.printable(r2).lower())
        grouped = await reference.resolve(s, group)
        assert await reference.resolve(s, "RF18539007547034") is None
    assert r1 == again and len({r1, r2, group}) == 3
    assert all(reference.normalize(r) == r for r in (r1, r2, group))
    assert found is not None and found.invoice_id == inv2
    assert grouped is not None and grouped.invoice_id is None and grouped.debtor_id == debtor_id


async def test_two_workers_asking_at_once_get_the_same_reference(committed: Database) -> None:
    debtor = await factories.debtor(committed)
    async with committed.session_scope() as s:
        debtor_id = (
            await s.execute(select(col(Debtor.id)).where(col(Debtor.external_id) == debtor))
        ).scalar_one()

    async def ask() -> str:
        async with committed.session_scope() as s:
            return await reference.for_debtor(s, debtor_id=debtor_id)

    first, second = await asyncio.gather(ask(), ask())
    assert first == second
