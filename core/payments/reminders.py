"""The pay options every debtor message carries (CONTRACT section 4), as a delivery hook.

``ReminderPayOptions(job)`` gives core.messaging.delivery the extra template context and the QR
images for one outbox message:

- a reminder about invoices: the checkout link (``pay_url``) of a PSP payment for those invoices
  (reused while open), and the RF reference (``payment_reference``: the invoice's own, or the
  debtor's for several); e-mail attaches the checkout QR and the EPC SEPA QR;
- a payment plan's instalment reminder (``job.extra`` names the instalment and its ``total``): a
  checkout for the instalment's amount, and the debtor's RF reference;
- a personal payment request (``kind = "payment_request"``): its amount, reason and checkout, and
  the debtor's RF reference.

Without a PSP, or with the PSP unreachable, the RF reference and the EPC QR still go out. The hook
never fails a message: anything unexpected is logged and the message goes out without pay options.
"""

from __future__ import annotations

from typing import Any

import structlog

from core.audit import SYSTEM
from core.config import Settings
from core.db import Database
from core.messaging.repository import Job
from core.money import Money
from core.payments import options
from core.payments.models import PaymentPurpose
from core.payments.options import PayOptions
from core.payments.service import CheckoutRequest
from core.payments.texts import checkout_description
from core.ports import Clock, PaymentProvider

log = structlog.get_logger(__name__)
Extras = tuple[dict[str, Any], list[tuple[str, bytes, str]]]


def extras_of(found: PayOptions | None) -> Extras:
    if found is None:
        return {}, []
    context: dict[str, Any] = {"payment_reference": found.reference_printable}
    if found.checkout_url:
        context["pay_url"] = found.checkout_url
    return context, found.images()


class ReminderPayOptions:
    def __init__(
        self, db: Database, settings: Settings, provider: PaymentProvider | None, clock: Clock
    ) -> None:
        self.db, self.settings, self.provider, self.clock = db, settings, provider, clock

    async def __call__(self, job: Job) -> Extras:
        try:
            if job.message.kind == "payment_request":
                return await self._request(job)
            extra: dict[str, Any] = getattr(job, "extra", None) or {}
            if extra.get("instalment") and isinstance(extra.get("total"), Money):
                return await self._instalment(job, extra)
            if not job.invoices:
                return {}, []
            async with self.db.session_scope() as session:
                found = await options.for_invoices(
                    session,
                    job.debtor.id,
                    [i.id for i in job.invoices],
                    settings=self.settings,
                    provider=self.provider,
                    actor=SYSTEM,
                    now=self.clock.now(),
                )
            return extras_of(found)
        except Exception:  # pay options are a help, never the reason a reminder fails
            log.exception("pay_options.failed", message_id=str(job.message.id))
            return {}, []

    async def _checkout(self, req: CheckoutRequest) -> Extras:
        """The pay options of a checkout that is not simply the reminder's invoices (its own commit)."""
        async with self.db.session_scope() as session:
            found = await options.build_for(
                session,
                req,
                settings=self.settings,
                provider=self.provider,
                actor=SYSTEM,
                now=self.clock.now(),
            )
        return extras_of(found)

    async def _instalment(self, job: Job, extra: dict[str, Any]) -> Extras:
        """A payment plan's instalment reminder: a checkout for the instalment's amount (not the
        invoices' whole open amount), with the debtor's RF reference."""
        amount: Money = extra["total"]
        instalment = extra["instalment"]
        number = (
            instalment.get("number") if isinstance(instalment, dict) else getattr(instalment, "number", "")
        )
        plan = job.message.payload.get("plan_id") or job.message.id
        req = CheckoutRequest(
            debtor=job.debtor,
            purpose=PaymentPurpose.instalment,
            scope=f"instalment:{plan}:{number}",
            amount=amount,
            description=checkout_description(
                job.debtor.locale, [i.number for i in job.invoices], self.settings.creditor_name or "duebot"
            ),
            metadata={"plan": str(plan), "instalment": str(number)},
        )
        return await self._checkout(req)

    async def _request(self, job: Job) -> Extras:
        payload = job.message.payload
        amount = Money(int(payload["amount_minor"]), str(payload["currency"]))
        reason = str(payload.get("reason") or "")
        req = CheckoutRequest(
            debtor=job.debtor,
            purpose=PaymentPurpose.request,
            scope=str(payload["scope"]),
            amount=amount,
            description=reason,
            metadata={"request": str(payload["scope"])},
        )
        context, images = await self._checkout(req)
        context.update(total=amount, invoices=[], reason=reason or None)
        return context, images
