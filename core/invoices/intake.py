"""Invoice intake: a batch of new invoices, all or nothing, from the API or a CSV file.

The checks are set-based: one query for the debtors, one for clashing invoices, then bulk inserts.
Sending the same batch again is idempotent: if every invoice already exists unchanged in one batch,
that batch is returned and nothing is written.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from core import audit
from core.audit import Actor
from core.base import new_id, table_of, utcnow
from core.bulk import copy_records
from core.debtors import repository as debtor_repo
from core.errors import Conflict, FieldError, InvalidInput
from core.invoices import repository as repo
from core.invoices.models import Invoice, InvoiceBatch, InvoiceDocument, InvoiceStatus
from core.invoices.schemas import InvoiceIn
from core.money import parse_minor


@dataclass(slots=True)
class NewInvoice:
    """A validated invoice row, slim enough to hold a million of them."""

    external_id: str
    debtor_external_id: str
    number: str
    issue_date: date
    due_date: date
    currency: str
    amount_minor: int
    description: str | None = None
    pdf: bytes | None = None

    @classmethod
    def from_input(cls, data: InvoiceIn) -> NewInvoice:
        return cls(
            external_id=data.external_id,
            debtor_external_id=data.debtor_external_id,
            number=data.number,
            issue_date=data.issue_date,
            due_date=data.due_date,
            currency=data.currency,
            amount_minor=parse_minor(data.amount, data.currency),
            description=data.description,
            pdf=base64.b64decode(data.pdf_base64) if data.pdf_base64 else None,
        )

    def same_as(self, row: Any, debtor_id: uuid.UUID | None) -> bool:
        return (
            row.external_id == self.external_id
            and row.number == self.number
            and row.debtor_id == debtor_id
            and row.issue_date == self.issue_date
            and row.due_date == self.due_date
            and row.currency == self.currency
            and row.amount_minor == self.amount_minor
            and (row.description or None) == (self.description or None)
        )


@dataclass
class BatchResult:
    batch: InvoiceBatch
    created: bool


def _loc(i: int, field: str) -> tuple[str | int, ...]:
    return ("invoices", i, field)


async def create_batch(
    session: AsyncSession,
    items: Sequence[NewInvoice],
    *,
    actor: Actor,
    source: str,
    max_items: int,
) -> BatchResult:
    if not items:
        raise InvalidInput(
            "a batch needs at least one invoice",
            "empty_batch",
            [FieldError(("invoices",), "the batch is empty", "empty")],
        )
    if len(items) > max_items:
        raise InvalidInput(
            f"a batch holds at most {max_items} invoices; this one has {len(items)}",
            "batch_too_large",
            [FieldError(("invoices",), f"at most {max_items} invoices per batch", "too_many")],
        )

    errors: list[FieldError] = []
    seen_ext: dict[str, int] = {}
    seen_num: dict[str, int] = {}
    for i, item in enumerate(items):
        if (j := seen_ext.setdefault(item.external_id, i)) != i:
            errors.append(
                FieldError(
                    _loc(i, "external_id"), f"appears twice in this batch (also invoice {j})", "duplicate"
                )
            )
        if (j := seen_num.setdefault(item.number, i)) != i:
            errors.append(
                FieldError(_loc(i, "number"), f"appears twice in this batch (also invoice {j})", "duplicate")
            )

    debtor_ids = await debtor_repo.ids_by_external_id(session, (it.debtor_external_id for it in items))
    for i, item in enumerate(items):
        if item.debtor_external_id not in debtor_ids:
            errors.append(
                FieldError(
                    _loc(i, "debtor_external_id"),
                    f"unknown debtor {item.debtor_external_id!r}",
                    "unknown_debtor",
                )
            )

    existing = await repo.existing_by_keys(session, list(seen_ext), list(seen_num))
    if existing and not errors:
        replay = await _replay(session, items, existing, debtor_ids)
        if replay is not None:
            return BatchResult(replay, created=False)

    by_ext = {row.external_id: row for row in existing}
    by_num = {row.number: row for row in existing}
    conflicts = 0
    for i, item in enumerate(items):
        if (row := by_ext.get(item.external_id)) is not None:
            conflicts += 1
            errors.append(
                FieldError(
                    _loc(i, "external_id"),
                    f"invoice {item.external_id!r} already exists (number {row.number})",
                    "exists",
                )
            )
        elif (row := by_num.get(item.number)) is not None:
            conflicts += 1
            errors.append(
                FieldError(
                    _loc(i, "number"),
                    f"invoice number {item.number!r} already belongs to invoice {row.external_id!r}",
                    "number_taken",
                )
            )
    if errors:
        cls = Conflict if conflicts == len(errors) else InvalidInput
        raise cls(
            f"the batch was refused: {len(errors)} problem(s); nothing was imported", "batch_refused", errors
        )

    return BatchResult(await _insert(session, items, debtor_ids, actor=actor, source=source), created=True)


async def _replay(
    session: AsyncSession,
    items: Sequence[NewInvoice],
    existing: Sequence[Any],
    debtor_ids: dict[str, uuid.UUID],
) -> InvoiceBatch | None:
    if len(existing) != len(items):
        return None
    by_ext = {row.external_id: row for row in existing}
    batch_ids = {row.batch_id for row in existing}
    if len(batch_ids) != 1:
        return None
    for item in items:
        row = by_ext.get(item.external_id)
        if row is None or not item.same_as(row, debtor_ids.get(item.debtor_external_id)):
            return None
    (batch_id,) = batch_ids
    return await repo.get_batch(session, batch_id) if batch_id else None


async def _insert(
    session: AsyncSession,
    items: Sequence[NewInvoice],
    debtor_ids: dict[str, uuid.UUID],
    *,
    actor: Actor,
    source: str,
) -> InvoiceBatch:
    now = utcnow()
    totals: dict[str, int] = {}
    for item in items:
        totals[item.currency] = totals.get(item.currency, 0) + item.amount_minor
    batch = InvoiceBatch(
        source=source,
        count=len(items),
        totals={k: totals[k] for k in sorted(totals)},
        created_by=actor.label,
        created_at=now,
    )
    session.add(batch)
    await session.flush()

    await audit.record(
        session,
        actor,
        "batch.created",
        "invoice_batch",
        batch.id,
        after={"status": batch.status, "count": batch.count, "totals": batch.totals, "source": source},
    )
    # In slices, so that memory stays flat however large the batch (a CSV may hold a million rows).
    for start in range(0, len(items), INSERT_SLICE):
        await _insert_slice(session, items[start : start + INSERT_SLICE], debtor_ids, batch.id, actor, now)
    return batch


INSERT_SLICE = 10_000
INVOICE_COLUMNS = (
    "id",
    "external_id",
    "number",
    "debtor_id",
    "batch_id",
    "issue_date",
    "due_date",
    "currency",
    "amount_minor",
    "description",
    "status",
    "has_document",
    "created_at",
    "updated_at",
)
DOCUMENT_COLUMNS = ("invoice_id", "filename", "content_type", "content", "created_at")


async def _insert_slice(
    session: AsyncSession,
    items: Sequence[NewInvoice],
    debtor_ids: dict[str, uuid.UUID],
    batch_id: uuid.UUID,
    actor: Actor,
    now: datetime,
) -> None:
    pending = InvoiceStatus.pending_approval.value
    ids = [new_id() for _ in items]
    records = [
        (
            invoice_id,
            it.external_id,
            it.number,
            debtor_ids[it.debtor_external_id],
            batch_id,
            it.issue_date,
            it.due_date,
            it.currency,
            it.amount_minor,
            it.description,
            pending,
            it.pdf is not None,
            now,
            now,
        )
        for invoice_id, it in zip(ids, items, strict=True)
    ]
    docs = [
        (invoice_id, f"{it.number}.pdf", "application/pdf", it.pdf, now)
        for invoice_id, it in zip(ids, items, strict=True)
        if it.pdf is not None
    ]
    await copy_records(session, table_of(Invoice), INVOICE_COLUMNS, records)
    await copy_records(session, table_of(InvoiceDocument), DOCUMENT_COLUMNS, docs)
    batch_ref = str(batch_id)
    await audit.record_many(
        session,
        actor,
        "invoice.created",
        "invoice",
        (
            (
                it.external_id,
                None,
                {
                    "status": pending,
                    "batch_id": batch_ref,
                    "number": it.number,
                    "amount_minor": it.amount_minor,
                    "currency": it.currency,
                },
            )
            for it in items
        ),
    )
