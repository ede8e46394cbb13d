"""Imported bank statements, their lines, and the IBANs learned per debtor."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import BigInteger, Column, Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from core.base import JSONType, UTCDateTime, created_field, id_field


class LineStatus(StrEnum):
    matched = "matched"  # posted to the ledger by a matching rule
    assigned = "assigned"  # posted by hand from the to-be-processed queue
    unmatched = "unmatched"  # to be processed: no rule matched, or more than one candidate
    ignored = "ignored"  # not a payment to us: debits, reversals, unbooked entries


class MatchRule(StrEnum):
    rf_reference = "rf_reference"
    invoice_number = "invoice_number"
    learned_iban = "learned_iban"
    manual = "manual"


class BankStatement(SQLModel, table=True):
    """One imported file. The SHA-256 of its bytes is unique: the same file imports once."""

    __tablename__ = "bank_statements"

    id: uuid.UUID = id_field()
    format: str = Field(max_length=16, nullable=False)  # camt.053 | mt940
    account_iban: str | None = Field(default=None, max_length=34)
    statement_ref: str = Field(max_length=255, nullable=False)
    content_sha256: str = Field(max_length=64, unique=True, nullable=False)
    filename: str | None = Field(default=None, max_length=255)
    line_count: int = Field(default=0, nullable=False)
    imported_by: str = Field(max_length=128, nullable=False)
    imported_at: datetime = created_field()


class BankLine(SQLModel, table=True):
    """One entry of a statement. ``line_key`` is unique: a transaction is stored (and posted) once."""

    __tablename__ = "bank_lines"

    id: uuid.UUID = id_field()
    statement_id: uuid.UUID = Field(foreign_key="bank_statements.id", nullable=False, index=True)
    position: int = Field(nullable=False)  # 1-based order in the file
    source_line: int | None = Field(default=None)  # line in the file where the entry starts
    line_key: str = Field(max_length=64, unique=True, nullable=False)
    account_iban: str | None = Field(default=None, max_length=34)
    bank_reference: str | None = Field(default=None, max_length=64)
    booking_date: date = Field(nullable=False)
    value_date: date | None = Field(default=None)
    credit: bool = Field(nullable=False)
    amount_minor: int = Field(sa_column=Column(BigInteger, nullable=False))  # unsigned
    currency: str = Field(max_length=3, nullable=False)
    counterparty_iban: str | None = Field(default=None, max_length=34)
    counterparty_name: str | None = Field(default=None, max_length=140)
    reference: str | None = Field(default=None, max_length=140)  # structured ref / EndToEndId
    remittance: str | None = Field(default=None, max_length=1000)
    status: str = Field(max_length=16, nullable=False)
    reason: str | None = Field(default=None, max_length=64)
    rule: str | None = Field(default=None, max_length=32)
    candidates: list[dict[str, Any]] | None = Field(default=None, sa_column=Column(JSONType, nullable=True))
    debtor_id: uuid.UUID | None = Field(default=None, foreign_key="debtors.id")
    invoice_id: uuid.UUID | None = Field(default=None, foreign_key="invoices.id")
    payment_id: uuid.UUID | None = Field(default=None, foreign_key="payments.id")
    created_at: datetime = created_field()
    resolved_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    resolved_by: str | None = Field(default=None, max_length=128)

    __table_args__ = (Index("ix_bank_lines_status_created", "status", "created_at"),)


class DebtorBankAccount(SQLModel, table=True):
    """An IBAN a debtor paid from, learned from a matched or assigned line."""

    __tablename__ = "debtor_bank_accounts"

    id: uuid.UUID = id_field()
    debtor_id: uuid.UUID = Field(foreign_key="debtors.id", nullable=False, ondelete="CASCADE")
    iban: str = Field(max_length=34, nullable=False, index=True)
    holder_name: str | None = Field(default=None, max_length=140)
    learned_from: str = Field(max_length=32, nullable=False)
    created_at: datetime = created_field()
    last_seen_at: datetime = created_field()

    __table_args__ = (UniqueConstraint("debtor_id", "iban", name="uq_debtor_bank_accounts_debtor_iban"),)
