"""Posts to the staff channel, each subject once (claimed in ``staff_posts`` before it is sent).

Called by worker jobs (batches waiting, broken promises, the digest) and by the core
``notify_staff`` callback that the composition root wires (disputes, hand-offs, plan approvals).
A post that fails is released and tried again by the next run; a 429 is retried by the client
after Retry-After.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from typing import Any

import structlog
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy import select
from sqlmodel import col

from bots.slack import views
from bots.slack.common import who
from bots.slack.deps import build_client
from bots.slack.seams import DisputeNotice, PlanRequest, RefundRequest, RelayNotice
from bots.slack.texts import text
from core.config import Settings
from core.db import Database
from core.debtors.models import Debtor
from core.errors import NotFound
from core.events.models import EventType
from core.invoices.models import Invoice
from core.money import Money
from core.ports import Clock
from core.reports import digest
from core.staff import repository as posts
from core.staff import service as staff

log = structlog.get_logger(__name__)
BROKEN_PROMISE_WINDOW = timedelta(days=2)  # older events are not posted (no flood on first start)


async def post_once(
    client: AsyncWebClient,
    db: Database,
    *,
    kind: str,
    ref: str,
    channel: str,
    blocks: Sequence[dict[str, Any]],
    fallback: str | None = None,
    data: dict[str, Any] | None = None,
    thread_ts: str | None = None,
    now: datetime,
) -> str | None:
    """Post unless (kind, ref) was posted before. Returns the message ts, or None when it was.
    ``fallback`` (the notification text) defaults to the first block's text."""
    if fallback is None:
        fallback = str(blocks[0]["text"]["text"])
    async with db.session_scope() as session:
        claim = await posts.claim(session, kind, ref, {**(data or {}), "blocks": list(blocks)})
    if claim is None:
        return None
    try:
        answer = await client.chat_postMessage(
            channel=channel, text=fallback, blocks=list(blocks), thread_ts=thread_ts, unfurl_links=False
        )
    except Exception:
        async with db.session_scope() as session:
            await posts.release(session, claim)
        raise
    ts = str(answer["ts"])
    async with db.session_scope() as session:
        await posts.mark_posted(session, claim, str(answer.get("channel") or channel), ts, now)
    return ts


async def post_batch_for_approval(
    client: AsyncWebClient, db: Database, channel: str, batch_id: uuid.UUID, now: datetime
) -> str | None:
    async with db.sessionmaker() as session:
        summary = await staff.batch_summary(session, batch_id)
    if summary.status != "pending_approval":
        return None
    return await post_once(
        client,
        db,
        kind="batch",
        ref=str(batch_id),
        channel=channel,
        blocks=views.batch_message(summary),
        fallback=views.batch_fallback(summary),
        now=now,
    )


async def post_pending_batches(client: AsyncWebClient, db: Database, channel: str, now: datetime) -> int:
    """Every batch waiting for approval that was not posted yet (batches made by the API or CSV)."""
    async with db.sessionmaker() as session:
        ids = await posts.unposted_batches(session)
    posted = 0
    for batch_id in ids:
        if await post_batch_for_approval(client, db, channel, batch_id, now):
            posted += 1
    return posted


async def close_decided_batches(client: AsyncWebClient, db: Database, now: datetime) -> int:
    """Batch messages whose batch was decided elsewhere (the API, the CLI) lose their buttons and
    show who decided and when."""
    async with db.sessionmaker() as session:
        decided = []
        for post in await posts.open_posts(session, "batch"):
            try:
                summary = await staff.batch_summary(session, uuid.UUID(post.ref))
            except NotFound:
                continue
            if summary.status != "pending_approval":
                decided.append((post, summary))
    for post, summary in decided:
        await update_batch_message(client, db, str(post.channel), str(post.ts), summary, now)
    return len(decided)


async def update_batch_message(
    client: AsyncWebClient, db: Database, channel: str, ts: str, summary: staff.BatchSummary, now: datetime
) -> None:
    """Show the decision on the batch's message (no more buttons) and close its post."""
    by = who(summary.decided_by)
    await client.chat_update(
        channel=channel,
        ts=ts,
        text=text("batch_decided", decision=summary.status, who=by, when=views.when(summary.decided_at)),
        blocks=views.batch_decided(summary, by),
    )
    async with db.session_scope() as session:
        await posts.close(session, "batch", str(summary.id), now)


async def post_broken_promises(client: AsyncWebClient, db: Database, channel: str, now: datetime) -> int:
    """One post per ``promise.broken`` event of the last two days not posted yet."""
    async with db.sessionmaker() as session:
        events = await posts.unposted_events(
            session, EventType.promise_broken.value, "promise_broken", now - BROKEN_PROMISE_WINDOW
        )
        subjects = [e.subject for e in events]
        facts = {
            ext: (number, name, amount, currency)
            for ext, number, name, amount, currency in (
                await session.execute(
                    select(
                        col(Invoice.external_id),
                        col(Invoice.number),
                        col(Debtor.name),
                        col(Invoice.amount_minor),
                        col(Invoice.currency),
                    )
                    .join(Debtor, col(Debtor.id) == col(Invoice.debtor_id))
                    .where(col(Invoice.external_id).in_(subjects))
                )
            ).all()
        }
    posted = 0
    for event in events:
        number, name, amount, currency = facts.get(event.subject, (event.subject, "?", None, None))
        promised_on = event.payload.get("promised_on")
        blocks = views.promise_broken(
            event.subject,
            number,
            name,
            date.fromisoformat(promised_on) if promised_on else None,
            Money(int(amount), currency) if amount is not None and currency else None,
        )
        ts = await post_once(
            client,
            db,
            kind="promise_broken",
            ref=str(event.id),
            channel=channel,
            blocks=blocks,
            now=now,
        )
        posted += ts is not None
    return posted


