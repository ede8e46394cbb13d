"""The conversation engine's dependencies, built once for every chat adapter.

Telegram, WhatsApp (``bots.wiring.conversation_handler``) and the demo chat page
(``api.routes.demo_chat.conversation_deps``) all call :func:`conversation_deps`, so that the three
adapters behave alike:

- ``pay_options``: core.payments.options with the configured PSP (a Mollie checkout link and its QR
  when ``MOLLIE_API_KEY`` is set), the RF reference, and the EPC SEPA QR for euro amounts;
- ``plans``: core.plans.service (propose within the segment's policy, counter-offers, accept);
- ``notify_staff``: :class:`StaffNotices`: the ``conversation.<kind>`` event always (in the
  debtor's transaction), and, when Slack is configured, a post in the staff channel *after* that
  transaction commits: a dispute thread, a hand-off thread (the debtor's later messages go into it),
  a plan to approve.

:func:`staff_hooks` is the other direction, for the Slack app: a staff reply in a hand-off thread
goes to the debtor's chat, and a plan decision is made and told to the debtor.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import structlog
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from bots.slack.notify import SlackStaffNotifier
from bots.slack.seams import DisputeNotice, PlanRequest, RelayNotice, StaffHooks
from core.audit import Actor
from core.config import Settings
from core.conversation import engine, payopts, relay
from core.conversation import repository as conv_repo
from core.conversation.context import ConversationDeps, StaffNotice, log_staff_notice
from core.conversation.decisions import tell_plan_decision
from core.conversation.flows.plan import read_proposal
from core.conversation.schemas import Inbound, Reply
from core.db import Database
from core.errors import FieldError, InvalidInput, NotFound
from core.ledger import repository as ledger_repo
from core.money import Money
from core.plans import service as plans
from core.plans.schemas import Counter
from core.ports import Clock, PaymentProvider

log = structlog.get_logger(__name__)
Post = Callable[[SlackStaffNotifier], Awaitable[object]]
_RUNNING: set[asyncio.Task[None]] = set()  # strong references while posting (deps may be per request)


def conversation_id(channel: str, chat_id: str) -> str:
    """How a hand-off thread names the chat it relays to (``staff_posts.ref``)."""
    return f"{channel}:{chat_id}"


@dataclass
class StaffNotices:
    """``notify_staff``: the event in the debtor's transaction, the Slack post after its commit.

    A slow or failing Slack never holds the debtor's transaction nor fails their answer; a post that
    fails is logged (the event is there for the outbound webhooks either way). :meth:`drain` waits
    for the posts under way (tests, shutdown).
    """

    notifier: SlackStaffNotifier | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    async def __call__(self, session: AsyncSession, notice: StaffNotice) -> None:
        await log_staff_notice(session, notice)
        if self.notifier is None:
            return
        post = await _post_for(session, notice)
        if post is None:
            return
        notifier = self.notifier

        def after_commit(_: Session) -> None:
            task = asyncio.get_running_loop().create_task(self._run(post, notifier, notice.kind))
            self._tasks.add(task)
            _RUNNING.add(task)
            task.add_done_callback(self._tasks.discard)
            task.add_done_callback(_RUNNING.discard)

        event.listen(session.sync_session, "after_commit", after_commit, once=True)

    async def _run(self, post: Post, notifier: SlackStaffNotifier, kind: str) -> None:
        try:
            await post(notifier)
        except Exception:  # Slack down: the event stays; staff see it in the digest and webhooks
            log.exception("slack.staff_notice_failed", kind=kind)

    async def drain(self) -> None:
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)


async def _post_for(session: AsyncSession, notice: StaffNotice) -> Post | None:
    """What to post for ``notice``, read now (inside the transaction), posted later."""
    conv = conversation_id(notice.channel, notice.chat_id)
    name = notice.debtor_name
    if notice.kind == "dispute":
        invoice = await conv_repo.invoice_of_debtor(
            session, notice.debtor_id, str(notice.data.get("invoice"))
        )
        if invoice is None:
            return None
        open_minor = await ledger_repo.open_amount(session, invoice.id)
        dispute = DisputeNotice(
            invoice.external_id, invoice.number, name, Money(open_minor, invoice.currency), notice.text
        )
        return lambda n: n.dispute(dispute)
    if notice.kind == "human":
        opened = RelayNotice(conv, name, notice.channel, notice.text)

        async def open_thread(n: SlackStaffNotifier) -> None:
            if await n.human_relay(opened) is None:  # a thread for this chat exists: continue it
                await n.debtor_message(conv, name, notice.text)

        return open_thread
    if notice.kind == "relay":

        async def into_thread(n: SlackStaffNotifier) -> None:
            if not await n.debtor_message(conv, name, notice.text):
                await n.human_relay(RelayNotice(conv, name, notice.channel, notice.text))

        return into_thread
    if notice.kind == "plan_approval":
        view = await plans.plan_view(session, uuid.UUID(str(notice.data["plan_id"])))
        request = PlanRequest(
            id=str(view.id),
            debtor_name=name,
            total=Money(view.total_minor, view.currency),
            instalments=len(view.instalments),
            first_due=min(i.due_on for i in view.instalments),
            policy_reason=view.reason_code or "",
        )
        return lambda n: n.plan_approval(request)
    return None  # paid claims and plan requests: the event (and the digest) is enough


@dataclass
class EngineHandler:
    """``bots.chat.ConversationHandler``: ``core.conversation.engine.handle`` with its deps bound.
    The engine notes the inbound message itself (``records_inbound``)."""

    deps: ConversationDeps
    records_inbound: ClassVar[bool] = True

    async def __call__(self, session: AsyncSession, inbound: Inbound) -> list[Reply]:
        return await engine.handle(session, inbound, deps=self.deps, record_inbound=True)


def conversation_deps(
    settings: Settings,
    db: Database,
    clock: Clock,
    provider: PaymentProvider | None,
    *,
    notifier: SlackStaffNotifier | None = None,
) -> ConversationDeps:
    """The one deps builder of the three chat adapters (Slack from settings unless ``notifier``)."""
    slack = notifier or SlackStaffNotifier.from_settings(settings, db, clock)
    return ConversationDeps(
        settings=settings,
        clock=clock,
        pay_options=payopts.service(settings, provider, clock),
        plans=plans,
        notify_staff=StaffNotices(slack),
    )


# ----------------------------------------------------------------------------- Slack → debtor


def staff_hooks(clock: Clock, base: StaffHooks | None = None) -> StaffHooks:
    """``base`` with the debtor-side hooks filled in: relay replies, decide plans."""
    hooks = base or StaffHooks()
    hooks.relay_to_debtor = hooks.relay_to_debtor or _relay_hook(clock)
    hooks.decide_plan = hooks.decide_plan or _decide_hook(clock)
    return hooks


def _relay_hook(clock: Clock) -> Callable[[AsyncSession, str, str, Actor], Awaitable[None]]:
    async def relay_reply(session: AsyncSession, conv: str, text: str, actor: Actor) -> None:
        channel, _, chat_id = conv.partition(":")
        chat = await conv_repo.chat_of(session, channel, chat_id)
        if chat is None:
            raise NotFound("the debtor's chat is gone", "no_chat")
        await relay.relay_to_debtor(session, chat, text, staff=actor, now=clock.now())

    return relay_reply


def _decide_hook(clock: Clock) -> Callable[[AsyncSession, str, str, str | None, Actor], Awaitable[None]]:
    async def decide(session: AsyncSession, plan_id: str, how: str, note: str | None, actor: Actor) -> None:
        try:
            pid = uuid.UUID(plan_id)
        except ValueError:
            raise NotFound("unknown payment plan", "plan_not_found") from None
        counter: Counter | None = None
        if how == "counter":
            counter = await _counter_of(session, pid, note or "")
        await plans.decide(
            session,
            pid,
            approve=how != "decline",
            actor=actor,
            counter=counter,
            today=clock.today(),
            note=note,
        )
        await tell_plan_decision(session, pid, staff=actor, now=clock.now())

    return decide


async def _counter_of(session: AsyncSession, plan_id: uuid.UUID, note: str) -> Counter:
    """Counter terms from the note: "6 instalments", "8", "€ 75 per month"."""
    view: Any = await plans.plan_view(session, plan_id)
    count, monthly = read_proposal(note, view.currency)
    if count is None and monthly is None:
        for word in note.split():  # "6 instalments, first in January"
            count, monthly = read_proposal(word, view.currency)
            if count is not None:
                break
    if count is None and monthly is None:
        message = 'say the terms, e.g. "6 instalments" or "€ 75 per month"'
        raise InvalidInput(message, "counter_terms", [FieldError(("note",), message, "counter_terms")])
    return Counter(instalments=count, monthly_amount_minor=monthly)
