"""Staff's answer to a payment plan outside policy, back into the debtor's chat.

``tell_plan_decision`` runs in the transaction that decided the plan (Slack's Accept, Counter and
Decline, or ``POST /plans/{id}/decide``), after ``core.plans.service.decide``: it puts the answer on
the outbox for the debtor's most recent chat (``relay.relay_to_debtor``) and, for an approval, moves
that chat to the plan's decision step, so that the debtor's "yes" accepts the plan (the engine's
plan flow, step ``decision``). A debtor without a linked chat gets nothing here (the plan.decided
event still goes to the outbound webhooks).
"""

from __future__ import annotations

import uuid
from datetime import datetime

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from core.audit import Actor
from core.conversation import relay, texts
from core.conversation import repository as repo
from core.conversation import tone as chat_tone
from core.debtors.models import Debtor
from core.messaging.models import Message
from core.money import Money
from core.plans import service as plans
from core.plans.models import PlanState

log = structlog.get_logger(__name__)


async def tell_plan_decision(
    session: AsyncSession, plan_id: uuid.UUID, *, staff: Actor, now: datetime
) -> Message | None:
    """Queue the decision on plan ``plan_id`` for the debtor's chat; None when there is no chat."""
    view = await plans.plan_view(session, plan_id)
    chats = [c for c in await repo.chats_of(session, view.debtor_id) if c.debtor_id is not None]
    if not chats:
        log.info("plan.decision_not_in_chat", plan=str(plan_id), reason="no linked chat")
        return None
    chat = chats[0]
    debtor = await session.get(Debtor, view.debtor_id)
    assert debtor is not None
    approved = view.state == PlanState.approved_by_staff.value
    schedule = [{"due": i.due_on, "amount": Money(i.amount_minor, view.currency)} for i in view.instalments]
    text = texts.render(
        "plan.staff_approved" if approved else "plan.staff_declined",
        debtor.locale,
        tone=await chat_tone.of(session, debtor.id, now.date()),
        total=Money(view.total_minor, view.currency),
        down_payment=Money(view.down_payment_minor, view.currency),
        schedule=schedule,
    )
    if approved:
        chat.flow, chat.step, chat.data = "plan", "decision", {"plan_id": str(view.id)}
    elif chat.flow == "plan":
        chat.flow, chat.step, chat.data = None, None, {}
    return await relay.relay_to_debtor(session, chat, text, staff=staff, now=now)
