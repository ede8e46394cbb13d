"""payment references (ISO 11649 RF, per invoice or per debtor)

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "payment_references",
        sa.Column("reference", sa.String(length=25), nullable=False),
        sa.Column("debtor_id", sa.Uuid(), nullable=False),
        sa.Column("invoice_id", sa.Uuid(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["debtor_id"], ["debtors.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["invoice_id"], ["invoices.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("reference"),
        sa.UniqueConstraint("invoice_id"),
    )
    op.create_index("ix_payment_references_debtor_id", "payment_references", ["debtor_id"], unique=False)
    op.create_index(
        "uq_payment_references_debtor_group",
        "payment_references",
        ["debtor_id"],
        unique=True,
        postgresql_where=sa.text("invoice_id IS NULL"),
        sqlite_where=sa.text("invoice_id IS NULL"),
    )


def downgrade() -> None:
    op.drop_index("uq_payment_references_debtor_group", table_name="payment_references")
    op.drop_index("ix_payment_references_debtor_id", table_name="payment_references")
    op.drop_table("payment_references")
