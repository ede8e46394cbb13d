"""Payment references: the ISO 11649 RF creditor references printed on pay options.

One reference per invoice, and one per debtor for a grouped payment of all their open invoices.
Bank statement matching resolves a reference back to its invoice or debtor through this table.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import BigInteger, Column, Index, Text, text
from sqlmodel import Field, SQLModel

from core.base import UTCDateTime, created_field, id_field


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


# --------------------------------------------------------------------------- PSP payments and events


class PaymentPurpose(StrEnum):
    invoice = "invoice"  # one invoice
    debtor = "debtor"  # all of a debtor's open invoices in one currency, together
    instalment = "instalment"  # an instalment of a payment plan (generic: amount + metadata)
    request = "request"  # a personal payment request from staff or the API
    adhoc = "adhoc"


# Statuses after which Mollie never moves a payment on (refunds and chargebacks aside).
FINAL_STATUSES = frozenset({"paid", "canceled", "expired", "failed"})


class PspPayment(SQLModel, table=True):
    """A payment at the PSP, as we last learned it. ``refunded_minor`` and ``charged_back_minor``
    are what the ledger already holds of the PSP's refunds and chargebacks: each new report posts
    only the difference, so nothing is posted twice."""

    __tablename__ = "psp_payments"

    id: uuid.UUID = id_field()
    provider: str = Field(default="mollie", max_length=16, nullable=False)
    provider_id: str = Field(max_length=64, unique=True, nullable=False)
    debtor_id: uuid.UUID = Field(foreign_key="debtors.id", nullable=False, index=True)
    purpose: str = Field(max_length=16, nullable=False)
    scope: str = Field(max_length=128, nullable=False)  # "invoice:<id>", "debtor:<id>:EUR", …
    amount_minor: int = Field(sa_column=Column(BigInteger, nullable=False))
    currency: str = Field(max_length=3, nullable=False)
    description: str = Field(max_length=255, nullable=False)
    status: str = Field(default="open", max_length=16, nullable=False)
    checkout_url: str | None = Field(default=None, max_length=1000)
    expires_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    idempotency_key: str = Field(max_length=200, nullable=False)
    ledger_payment_id: uuid.UUID | None = Field(default=None, foreign_key="payments.id")
    refunded_minor: int = Field(default=0, sa_column=Column(BigInteger, nullable=False, server_default="0"))
    charged_back_minor: int = Field(
        default=0, sa_column=Column(BigInteger, nullable=False, server_default="0")
    )
    created_by: str = Field(max_length=128, nullable=False)
    created_at: datetime = created_field()
    updated_at: datetime = created_field()

    __table_args__ = (Index("ix_psp_payments_scope", "scope", "created_at"),)


# A payment the debtor has started and the PSP has not settled yet: dunning holds its invoices.
PENDING_STATUSES = ("pending", "authorized")


class PspPaymentInvoice(SQLModel, table=True):
    """The invoices a PSP payment covers (one, or all of a debtor's open ones)."""

    __tablename__ = "psp_payment_invoices"

    psp_payment_id: uuid.UUID = Field(foreign_key="psp_payments.id", primary_key=True, ondelete="CASCADE")
    invoice_id: uuid.UUID = Field(foreign_key="invoices.id", primary_key=True, index=True, ondelete="CASCADE")


class PspEvent(SQLModel, table=True):
    """A webhook call, stored before it is processed. At most one waiting (unclaimed) event per
    payment: five identical webhooks make one row, and the worker fetches the payment once."""

    __tablename__ = "psp_events"

    id: uuid.UUID = id_field()
    provider: str = Field(max_length=16, nullable=False)
    resource_id: str = Field(max_length=64, nullable=False)
    received_at: datetime = created_field()
    claimed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    processed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    attempts: int = Field(default=0, nullable=False)
    outcome: str | None = Field(default=None, max_length=64)
    error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))

    __table_args__ = (
        Index(
            "uq_psp_events_waiting",
            "provider",
            "resource_id",
            unique=True,
            postgresql_where=text("claimed_at IS NULL AND processed_at IS NULL"),
            sqlite_where=text("claimed_at IS NULL AND processed_at IS NULL"),
        ),
        Index(
            "ix_psp_events_unprocessed",
            "received_at",
            postgresql_where=text("processed_at IS NULL"),
            sqlite_where=text("processed_at IS NULL"),
        ),
    )


# --------------------------------------------------------------------------- refunds


class RefundStatus(StrEnum):
    requested = "requested"  # waits for a second approver
    approved = "approved"  # to be executed at the PSP
    executed = "executed"
    declined = "declined"
    failed = "failed"


class RefundRequest(SQLModel, table=True):
    __tablename__ = "refund_requests"

    id: uuid.UUID = id_field()
    psp_payment_id: uuid.UUID = Field(foreign_key="psp_payments.id", nullable=False, index=True)
    debtor_id: uuid.UUID = Field(foreign_key="debtors.id", nullable=False)
    amount_minor: int = Field(sa_column=Column(BigInteger, nullable=False))
    currency: str = Field(max_length=3, nullable=False)
    reason: str = Field(max_length=500, nullable=False)
    status: str = Field(default=RefundStatus.requested, max_length=16, nullable=False)
    needs_second_approval: bool = Field(default=False, nullable=False)
    requested_by: str = Field(max_length=128, nullable=False)  # an actor label: "staff:U123"
    approved_by: str | None = Field(default=None, max_length=128)
    decided_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    executed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    provider_refund_id: str | None = Field(default=None, max_length=64)
    error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    created_at: datetime = created_field()
    updated_at: datetime = created_field()

    __table_args__ = (Index("ix_refund_requests_month", "created_at", "requested_by"),)
