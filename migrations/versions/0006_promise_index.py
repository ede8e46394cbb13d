"""promise index

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_dunning_states_promises",
        "dunning_states",
        ["promise_date"],
        unique=False,
        postgresql_where=sa.text("promise_date IS NOT NULL"),
        sqlite_where=sa.text("promise_date IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index(
        "ix_dunning_states_promises",
        table_name="dunning_states",
        postgresql_where=sa.text("promise_date IS NOT NULL"),
        sqlite_where=sa.text("promise_date IS NOT NULL"),
    )
