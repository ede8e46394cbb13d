"""dunning and outbox

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "dunning_policies",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("segment", sa.String(length=64), nullable=False),
        sa.Column("quiet_start_hour", sa.Integer(), nullable=False),
        sa.Column("quiet_end_hour", sa.Integer(), nullable=False),
        sa.Column("max_messages_per_week", sa.Integer(), nullable=False),
        sa.Column("min_gap_hours", sa.Integer(), nullable=False),
        sa.Column("interest_rate_bp", sa.Integer(), nullable=False),
        sa.Column("promise_max_days", sa.Integer(), nullable=False),
        sa.Column("promise_grace_days", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dunning_policies")),
        sa.UniqueConstraint("name", name=op.f("uq_dunning_policies_name")),
        sa.UniqueConstraint("segment", name=op.f("uq_dunning_policies_segment")),
    )
    op.create_table(
        "dunning_stages",
        sa.Column("policy_id", sa.Uuid(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=32), nullable=False),
        sa.Column("offset_days", sa.Integer(), nullable=False),
        sa.Column("template", sa.String(length=64), nullable=False),
        sa.Column("tone", sa.String(length=16), nullable=False),
        sa.Column(
            "channels",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("fee_minor", sa.BigInteger(), nullable=True),
        sa.Column("fee_currency", sa.String(length=3), nullable=True),
        sa.Column("charge_interest", sa.Boolean(), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.ForeignKeyConstraint(
            ["policy_id"],
            ["dunning_policies.id"],
            name=op.f("fk_dunning_stages_policy_id_dunning_policies"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("policy_id", "position", name=op.f("pk_dunning_stages")),
        sa.UniqueConstraint("policy_id", "key", name="uq_dunning_stages_policy_key"),
        sa.UniqueConstraint("policy_id", "offset_days", name="uq_dunning_stages_policy_offset"),
    )
    op.create_table(
        "messages",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("debtor_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("template", sa.String(length=64), nullable=False),
        sa.Column("tone", sa.String(length=16), nullable=False),
        sa.Column(
            "channels",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("channel", sa.String(length=16), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("sweep_id", sa.Uuid(), nullable=True),
        sa.Column(
            "payload",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("provider_id", sa.String(length=255), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["debtor_id"], ["debtors.id"], name=op.f("fk_messages_debtor_id_debtors")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_messages")),
    )
    op.create_index(op.f("ix_messages_debtor_id"), "messages", ["debtor_id"], unique=False)
    op.create_index(
        "ix_messages_due",
        "messages",
        ["next_attempt_at"],
        unique=False,
        postgresql_where=sa.text("status = 'queued'"),
        sqlite_where=sa.text("status = 'queued'"),
    )
    op.create_index("ix_messages_sweep_debtor", "messages", ["sweep_id", "debtor_id"], unique=False)
    op.create_table(
        "dunning_actions",
        sa.Column("invoice_id", sa.Uuid(), nullable=False),
        sa.Column("stage_key", sa.String(length=32), nullable=False),
        sa.Column("debtor_id", sa.Uuid(), nullable=False),
        sa.Column("sweep_id", sa.Uuid(), nullable=False),
        sa.Column("message_id", sa.Uuid(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["debtor_id"], ["debtors.id"], name=op.f("fk_dunning_actions_debtor_id_debtors")
        ),
        sa.ForeignKeyConstraint(
            ["invoice_id"],
            ["invoices.id"],
            name=op.f("fk_dunning_actions_invoice_id_invoices"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["message_id"], ["messages.id"], name=op.f("fk_dunning_actions_message_id_messages")
        ),
        sa.PrimaryKeyConstraint("invoice_id", "stage_key", name=op.f("pk_dunning_actions")),
    )
    op.create_index(op.f("ix_dunning_actions_sweep_id"), "dunning_actions", ["sweep_id"], unique=False)
    op.create_table(
        "dunning_states",
        sa.Column("invoice_id", sa.Uuid(), nullable=False),
        sa.Column("debtor_id", sa.Uuid(), nullable=False),
        sa.Column("policy_id", sa.Uuid(), nullable=False),
        sa.Column("stage_position", sa.Integer(), nullable=False),
        sa.Column("stage_key", sa.String(length=32), nullable=True),
        sa.Column("next_action_on", sa.Date(), nullable=True),
        sa.Column("paused_until", sa.Date(), nullable=True),
        sa.Column("pause_reason", sa.String(length=500), nullable=True),
        sa.Column("disputed", sa.Boolean(), nullable=False),
        sa.Column("dispute_reason", sa.String(length=1000), nullable=True),
        sa.Column("promise_date", sa.Date(), nullable=True),
        sa.Column("promise_minor", sa.BigInteger(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["debtor_id"], ["debtors.id"], name=op.f("fk_dunning_states_debtor_id_debtors")
        ),
        sa.ForeignKeyConstraint(
            ["invoice_id"],
            ["invoices.id"],
            name=op.f("fk_dunning_states_invoice_id_invoices"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["policy_id"], ["dunning_policies.id"], name=op.f("fk_dunning_states_policy_id_dunning_policies")
        ),
        sa.PrimaryKeyConstraint("invoice_id", name=op.f("pk_dunning_states")),
    )
    op.create_index(op.f("ix_dunning_states_debtor_id"), "dunning_states", ["debtor_id"], unique=False)
    op.create_index(
        "ix_dunning_states_next_action",
        "dunning_states",
        ["next_action_on"],
        unique=False,
        postgresql_where=sa.text("next_action_on IS NOT NULL"),
        sqlite_where=sa.text("next_action_on IS NOT NULL"),
    )
    _seed_default_policy()


DEFAULT_POLICY_ID = "0192f0d0-0000-7000-8000-000000000001"
ALL_CHANNELS = ["email", "whatsapp", "telegram", "sms"]
DEFAULT_STAGES = [
    # key, offset, template, tone, fee (EUR cents), interest, action
    ("before_due", -3, "reminder_before_due", "friendly", None, False, "remind"),
    ("due_today", 0, "reminder_due_today", "friendly", None, False, "remind"),
    ("first_reminder", 7, "reminder_overdue", "neutral", None, False, "remind"),
    ("second_reminder", 14, "reminder_second", "neutral", 1500, False, "remind"),
    ("final_notice", 30, "final_notice", "firm", None, True, "remind"),
    ("agency", 45, "agency_handoff", "firm", None, False, "agency"),
]


def _seed_default_policy() -> None:
    """The policy every debtor gets unless their segment has its own (editable through the API)."""
    now = datetime.now(UTC)
    policies = sa.table(
        "dunning_policies",
        sa.column("id", sa.Uuid()),
        sa.column("name", sa.String()),
        sa.column("segment", sa.String()),
        sa.column("quiet_start_hour", sa.Integer()),
        sa.column("quiet_end_hour", sa.Integer()),
        sa.column("max_messages_per_week", sa.Integer()),
        sa.column("min_gap_hours", sa.Integer()),
        sa.column("interest_rate_bp", sa.Integer()),
        sa.column("promise_max_days", sa.Integer()),
        sa.column("promise_grace_days", sa.Integer()),
        sa.column("created_at", sa.DateTime(timezone=True)),
        sa.column("updated_at", sa.DateTime(timezone=True)),
    )
    stages = sa.table(
        "dunning_stages",
        sa.column("policy_id", sa.Uuid()),
        sa.column("position", sa.Integer()),
        sa.column("key", sa.String()),
        sa.column("offset_days", sa.Integer()),
        sa.column("template", sa.String()),
        sa.column("tone", sa.String()),
        sa.column("channels", sa.JSON()),
        sa.column("fee_minor", sa.BigInteger()),
        sa.column("fee_currency", sa.String()),
        sa.column("charge_interest", sa.Boolean()),
        sa.column("action", sa.String()),
    )
    policy_id = uuid.UUID(DEFAULT_POLICY_ID)
    op.bulk_insert(
        policies,
        [
            {
                "id": policy_id,
                "name": "default",
                "segment": "default",
                "quiet_start_hour": 21,
                "quiet_end_hour": 8,
                "max_messages_per_week": 3,
                "min_gap_hours": 48,
                "interest_rate_bp": 800,
                "promise_max_days": 30,
                "promise_grace_days": 3,
                "created_at": now,
                "updated_at": now,
            }
        ],
    )
    op.bulk_insert(
        stages,
        [
            {
                "policy_id": policy_id,
                "position": pos,
                "key": key,
                "offset_days": offset,
                "template": template,
                "tone": tone,
                "channels": ALL_CHANNELS,
                "fee_minor": fee,
                "fee_currency": "EUR" if fee else None,
                "charge_interest": interest,
                "action": action,
            }
            for pos, (key, offset, template, tone, fee, interest, action) in enumerate(DEFAULT_STAGES)
        ],
    )


def downgrade() -> None:
    op.drop_index(
        "ix_dunning_states_next_action",
        table_name="dunning_states",
        postgresql_where=sa.text("next_action_on IS NOT NULL"),
        sqlite_where=sa.text("next_action_on IS NOT NULL"),
    )
    op.drop_index(op.f("ix_dunning_states_debtor_id"), table_name="dunning_states")
    op.drop_table("dunning_states")
    op.drop_index(op.f("ix_dunning_actions_sweep_id"), table_name="dunning_actions")
    op.drop_table("dunning_actions")
    op.drop_index("ix_messages_sweep_debtor", table_name="messages")
    op.drop_index(
        "ix_messages_due",
        table_name="messages",
        postgresql_where=sa.text("status = 'queued'"),
        sqlite_where=sa.text("status = 'queued'"),
    )
    op.drop_index(op.f("ix_messages_debtor_id"), table_name="messages")
    op.drop_table("messages")
    op.drop_table("dunning_stages")
    op.drop_table("dunning_policies")
