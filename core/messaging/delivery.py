"""Delivery of the outbox: claim due messages, pick a channel, render, rate-limit, send, record.

``deliver()`` is what a thin arq job calls on every tick. It claims a batch in one short transaction
(``FOR UPDATE SKIP LOCKED``; committed before anything is sent, so two workers never take the same
message), then handles each message on its own:

1. Read, in one short session, the message, its debtor, contact points and the invoices it is about
   (``dunning_actions.message_id``) that are still open. None left (paid meanwhile): the message ends
   ``failed`` with the error ``"nothing left to remind: …"`` (the status enum has no ``cancelled``).
2. Contact rules of the invoices' policy: quiet hours in the debtor's timezone, at most
   ``max_messages_per_week`` sends in 7 days, ``min_gap_hours`` between two. When they say "not now",
   the message is requeued for the first moment they allow; that is no failure and no attempt.
3. Channels: the debtor's ``channel_order`` filtered to the message's channels, then the rest of the
   message's channels. Per channel, the contact points of its kind that are not opted out, have
   consent and are not ``bounced``/``blocked``, best (verified, newest) first; a channel needs a sender.
4. Per candidate, no transaction open: render (a template error fails the message visibly), take a
   rate-limit slot (a wait of up to a second is slept through; a longer one requeues the message for
   when a slot is free, no failure), send.
   - success: ``sent``;
   - permanent error: the contact point is marked (``bounced``, ``blocked`` or ``failed``) and the next
     candidate is tried in the same pass (fallback);
   - transient error: requeued after ``max(retry_after, backoff)`` on the same channel; after
     ``max_transient`` transient errors on one contact point, that one counts as failed and the next
     candidate is tried.
   No candidate left: ``failed`` with every channel's reason.
5. Write the outcome in one short transaction, guarded by the claim (status ``sending`` and the
   claim's ``updated_at``): a worker that lost its message to a lease takeover writes nothing.

Per-message channel state (transient errors, failures per contact point, the contact point used) is
kept in ``payload["delivery"]``, so that a retry resumes where the last pass stopped and receipts can
find the contact point. A pass that aborts on an unexpected error hands the messages it had not
started back to the queue.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import structlog

from core.db import Database
from core.debtors.models import DEFAULT_CHANNEL_ORDER, ContactPoint
from core.dunning.models import DunningPolicy
from core.messaging import repository as repo
from core.messaging.models import MessageStatus
from core.messaging.ratelimit import RateLimiter, backoff
from core.money import Money
from core.ports import Clock, DeliveryError, MessageSender, OutboundMessage
from core.templates import TemplateNotFound, TemplateRenderError, render

log = structlog.get_logger(__name__)

KIND_OF_CHANNEL = {"email": "email", "sms": "phone", "telegram": "telegram", "whatsapp": "whatsapp"}
DEAD_STATUSES = ("bounced", "blocked")  # a contact point in one of these is not tried again
BLOCKED_CODES = frozenset({"blocked", "forbidden", "403", "opted_out", "unsubscribed"})
BOUNCED_CODES = frozenset({"bounced", "550", "551", "553", "invalid_address"})
NOTHING_LEFT = "nothing left to remind: every invoice of this message was paid or closed meanwhile"
# Messages about no invoice (a personal payment request): the pay-options hook gives their context.
STANDALONE_KINDS = frozenset({"payment_request"})
ATTACHING_CHANNELS = frozenset({"email"})  # channels whose senders carry the pay options' QR images
# Extra template context and attachments (filename, bytes, content type) for a message: the pay
# options (core/payments/reminders.py). None: reminders go out without them.
PayOptionsHook = Callable[["repo.Job"], Awaitable[tuple[dict[str, Any], list[tuple[str, bytes, str]]]]]
WEEK = timedelta(days=7)
CHAT_KIND = "chat"  # a message into a debtor's chat, from staff (core.conversation.relay)
LIMITER_DOWN_WAIT = timedelta(seconds=5)
INLINE_WAIT = 1.0  # seconds: a shorter rate-limit wait is slept through in place instead of requeueing
INLINE_WAIT_TOTAL = 2.0  # seconds per message at most


@dataclass
class DeliveryStats:
    claimed: int = 0
    sent: int = 0
    requeued: int = 0  # retries, contact-rule deferrals and rate-limit waits
    failed: int = 0
    fell_back: int = 0  # sent after another channel had failed for the message


@dataclass(frozen=True)
class ContactRules:
    """The contact rules of a message's policies (the strictest when its invoices have several)."""

    quiet_start_hour: int = 21
    quiet_end_hour: int = 8
    max_per_week: int = 0  # 0: no cap
    min_gap: timedelta = timedelta(0)

    @classmethod
    def of(cls, policies: list[DunningPolicy]) -> ContactRules:
        if not policies:
            return cls(0, 0)
        caps = [p.max_messages_per_week for p in policies if p.max_messages_per_week > 0]
        return cls(
            quiet_start_hour=policies[0].quiet_start_hour % 24,
            quiet_end_hour=policies[0].quiet_end_hour % 24,
            max_per_week=min(caps) if caps else 0,
            min_gap=timedelta(hours=max(p.min_gap_hours for p in policies)),
        )


