"""chat tone: a debtor's reminders, newest first (core/conversation/tone.py)

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-24
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_dunning_actions_debtor_created",
        "dunning_actions",
        ["debtor_id", "created_at"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_dunning_actions_debtor_created", table_name="dunning_actions")
