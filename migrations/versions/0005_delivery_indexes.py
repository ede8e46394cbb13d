"""delivery indexes

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(op.f("ix_dunning_actions_message_id"), "dunning_actions", ["message_id"], unique=False)
    op.create_index(
        "ix_messages_leases",
        "messages",
        ["updated_at"],
        unique=False,
        postgresql_where=sa.text("status = 'sending'"),
        sqlite_where=sa.text("status = 'sending'"),
    )
    op.create_index("ix_messages_provider", "messages", ["channel", "provider_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_messages_provider", table_name="messages")
    op.drop_index(
        "ix_messages_leases",
        table_name="messages",
        postgresql_where=sa.text("status = 'sending'"),
        sqlite_where=sa.text("status = 'sending'"),
    )
    op.drop_index(op.f("ix_dunning_actions_message_id"), table_name="dunning_actions")
