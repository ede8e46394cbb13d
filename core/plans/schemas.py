"""Input and output types for payment plans and plan policies.

``PlanDecision`` is what ``propose`` answers, and ``PlanView`` what ``plan_view`` answers; the
conversation engine and the staff bot use both. Money inside core is integer minor units; the API
bodies (``*In``) carry decimal strings beside a currency.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import date
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator
from pydantic_core import PydanticCustomError

from core.dunning.schemas import format_rate, parse_rate_bp
from core.money import parse_minor
from core.validation import AmountText, Currency, ExternalId, minor_for

Outcome = Literal["accepted", "counter", "needs_approval", "refused"]


@dataclass(frozen=True)
class Instalment:
    """One payment of a schedule. Number 0 is the down payment (due on the plan's first day)."""

    number: int
    due_on: date
    amount_minor: int


@dataclass(frozen=True)
class Counter:
    """Staff's own terms when approving: exactly one of the two."""

    instalments: int | None = None
    monthly_amount_minor: int | None = None


@dataclass
class PlanDecision:
    """The answer to a proposal.

    - ``accepted``: within policy; a plan ``proposed`` with this schedule waits for the debtor's yes.
    - ``counter``: outside policy, and ``schedule`` is the nearest plan within it (also ``proposed``).
    - ``needs_approval``: too far outside; a plan ``pending_approval`` with the requested schedule
      waits for staff (event ``plan.approval_requested``).
    - ``refused``: too far outside and the policy allows no approvals, or nothing to plan;
      ``plan_id`` is None then.
    ``reason_code`` says why for counter, needs_approval and refused: ``too_many_instalments``,
    ``instalment_too_small``, ``too_long``, ``total_above_limit``, ``nothing_to_plan``.
    """

    outcome: Outcome
    plan_id: uuid.UUID | None
    currency: str
    total_minor: int
    down_payment_minor: int
    schedule: list[Instalment] = field(default_factory=list)
    reason_code: str | None = None
    state: str | None = None


@dataclass
class InstalmentView:
    number: int
    due_on: date
    amount_minor: int
    paid_minor: int
    status: str  # proposed (not accepted yet), open, paid, missed


@dataclass
class PlanView:
    id: uuid.UUID
    debtor_id: uuid.UUID
    debtor_external_id: str
    state: str
    outcome: str
    reason_code: str | None
    currency: str
    total_minor: int
    down_payment_minor: int
    paid_minor: int
    interval: str
    invoices: list[str]  # external ids
    instalments: list[InstalmentView]
    created_by: str
    decided_by: str | None


# --------------------------------------------------------------------------- API bodies


class MoneyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    currency: Currency
    amount: AmountText

    @field_validator("amount")
    @classmethod
    def _amount(cls, value: str, info: ValidationInfo) -> str:
        minor_for(value, info)
        return value

    @property
    def minor(self) -> int:
        return parse_minor(self.amount, self.currency)


class PlanPolicyIn(BaseModel):
    """PUT /api/v1/plan-policies/{segment}: the whole policy of a segment."""

    model_config = ConfigDict(extra="forbid")

    max_instalments: int = Field(default=6, ge=1, le=120, description="most instalments, down payment apart")
    min_instalment: MoneyIn = Field(description="the smallest instalment; sets the policy's currency")
    max_duration_days: int = Field(
        default=186, ge=1, le=3660, description="the last instalment at most this far away"
    )
    down_payment_percent: str = Field(default="0.00", description='share due at once, e.g. "10.00"')
    down_payment_minimum: MoneyIn | None = Field(default=None, description="a down payment at least this")
    interval: Literal["monthly", "biweekly", "weekly"] = "monthly"
    max_total: MoneyIn | None = Field(default=None, description="larger plans need staff approval")
    counter_range_pct: int = Field(
        default=100,
        ge=0,
        le=1000,
        description="a request this many percent beyond a limit still gets a counter-offer",
    )
    staff_approval: bool = Field(default=True, description="beyond that: to staff for approval, else refused")
    reminder_days_before: int = Field(default=3, ge=0, le=30)
    grace_days: int = Field(default=5, ge=0, le=60, description="an instalment this late breaks the plan")

    @field_validator("down_payment_percent", mode="before")
    @classmethod
    def _percent(cls, value: object) -> str:
        return format_rate(parse_rate_bp(value))

    @property
    def down_payment_bp(self) -> int:
        return parse_rate_bp(self.down_payment_percent)

    @model_validator(mode="after")
    def _one_currency(self) -> PlanPolicyIn:
        for name in ("down_payment_minimum", "max_total"):
            other: MoneyIn | None = getattr(self, name)
            if other is not None and other.currency != self.min_instalment.currency:
                raise PydanticCustomError(
                    "currency_mismatch",
                    f"{name} must be in {self.min_instalment.currency}, the currency of min_instalment",
                )
        return self


class PlanProposalIn(BaseModel):
    """POST /api/v1/debtors/{external_id}/plans: exactly one of instalments and monthly_amount."""

    model_config = ConfigDict(extra="forbid")

    invoices: list[ExternalId] | None = Field(
        default=None, min_length=1, max_length=500, description="omitted: every open invoice"
    )
    instalments: int | None = Field(default=None, ge=1, le=1000)
    currency: Currency | None = None
    monthly_amount: AmountText | None = None

    @field_validator("monthly_amount")
    @classmethod
    def _amount(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None:
            minor_for(value, info)
        return value

    @model_validator(mode="after")
    def _exactly_one(self) -> PlanProposalIn:
        if (self.instalments is None) == (self.monthly_amount is None):
            raise PydanticCustomError(
                "one_of", "give exactly one of instalments and monthly_amount (with its currency)"
            )
        if self.monthly_amount is not None and self.currency is None:
            raise PydanticCustomError("currency_missing", "monthly_amount needs a currency")
        return self


class CounterIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    instalments: int | None = Field(default=None, ge=1, le=1000)
    currency: Currency | None = None
    monthly_amount: AmountText | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> CounterIn:
        if (self.instalments is None) == (self.monthly_amount is None):
            raise PydanticCustomError("one_of", "give exactly one of instalments and monthly_amount")
        if self.monthly_amount is not None:
            if self.currency is None:
                raise PydanticCustomError("currency_missing", "monthly_amount needs a currency")
            parse_minor(self.monthly_amount, self.currency)
        return self


class DecideIn(BaseModel):
    """POST /api/v1/plans/{id}/decide (staff)."""

    model_config = ConfigDict(extra="forbid")

    approve: bool
    counter: CounterIn | None = Field(default=None, description="approve on these terms instead")
    note: str | None = Field(default=None, max_length=500)
