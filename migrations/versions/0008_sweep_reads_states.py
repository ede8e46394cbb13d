"""the sweep reads dunning states only: the invoice's due date, currency, external id and number
copied onto the state, actions keyed to states
(their debtor key was redundant with the state's)

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("dunning_states") as batch:
        batch.add_column(sa.Column("due_date", sa.Date(), nullable=True))
        batch.add_column(sa.Column("currency", sa.String(length=3), nullable=True))
        batch.add_column(sa.Column("invoice_external_id", sa.String(length=128), nullable=True))
        batch.add_column(sa.Column("invoice_number", sa.String(length=64), nullable=True))
    for column, source in (
        ("due_date", "due_date"),
        ("currency", "currency"),
        ("invoice_external_id", "external_id"),
        ("invoice_number", "number"),
    ):
        op.execute(
            f"UPDATE dunning_states SET {column} ="  # noqa: S608 (fixed names)
            f" (SELECT {source} FROM invoices WHERE invoices.id = dunning_states.invoice_id)"
        )
    # An invoice that is no longer open has nothing due (lifecycle.py keeps this so from now on).
    op.execute(
        "UPDATE dunning_states SET next_action_on = NULL WHERE invoice_id IN"
        " (SELECT id FROM invoices WHERE status NOT IN ('approved', 'open'))"
    )
    with op.batch_alter_table("dunning_states") as batch:
        batch.alter_column("due_date", existing_type=sa.Date(), nullable=False)
        batch.alter_column("currency", existing_type=sa.String(length=3), nullable=False)
        batch.alter_column("invoice_external_id", existing_type=sa.String(length=128), nullable=False)
        batch.alter_column("invoice_number", existing_type=sa.String(length=64), nullable=False)
    with op.batch_alter_table("dunning_actions") as batch:
        batch.drop_constraint("fk_dunning_actions_invoice_id_invoices", type_="foreignkey")
        batch.drop_constraint("fk_dunning_actions_debtor_id_debtors", type_="foreignkey")
        batch.create_foreign_key(
            "fk_dunning_actions_invoice_id_dunning_states",
            "dunning_states",
            ["invoice_id"],
            ["invoice_id"],
            ondelete="CASCADE",
        )


def downgrade() -> None:
    with op.batch_alter_table("dunning_actions") as batch:
        batch.drop_constraint("fk_dunning_actions_invoice_id_dunning_states", type_="foreignkey")
        batch.create_foreign_key("fk_dunning_actions_debtor_id_debtors", "debtors", ["debtor_id"], ["id"])
        batch.create_foreign_key(
            "fk_dunning_actions_invoice_id_invoices", "invoices", ["invoice_id"], ["id"], ondelete="CASCADE"
        )
    with op.batch_alter_table("dunning_states") as batch:
        batch.drop_column("invoice_number")
        batch.drop_column("invoice_external_id")
        batch.drop_column("currency")
        batch.drop_column("due_date")
