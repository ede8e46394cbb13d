"""Payment plans: the per-segment plan policy, the plans, the invoices they cover, their instalments
and the reminders sent for them."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import BigInteger, Column, Index, text
from sqlmodel import Field, SQLModel

from core.base import JSONType, UTCDateTime, created_field, id_field


class Interval(StrEnum):
    monthly = "monthly"
    biweekly = "biweekly"
    weekly = "weekly"


class PlanPolicy(SQLModel, table=True):
    """What a debtor of a segment may agree without staff. The ``default`` row serves every segment
    without its own (seeded by the migration)."""

    __tablename__ = "plan_policies"

    segment: str = Field(max_length=64, primary_key=True)
    max_instalments: int = Field(default=6, nullable=False)
    min_instalment_minor: int = Field(default=2500, sa_column=Column(BigInteger, nullable=False))
    currency: str = Field(default="EUR", max_length=3, nullable=False)  # of min_instalment and minima
    max_duration_days: int = Field(default=186, nullable=False)  # last instalment at most this far away
    down_payment_bp: int = Field(default=0, nullable=False)  # share of the total due at once: 1000 = 10 %
    down_payment_min_minor: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    interval: str = Field(default=Interval.monthly, max_length=16, nullable=False)
    max_total_minor: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    counter_range_pct: int = Field(
        default=100, nullable=False
    )  # how far beyond a limit a counter-offer reaches
    staff_approval: bool = Field(default=True, nullable=False)  # beyond that: to staff (else refused)
    reminder_days_before: int = Field(default=3, nullable=False)
    grace_days: int = Field(
        default=5, nullable=False
    )  # an instalment unpaid this long after its date breaks the plan
    created_at: datetime = created_field()
    updated_at: datetime = created_field()


class PlanState(StrEnum):
    proposed = "proposed"  # within policy or a counter-offer: waits for the debtor's yes
    pending_approval = "pending_approval"  # outside policy: waits for staff
    approved_by_staff = "approved_by_staff"  # staff said yes: waits for the debtor's yes
    declined = "declined"  # staff said no
    active = "active"  # accepted: instalments run, covered invoices leave dunning
    completed = "completed"
    breached = "breached"  # an instalment was missed: dunning resumes
    withdrawn = "withdrawn"  # withdrawn, or replaced by a newer proposal

    @classmethod
    def open_offers(cls) -> tuple[str, ...]:
        return (cls.proposed.value, cls.pending_approval.value, cls.approved_by_staff.value)


class PaymentPlan(SQLModel, table=True):
    __tablename__ = "payment_plans"

    id: uuid.UUID = id_field()
    debtor_id: uuid.UUID = Field(foreign_key="debtors.id", nullable=False)
    segment: str = Field(max_length=64, nullable=False)  # the plan policy applied
    state: str = Field(default=PlanState.proposed, max_length=24, nullable=False)
    outcome: str = Field(max_length=24, nullable=False)  # of the proposal: accepted, counter, …
    reason_code: str | None = Field(default=None, max_length=64)
    currency: str = Field(max_length=3, nullable=False)
    total_minor: int = Field(sa_column=Column(BigInteger, nullable=False))
    down_payment_minor: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    instalment_count: int = Field(nullable=False)  # not counting the down payment
    interval: str = Field(max_length=16, nullable=False)
    starts_on: date = Field(nullable=False)  # the down payment's date; instalments follow each interval
    reminder_days_before: int = Field(default=3, nullable=False)  # from the policy, when made
    grace_days: int = Field(default=5, nullable=False)  # from the policy, when made
    # The schedule as offered: [{"number", "due_on", "amount_minor"}]; rows are made on acceptance.
    schedule: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSONType, nullable=False))
    requested: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSONType, nullable=False))
    limits: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSONType, nullable=False))
    created_by: str = Field(max_length=128, nullable=False)
    decided_by: str | None = Field(default=None, max_length=128)
    created_at: datetime = created_field()
    updated_at: datetime = created_field()
    accepted_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    ended_at: datetime | None = Field(default=None, sa_type=UTCDateTime)

    __table_args__ = (
        Index("ix_payment_plans_debtor_state", "debtor_id", "state"),
        # One active plan per debtor.
        Index(
            "uq_payment_plans_active_debtor",
            "debtor_id",
            unique=True,
            postgresql_where=text("state = 'active'"),
            sqlite_where=text("state = 'active'"),
        ),
    )


class PlanInvoice(SQLModel, table=True):
    """An invoice a plan covers. ``active`` is true while the plan is: the dunning sweep skips those."""

    __tablename__ = "plan_invoices"

    plan_id: uuid.UUID = Field(foreign_key="payment_plans.id", primary_key=True, ondelete="CASCADE")
    invoice_id: uuid.UUID = Field(foreign_key="invoices.id", primary_key=True, ondelete="CASCADE")
    open_minor: int = Field(sa_column=Column(BigInteger, nullable=False))  # when the plan was made
    active: bool = Field(default=False, nullable=False)

    __table_args__ = (
        Index(
            "ix_plan_invoices_active",
            "invoice_id",
            postgresql_where=text("active"),
            sqlite_where=text("active"),
        ),
    )


class InstalmentStatus(StrEnum):
    open = "open"
    paid = "paid"
    missed = "missed"


class PlanInstalment(SQLModel, table=True):
    """Number 0 is the down payment (when there is one). ``start_minor`` is what the earlier
    instalments add up to: payments count toward instalments in order."""

    __tablename__ = "plan_instalments"

    plan_id: uuid.UUID = Field(foreign_key="payment_plans.id", primary_key=True, ondelete="CASCADE")
    number: int = Field(primary_key=True)
    due_on: date = Field(nullable=False)
    amount_minor: int = Field(sa_column=Column(BigInteger, nullable=False))
    start_minor: int = Field(sa_column=Column(BigInteger, nullable=False))
    paid_minor: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    status: str = Field(default=InstalmentStatus.open, max_length=16, nullable=False)
    paid_at: datetime | None = Field(default=None, sa_type=UTCDateTime)

    __table_args__ = (
        Index(
            "ix_plan_instalments_open_due",
            "due_on",
            postgresql_where=text("status = 'open'"),
            sqlite_where=text("status = 'open'"),
        ),
    )


class InstalmentReminder(SQLModel, table=True):
    """One row per instalment ever reminded: the key that makes a second reminder impossible."""

    __tablename__ = "instalment_reminders"

    plan_id: uuid.UUID = Field(foreign_key="payment_plans.id", primary_key=True, ondelete="CASCADE")
    number: int = Field(primary_key=True)
    debtor_id: uuid.UUID = Field(foreign_key="debtors.id", nullable=False)
    run_id: uuid.UUID = Field(nullable=False, index=True)
    message_id: uuid.UUID = Field(nullable=False, index=True)  # made with the row; the message follows
    created_at: datetime = Field(sa_type=UTCDateTime, nullable=False)


class PlanEvent(StrEnum):
    approval_requested = "plan.approval_requested"
    accepted = "plan.accepted"
    breached = "plan.breached"
    completed = "plan.completed"
    decided = "plan.decided"


PLAN_MESSAGE_KINDS = ("instalment_reminder", "plan_confirmation")