async def post_digest(
    client: AsyncWebClient, db: Database, channel: str, today: date, now: datetime
) -> str | None:
    """The daily digest, once per day."""
    async with db.sessionmaker() as session:
        report = await digest.build(session, today, now)
    return await post_once(
        client,
        db,
        kind="digest",
        ref=today.isoformat(),
        channel=channel,
        blocks=views.digest_blocks(report),
        fallback=text("digest_title", day=today.isoformat()),
        now=now,
    )


async def post_dispute_thread(
    client: AsyncWebClient, db: Database, channel: str, notice: DisputeNotice, now: datetime
) -> str | None:
    """A new dispute opens a thread with the invoice and the debtor's words, with Resolve and Credit."""
    blocks = views.dispute_thread(notice)
    return await post_once(
        client,
        db,
        kind="dispute",
        ref=notice.invoice_external_id,
        channel=channel,
        blocks=blocks,
        data={"invoice": notice.invoice_external_id},
        now=now,
    )


async def post_relay_thread(
    client: AsyncWebClient, db: Database, channel: str, notice: RelayNotice, now: datetime
) -> str | None:
    """A debtor asking for a person opens a thread; staff replies in it are relayed to the debtor."""
    blocks = views.relay_root(notice)
    return await post_once(
        client,
        db,
        kind="relay",
        ref=notice.conversation_id,
        channel=channel,
        blocks=blocks,
        data={"debtor": notice.debtor_name},
        now=now,
    )


async def relay_debtor_message(
    client: AsyncWebClient, db: Database, conversation_id: str, debtor_name: str, words: str
) -> bool:
    """A debtor's message in a relayed conversation goes into its thread. False when there is none."""
    async with db.sessionmaker() as session:
        post = await posts.find(session, "relay", conversation_id)
    if post is None or post.ts is None or post.channel is None:
        return False
    await client.chat_postMessage(
        channel=post.channel, thread_ts=post.ts, text=views.relay_from_debtor(debtor_name, words)
    )
    return True


async def post_plan_approval(
    client: AsyncWebClient, db: Database, channel: str, plan: PlanRequest, now: datetime
) -> str | None:
    blocks = views.plan_approval(plan)
    return await post_once(
        client,
        db,
        kind="plan",
        ref=plan.id,
        channel=channel,
        blocks=blocks,
        now=now,
    )


async def post_refund_request(
    client: AsyncWebClient, db: Database, channel: str, refund: RefundRequest, now: datetime
) -> str | None:
    """The four-eyes request: Approve and Decline for the other approvers."""
    blocks = views.refund_four_eyes(refund)
    return await post_once(
        client,
        db,
        kind="refund",
        ref=refund.id,
        channel=channel,
        blocks=blocks,
        data={"requested_by": refund.requested_by},
        now=now,
    )


async def post_broken_promise(
    client: AsyncWebClient, db: Database, channel: str, invoice: str, now: datetime
) -> int:
    """For the ``notify_staff`` callback: post the broken promises not posted yet (this one among them)."""
    del invoice  # the events table has it; posting all pending keeps one code path
    return await post_broken_promises(client, db, channel, now)


class SlackStaffNotifier:
    """What the core ``notify_staff`` callback calls, bound to the client, database and channel.

    Call it after the commit that made the news (a dispute, a hand-off, a plan request), never inside
    the transaction: a slow Slack must not hold database locks. Each method posts at most once per
    subject. Build it with :meth:`from_settings` in a composition root; None when Slack is not set up.
    """

    def __init__(self, client: AsyncWebClient, db: Database, channel: str, clock: Clock) -> None:
        self.client, self.db, self.channel, self.clock = client, db, channel, clock

    @classmethod
    def from_settings(cls, settings: Settings, db: Database, clock: Clock) -> SlackStaffNotifier | None:
        if settings.slack_bot_token is None or not settings.slack_staff_channel:
            return None
        return cls(build_client(settings), db, settings.slack_staff_channel, clock)

    async def dispute(self, notice: DisputeNotice) -> str | None:
        return await post_dispute_thread(self.client, self.db, self.channel, notice, self.clock.now())

    async def human_relay(self, notice: RelayNotice) -> str | None:
        return await post_relay_thread(self.client, self.db, self.channel, notice, self.clock.now())

    async def debtor_message(self, conversation_id: str, debtor_name: str, words: str) -> bool:
        return await relay_debtor_message(self.client, self.db, conversation_id, debtor_name, words)

    async def plan_approval(self, plan: PlanRequest) -> str | None:
        return await post_plan_approval(self.client, self.db, self.channel, plan, self.clock.now())

    async def refund_request(self, refund: RefundRequest) -> str | None:
        return await post_refund_request(self.client, self.db, self.channel, refund, self.clock.now())

    async def broken_promise(self, invoice_external_id: str) -> int:
        return await post_broken_promise(
            self.client, self.db, self.channel, invoice_external_id, self.clock.now()
        )

    async def batch(self, batch_id: uuid.UUID) -> str | None:
        return await post_batch_for_approval(self.client, self.db, self.channel, batch_id, self.clock.now())


__all__ = [
    "SlackApiError",
    "SlackStaffNotifier",
    "close_decided_batches",
    "post_batch_for_approval",
    "post_broken_promise",
    "post_broken_promises",
    "post_digest",
    "post_dispute_thread",
    "post_once",
    "post_pending_batches",
    "post_plan_approval",
    "post_refund_request",
    "post_relay_thread",
    "relay_debtor_message",
]
