"""The append-only ledger, payments and credit notes."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import BigInteger, Column, Index
from sqlmodel import Field, SQLModel

from core.base import UTCDateTime, created_field, id_field


class EntryKind(StrEnum):
    invoice = "invoice"
    payment = "payment"
    credit_note = "credit_note"
    fee = "fee"
    interest = "interest"
    refund = "refund"
    write_off = "write_off"
    agency_payment = "agency_payment"


# The sign each kind carries: positive raises what the debtor owes.
SIGN: dict[EntryKind, int] = {
    EntryKind.invoice: 1,
    EntryKind.fee: 1,
    EntryKind.interest: 1,
    EntryKind.refund: 1,
    EntryKind.payment: -1,
    EntryKind.credit_note: -1,
    EntryKind.write_off: -1,
    EntryKind.agency_payment: -1,
}


class LedgerEntry(SQLModel, table=True):
    """Never updated, never deleted. Balances are sums of these rows."""

    __tablename__ = "ledger_entries"

    id: uuid.UUID = id_field()
    debtor_id: uuid.UUID = Field(foreign_key="debtors.id", nullable=False)
    invoice_id: uuid.UUID | None = Field(default=None, foreign_key="invoices.id")
    payment_id: uuid.UUID | None = Field(default=None, foreign_key="payments.id")
    credit_note_id: uuid.UUID | None = Field(default=None, foreign_key="credit_notes.id")
    kind: str = Field(max_length=32, nullable=False)
    amount_minor: int = Field(sa_column=Column(BigInteger, nullable=False))  # signed
    currency: str = Field(max_length=3, nullable=False)
    effective_date: date = Field(nullable=False)
    description: str | None = Field(default=None, max_length=500)
    created_by: str = Field(max_length=128, nullable=False)
    created_at: datetime = created_field()

    __table_args__ = (
        Index("ix_ledger_entries_debtor_currency", "debtor_id", "currency"),
        Index("ix_ledger_entries_invoice", "invoice_id"),
        Index("ix_ledger_entries_payment", "payment_id"),
    )


class Payment(SQLModel, table=True):
    __tablename__ = "payments"

    id: uuid.UUID = id_field()
    debtor_id: uuid.UUID = Field(foreign_key="debtors.id", nullable=False, index=True)
    amount_minor: int = Field(sa_column=Column(BigInteger, nullable=False))
    currency: str = Field(max_length=3, nullable=False)
    method: str = Field(default="manual", max_length=32, nullable=False)
    reference: str | None = Field(default=None, max_length=255)
    received_on: date = Field(nullable=False)
    created_by: str = Field(max_length=128, nullable=False)
    created_at: datetime = created_field()


class CreditNote(SQLModel, table=True):
    __tablename__ = "credit_notes"

    id: uuid.UUID = id_field()
    number: str = Field(max_length=64, unique=True, nullable=False)
    invoice_id: uuid.UUID = Field(foreign_key="invoices.id", nullable=False, index=True)
    debtor_id: uuid.UUID = Field(foreign_key="debtors.id", nullable=False)
    amount_minor: int = Field(sa_column=Column(BigInteger, nullable=False))
    currency: str = Field(max_length=3, nullable=False)
    reason: str = Field(max_length=500, nullable=False)
    issued_on: date = Field(nullable=False)
    created_by: str = Field(max_length=128, nullable=False)
    created_at: datetime = created_field()


__all__ = ["SIGN", "CreditNote", "EntryKind", "LedgerEntry", "Payment", "UTCDateTime"]
