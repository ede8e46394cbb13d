"""dunning actions keyed (due_date, invoice_id, stage_key), so that one sweep's inserts cluster;
their foreign keys dropped (the sweep and the delivery scheduler write both ids from rows they
have just read or written in the same transaction); dunning_states.debtor_id no longer indexed

The key is unique on (invoice, stage): ``due_date`` is the invoice's own due date, which never
changes (it is copied from the invoice, like ``dunning_states.due_date``), so two rows of one
(invoice, stage) would have the same due date and collide. Led by the due date, the rows a sweep
adds land in a few narrow ranges of the index (the invoices whose stages fall on that day share a
few due dates) instead of one leaf page per invoice across the whole history.

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("dunning_actions") as batch:
        batch.add_column(sa.Column("due_date", sa.Date(), nullable=True))
    op.execute(
        "UPDATE dunning_actions SET due_date ="
        " (SELECT due_date FROM dunning_states s WHERE s.invoice_id = dunning_actions.invoice_id)"
    )
    with op.batch_alter_table("dunning_actions") as batch:
        batch.drop_constraint("fk_dunning_actions_invoice_id_dunning_states", type_="foreignkey")
        batch.drop_constraint("fk_dunning_actions_message_id_messages", type_="foreignkey")
        batch.drop_constraint("pk_dunning_actions", type_="primary")
        batch.alter_column("due_date", existing_type=sa.Date(), nullable=False)
        batch.create_primary_key("pk_dunning_actions", ["due_date", "invoice_id", "stage_key"])
    # Every sweep moves its states on with a non-HOT update (next_action_on is indexed): each index
    # of dunning_states costs it one random leaf page per state. A debtor's states are reached
    # through ix_invoices_debtor_status and the states' key instead.
    op.drop_index("ix_dunning_states_debtor_id", table_name="dunning_states")


def downgrade() -> None:
    op.create_index("ix_dunning_states_debtor_id", "dunning_states", ["debtor_id"])
    with op.batch_alter_table("dunning_actions") as batch:
        batch.drop_constraint("pk_dunning_actions", type_="primary")
        batch.create_primary_key("pk_dunning_actions", ["invoice_id", "stage_key"])
        batch.drop_column("due_date")
        batch.create_foreign_key(
            "fk_dunning_actions_invoice_id_dunning_states",
            "dunning_states",
            ["invoice_id"],
            ["invoice_id"],
            ondelete="CASCADE",
        )
        batch.create_foreign_key("fk_dunning_actions_message_id_messages", "messages", ["message_id"], ["id"])
