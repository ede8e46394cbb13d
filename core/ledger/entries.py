"""Ledger entries: the one way rows get into the append-only ledger."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import date
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from core.base import new_id, table_of, utcnow
from core.bulk import insert_rows
from core.ledger.models import SIGN, EntryKind, LedgerEntry


def entry_row(
    *,
    kind: EntryKind,
    debtor_id: uuid.UUID,
    amount_minor: int,
    currency: str,
    effective_date: date,
    created_by: str,
    invoice_id: uuid.UUID | None = None,
    payment_id: uuid.UUID | None = None,
    credit_note_id: uuid.UUID | None = None,
    description: str | None = None,
) -> dict[str, Any]:
    """A ledger row; ``amount_minor`` is the positive size, the kind gives the sign."""
    if amount_minor < 0:
        raise ValueError("pass the unsigned amount; the entry kind carries the sign")
    return {
        "id": new_id(),
        "debtor_id": debtor_id,
        "invoice_id": invoice_id,
        "payment_id": payment_id,
        "credit_note_id": credit_note_id,
        "kind": kind.value,
        "amount_minor": SIGN[kind] * amount_minor,
        "currency": currency,
        "effective_date": effective_date,
        "description": description,
        "created_by": created_by,
        "created_at": utcnow(),
    }


async def post(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> int:
    """Append entries. There is no update and no delete: corrections are new entries."""
    return await insert_rows(session, table_of(LedgerEntry), rows)
