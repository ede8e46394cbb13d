"""Deterministic bench data: debtors, invoices, and the same invoices as COPY records, API bodies and CSV."""

from __future__ import annotations

import csv
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from core.base import new_id
from core.invoices.intake import INVOICE_COLUMNS

CSV_COLUMNS = ("external_id", "debtor_external_id", "number", "issue_date", "due_date", "amount", "currency")
# The columns the intake writes, in its order (copy_records below builds tuples in this order).
COPY_COLUMNS = INVOICE_COLUMNS
FIRST_ISSUE = date(2025, 1, 1)


@dataclass(frozen=True, slots=True)
class Row:
    external_id: str
    debtor_external_id: str
    number: str
    issue_date: date
    due_date: date
    amount_minor: int
    currency: str = "EUR"

    @property
    def amount(self) -> str:
        return f"{self.amount_minor // 100}.{self.amount_minor % 100:02d}"

    def as_api(self) -> dict[str, str]:
        return {
            "external_id": self.external_id,
            "debtor_external_id": self.debtor_external_id,
            "number": self.number,
            "issue_date": self.issue_date.isoformat(),
            "due_date": self.due_date.isoformat(),
            "amount": self.amount,
            "currency": self.currency,
        }


def debtor_external_ids(count: int) -> list[str]:
    return [f"BD-{i:06d}" for i in range(1, count + 1)]


def invoices(count: int, debtors: Sequence[str]) -> list[Row]:
    """Invoice i goes to debtor i mod len(debtors); a chunk of 1,000 touches 1,000 debtors."""
    rows = []
    for i in range(count):
        issued = FIRST_ISSUE + timedelta(days=i % 365)
        rows.append(
            Row(
                external_id=f"BI-{i + 1:07d}",
                debtor_external_id=debtors[i % len(debtors)],
                number=f"2025-{i + 1:07d}",
                issue_date=issued,
                due_date=issued + timedelta(days=14 + i % 4 * 8),
                amount_minor=100 + (i * 7919) % 99_900,  # 1.00 .. 999.99
            )
        )
    return rows


def api_bodies(rows: Sequence[Row], chunk: int) -> list[bytes]:
    """POST /api/v1/invoice-batches bodies, serialised up front so that the client costs no time."""
    return [
        json.dumps({"invoices": [r.as_api() for r in rows[i : i + chunk]]}, separators=(",", ":")).encode()
        for i in range(0, len(rows), chunk)
    ]


def write_csv(rows: Sequence[Row], path: Path) -> int:
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(CSV_COLUMNS)
        writer.writerows(
            (
                r.external_id,
                r.debtor_external_id,
                r.number,
                r.issue_date.isoformat(),
                r.due_date.isoformat(),
                r.amount,
                r.currency,
            )
            for r in rows
        )
    return path.stat().st_size


def copy_records(
    rows: Sequence[Row], debtor_ids: dict[str, uuid.UUID], batch_id: uuid.UUID, now: datetime
) -> list[tuple[Any, ...]]:
    """The tuples intake._insert would COPY for these rows (UUIDv7 ids, as the application makes)."""
    return [
        (
            new_id(),
            r.external_id,
            r.number,
            debtor_ids[r.debtor_external_id],
            batch_id,
            r.issue_date,
            r.due_date,
            r.currency,
            r.amount_minor,
            None,
            "pending_approval",
            False,
            now,
            now,
        )
        for r in rows
    ]
