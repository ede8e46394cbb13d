"""The StaffHooks seams filled with thin adapters onto the core services: refunds (core/payments/
refunds.py, executed at the PSP), payment requests (core/payments/requests.py), plan decisions
(core/plans/service.py) and the relay to the debtor's chat (core/conversation/relay.py).

The adapters only flush; the Slack handler that calls them commits (session_scope).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from bots.slack import seams
from bots.slack.texts import text
from core.audit import Actor
from core.config import Settings
from core.conversation import relay
from core.conversation.models import Chat
from core.debtors import repository as debtor_repo
from core.debtors.models import Debtor
from core.errors import FieldError, InvalidInput, NotFound
from core.money import Money, MoneyError, parse_minor
from core.payments import refunds
from core.payments import repository as psp_repo
from core.payments import requests as payment_requests
from core.payments import service as psp_service
from core.payments.models import PspPayment, RefundRequest, RefundStatus
from core.plans import service as plans
from core.plans.schemas import Counter, PlanView
from core.ports import Clock, PaymentProvider

# how the payments service's statuses read on the Slack side
_STATUS = {
    RefundStatus.requested.value: "needs_approval",
    RefundStatus.approved.value: "approved",  # the PSP could not take it yet: the worker retries
    RefundStatus.executed.value: "executed",
    RefundStatus.declined.value: "declined",
    RefundStatus.failed.value: "failed",
}


def _refund_id(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise NotFound(f"no refund {value!r}", "unknown_refund") from None


async def _debtor_name(session: AsyncSession, debtor_id: uuid.UUID) -> str:
    debtor = await session.get(Debtor, debtor_id)
    return debtor.name if debtor is not None else "?"


async def refund_view(session: AsyncSession, r: RefundRequest) -> seams.RefundRequest:
    psp = await session.get(PspPayment, r.psp_payment_id)
    requested_by = (r.requested_by or "").removeprefix("staff:")
    return seams.RefundRequest(
        id=str(r.id),
        payment_id=psp.provider_id if psp is not None else str(r.psp_payment_id),
        debtor_name=await _debtor_name(session, r.debtor_id),
        amount=Money(r.amount_minor, r.currency),
        reason=r.reason,
        requested_by=requested_by,
        status=_STATUS.get(str(r.status), str(r.status)),
    )


def plan_request(view: PlanView, debtor_name: str, today: date) -> seams.PlanRequest:
    first = view.instalments[0].due_on if view.instalments else today
    return seams.PlanRequest(
        id=str(view.id),
        debtor_name=debtor_name,
        total=Money(view.total_minor, view.currency),
        instalments=len(view.instalments),
        first_due=first,
        policy_reason=view.reason_code or "",
    )


def parse_counter(note: str | None, currency: str) -> Counter:
    """Staff's counter terms from the note's first word: "8" (instalments) or "50.00" (per month)."""
    words = (note or "").split()
    first = words[0].rstrip(",;.") if words else ""
    if first.isdigit() and 0 < int(first) <= 1000:
        return Counter(instalments=int(first))
    try:
        return Counter(monthly_amount_minor=parse_minor(first.lstrip("€$£"), currency))
    except (MoneyError, InvalidInput, ValueError):
        message = text("counter_terms")
        raise InvalidInput(
            message, "counter_terms", [FieldError(("note",), message, "counter_terms")]
        ) from None


@dataclass
class StaffServices:
    """The adapters, bound to the settings, the clock and the PSP (None: refunds cannot execute)."""

    settings: Settings
    clock: Clock
    provider: PaymentProvider | None

    def hooks(self) -> seams.StaffHooks:
        return seams.StaffHooks(
            payment_info=self.payment_info,
            request_refund=self.request_refund,
            approve_refund=self.approve_refund,
            decline_refund=self.decline_refund,
            request_payment=self.request_payment,
            decide_plan=self.decide_plan,
            plan_summary=self.plan_summary,
            relay_to_debtor=self.relay_to_debtor,
        )

    # ------------------------------------------------------------------ refunds

    async def payment_info(self, session: AsyncSession, payment_id: str) -> seams.PaymentInfo:
        psp = await psp_service.find_payment(session, payment_id.strip())
        left = refunds.refundable(psp, await psp_repo.reserved_refunds(session, psp.id))
        return seams.PaymentInfo(
            id=psp.provider_id,
            debtor_name=await _debtor_name(session, psp.debtor_id),
            amount=Money(psp.amount_minor, psp.currency),
            refundable=Money(left, psp.currency),
        )

    async def _execute(self, session: AsyncSession, r: RefundRequest, actor: Actor) -> RefundRequest:
        if r.status != RefundStatus.approved or self.provider is None:
            return r  # without a PSP the worker's execute_refunds picks it up once one is configured
        return await refunds.execute_refund(session, self.provider, r.id, now=self.clock.now(), actor=actor)

    async def request_refund(
        self, session: AsyncSession, payment_id: str, amount: int | None, reason: str, actor: Actor
    ) -> seams.RefundRequest:
        psp = await psp_service.find_payment(session, payment_id)
        r = await refunds.request_refund(
            session,
            payment_id,
            Money(amount, psp.currency) if amount is not None else None,
            reason,
            actor,
            policy=refunds.RefundPolicy.from_settings(self.settings),
            now=self.clock.now(),
        )
        return await refund_view(session, await self._execute(session, r, actor))

    async def approve_refund(
        self, session: AsyncSession, refund_id: str, actor: Actor
    ) -> seams.RefundRequest:
        r = await refunds.approve_refund(session, _refund_id(refund_id), actor, now=self.clock.now())
        return await refund_view(session, await self._execute(session, r, actor))

    async def decline_refund(
        self, session: AsyncSession, refund_id: str, actor: Actor
    ) -> seams.RefundRequest:
        r = await refunds.decline_refund(
            session, _refund_id(refund_id), actor, reason="declined in Slack", now=self.clock.now()
        )
        return await refund_view(session, r)

    # ------------------------------------------------------------------ payment requests

    async def request_payment(
        self, session: AsyncSession, debtor_external_id: str, amount: Money, reason: str, actor: Actor
    ) -> None:
        debtor = await debtor_repo.get_by_external_id(session, debtor_external_id)
        if debtor is None:
            raise NotFound(f"debtor {debtor_external_id!r} does not exist", "debtor_not_found")
        await payment_requests.request_payment(
            session,
            debtor.id,
            amount,
            reason,
            actor,
            settings=self.settings,
            provider=self.provider,
            now=self.clock.now(),
        )

    # ------------------------------------------------------------------ plans

    async def decide_plan(
        self, session: AsyncSession, plan_id: str, decision: str, note: str | None, actor: Actor
    ) -> None:
        try:
            pid = uuid.UUID(plan_id)
        except ValueError:
            raise NotFound(f"payment plan {plan_id!r} does not exist", "plan_not_found") from None
        counter = None
        if decision == "counter":
            counter = parse_counter(note, (await plans.plan_view(session, pid)).currency)
        await plans.decide(
            session,
            pid,
            approve=decision != "decline",
            actor=actor,
            counter=counter,
            today=self.clock.today(),
            note=note,
        )

    async def plan_summary(self, session: AsyncSession, debtor_external_id: str) -> str | None:
        debtor = await debtor_repo.get_by_external_id(session, debtor_external_id)
        if debtor is None:
            return None
        view = await plans.get_active_plan(session, debtor.id) or await plans.latest_offer(session, debtor.id)
        if view is None:
            return None
        upcoming = [i for i in view.instalments if i.paid_minor < i.amount_minor]
        return text(
            "plan_summary",
            state=view.state,
            total=Money(view.total_minor, view.currency).decimal_str,
            currency=view.currency,
            paid=Money(view.paid_minor, view.currency).decimal_str,
            count=len(view.instalments),
            next_due=upcoming[0].due_on.isoformat() if upcoming else "",
        )

    # ------------------------------------------------------------------ relay

    async def relay_to_debtor(
        self, session: AsyncSession, conversation_id: str, words: str, actor: Actor
    ) -> None:
        """``conversation_id``: a chat's id, a debtor's id, ``<channel>:<chat id>`` or a debtor's
        external id (whichever the hand-off notice carried)."""
        target = await _chat_or_debtor(session, conversation_id)
        await relay.relay_to_debtor(session, target, words, staff=actor, now=self.clock.now())


async def _chat_or_debtor(session: AsyncSession, ref: str) -> Chat | uuid.UUID:
    try:
        as_id = uuid.UUID(ref)
    except ValueError:
        as_id = None
    if as_id is not None:
        chat = await session.get(Chat, as_id)
        return chat if chat is not None else as_id
    channel, sep, chat_id = ref.partition(":")
    if sep:
        found = (
            await session.scalars(
                select(Chat).where(col(Chat.channel) == channel, col(Chat.chat_id) == chat_id)
            )
        ).first()
        if found is not None:
            return found
    debtor = await debtor_repo.get_by_external_id(session, ref)
    if debtor is None:
        raise NotFound("this conversation is no longer linked to a debtor", "no_chat")
    return debtor.id


def build_hooks(settings: Settings, clock: Clock, provider: PaymentProvider | None) -> seams.StaffHooks:
    return StaffServices(settings, clock, provider).hooks()
