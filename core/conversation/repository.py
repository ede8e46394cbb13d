"""Queries for the conversation: chats (locked per inbound message), handled message ids, a
debtor's open invoices as the chat shows them, invoices scoped to one debtor, link tokens."""

from __future__ import annotations

import functools
import uuid
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import Select, String, bindparam, delete, func, literal, select, true, update
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased
from sqlalchemy.orm.attributes import set_committed_value
from sqlmodel import col

from core.base import new_id, table_of
from core.bulk import insert_ignore
from core.channels import repository as channels_repo
from core.conversation import tone as chat_tone
from core.conversation.models import Chat, ChatInbound, LinkToken
from core.debtors.models import ContactPoint, Debtor
from core.dunning.models import DunningPolicy, DunningState
from core.invoices.models import PAYABLE_STATUSES, Invoice, InvoiceDocument
from core.ledger import service as ledger
from core.ledger.service import DebtorBalance, InvoiceBalance
from core.money import Money


async def chat_for_update(
    session: AsyncSession, channel: str, chat_id: str, *, locale: str, now: datetime
) -> Chat:
    """The chat, created on first contact, locked for this message (two deliveries of one update,
    or two quick messages, are handled one after the other). A known chat costs one statement."""
    stmt = (
        select(Chat)
        .where(col(Chat.channel) == channel, col(Chat.chat_id) == chat_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    chat = (await session.scalars(stmt)).one_or_none()
    if chat is not None:
        return chat
    await insert_ignore(
        session,
        table_of(Chat),
        [
            {
                "id": new_id(),
                "channel": channel,
                "chat_id": chat_id,
                "locale": locale,
                "data": {},
                "failures": [],
                "created_at": now,
                "updated_at": now,
            }
        ],
    )
    return (await session.scalars(stmt)).one()


def _chat_where() -> list[Any]:
    return [
        col(Chat.channel) == bindparam("chat_channel", type_=String()),
        col(Chat.chat_id) == bindparam("chat_chat_id", type_=String()),
    ]


@functools.cache
def _chat_debtor_tone_statement(fold: bool, with_window: bool = False) -> Select[Any]:
    """Built once (composing the tone's subqueries costs about a millisecond of Python per update).

    ``fold`` (PostgreSQL): the message id (``inbound_message_id``, ``inbound_at``) is inserted into
    chat_inbound and, when it was new, the chat is touched (``last_inbound_at`` and ``updated_at``
    set to ``inbound_at``, as :func:`touch_chat` does) in the same statement, as data-modifying
    CTEs; the chat comes from the UPDATE's RETURNING. The UPDATE locks the chat row as FOR UPDATE
    would for a second message of the chat, which waits and then reads the chat as the first left
    it. A second delivery of the same message waits for the first's commit on chat_inbound's unique
    key and then inserts nothing, so it updates no chat (as for an unknown chat, the chat's columns
    are NULL); the caller then reads the chat the plain way and finds the id recorded.

    ``with_window`` (folded only): ``core.channels``' record_inbound runs in the statement too
    (its binds: ``channels.service.inbound_params``), for every delivery as before, and the last
    column holds the ids of the contact points it unblocked (NULL for none)."""
    if not fold:
        return (
            select(Chat, Debtor, chat_tone.column(col(Debtor.id)))  # type: ignore[return-value]
            .outerjoin(Debtor, col(Debtor.id) == col(Chat.debtor_id))
            .where(*_chat_where())
            .with_for_update(of=table_of(Chat))
            .execution_options(populate_existing=True)
        )
    chats, inbound = table_of(Chat), table_of(ChatInbound)
    at = bindparam("inbound_at", type_=chats.c.last_inbound_at.type)
    source = select(col(Chat.id), bindparam("inbound_message_id", type_=String()), at).where(*_chat_where())
    inserted = (
        postgresql.insert(inbound)
        .from_select(["chat_pk", "message_id", "created_at"], source)
        .on_conflict_do_nothing()
        .returning(inbound.c.chat_pk)
        .cte("inbound")
    )
    touched = (
        update(chats)
        .where(*_chat_where(), chats.c.id.in_(select(inserted.c.chat_pk)))
        .values(last_inbound_at=at, updated_at=at)
        .returning(*chats.c)
        .cte("touched")
    )
    chat = aliased(Chat, touched, adapt_on_names=True)
    columns: list[Any] = [chat, Debtor, chat_tone.column(col(Debtor.id))]
    if with_window:
        unblocked = channels_repo.touch_and_set_status_statement().cte("unblocked")
        columns.append(select(func.array_agg(unblocked.c.id)).scalar_subquery())
    one = select(literal(1).label("one")).subquery("one")  # a row even when no chat was touched
    return (
        select(*columns)  # type: ignore[return-value]
        .select_from(one)
        .outerjoin(chat, true())
        .outerjoin(Debtor, col(Debtor.id) == chat.debtor_id)
        .execution_options(populate_existing=True)
    )


@dataclass(frozen=True)
class ChatForUpdate:
    chat: Chat
    debtor: Debtor | None  # None while the chat is unlinked
    tone: str
    first_time: bool  # False: a redelivery
    unblocked: list[uuid.UUID] | None  # None: ``window`` was not folded in (the caller runs it)


async def chat_and_debtor_for_update(
    session: AsyncSession,
    channel: str,
    chat_id: str,
    *,
    locale: str,
    now: datetime,
    message_id: str | None = None,
    window: dict[str, Any] | None = None,
) -> ChatForUpdate:
    """:func:`chat_for_update` with the chat's debtor (None while unlinked) and the tone of the
    replies (core/conversation/tone.py) read in the same statement; only the chat row is locked.
    With a ``message_id``, it is recorded as :func:`first_time` does (``first_time`` False: a
    redelivery; without one it is True). A chat that wrote something new is touched
    (:func:`touch_chat`: ``last_inbound_at`` is ``now``). ``window``: the binds of
    ``channels.service.inbound_params``; on PostgreSQL with a ``message_id`` that write runs in the
    same statement too and ``unblocked`` holds the ids it returned. A known chat's new message
    costs one statement on PostgreSQL."""
    values: dict[str, Any] = {
        "chat_channel": channel,
        "chat_chat_id": chat_id,
        **chat_tone.params(now.date()),
    }
    fold = bool(message_id) and session.get_bind().dialect.name == "postgresql"
    unblocked: list[uuid.UUID] | None = None
    if fold:
        values |= {"inbound_message_id": (message_id or "")[:128], "inbound_at": now, **(window or {})}
    row = (
        await session.execute(_chat_debtor_tone_statement(fold, fold and window is not None), values)
    ).first()
    if fold and row is not None and window is not None:
        unblocked = list(row[3] or ())
    if fold and row is not None and row[0] is not None:  # recorded and touched
        return ChatForUpdate(row[0], row[1], _tone(row), True, unblocked)
    if row is None or row[0] is None:  # an unknown chat (created here), or when folded a redelivery
        chat = await chat_for_update(session, channel, chat_id, locale=locale, now=now)
        debtor, tone = None, chat_tone.DEFAULT
    else:
        chat, debtor, tone = row[0], row[1], _tone(row)
    new = await first_time(session, chat.id, message_id, now) if message_id else True
    if new and debtor is None and chat.debtor_id is not None:
        # Folded, the message is new all the same: the chat was created or linked by another
        # message meanwhile. Read its debtor and tone (locked already: one more statement).
        row = (await session.execute(_chat_debtor_tone_statement(False), values)).one()
        chat, debtor, tone = row[0], row[1], _tone(row)
    if new:
        await touch_chat(session, chat, now)
    return ChatForUpdate(chat, debtor, tone, new, unblocked)


def _tone(row: Any) -> str:
    return str(row[2]) if row[1] is not None else chat_tone.DEFAULT


async def first_time(session: AsyncSession, chat_pk: uuid.UUID, message_id: str, now: datetime) -> bool:
    """Record a provider message id; False when it was handled before (a redelivery)."""
    row = {"chat_pk": chat_pk, "message_id": message_id[:128], "created_at": now}
    return await insert_ignore(session, table_of(ChatInbound), [row]) == 1


@functools.cache
def _touch_chat_statement() -> Any:
    chats = table_of(Chat)
    return (
        update(chats)
        .where(chats.c.id == bindparam("chat_pk"))
        .values(last_inbound_at=bindparam("touched_at"), updated_at=bindparam("touched_at"))
    )


async def touch_chat(session: AsyncSession, chat: Chat, now: datetime) -> None:
    """The chat wrote to us at ``now``: one UPDATE built once, and the loaded chat set to match
    without marking it changed (the unit of work then has nothing to flush for it)."""
    await session.execute(_touch_chat_statement(), {"chat_pk": chat.id, "touched_at": now})
    set_committed_value(chat, "last_inbound_at", now)
    set_committed_value(chat, "updated_at", now)


async def forget_inbound_before(session: AsyncSession, before: datetime) -> int:
    """Housekeeping: providers redeliver within hours, not weeks."""
    result = await session.execute(delete(ChatInbound).where(col(ChatInbound.created_at) < before))
    return int(getattr(result, "rowcount", 0) or 0)


@dataclass(frozen=True)
class OpenInvoice:
    id: uuid.UUID
    balance: InvoiceBalance

    @property
    def number(self) -> str:
        return self.balance.number

    @property
    def open(self) -> Money:
        return self.balance.open


async def open_invoices(
    session: AsyncSession, debtor_id: uuid.UUID, today: date, *, balance: DebtorBalance | None = None
) -> list[OpenInvoice]:
    """The debtor's payable invoices with money open, oldest due first (from the ledger).

    ``balance``: the debtor's balance as of ``today`` when the caller already has it (one ledger
    read instead of two)."""
    if balance is None:
        balance = await ledger.debtor_balance(session, debtor_id, today)
    payable = {s.value for s in PAYABLE_STATUSES}
    return [
        OpenInvoice(b.invoice_id, b)
        for b in balance.invoices
        if b.status in payable and b.open.minor > 0 and b.invoice_id is not None
    ]


async def invoice_of_debtor(session: AsyncSession, debtor_id: uuid.UUID, number: str) -> Invoice | None:
    """An invoice by number, only if it belongs to this debtor (another debtor's is "not found")."""
    stmt = select(Invoice).where(col(Invoice.number) == number, col(Invoice.debtor_id) == debtor_id)
    return (await session.scalars(stmt)).first()


async def invoice_by_number(session: AsyncSession, number: str) -> Invoice | None:
    """For identification only: the caller proves ownership with the amount before seeing anything."""
    stmt = select(Invoice).where(func.upper(col(Invoice.number)) == number.strip().upper())
    return (await session.scalars(stmt)).first()


async def document(session: AsyncSession, invoice_id: uuid.UUID) -> InvoiceDocument | None:
    return await session.get(InvoiceDocument, invoice_id)


async def promise_max_days(session: AsyncSession, invoice_ids: list[uuid.UUID]) -> int | None:
    """The strictest promise limit among the invoices' policies (None: none of them in dunning)."""
    if not invoice_ids:
        return None
    stmt = (
        select(func.min(col(DunningPolicy.promise_max_days)))
        .join(DunningState, col(DunningState.policy_id) == col(DunningPolicy.id))
        .where(col(DunningState.invoice_id).in_(invoice_ids))
    )
    value = (await session.execute(stmt)).scalar_one_or_none()
    return int(value) if value is not None else None


async def hold_states(session: AsyncSession, invoice_ids: list[uuid.UUID]) -> dict[uuid.UUID, DunningState]:
    if not invoice_ids:
        return {}
    stmt = select(DunningState).where(col(DunningState.invoice_id).in_(invoice_ids))
    return {s.invoice_id: s for s in (await session.scalars(stmt)).all()}


async def contact_point(
    session: AsyncSession, debtor_id: uuid.UUID, kind: str, address: str
) -> ContactPoint | None:
    stmt = select(ContactPoint).where(
        col(ContactPoint.debtor_id) == debtor_id,
        col(ContactPoint.kind) == kind,
        col(ContactPoint.address) == address,
    )
    return (await session.scalars(stmt)).first()


async def detach_chat_points(session: AsyncSession, kind: str, address: str, keep: uuid.UUID) -> None:
    """A chat belongs to one debtor: drop its contact point from any other debtor."""
    await session.execute(
        delete(ContactPoint).where(
            col(ContactPoint.kind) == kind,
            col(ContactPoint.address) == address,
            col(ContactPoint.debtor_id) != keep,
        )
    )


async def token_for_update(session: AsyncSession, token_hash: str) -> LinkToken | None:
    stmt = select(LinkToken).where(col(LinkToken.token_hash) == token_hash).with_for_update()
    return (await session.scalars(stmt)).first()


async def chats_of(session: AsyncSession, debtor_id: uuid.UUID) -> list[Chat]:
    stmt = select(Chat).where(col(Chat.debtor_id) == debtor_id).order_by(col(Chat.last_inbound_at).desc())
    return list((await session.scalars(stmt)).all())


async def chat_of(session: AsyncSession, channel: str, chat_id: str) -> Chat | None:
    """A chat by its channel address, e.g. for WhatsApp's 24-hour window (``last_inbound_at``)."""
    stmt = select(Chat).where(col(Chat.channel) == channel, col(Chat.chat_id) == chat_id)
    return (await session.scalars(stmt)).first()