def quiet_until(now: datetime, tz: ZoneInfo, start_hour: int, end_hour: int) -> datetime | None:
    """When the quiet period around ``now`` ends (UTC), or None outside it. It runs from
    ``start_hour`` to ``end_hour`` local time and may wrap midnight (21 → 8); equal hours: none."""
    if start_hour == end_hour:
        return None
    local = now.astimezone(tz)
    h = local.hour
    wraps = start_hour > end_hour  # 21 → 8 runs through midnight
    quiet = (h >= start_hour or h < end_hour) if wraps else (start_hour <= h < end_hour)
    if not quiet:
        return None
    day = local.date() if h < end_hour else local.date() + timedelta(days=1)
    return datetime.combine(day, time(end_hour), tzinfo=tz).astimezone(UTC)


def allowed_from(
    now: datetime, rules: ContactRules, tz: ZoneInfo, recent: list[datetime]
) -> tuple[datetime, str] | None:
    """The first moment the contact rules allow a send, with the reason, or None if they allow it now.

    ``recent``: the debtor's sends of the last 7 days, oldest first.
    """
    at, reasons = now, []
    if recent and rules.min_gap and recent[-1] + rules.min_gap > at:
        at = recent[-1] + rules.min_gap
        reasons.append(f"at least {rules.min_gap} between two messages")
    if rules.max_per_week and len(recent) >= rules.max_per_week:
        free = recent[len(recent) - rules.max_per_week] + WEEK
        if free > at:
            at = free
        reasons.append(f"at most {rules.max_per_week} messages in 7 days")
    quiet_end = quiet_until(at, tz, rules.quiet_start_hour, rules.quiet_end_hour)
    if quiet_end is not None:
        at = quiet_end
        reasons.append(f"quiet hours {rules.quiet_start_hour:02d}:00-{rules.quiet_end_hour:02d}:00 {tz.key}")
    return (at, "; ".join(reasons)) if at > now else None


def channel_plan(preferred: list[str], allowed: list[str]) -> list[str]:
    """The debtor's preference among the allowed channels first, then the rest in the given order."""
    allowed = list(dict.fromkeys(allowed or [*preferred, *DEFAULT_CHANNEL_ORDER]))
    first = [c for c in dict.fromkeys(preferred) if c in allowed]
    return first + [c for c in allowed if c not in first]


def contact_status(error: DeliveryError) -> str:
    """What a permanent error says about the address: ``blocked``, ``bounced`` or just ``failed``."""
    code = (error.code or "").strip().lower()
    if code in BLOCKED_CODES:
        return "blocked"
    if code in BOUNCED_CODES:
        return "bounced"
    return "failed"


def _why_unusable(point: ContactPoint) -> str | None:
    if point.opted_out:
        return "opted out"
    if not point.consent:
        return "no consent"
    if point.last_delivery_status in DEAD_STATUSES:
        return f"address {point.last_delivery_status}"
    return None


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def _percent(basis_points: int) -> str:
    return format((Decimal(basis_points) / 100).normalize(), "f")


