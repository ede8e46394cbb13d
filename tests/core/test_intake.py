"""Invoice intake: a batch is all or nothing, duplicates and clashes are named, resubmission is idempotent."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Sequence
from datetime import date
from typing import Any

import pytest
from sqlalchemy import event, func, select, text
from sqlmodel import col

from core.bulk import COPY_THRESHOLD
from core.db import Database
from core.errors import Conflict, DomainError, InvalidInput
from core.invoices import intake
from core.invoices import service as invoices
from core.invoices.intake import BatchResult, NewInvoice
from core.invoices.models import Invoice
from core.invoices.schemas import InvoiceIn
from core.ledger.models import LedgerEntry
from tests import factories
from tests.factories import TEST_ACTOR
from tests.services import Backends

PDF = b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"


async def submit(db: Database, rows: Sequence[NewInvoice], max_items: int = 10_000) -> BatchResult:
    async with db.session_scope() as s:
        return await intake.create_batch(s, rows, actor=TEST_ACTOR, source="api", max_items=max_items)


async def refused(db: Database, rows: Sequence[NewInvoice]) -> DomainError:
    with pytest.raises(DomainError) as exc:
        await submit(db, rows)
    return exc.value


async def count(db: Database, table: str) -> int:
    async with db.sessionmaker() as s:
        return int((await s.execute(text(f"SELECT COUNT(*) FROM {table}"))).scalar_one())


async def counts(db: Database) -> dict[str, int]:
    tables = ("invoices", "invoice_batches", "invoice_documents", "ledger_entries", "audit_events")
    return {t: await count(db, t) for t in tables}


async def invoice_rows(db: Database, batch_id: uuid.UUID) -> list[Any]:
    stmt = (
        select(
            col(Invoice.external_id),
            col(Invoice.number),
            col(Invoice.status),
            col(Invoice.currency),
            col(Invoice.amount_minor),
            col(Invoice.has_document),
        )
        .where(col(Invoice.batch_id) == batch_id)
        .order_by(col(Invoice.number))
    )
    async with db.sessionmaker() as s:
        return list((await s.execute(stmt)).all())


async def booked_total(db: Database, batch_id: uuid.UUID) -> int:
    stmt = (
        select(func.sum(col(LedgerEntry.amount_minor)))
        .join(Invoice, col(Invoice.id) == col(LedgerEntry.invoice_id))
        .where(col(Invoice.batch_id) == batch_id)
    )
    async with db.sessionmaker() as s:
        return int((await s.execute(stmt)).scalar_one())


def errors_of(exc: DomainError) -> list[tuple[tuple[str | int, ...], str]]:
    return [(e.loc, e.code) for e in exc.errors]


async def test_a_batch_waits_for_approval_and_is_not_booked(db: Database) -> None:
    d1, d2 = await factories.debtor(db), await factories.debtor(db)
    rows = [
        factories.invoice_row(d1, amount_minor=12_550),
        factories.invoice_row(d1, amount_minor=450),
        factories.invoice_row(d2, amount_minor=100_000, currency="USD"),
        factories.invoice_row(d2, amount_minor=5_000, currency="JPY"),
    ]
    before = await counts(db)
    result = await submit(db, rows)

    assert result.created
    batch = result.batch
    assert (batch.status, batch.count, batch.source) == ("pending_approval", 4, "api")
    assert batch.totals == {"EUR": 13_000, "JPY": 5_000, "USD": 100_000}
    stored = await invoice_rows(db, batch.id)
    assert {r.external_id for r in stored} == {r.external_id for r in rows}
    assert {r.status for r in stored} == {"pending_approval"}
    after = await counts(db)
    assert after["invoices"] - before["invoices"] == 4
    assert after["ledger_entries"] == before["ledger_entries"]  # nothing is owed before approval

    async with db.session_scope() as s:
        await invoices.approve(s, batch.id, actor=TEST_ACTOR)
    assert {r.status for r in await invoice_rows(db, batch.id)} == {"approved"}
    assert (await counts(db))["ledger_entries"] - before["ledger_entries"] == 4


async def test_one_bad_row_and_nothing_is_inserted(db: Database) -> None:
    d = await factories.debtor(db)
    rows = [factories.invoice_row(d) for _ in range(5)]
    rows.append(factories.invoice_row("NOT-A-DEBTOR"))
    before = await counts(db)

    exc = await refused(db, rows)
    assert isinstance(exc, InvalidInput)
    assert errors_of(exc) == [(("invoices", 5, "debtor_external_id"), "unknown_debtor")]
    assert "NOT-A-DEBTOR" in exc.errors[0].message
    assert "nothing was imported" in exc.message
    assert await counts(db) == before

    # The same rows without the bad one go in as one batch.
    result = await submit(db, rows[:5])
    assert result.created and result.batch.count == 5


async def test_duplicates_inside_one_batch_are_all_reported(db: Database) -> None:
    d = await factories.debtor(db)
    a = factories.invoice_row(d)
    b = factories.invoice_row(d, external_id=a.external_id)
    c = factories.invoice_row(d, number=a.number)
    ok = factories.invoice_row(d)
    before = await counts(db)

    exc = await refused(db, [a, ok, b, c])
    assert isinstance(exc, InvalidInput)
    assert errors_of(exc) == [
        (("invoices", 2, "external_id"), "duplicate"),
        (("invoices", 3, "number"), "duplicate"),
    ]
    assert all("also invoice 0" in e.message for e in exc.errors)
    assert await counts(db) == before


async def test_every_problem_of_a_batch_is_reported_at_once(db: Database) -> None:
    d = await factories.debtor(db)
    taken = factories.invoice_row(d)
    await submit(db, [taken])
    first = factories.invoice_row(d)
    rows = [
        first,
        factories.invoice_row("GHOST"),
        factories.invoice_row(d, number=taken.number),
        factories.invoice_row(d, external_id=first.external_id),
    ]
    exc = await refused(db, rows)
    # A mix of clashes and invalid rows is invalid input, not a conflict.
    assert isinstance(exc, InvalidInput)
    assert sorted(errors_of(exc)) == sorted(
        [
            (("invoices", 3, "external_id"), "duplicate"),
            (("invoices", 1, "debtor_external_id"), "unknown_debtor"),
            (("invoices", 2, "number"), "number_taken"),
        ]
    )


async def test_a_number_taken_by_another_invoice_is_a_conflict(db: Database) -> None:
    d = await factories.debtor(db)
    existing = factories.invoice_row(d, amount_minor=7_700)
    await submit(db, [existing])
    before = await counts(db)

    clash = factories.invoice_row(d, number=existing.number)
    exc = await refused(db, [factories.invoice_row(d), clash])
    assert isinstance(exc, Conflict)
    assert errors_of(exc) == [(("invoices", 1, "number"), "number_taken")]
    assert existing.external_id in exc.errors[0].message
    assert await counts(db) == before


async def test_an_existing_invoice_sent_with_other_data_is_a_conflict(db: Database) -> None:
    d = await factories.debtor(db)
    original = factories.invoice_row(d, amount_minor=10_000)
    await submit(db, [original])
    changed = factories.invoice_row(
        d, external_id=original.external_id, number=original.number, amount_minor=10_001
    )
    exc = await refused(db, [changed])
    assert isinstance(exc, Conflict)
    assert errors_of(exc) == [(("invoices", 0, "external_id"), "exists")]


async def test_identical_resubmission_returns_the_first_batch(db: Database) -> None:
    d = await factories.debtor(db)
    rows = [factories.invoice_row(d, description="consulting"), factories.invoice_row(d, pdf=PDF)]
    first = await submit(db, rows)
    before = await counts(db)

    again = await submit(db, [factories.invoice_row(d, **_fields(r)) for r in rows])
    assert not again.created
    assert again.batch.id == first.batch.id
    assert await counts(db) == before  # not even an audit event

    async with db.session_scope() as s:
        await invoices.approve(s, first.batch.id, actor=TEST_ACTOR)
    after_approval = await counts(db)
    late = await submit(db, rows)
    assert not late.created
    assert (late.batch.id, late.batch.status) == (first.batch.id, "approved")
    assert await counts(db) == after_approval


async def test_resubmitting_a_rejected_batch_creates_a_new_one(db: Database) -> None:
    d = await factories.debtor(db)
    rows = [factories.invoice_row(d), factories.invoice_row(d)]
    first = await submit(db, rows)
    async with db.session_scope() as s:
        await invoices.reject(s, first.batch.id, actor=TEST_ACTOR, note="wrong month")
    assert await invoice_rows(db, first.batch.id) == []

    second = await submit(db, rows)
    assert second.created
    assert second.batch.id != first.batch.id


async def test_empty_and_oversized_batches_are_refused(db: Database) -> None:
    d = await factories.debtor(db)
    exc = await refused(db, [])
    assert exc.code == "empty_batch"
    with pytest.raises(InvalidInput) as too_big:
        await submit(db, [factories.invoice_row(d) for _ in range(4)], max_items=3)
    assert too_big.value.code == "batch_too_large"
    assert "at most 3" in too_big.value.message


@pytest.mark.parametrize("size", [COPY_THRESHOLD - 1, 200])
async def test_large_batches_with_documents(db: Database, backends: Backends, size: int) -> None:
    """200 rows cross the COPY threshold on PostgreSQL; one row fewer than it uses INSERT."""
    debtors = [await factories.debtor(db) for _ in range(3)]
    rows = [
        factories.invoice_row(
            debtors[i % 3], amount_minor=1_000 + i, pdf=PDF + str(i).encode() if i % 2 else None
        )
        for i in range(size)
    ]
    before = await counts(db)
    statements: list[str] = []

    def listen(_c: Any, _cur: Any, statement: str, *_: Any) -> None:
        statements.append(statement.lower())

    event.listen(db.engine.sync_engine, "before_cursor_execute", listen)
    try:
        result = await submit(db, rows)
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", listen)

    assert result.created and result.batch.count == size
    assert result.batch.totals == {"EUR": sum(r.amount_minor for r in rows)}
    after = await counts(db)
    assert after["invoices"] - before["invoices"] == size
    assert after["invoice_documents"] - before["invoice_documents"] == size // 2
    copied = backends.postgres and size >= COPY_THRESHOLD
    assert any(s.startswith("insert into invoices") for s in statements) is not copied

    stored = {r.external_id: r for r in await invoice_rows(db, result.batch.id)}
    assert all(stored[r.external_id].has_document == (r.pdf is not None) for r in rows)
    async with db.sessionmaker() as s:
        docs = (
            await s.execute(
                text(
                    "SELECT i.external_id, d.filename, d.content_type, d.content FROM invoice_documents d "
                    "JOIN invoices i ON i.id = d.invoice_id"
                )
            )
        ).all()
    by_ext = {r.external_id: r for r in rows}
    mine = [doc for doc in docs if doc.external_id in by_ext]
    assert len(mine) == size // 2
    for doc in mine:
        row = by_ext[doc.external_id]
        assert (doc.filename, doc.content_type, bytes(doc.content)) == (
            f"{row.number}.pdf",
            "application/pdf",
            row.pdf,
        )

    async with db.session_scope() as s:
        await invoices.approve(s, result.batch.id, actor=TEST_ACTOR)
    assert (await counts(db))["ledger_entries"] - before["ledger_entries"] == size
    assert await booked_total(db, result.batch.id) == result.batch.totals["EUR"]


def _fields(row: NewInvoice) -> dict[str, Any]:
    return {
        "external_id": row.external_id,
        "number": row.number,
        "issue_date": row.issue_date,
        "due_date": row.due_date,
        "currency": row.currency,
        "amount_minor": row.amount_minor,
        "description": row.description,
        "pdf": row.pdf,
    }


def test_new_invoice_from_input_decodes_amount_and_pdf() -> None:
    data = InvoiceIn(
        external_id="E-1",
        debtor_external_id="D-1",
        number="N-1",
        issue_date=date(2026, 1, 1),
        due_date=date(2026, 1, 31),
        currency="KWD",
        amount="1.5",
        pdf_base64=base64.b64encode(PDF).decode(),
    )
    row = NewInvoice.from_input(data)
    assert (row.amount_minor, row.pdf) == (1_500, PDF)
