"""payment plans: plan policies (default seeded), plans, covered invoices, instalments, reminders

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-24
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "plan_policies",
        sa.Column("segment", sa.String(length=64), nullable=False),
        sa.Column("max_instalments", sa.Integer(), nullable=False),
        sa.Column("min_instalment_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("max_duration_days", sa.Integer(), nullable=False),
        sa.Column("down_payment_bp", sa.Integer(), nullable=False),
        sa.Column("down_payment_min_minor", sa.BigInteger(), nullable=False),
        sa.Column("interval", sa.String(length=16), nullable=False),
        sa.Column("max_total_minor", sa.BigInteger(), nullable=True),
        sa.Column("counter_range_pct", sa.Integer(), nullable=False),
        sa.Column("staff_approval", sa.Boolean(), nullable=False),
        sa.Column("reminder_days_before", sa.Integer(), nullable=False),
        sa.Column("grace_days", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("segment", name=op.f("pk_plan_policies")),
    )
    op.create_table(
        "payment_plans",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("debtor_id", sa.Uuid(), nullable=False),
        sa.Column("segment", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=24), nullable=False),
        sa.Column("outcome", sa.String(length=24), nullable=False),
        sa.Column("reason_code", sa.String(length=64), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("total_minor", sa.BigInteger(), nullable=False),
        sa.Column("down_payment_minor", sa.BigInteger(), nullable=False),
        sa.Column("instalment_count", sa.Integer(), nullable=False),
        sa.Column("interval", sa.String(length=16), nullable=False),
        sa.Column("starts_on", sa.Date(), nullable=False),
        sa.Column("reminder_days_before", sa.Integer(), nullable=False),
        sa.Column("grace_days", sa.Integer(), nullable=False),
        sa.Column(
            "schedule",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "requested",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "limits",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("created_by", sa.String(length=128), nullable=False),
        sa.Column("decided_by", sa.String(length=128), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("accepted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["debtor_id"], ["debtors.id"], name=op.f("fk_payment_plans_debtor_id_debtors")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payment_plans")),
    )
    op.create_index("ix_payment_plans_debtor_state", "payment_plans", ["debtor_id", "state"], unique=False)
    op.create_index(
        "uq_payment_plans_active_debtor",
        "payment_plans",
        ["debtor_id"],
        unique=True,
        postgresql_where=sa.text("state = 'active'"),
        sqlite_where=sa.text("state = 'active'"),
    )
    op.create_table(
        "instalment_reminders",
        sa.Column("plan_id", sa.Uuid(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("debtor_id", sa.Uuid(), nullable=False),
        sa.Column("run_id", sa.Uuid(), nullable=False),
        sa.Column("message_id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["debtor_id"], ["debtors.id"], name=op.f("fk_instalment_reminders_debtor_id_debtors")
        ),
        sa.ForeignKeyConstraint(
            ["plan_id"],
            ["payment_plans.id"],
            name=op.f("fk_instalment_reminders_plan_id_payment_plans"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("plan_id", "number", name=op.f("pk_instalment_reminders")),
    )
    op.create_index(
        op.f("ix_instalment_reminders_message_id"), "instalment_reminders", ["message_id"], unique=False
    )
    op.create_index(op.f("ix_instalment_reminders_run_id"), "instalment_reminders", ["run_id"], unique=False)
    op.create_table(
        "plan_instalments",
        sa.Column("plan_id", sa.Uuid(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("due_on", sa.Date(), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("start_minor", sa.BigInteger(), nullable=False),
        sa.Column("paid_minor", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("paid_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["plan_id"],
            ["payment_plans.id"],
            name=op.f("fk_plan_instalments_plan_id_payment_plans"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("plan_id", "number", name=op.f("pk_plan_instalments")),
    )
    op.create_index(
        "ix_plan_instalments_open_due",
        "plan_instalments",
        ["due_on"],
        unique=False,
        postgresql_where=sa.text("status = 'open'"),
        sqlite_where=sa.text("status = 'open'"),
    )
    op.create_table(
        "plan_invoices",
        sa.Column("plan_id", sa.Uuid(), nullable=False),
        sa.Column("invoice_id", sa.Uuid(), nullable=False),
        sa.Column("open_minor", sa.BigInteger(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["invoice_id"],
            ["invoices.id"],
            name=op.f("fk_plan_invoices_invoice_id_invoices"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["plan_id"],
            ["payment_plans.id"],
            name=op.f("fk_plan_invoices_plan_id_payment_plans"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("plan_id", "invoice_id", name=op.f("pk_plan_invoices")),
    )
    op.create_index(
        "ix_plan_invoices_active",
        "plan_invoices",
        ["invoice_id"],
        unique=False,
        postgresql_where=sa.text("active"),
        sqlite_where=sa.text("active"),
    )
    _seed_default_policy()


def _seed_default_policy() -> None:
    """The plan policy of every segment without its own (editable through the API)."""
    now = datetime.now(UTC)
    policies = sa.table(
        "plan_policies",
        sa.column("segment", sa.String()),
        sa.column("max_instalments", sa.Integer()),
        sa.column("min_instalment_minor", sa.BigInteger()),
        sa.column("currency", sa.String()),
        sa.column("max_duration_days", sa.Integer()),
        sa.column("down_payment_bp", sa.Integer()),
        sa.column("down_payment_min_minor", sa.BigInteger()),
        sa.column("interval", sa.String()),
        sa.column("max_total_minor", sa.BigInteger()),
        sa.column("counter_range_pct", sa.Integer()),
        sa.column("staff_approval", sa.Boolean()),
        sa.column("reminder_days_before", sa.Integer()),
        sa.column("grace_days", sa.Integer()),
        sa.column("created_at", sa.DateTime(timezone=True)),
        sa.column("updated_at", sa.DateTime(timezone=True)),
    )
    op.bulk_insert(
        policies,
        [
            {
                "segment": "default",
                "max_instalments": 6,
                "min_instalment_minor": 2500,
                "currency": "EUR",
                "max_duration_days": 186,
                "down_payment_bp": 0,
                "down_payment_min_minor": 0,
                "interval": "monthly",
                "max_total_minor": None,
                "counter_range_pct": 100,
                "staff_approval": True,
                "reminder_days_before": 3,
                "grace_days": 5,
                "created_at": now,
                "updated_at": now,
            }
        ],
    )


def downgrade() -> None:
    op.drop_index(
        "ix_plan_invoices_active",
        table_name="plan_invoices",
        postgresql_where=sa.text("active"),
        sqlite_where=sa.text("active"),
    )
    op.drop_table("plan_invoices")
    op.drop_index(
        "ix_plan_instalments_open_due",
        table_name="plan_instalments",
        postgresql_where=sa.text("status = 'open'"),
        sqlite_where=sa.text("status = 'open'"),
    )
    op.drop_table("plan_instalments")
    op.drop_index(op.f("ix_instalment_reminders_run_id"), table_name="instalment_reminders")
    op.drop_index(op.f("ix_instalment_reminders_message_id"), table_name="instalment_reminders")
    op.drop_table("instalment_reminders")
    op.drop_index(
        "uq_payment_plans_active_debtor",
        table_name="payment_plans",
        postgresql_where=sa.text("state = 'active'"),
        sqlite_where=sa.text("state = 'active'"),
    )
    op.drop_index("ix_payment_plans_debtor_state", table_name="payment_plans")
    op.drop_table("payment_plans")
    op.drop_table("plan_policies")
