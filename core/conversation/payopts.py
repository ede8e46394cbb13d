"""Pay options shown in the chat: the payments module's (core/payments/options.py), one type.

``ConversationDeps.pay_options(session, debtor_id, invoice_ids)`` is the seam; :func:`service`
builds it over the payments service with the configured PSP (checkout link and its QR when Mollie
is configured, the RF reference always, the EPC SEPA QR for euro amounts when the creditor's name
and IBAN are configured). Without the seam, :func:`fallback` asks the same service without a PSP.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from core.audit import Actor
from core.config import Settings
from core.payments import options
from core.payments.options import PayOptions
from core.ports import Clock, PaymentProvider

PayOptionsFn = Callable[[AsyncSession, uuid.UUID, list[uuid.UUID]], Awaitable[PayOptions | None]]
CHAT = Actor("system", "chat", "debtor chat")

__all__ = ["PayOptions", "PayOptionsFn", "fallback", "service"]


def service(settings: Settings, provider: PaymentProvider | None, clock: Clock) -> PayOptionsFn:
    """``pay_options`` over core.payments.options with ``provider`` (None: no checkout link)."""

    async def pay_options(
        session: AsyncSession, debtor_id: uuid.UUID, invoice_ids: list[uuid.UUID]
    ) -> PayOptions | None:
        return await options.for_invoices(
            session, debtor_id, invoice_ids, settings=settings, provider=provider, actor=CHAT, now=clock.now()
        )

    return pay_options


async def fallback(
    session: AsyncSession,
    settings: Settings,
    *,
    debtor_id: uuid.UUID,
    invoice_ids: Sequence[uuid.UUID],
    now: datetime,
) -> PayOptions | None:
    """The RF reference and the EPC QR without a PSP (no payment link)."""
    return await options.for_invoices(
        session, debtor_id, invoice_ids, settings=settings, provider=None, actor=CHAT, now=now
    )
