"""What a flow works with while it answers one inbound message: the chat, its debtor, the clock,
the dependencies, and helpers to build replies and keep the dialogue state."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from core.audit import Actor
from core.config import Settings
from core.conversation import texts
from core.conversation import tone as chat_tone
from core.conversation.models import Chat
from core.conversation.nlu import Classifier, RulesClassifier
from core.conversation.payopts import PayOptionsFn
from core.conversation.schemas import Attachment, Option, Reply
from core.debtors.models import Debtor
from core.events.service import emit_many
from core.plans.schemas import PlanDecision
from core.ports import Clock

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class StaffNotice:
    """Something staff must see: a dispute, a payment claim, a request for a person, a plan to
    approve, or a message relayed from a debtor in a hand-off."""

    kind: str  # dispute, paid_claim, human, relay, plan_approval, plan_request
    debtor_id: uuid.UUID
    debtor_external_id: str
    debtor_name: str
    channel: str
    chat_id: str
    text: str
    data: dict[str, Any] = field(default_factory=dict)


NotifyStaff = Callable[[AsyncSession, StaffNotice], Awaitable[None]]


async def log_staff_notice(session: AsyncSession, notice: StaffNotice) -> None:
    """The default ``notify_staff``: a log line and a ``conversation.<kind>`` event (outbound
    webhooks carry it). The Slack staff bot replaces this with a message in the staff channel."""
    log.info("conversation.staff_notice", kind=notice.kind, debtor=notice.debtor_external_id)
    payload = {
        "debtor": notice.debtor_external_id,
        "channel": notice.channel,
        "text": notice.text,
        **{k: v for k, v in notice.data.items() if isinstance(v, str | int | float | bool | list | None)},
    }
    await emit_many(session, f"conversation.{notice.kind}", [(notice.debtor_external_id, payload)])


class PlansPort(Protocol):
    """The seam to ``core/plans/service.py`` (the module itself fits; bots/conversation.py wires it)."""

    async def propose(
        self,
        session: AsyncSession,
        *,
        debtor_id: uuid.UUID,
        invoice_ids: list[uuid.UUID],
        instalments: int | None,
        monthly_amount_minor: int | None,
        actor: Actor,
        today: date,
    ) -> PlanDecision: ...

    async def accept(
        self, session: AsyncSession, plan_id: Any, *, actor: Actor, today: date, now: datetime | None = None
    ) -> Any: ...


@dataclass
class ConversationDeps:
    """Everything the engine needs from outside; the composition roots build it.

    - ``pay_options``: PSP payment link + QR + EPC QR (core/payments/service once it lands); None
      falls back to the RF reference, the IBAN from settings and an EPC QR built here.
    - ``plans``: core/plans/service (propose/accept); None sends plan requests to staff.
    - ``notify_staff``: the staff channel (Slack); None logs and writes an event.
    - ``classifier``: free-text understanding; the rules classifier by default.
    """

    settings: Settings
    clock: Clock
    pay_options: PayOptionsFn | None = None
    plans: PlansPort | None = None
    notify_staff: NotifyStaff | None = None
    classifier: Classifier = field(default_factory=RulesClassifier)


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("Europe/Amsterdam")


@dataclass
class Ctx:
    session: AsyncSession
    chat: Chat
    deps: ConversationDeps
    now: datetime  # aware, UTC
    debtor: Debtor | None = None
    tone: str = chat_tone.DEFAULT  # of the chat's replies: core/conversation/tone.py

    @property
    def locale(self) -> str:
        return self.debtor.locale if self.debtor is not None else self.chat.locale

    @property
    def channel(self) -> str:
        return self.chat.channel

    @property
    def local_now(self) -> datetime:
        tz = zone(self.debtor.timezone if self.debtor else "Europe/Amsterdam")
        return self.now.astimezone(tz)

    @property
    def today(self) -> date:
        return self.local_now.date()

    @property
    def actor(self) -> Actor:
        assert self.debtor is not None
        return Actor("debtor", self.debtor.external_id, f"{self.chat.channel} chat")

    @property
    def linked(self) -> Debtor:
        """The chat's debtor; flows that show debtor data are only reached when there is one."""
        assert self.debtor is not None, "an unlinked chat never reaches a debtor flow"
        return self.debtor

    def text(self, key: str, **ctx: Any) -> str:
        return texts.render(key, self.locale, tone=self.tone, **ctx)

    def option(self, choice: str, label: str, **ctx: Any) -> Option:
        return Option(choice, texts.label(label, self.locale, **ctx))

    def reply(
        self,
        key: str,
        *,
        options: Sequence[Option] = (),
        attachments: Sequence[Attachment] = (),
        links: Sequence[tuple[str, str]] = (),
        **ctx: Any,
    ) -> Reply:
        return Reply(
            template=f"chat.{key}",
            text=self.text(key, **ctx),
            options=tuple(options),
            attachments=tuple(attachments),
            locale=self.locale,
            links=tuple(links),
        )

    def goto(self, flow: str | None, step: str | None = None, **data: Any) -> None:
        chat, state = self.chat, dict(data) if flow else {}
        if (chat.flow, chat.step, chat.data) == (flow, step, state):
            return  # unchanged: the chat stays clean, so the flush and the commit have nothing to compare
        chat.flow, chat.step, chat.data = flow, step, state

    async def notify(self, kind: str, text: str, **data: Any) -> None:
        debtor = self.linked
        notice = StaffNotice(
            kind=kind,
            debtor_id=debtor.id,
            debtor_external_id=debtor.external_id,
            debtor_name=debtor.name,
            channel=self.chat.channel,
            chat_id=self.chat.chat_id,
            text=text,
            data=data,
        )
        await (self.deps.notify_staff or log_staff_notice)(self.session, notice)

    def menu(self) -> list[Option]:
        return [
            self.option("menu:balance", "balance"),
            self.option("menu:invoices", "invoices"),
            self.option("menu:pay", "pay"),
            self.option("menu:promise", "promise"),
            self.option("menu:plan", "plan"),
            self.option("menu:more", "more"),
        ]

    def more_menu(self) -> list[Option]:
        return [
            self.option("menu:paid", "paid"),
            self.option("menu:dispute", "dispute"),
            self.option("menu:human", "human"),
            self.option("menu:channel", "channel"),
            self.option("menu:language", "language"),
            self.option("menu:stop", "stop"),
        ]

    def yes_no(self, flow: str) -> list[Option]:
        return [self.option(f"{flow}:yes", "yes"), self.option(f"{flow}:no", "no")]
