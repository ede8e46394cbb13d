"""payments: PSP payments and the invoices they cover, webhook events, refund requests

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.create_table(
        "psp_events",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("provider", sa.String(length=16), nullable=False),
        sa.Column("resource_id", sa.String(length=64), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("outcome", sa.String(length=64), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_psp_events")),
    )
    op.create_index(
        "ix_psp_events_unprocessed",
        "psp_events",
        ["received_at"],
        unique=False,
        postgresql_where=sa.text("processed_at IS NULL"),
        sqlite_where=sa.text("processed_at IS NULL"),
    )
    op.create_index(
        "uq_psp_events_waiting",
        "psp_events",
        ["provider", "resource_id"],
        unique=True,
        postgresql_where=sa.text("claimed_at IS NULL AND processed_at IS NULL"),
        sqlite_where=sa.text("claimed_at IS NULL AND processed_at IS NULL"),
    )
    op.create_table(
        "psp_payments",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("provider", sa.String(length=16), nullable=False),
        sa.Column("provider_id", sa.String(length=64), nullable=False),
        sa.Column("debtor_id", sa.Uuid(), nullable=False),
        sa.Column("purpose", sa.String(length=16), nullable=False),
        sa.Column("scope", sa.String(length=128), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("description", sa.String(length=255), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("checkout_url", sa.String(length=1000), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("idempotency_key", sa.String(length=200), nullable=False),
        sa.Column("ledger_payment_id", sa.Uuid(), nullable=True),
        sa.Column("refunded_minor", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("charged_back_minor", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["debtor_id"], ["debtors.id"], name=op.f("fk_psp_payments_debtor_id_debtors")
        ),
        sa.ForeignKeyConstraint(
            ["ledger_payment_id"], ["payments.id"], name=op.f("fk_psp_payments_ledger_payment_id_payments")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_psp_payments")),
        sa.UniqueConstraint("provider_id", name=op.f("uq_psp_payments_provider_id")),
    )
    op.create_index(op.f("ix_psp_payments_debtor_id"), "psp_payments", ["debtor_id"], unique=False)
    op.create_index("ix_psp_payments_scope", "psp_payments", ["scope", "created_at"], unique=False)
    op.create_table(
        "psp_payment_invoices",
        sa.Column("psp_payment_id", sa.Uuid(), nullable=False),
        sa.Column("invoice_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["invoice_id"],
            ["invoices.id"],
            name=op.f("fk_psp_payment_invoices_invoice_id_invoices"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["psp_payment_id"],
            ["psp_payments.id"],
            name=op.f("fk_psp_payment_invoices_psp_payment_id_psp_payments"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("psp_payment_id", "invoice_id", name=op.f("pk_psp_payment_invoices")),
    )
    op.create_index(
        op.f("ix_psp_payment_invoices_invoice_id"), "psp_payment_invoices", ["invoice_id"], unique=False
    )
    op.create_table(
        "refund_requests",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("psp_payment_id", sa.Uuid(), nullable=False),
        sa.Column("debtor_id", sa.Uuid(), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("needs_second_approval", sa.Boolean(), nullable=False),
        sa.Column("requested_by", sa.String(length=128), nullable=False),
        sa.Column("approved_by", sa.String(length=128), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("executed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("provider_refund_id", sa.String(length=64), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["debtor_id"], ["debtors.id"], name=op.f("fk_refund_requests_debtor_id_debtors")
        ),
        sa.ForeignKeyConstraint(
            ["psp_payment_id"],
            ["psp_payments.id"],
            name=op.f("fk_refund_requests_psp_payment_id_psp_payments"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_refund_requests")),
    )
    op.create_index(
        "ix_refund_requests_month", "refund_requests", ["created_at", "requested_by"], unique=False
    )
    op.create_index(
        op.f("ix_refund_requests_psp_payment_id"), "refund_requests", ["psp_payment_id"], unique=False
    )


def downgrade() -> None:

    op.drop_index(op.f("ix_refund_requests_psp_payment_id"), table_name="refund_requests")
    op.drop_index("ix_refund_requests_month", table_name="refund_requests")
    op.drop_table("refund_requests")
    op.drop_index(op.f("ix_psp_payment_invoices_invoice_id"), table_name="psp_payment_invoices")
    op.drop_table("psp_payment_invoices")
    op.drop_index("ix_psp_payments_scope", table_name="psp_payments")
    op.drop_index(op.f("ix_psp_payments_debtor_id"), table_name="psp_payments")
    op.drop_table("psp_payments")
    op.drop_index(
        "uq_psp_events_waiting",
        table_name="psp_events",
        postgresql_where=sa.text("claimed_at IS NULL AND processed_at IS NULL"),
        sqlite_where=sa.text("claimed_at IS NULL AND processed_at IS NULL"),
    )
    op.drop_index(
        "ix_psp_events_unprocessed",
        table_name="psp_events",
        postgresql_where=sa.text("processed_at IS NULL"),
        sqlite_where=sa.text("processed_at IS NULL"),
    )
    op.drop_table("psp_events")
