"""Personal payment requests: staff (Slack, later) or the API ask a debtor for an amount.

``request_payment`` makes the PSP checkout (when a PSP is configured), and queues one outbox
message (kind ``payment_request``, template ``payment_request``) on the debtor's channels in their
order of preference. Delivery adds the pay options (core/payments/reminders.py): the link, the
debtor's RF reference, and on e-mail the checkout and EPC QR images. The caller commits.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from core import audit
from core.audit import Actor
from core.base import new_id
from core.config import Settings
from core.debtors import repository as debtor_repo
from core.messaging.models import Message, MessageStatus
from core.money import Money
from core.payments import options
from core.payments.models import PaymentPurpose
from core.payments.options import PayOptions
from core.payments.service import CheckoutRequest
from core.ports import PaymentProvider

KIND = "payment_request"


@dataclass
class PaymentRequest:
    id: uuid.UUID  # the scope of its PSP payments: "request:<id>"
    message: Message
    options: PayOptions


async def request_payment(
    session: AsyncSession,
    debtor_id: uuid.UUID,
    amount: Money,
    reason: str,
    actor: Actor,
    *,
    settings: Settings,
    provider: PaymentProvider | None,
    now: datetime,
    tone: str = "neutral",
) -> PaymentRequest:
    debtor = await debtor_repo.get_by_id(session, debtor_id)
    request_id = new_id()
    scope = f"request:{request_id}"
    req = CheckoutRequest(
        debtor=debtor,
        purpose=PaymentPurpose.request,
        scope=scope,
        amount=amount,
        description=reason,
        metadata={"request": str(request_id)},
    )
    found = await options.build_for(session, req, settings=settings, provider=provider, actor=actor, now=now)
    message = Message(
        debtor_id=debtor.id,
        kind=KIND,
        template="payment_request",
        tone=tone,
        channels=list(debtor.channel_order),
        status=MessageStatus.queued,
        next_attempt_at=now,
        payload={
            "kind": KIND,
            "scope": scope,
            "amount_minor": amount.minor,
            "currency": amount.currency,
            "reason": reason,
            "requested_by": actor.label,
            "psp_payment_id": found.psp_payment_id,
        },
        created_at=now,
        updated_at=now,
    )
    session.add(message)
    await session.flush()
    await audit.record(
        session,
        actor,
        "payment_request.created",
        "debtor",
        debtor.external_id,
        after={
            "request": str(request_id),
            "message": str(message.id),
            "amount": amount.decimal_str,
            "currency": amount.currency,
            "reason": reason,
            "checkout": found.psp_payment_id,
            "reference": found.reference,
        },
    )
    return PaymentRequest(request_id, message, found)