def render_context(job: repo.Job, creditor_name: str, today: date) -> dict[str, Any]:
    """What core.templates.render needs, from the message's open invoices (most overdue first).

    The total (and fee) are in the currency of the first invoice; the stage fee is the sum of the
    fees of the invoices' stages in that currency.
    """
    currency = job.invoices[0].currency
    same = [i for i in job.invoices if i.currency == currency]
    fee_minor = sum(i.fee_minor or 0 for i in same if i.fee_currency == currency)
    rate_of = {p.id: p.interest_rate_bp for p in job.policies}
    rates = [rate_of.get(i.policy_id, 0) for i in job.invoices if i.charge_interest]
    rates = [r for r in rates if r > 0]
    return {
        "debtor_name": job.debtor.name,
        "creditor_name": creditor_name,
        "invoices": [
            {
                "number": i.number,
                "due_date": i.due_date,
                "open": Money(i.open_minor, i.currency),
                "days_overdue": (today - i.due_date).days,
            }
            for i in job.invoices
        ],
        "total": Money(sum(i.open_minor for i in same), currency),
        "pay_url": None,
        "fee": Money(fee_minor, currency) if fee_minor else None,
        "interest_rate": _percent(rates[0]) if rates else None,
        "deadline": None,
        **job.extra,
    }


@dataclass
class Outcome:
    status: str
    error: str | None = None
    next_attempt_at: datetime | None = None
    channel: str | None = None
    provider_id: str | None = None
    sends: int = 0
    state: dict[str, Any] = field(default_factory=dict)  # payload["delivery"]
    points: list[tuple[uuid.UUID, str]] = field(default_factory=list)
    fell_back: bool = False


