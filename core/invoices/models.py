"""Invoices, their batches and documents."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import BigInteger, Column, Index, LargeBinary
from sqlmodel import Field, SQLModel

from core.base import JSONType, UTCDateTime, created_field, id_field


class BatchStatus(StrEnum):
    pending_approval = "pending_approval"
    approved = "approved"
    rejected = "rejected"


class InvoiceStatus(StrEnum):
    pending_approval = "pending_approval"  # in a batch nobody approved yet: sent to nobody
    approved = "approved"  # booked on the ledger, waiting for delivery
    open = "open"  # delivered to the debtor
    paid = "paid"
    written_off = "written_off"
    with_agency = "with_agency"
    rejected = "rejected"  # its batch was rejected; never booked


# Invoices whose ledger entries count towards what a debtor owes.
BOOKED_STATUSES = (
    InvoiceStatus.approved,
    InvoiceStatus.open,
    InvoiceStatus.paid,
    InvoiceStatus.written_off,
    InvoiceStatus.with_agency,
)
PAYABLE_STATUSES = (InvoiceStatus.approved, InvoiceStatus.open, InvoiceStatus.with_agency)


class InvoiceBatch(SQLModel, table=True):
    __tablename__ = "invoice_batches"

    id: uuid.UUID = id_field()
    status: str = Field(default=BatchStatus.pending_approval, max_length=32, nullable=False)
    source: str = Field(default="api", max_length=32, nullable=False)
    count: int = Field(default=0, nullable=False)
    totals: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSONType, nullable=False))
    created_by: str = Field(max_length=128, nullable=False)
    created_at: datetime = created_field()
    decided_by: str | None = Field(default=None, max_length=128)
    decided_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    decision_note: str | None = Field(default=None, max_length=500)

    __table_args__ = (Index("ix_invoice_batches_status", "status"),)


class Invoice(SQLModel, table=True):
    __tablename__ = "invoices"

    id: uuid.UUID = id_field()
    external_id: str = Field(max_length=128, unique=True, nullable=False)
    number: str = Field(max_length=64, unique=True, nullable=False)
    # Indexed by ix_invoices_debtor_status, whose first column it is.
    debtor_id: uuid.UUID = Field(foreign_key="debtors.id", nullable=False)
    batch_id: uuid.UUID | None = Field(default=None, foreign_key="invoice_batches.id", index=True)
    issue_date: date = Field(nullable=False)
    due_date: date = Field(nullable=False)
    currency: str = Field(max_length=3, nullable=False)
    amount_minor: int = Field(sa_column=Column(BigInteger, nullable=False))
    description: str | None = Field(default=None, max_length=1000)
    status: str = Field(default=InvoiceStatus.pending_approval, max_length=32, nullable=False)
    has_document: bool = Field(default=False, nullable=False)
    created_at: datetime = created_field()
    updated_at: datetime = created_field()

    __table_args__ = (Index("ix_invoices_debtor_status", "debtor_id", "status"),)


class InvoiceDocument(SQLModel, table=True):
    """The PDF, kept apart so that invoice rows stay slim."""

    __tablename__ = "invoice_documents"

    invoice_id: uuid.UUID = Field(foreign_key="invoices.id", primary_key=True, ondelete="CASCADE")
    filename: str = Field(max_length=255, nullable=False)
    content_type: str = Field(default="application/pdf", max_length=64, nullable=False)
    content: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    created_at: datetime = created_field()
