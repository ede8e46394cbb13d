"""Dunning policies (ordered stages relative to the due date), per-invoice state and the actions taken."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import BigInteger, Column, Index, UniqueConstraint, text
from sqlmodel import Field, SQLModel

from core.base import JSONType, UTCDateTime, created_field, id_field


class StageAction(StrEnum):
    remind = "remind"
    agency = "agency"  # hand the claim to the collection agency


class DunningPolicy(SQLModel, table=True):
    __tablename__ = "dunning_policies"

    id: uuid.UUID = id_field()
    name: str = Field(max_length=64, unique=True, nullable=False)
    segment: str = Field(max_length=64, unique=True, nullable=False)  # debtors of this segment use it
    quiet_start_hour: int = Field(default=21, nullable=False)  # no messages from 21:00 …
    quiet_end_hour: int = Field(default=8, nullable=False)  # … until 08:00, in the debtor's timezone
    max_messages_per_week: int = Field(default=3, nullable=False)
    min_gap_hours: int = Field(default=48, nullable=False)
    interest_rate_bp: int = Field(default=0, nullable=False)  # annual, basis points: 800 = 8 %
    promise_max_days: int = Field(default=30, nullable=False)
    promise_grace_days: int = Field(default=3, nullable=False)
    created_at: datetime = created_field()
    updated_at: datetime = created_field()


class DunningStage(SQLModel, table=True):
    __tablename__ = "dunning_stages"

    policy_id: uuid.UUID = Field(foreign_key="dunning_policies.id", primary_key=True, ondelete="CASCADE")
    position: int = Field(primary_key=True)  # 0, 1, 2 … in order of offset
    key: str = Field(max_length=32, nullable=False)
    offset_days: int = Field(nullable=False)  # relative to the due date; negative is before
    template: str = Field(max_length=64, nullable=False)
    tone: str = Field(max_length=16, nullable=False)
    channels: list[str] = Field(default_factory=list, sa_column=Column(JSONType, nullable=False))
    fee_minor: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    fee_currency: str | None = Field(default=None, max_length=3)
    charge_interest: bool = Field(default=False, nullable=False)
    action: str = Field(default=StageAction.remind, max_length=16, nullable=False)

    __table_args__ = (
        UniqueConstraint("policy_id", "key", name="uq_dunning_stages_policy_key"),
        UniqueConstraint("policy_id", "offset_days", name="uq_dunning_stages_policy_offset"),
    )


class DunningState(SQLModel, table=True):
    """Where one booked invoice stands in its policy. The sweep reads only rows that are due."""

    __tablename__ = "dunning_states"

    invoice_id: uuid.UUID = Field(foreign_key="invoices.id", primary_key=True, ondelete="CASCADE")
    # Not indexed: every sweep moves its states to another stage (a non-HOT update, since
    # next_action_on is indexed), and each index costs it one random leaf page per state. Reach a
    # debtor's states through ix_invoices_debtor_status and the key (migration 0015).
    debtor_id: uuid.UUID = Field(foreign_key="debtors.id", nullable=False)
    policy_id: uuid.UUID = Field(foreign_key="dunning_policies.id", nullable=False)
    # The invoice's own (immutable) facts, copied so that the sweep need not read invoices.
    due_date: date = Field(nullable=False)
    currency: str = Field(max_length=3, nullable=False)
    invoice_external_id: str = Field(max_length=128, nullable=False)
    invoice_number: str = Field(max_length=64, nullable=False)
    stage_position: int = Field(default=-1, nullable=False)  # -1: no stage reached yet
    stage_key: str | None = Field(default=None, max_length=32)
    # None: nothing more to do, or the invoice is not open (paid, with the agency): see lifecycle.py
    next_action_on: date | None = Field(default=None)
    paused_until: date | None = Field(default=None)
    pause_reason: str | None = Field(default=None, max_length=500)
    disputed: bool = Field(default=False, nullable=False)
    dispute_reason: str | None = Field(default=None, max_length=1000)
    promise_date: date | None = Field(default=None)
    promise_minor: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    updated_at: datetime = created_field()

    __table_args__ = (
        Index(
            "ix_dunning_states_next_action",
            "next_action_on",
            postgresql_where=text("next_action_on IS NOT NULL"),
            sqlite_where=text("next_action_on IS NOT NULL"),
        ),
        Index(
            "ix_dunning_states_promises",
            "promise_date",
            postgresql_where=text("promise_date IS NOT NULL"),
            sqlite_where=text("promise_date IS NOT NULL"),
        ),
    )


class DunningAction(SQLModel, table=True):
    """One row per (invoice, stage) ever decided: the key that makes a second send impossible.

    The key is (due_date, invoice_id, stage_key), unique on (invoice, stage) because ``due_date``
    is the invoice's own due date, which never changes. Led by it, the rows one sweep adds (its
    invoices' stages fall on one day, so they share a few due dates) land in a few narrow ranges
    of the index rather than one leaf page per invoice across the whole history (migration 0015).
    Look an invoice's actions up by (due_date, invoice_id).

    No foreign keys: the sweep writes ``invoice_id`` from the dunning state it has just read and
    ``message_id`` from the message it has just written, in the same transaction (the delivery
    scheduler likewise); states are only deleted with invoices of rejected batches, which never
    got an action, and messages only when no action points at them (sweep._forget_acted). Checking
    each row would cost the sweep a lookup and a row lock per action.
    """

    __tablename__ = "dunning_actions"

    due_date: date = Field(primary_key=True)
    invoice_id: uuid.UUID = Field(primary_key=True)
    stage_key: str = Field(max_length=32, primary_key=True)
    debtor_id: uuid.UUID = Field(nullable=False)
    sweep_id: uuid.UUID = Field(nullable=False, index=True)
    message_id: uuid.UUID | None = Field(default=None, index=True)
    created_at: datetime = Field(sa_type=UTCDateTime, nullable=False)


class PromiseStatus(StrEnum):
    active = "active"
    kept = "kept"
    broken = "broken"
    withdrawn = "withdrawn"


class Promise(SQLModel, table=True):
    __tablename__ = "promises"

    id: uuid.UUID = id_field()
    invoice_id: uuid.UUID = Field(foreign_key="invoices.id", nullable=False, index=True, ondelete="CASCADE")
    debtor_id: uuid.UUID = Field(foreign_key="debtors.id", nullable=False, index=True)
    promised_on: date = Field(nullable=False)
    amount_minor: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    status: str = Field(default=PromiseStatus.active, max_length=16, nullable=False)
    source: str = Field(max_length=32, nullable=False)  # api, telegram, whatsapp, chat, staff
    created_by: str = Field(max_length=128, nullable=False)
    created_at: datetime = created_field()
    resolved_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