class _Run:
    def __init__(
        self,
        db: Database,
        senders: Mapping[str, MessageSender],
        *,
        clock: Clock,
        limiter: RateLimiter | None,
        creditor_name: str,
        max_transient: int,
        rng: random.Random | None,
        pay_options: PayOptionsHook | None = None,
    ) -> None:
        self.db, self.senders, self.clock, self.limiter = db, senders, clock, limiter
        self.creditor_name, self.max_transient, self.rng = creditor_name, max_transient, rng
        self.pay_options = pay_options

    async def one(self, message_id: uuid.UUID, token: datetime, stats: DeliveryStats) -> None:
        now = self.clock.now()
        async with self.db.session_scope() as s:
            job = await repo.load_job(s, message_id, token, since=now - WEEK)
        if job is None:
            log.info("delivery.lost_claim", message_id=str(message_id))
            return
        try:
            outcome = await self.decide(job, now)
        except Exception as exc:  # a bug or bad data in this message must not stop the batch
            log.exception("delivery.crashed", message_id=str(message_id))
            state = dict(job.message.payload.get("delivery") or {})
            outcome = Outcome(MessageStatus.failed.value, f"internal error: {exc!r}", state=state)
        await self.record(job, token, outcome)
        if outcome.status == MessageStatus.sent.value:
            stats.sent += 1
            stats.fell_back += int(outcome.fell_back)
        elif outcome.status == MessageStatus.queued.value:
            stats.requeued += 1
        else:
            stats.failed += 1

    @staticmethod
    async def _slot(limiter: RateLimiter, channel: str, recipient: str) -> float | None:
        """A send slot now (None), or how long to wait for one. A short wait (a full second of
        Telegram's 30/s, a chat's 1/s) is slept through here: a requeued message would only come back
        on a later pass, after another claim and load, so the slot would go unused meanwhile."""
        waited = 0.0
        while True:
            wait = await limiter.acquire(channel, recipient)
            if wait is None or wait > INLINE_WAIT or waited + wait > INLINE_WAIT_TOTAL:
                return wait
            await asyncio.sleep(wait)
            waited += wait

    async def decide(self, job: repo.Job, now: datetime) -> Outcome:
        if job.message.kind == CHAT_KIND:
            return await self.chat(job, now)
        state: dict[str, Any] = dict(job.message.payload.get("delivery") or {})
        tz = _zone(job.debtor.timezone)
        if not job.invoices and job.message.kind not in STANDALONE_KINDS:
            return Outcome(MessageStatus.failed.value, NOTHING_LEFT, state=state)
        wait = allowed_from(now, ContactRules.of(job.policies), tz, job.recent_sent)
        if wait is not None:
            state["deferred"] = {"until": wait[0].isoformat(), "reason": wait[1]}
            return Outcome(
                MessageStatus.queued.value, job.message.error, next_attempt_at=wait[0], state=state
            )
        state.pop("deferred", None)
        return await self.attempt(job, state, now, now.astimezone(tz).date())

    async def attempt(self, job: repo.Job, state: dict[str, Any], now: datetime, today: date) -> Outcome:
        message = job.message
        reasons: list[str] = []
        points: list[tuple[uuid.UUID, str]] = []
        sends = 0
        fell_back = any(v.get("failed") for v in state.values() if isinstance(v, dict))
        context = (
            render_context(job, self.creditor_name, today)
            if job.invoices
            else {"debtor_name": job.debtor.name, "creditor_name": self.creditor_name}
        )
        attachments: list[tuple[str, bytes, str]] = []
        if self.pay_options is not None:
            extra, attachments = await self.pay_options(job)
            context.update(extra)

        def out(status: str, error: str | None, **kw: Any) -> Outcome:
            return Outcome(status, error, sends=sends, state=state, points=points, fell_back=fell_back, **kw)

        for channel in channel_plan(list(job.debtor.channel_order), list(message.channels)):
            kind = KIND_OF_CHANNEL.get(channel)
            sender = self.senders.get(channel)
            if kind is None or sender is None:
                reasons.append(f"{channel}: no sender configured")
                continue
            of_kind = [p for p in job.points if p.kind == kind]
            usable = [p for p in of_kind if _why_unusable(p) is None]
            if not usable:
                why = "; ".join(dict.fromkeys(_why_unusable(p) or "" for p in of_kind)) or "no address"
                reasons.append(f"{channel}: {why}")
                continue
            for point in usable:
                tried: dict[str, Any] = dict(state.get(str(point.id)) or {"channel": channel})
                if tried.get("failed"):
                    reasons.append(f"{channel}: {tried['failed']}")
                    continue
                try:
                    rendered = render(message.template, job.debtor.locale, channel, message.tone, **context)
                except (TemplateNotFound, TemplateRenderError) as exc:
                    return out(MessageStatus.failed.value, f"{channel}: {exc.message}", channel=channel)
                if self.limiter is not None:
                    try:
                        wait = await self._slot(self.limiter, channel, point.address)
                    except Exception as exc:  # Redis unreachable: wait, do not fail the message
                        log.warning("delivery.limiter_unavailable", error=repr(exc))
                        again = now + LIMITER_DOWN_WAIT
                        return out(MessageStatus.queued.value, message.error, next_attempt_at=again)
                    if wait is not None:
                        again = now + timedelta(seconds=wait)
                        return out(MessageStatus.queued.value, message.error, next_attempt_at=again)
                outbound = OutboundMessage(
                    channel=channel,
                    address=point.address,
                    subject=rendered.subject,
                    body=rendered.text,
                    attachments=attachments if channel in ATTACHING_CHANNELS else [],
                    meta={"html": rendered.html, "reference": str(message.id), "kind": message.kind},
                )
                sends += 1
                try:
                    result = await sender.send(outbound)
                except Exception as exc:
                    error = (
                        exc
                        if isinstance(exc, DeliveryError)
                        else DeliveryError(f"unexpected error: {exc!r}", permanent=False, code="error")
                    )
                    reason = f"{channel}: {error.reason}"
                    if error.permanent:
                        points.append((point.id, contact_status(error)))
                        tried["failed"] = error.reason
                    else:
                        tried["transient"] = n = int(tried.get("transient", 0)) + 1
                        if n < self.max_transient:
                            state[str(point.id)] = tried
                            delay = max(error.retry_after or 0.0, backoff(n, rng=self.rng))
                            again = now + timedelta(seconds=delay)
                            return out(
                                MessageStatus.queued.value, reason, next_attempt_at=again, channel=channel
                            )
                        points.append((point.id, "failed"))
                        tried["failed"] = f"{error.reason} (gave up after {n} attempts)"
                    state[str(point.id)] = tried
                    reasons.append(f"{channel}: {tried['failed']}")
                    fell_back = True
                    log.info("delivery.fallback", message_id=str(message.id), channel=channel, error=reason)
                    continue
                points.append((point.id, "sent"))
                state["to"] = str(point.id)
                return out(MessageStatus.sent.value, None, channel=channel, provider_id=result.provider_id)
        return out(MessageStatus.failed.value, "; ".join(reasons) or "no channel to deliver on")

    async def chat(self, job: repo.Job, now: datetime) -> Outcome:
        """A staff answer into a debtor's chat (core.conversation.relay): the chat's own channel and
        address, no contact rules (the debtor asked), retried on transient errors."""
        message = job.message
        state: dict[str, Any] = dict(message.payload.get("delivery") or {})
        channel = message.channel or next(iter(message.channels), "")
        sender = self.senders.get(channel)
        if sender is None:
            return Outcome(MessageStatus.failed.value, f"{channel}: no sender configured", state=state)
        outbound = OutboundMessage(
            channel=channel,
            address=str(message.payload.get("chat_id", "")),
            subject=None,
            body=str(message.payload.get("text", "")),
            meta={"reference": str(message.id), "kind": message.kind},
        )
        try:
            result = await sender.send(outbound)
        except DeliveryError as exc:
            tries = message.attempts + 1
            if exc.permanent or tries >= self.max_transient:
                return Outcome(
                    MessageStatus.failed.value,
                    f"{channel}: {exc.reason}",
                    channel=channel,
                    sends=1,
                    state=state,
                )
            delay = max(exc.retry_after or 0.0, backoff(tries, rng=self.rng))
            again = now + timedelta(seconds=delay)
            return Outcome(
                MessageStatus.queued.value,
                f"{channel}: {exc.reason}",
                next_attempt_at=again,
                channel=channel,
                sends=1,
                state=state,
            )
        return Outcome(
            MessageStatus.sent.value,
            None,
            channel=channel,
            provider_id=result.provider_id,
            sends=1,
            state=state,
        )

    async def record(self, job: repo.Job, token: datetime, o: Outcome) -> None:
        message, now = job.message, self.clock.now()
        values: dict[str, Any] = {
            "status": o.status,
            "error": o.error,
            "attempts": message.attempts + o.sends,
            "payload": {**message.payload, "delivery": o.state},
            "updated_at": now,
        }
        if o.channel is not None:
            values["channel"] = o.channel
        if o.status == MessageStatus.queued.value:
            values["next_attempt_at"] = o.next_attempt_at
        if o.status == MessageStatus.sent.value:
            values.update(provider_id=o.provider_id, sent_at=now)
        async with self.db.session_scope() as s:
            held = await repo.transition(s, message.id, token, **values)
            await repo.mark_points(s, o.points, now)
        if not held:
            log.warning("delivery.lost_claim", message_id=str(message.id), outcome=o.status)
        event = "delivery.failed" if o.status == MessageStatus.failed.value else f"delivery.{o.status}"
        log.info(event, message_id=str(message.id), channel=o.channel, error=o.error)


