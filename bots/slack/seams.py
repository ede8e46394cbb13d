"""Where the Slack side meets services that live on other branches (refunds, payment requests,
payment plans, the debtor conversation). The composition root fills :class:`StaffHooks` with thin
adapters over those services; a hook left at None makes its button answer "not available yet".

The data classes are what the Slack views need, whatever shape the services return.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date

from sqlalchemy.ext.asyncio import AsyncSession

from core.audit import Actor
from core.money import Money


@dataclass(frozen=True)
class PaymentInfo:
    """A payment that may be refunded."""

    id: str
    debtor_name: str
    amount: Money
    refundable: Money


@dataclass(frozen=True)
class RefundRequest:
    """A refund as the payments service answers: ``executed`` (or queued for execution),
    ``needs_approval`` (four-eyes: above the threshold), ``approved`` or ``declined``."""

    id: str
    payment_id: str
    debtor_name: str
    amount: Money
    reason: str
    requested_by: str  # the Slack user id of the requester (from the Actor)
    status: str


@dataclass(frozen=True)
class PlanRequest:
    """A payment plan the debtor asked for that is outside policy."""

    id: str
    debtor_name: str
    total: Money
    instalments: int
    first_due: date
    policy_reason: str


@dataclass(frozen=True)
class DisputeNotice:
    invoice_external_id: str
    number: str
    debtor_name: str
    amount: Money
    words: str


@dataclass(frozen=True)
class RelayNotice:
    """A debtor asked for a person; ``conversation_id`` routes staff replies back to their chat."""

    conversation_id: str
    debtor_name: str
    channel: str
    words: str


PaymentInfoHook = Callable[[AsyncSession, str], Awaitable[PaymentInfo]]
# (session, payment id, amount in minor units or None for all that is refundable, reason, actor)
RequestRefundHook = Callable[[AsyncSession, str, int | None, str, Actor], Awaitable[RefundRequest]]
# (session, refund id, actor)
DecideRefundHook = Callable[[AsyncSession, str, Actor], Awaitable[RefundRequest]]
# (session, debtor external id, amount, reason, actor)
RequestPaymentHook = Callable[[AsyncSession, str, Money, str, Actor], Awaitable[None]]
# (session, plan id, "accept" | "counter" | "decline", note or None, actor)
DecidePlanHook = Callable[[AsyncSession, str, str, str | None, Actor], Awaitable[None]]
# (session, debtor external id) -> one line on the debtor's active plan, or None
PlanSummaryHook = Callable[[AsyncSession, str], Awaitable[str | None]]
# (session, conversation id, staff text, actor)
RelayHook = Callable[[AsyncSession, str, str, Actor], Awaitable[None]]


@dataclass
class StaffHooks:
    payment_info: PaymentInfoHook | None = None
    request_refund: RequestRefundHook | None = None
    approve_refund: DecideRefundHook | None = None
    decline_refund: DecideRefundHook | None = None
    request_payment: RequestPaymentHook | None = None
    decide_plan: DecidePlanHook | None = None
    plan_summary: PlanSummaryHook | None = None
    relay_to_debtor: RelayHook | None = None
