"""Refunds of PSP payments: a policy, a request record, and idempotent execution at the PSP.

Policy (Settings, README "Payments"), per calendar month (UTC), counting refunds requested,
approved and executed (declined and failed ones do not count):

- at most ``DUEBOT_REFUND_MAX_COUNT_PER_MONTH`` refunds and ``DUEBOT_REFUND_MAX_TOTAL_PER_MONTH``
  in total (in the refund's currency), overall;
- at most ``DUEBOT_REFUND_STAFF_MAX_COUNT_PER_MONTH`` and ``DUEBOT_REFUND_STAFF_MAX_TOTAL_PER_MONTH``
  per staff member (the requester);
- above ``DUEBOT_REFUND_SECOND_APPROVAL_ABOVE`` a second person, not the requester, must approve.

A request never exceeds what is still refundable: the payment's amount less what was refunded,
charged back or is held by other open requests.

Life of a request: ``requested`` (waits for a second approver) → ``approved`` → ``executed`` |
``failed``; ``requested``/``approved`` → ``declined``. Execution locks the payment row, calls the
PSP's refunds API under the stable key ``duebot:refund:<id>`` (a retried execution gets the same
refund, never a second one), then posts the refund ledger entry and counts it on the payment, so
that the PSP's own report of the refund (a webhook) posts nothing again. A PSP that is unreachable
leaves the request ``approved`` with the error; the worker retries it. A PSP refusal fails it.

The functions here only flush; the caller (API request, worker job, Slack action) commits.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from core import audit
from core.audit import Actor
from core.config import Settings
from core.errors import Conflict, FieldError, Forbidden, InvalidInput, NotFound, PolicyViolation
from core.money import Money, parse_minor
from core.payments import repository as repo
from core.payments import service
from core.payments.models import PspPayment, RefundRequest, RefundStatus
from core.ports import PaymentProvider, PaymentProviderError

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class RefundPolicy:
    max_count: int
    max_total: str
    staff_max_count: int
    staff_max_total: str
    second_approval_above: str

    @classmethod
    def from_settings(cls, settings: Settings) -> RefundPolicy:
        return cls(
            max_count=settings.refund_max_count_per_month,
            max_total=settings.refund_max_total_per_month,
            staff_max_count=settings.refund_staff_max_count_per_month,
            staff_max_total=settings.refund_staff_max_total_per_month,
            second_approval_above=settings.refund_second_approval_above,
        )

    @staticmethod
    def minor(value: str, currency: str) -> int:
        return parse_minor(value, currency, allow_zero=True)


def month_start(now: datetime) -> datetime:
    return now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def refundable(psp: PspPayment, reserved: int) -> int:
    return max(0, psp.amount_minor - psp.refunded_minor - psp.charged_back_minor - reserved)


def _refused(message: str, code: str, field: str = "amount") -> PolicyViolation:
    return PolicyViolation(message, code, [FieldError((field,), message, code)])


async def request_refund(
    session: AsyncSession,
    payment: str,
    amount: Money | None,
    reason: str,
    actor: Actor,
    *,
    policy: RefundPolicy,
    now: datetime,
) -> RefundRequest:
    """Record a refund request for a PSP payment (``tr_…`` or our id), checked against the policy.
    ``amount`` None: everything still refundable. Answers the request: ``approved`` (ready to
    execute) or ``requested`` with ``needs_second_approval``."""
    found = await service.find_payment(session, payment)
    psp = await repo.get(session, found.id, for_update=True)  # one request at a time per payment
    assert psp is not None
    if psp.status != "paid" or psp.ledger_payment_id is None:
        raise _refused(
            f"payment {psp.provider_id} is {psp.status}, not paid: nothing to refund",
            "not_refundable",
            "payment_id",
        )
    if amount is not None and amount.currency != psp.currency:
        raise InvalidInput(
            "the currency differs from the payment",
            "currency_mismatch",
            [FieldError(("currency",), f"the payment is in {psp.currency}", "currency_mismatch")],
        )
    left = refundable(psp, await repo.reserved_refunds(session, psp.id))
    minor = amount.minor if amount is not None else left
    if minor <= 0 or minor > left:
        raise _refused(
            f"at most {Money(left, psp.currency).decimal_str} {psp.currency} of payment {psp.provider_id} can be refunded",
            "exceeds_refundable",
        )
    since = month_start(now)
    for who, max_count, max_total in (
        (None, policy.max_count, policy.max_total),
        (actor.label, policy.staff_max_count, policy.staff_max_total),
    ):
        count, total = await repo.refund_usage(session, since=since, currency=psp.currency, requested_by=who)
        scope = "in total" if who is None else f"per staff member ({actor.label})"
        if count + 1 > max_count:
            raise _refused(
                f"the refund policy allows {max_count} refunds per month {scope}; {count} already this month",
                "refund_count_limit",
            )
        cap = policy.minor(max_total, psp.currency)
        if total + minor > cap:
            raise _refused(
                f"the refund policy allows {max_total} {psp.currency} of refunds per month {scope}; "
                f"{Money(total, psp.currency).decimal_str} already this month",
                "refund_total_limit",
            )
    second = minor > policy.minor(policy.second_approval_above, psp.currency)
    refund = RefundRequest(
        psp_payment_id=psp.id,
        debtor_id=psp.debtor_id,
        amount_minor=minor,
        currency=psp.currency,
        reason=reason,
        status=RefundStatus.requested if second else RefundStatus.approved,
        needs_second_approval=second,
        requested_by=actor.label,
        created_at=now,
        updated_at=now,
    )
    session.add(refund)
    await session.flush()
    await audit.record(
        session,
        actor,
        "refund.requested",
        "refund",
        refund.id,
        after={
            "payment": psp.provider_id,
            "amount": Money(minor, psp.currency).decimal_str,
            "currency": psp.currency,
            "reason": reason,
            "status": refund.status,
            "needs_second_approval": second,
        },
    )
    return refund


async def _locked(session: AsyncSession, refund_id: uuid.UUID) -> RefundRequest:
    refund = await repo.get_refund(session, refund_id, for_update=True)
    if refund is None:
        raise NotFound(f"no refund {refund_id}", "unknown_refund")
    return refund


async def approve_refund(
    session: AsyncSession, refund_id: uuid.UUID, approver: Actor, *, now: datetime
) -> RefundRequest:
    """The second approval; the approver must not be the requester."""
    refund = await _locked(session, refund_id)
    if refund.status != RefundStatus.requested:
        raise Conflict(f"the refund is {refund.status}, not waiting for approval", "refund_not_requested")
    if approver.label == refund.requested_by:
        raise Forbidden("a second approver must be someone other than the requester", "same_approver")
    refund.status = RefundStatus.approved
    refund.approved_by = approver.label
    refund.decided_at = refund.updated_at = now
    await session.flush()
    await audit.record(
        session,
        approver,
        "refund.approved",
        "refund",
        refund.id,
        before={"status": RefundStatus.requested.value},
        after={"status": refund.status, "approved_by": approver.label},
    )
    return refund


async def decline_refund(
    session: AsyncSession, refund_id: uuid.UUID, actor: Actor, *, reason: str | None = None, now: datetime
) -> RefundRequest:
    refund = await _locked(session, refund_id)
    if refund.status not in (RefundStatus.requested, RefundStatus.approved):
        raise Conflict(f"the refund is {refund.status} and can no longer be declined", "refund_closed")
    before = refund.status
    refund.status = RefundStatus.declined
    refund.decided_at = refund.updated_at = now
    refund.error = reason
    await session.flush()
    await audit.record(
        session,
        actor,
        "refund.declined",
        "refund",
        refund.id,
        before={"status": before},
        after={"status": refund.status, "reason": reason},
    )
    return refund


async def execute_refund(
    session: AsyncSession, provider: PaymentProvider, refund_id: uuid.UUID, *, now: datetime, actor: Actor
) -> RefundRequest:
    """Execute an approved refund at the PSP (idempotently); any other status: unchanged."""
    refund = await _locked(session, refund_id)
    if refund.status != RefundStatus.approved:
        return refund
    psp = await repo.get(session, refund.psp_payment_id, for_update=True)
    assert psp is not None
    try:
        done = await provider.create_refund(
            psp.provider_id,
            amount_minor=refund.amount_minor,
            currency=refund.currency,
            description=refund.reason,
            key=f"duebot:refund:{refund.id}",
        )
    except PaymentProviderError as exc:
        refund.error = exc.reason
        refund.updated_at = now
        if exc.retryable:  # stays approved: the worker tries again with the same key
            log.warning("refund.retry_later", refund_id=str(refund.id), error=exc.reason)
            await session.flush()
            return refund
        refund.status = RefundStatus.failed
        await session.flush()
        await audit.record(
            session,
            actor,
            "refund.failed",
            "refund",
            refund.id,
            after={"status": refund.status, "error": exc.reason},
        )
        return refund
    await service.post_refund(
        session, psp, refund.amount_minor, now.date(), f"refund {refund.id}: {refund.reason}"
    )
    psp.refunded_minor += refund.amount_minor
    psp.updated_at = now
    refund.status = RefundStatus.executed
    refund.provider_refund_id = done.id
    refund.executed_at = refund.updated_at = now
    refund.error = None
    await session.flush()
    await audit.record(
        session,
        actor,
        "refund.executed",
        "refund",
        refund.id,
        before={"status": RefundStatus.approved.value},
        after={
            "status": refund.status,
            "provider_refund_id": done.id,
            "payment": psp.provider_id,
            "amount": Money(refund.amount_minor, refund.currency).decimal_str,
            "currency": refund.currency,
        },
    )
    return refund