async def deliver(
    db: Database,
    senders: Mapping[str, MessageSender],
    *,
    clock: Clock,
    limiter: RateLimiter | None,
    creditor_name: str,
    batch: int = 100,
    lease: timedelta = repo.LEASE,
    max_transient: int = 5,
    rng: random.Random | None = None,
    pay_options: PayOptionsHook | None = None,
) -> DeliveryStats:
    """Claim up to ``batch`` due messages and deliver each; ``limiter=None`` sends unthrottled."""
    async with db.session_scope() as s:
        claimed = [(m.id, m.updated_at) for m in await repo.claim(s, clock.now(), batch, lease=lease)]
    stats = DeliveryStats(claimed=len(claimed))
    run = _Run(
        db,
        senders,
        clock=clock,
        limiter=limiter,
        creditor_name=creditor_name,
        max_transient=max(1, max_transient),
        rng=rng,
        pay_options=pay_options,
    )
    pending = list(claimed)
    try:
        while pending:
            message_id, token = pending.pop(0)
            await run.one(message_id, token, stats)
    finally:
        if pending:  # aborted: hand back what was never started (the lease covers the one in flight)
            try:
                async with db.session_scope() as s:
                    await repo.release(s, pending)
            except Exception:  # the database is gone too; the lease brings them back later
                log.exception("delivery.release_failed", messages=len(pending))
    return stats
