"""Payment references: the ISO 11649 RF creditor references printed on pay options.

One reference per invoice, and one per debtor for a grouped payment of all their open invoices.
Bank statement matching resolves a reference back to its invoice or debtor through this table.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Index, text
from sqlmodel import Field, SQLModel

from core.base import created_field


class PaymentReference(SQLModel, table=True):
    __tablename__ = "payment_references"

    reference: str = Field(primary_key=True, max_length=25)  # "RF" + 2 check digits + body (≤ 21)
    debtor_id: uuid.UUID = Field(foreign_key="debtors.id", nullable=False, index=True, ondelete="CASCADE")
    invoice_id: uuid.UUID | None = Field(
        default=None, foreign_key="invoices.id", nullable=True, unique=True, ondelete="CASCADE"
    )
    created_at: datetime = created_field()

    __table_args__ = (
        # at most one grouped (debtor-wide) reference per debtor
        Index(
            "uq_payment_references_debtor_group",
            "debtor_id",
            unique=True,
            postgresql_where=text("invoice_id IS NULL"),
            sqlite_where=text("invoice_id IS NULL"),
        ),
    )
