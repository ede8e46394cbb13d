"""The tone of the chat's replies (friendly, neutral, firm), from the dunning stage and the debtor's
payment history, as for reminders (core/dunning/tone.py).

The rule:

1. While the debtor has an open invoice that was reminded, the chat speaks in the tone of the most
   recent of those reminders. The sweep chose that tone from the stage and the debtor's history,
   so the chat and the reminders agree: a debtor who got a firm reminder this morning does not get
   a cheerful "Hi!" in the chat.
2. Otherwise (nothing reminded is open: never reminded, or everything reminded is paid) the debtor
   is at a stage before any reminder, whose tone is friendly, moved by the same history rule:
   a habitual late payer gets neutral; everyone else friendly.

Rule 1 looks only at reminders about invoices still open, so that a debtor who paid after a firm
final notice is not addressed firmly for the rest of the year; their history (rule 2) still keeps
a habitual late payer at neutral.

The engine loads the chat and its debtor with :func:`column` in one statement (no extra round trip on an
update; core/conversation/repository.py): a scalar subquery whose history part PostgreSQL evaluates only when rule 1 finds nothing
(COALESCE). Rule 1 goes through the indexes on ``messages.debtor_id`` and ``dunning_actions.message_id``.
"""

from __future__ import annotations

import functools
import uuid
from datetime import UTC, date, datetime, time
from typing import Any

from sqlalchemy import ColumnElement, Date, Select, Uuid, bindparam, case, func, literal, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from core.base import UTCDateTime, table_of
from core.dunning import tone as dunning_tone
from core.dunning.models import DunningAction, Promise, PromiseStatus
from core.invoices.models import PAYABLE_STATUSES, Invoice, InvoiceStatus
from core.messaging.models import Message

BEFORE_ANY_REMINDER = "friendly"  # the tone of a stage before the due date (reminder_before_due)
DEFAULT = BEFORE_ANY_REMINDER  # an unlinked chat, or a debtor linked during this message
SINCE, SINCE_AT = "chat_tone_since", "chat_tone_since_at"  # the history window's start


def _latest_open_reminder_tone(debtor_id: Any) -> ColumnElement[Any]:
    """The tone of the newest reminder to the debtor about an invoice of theirs that is still open.

    Reached through the debtor's messages (``messages.debtor_id`` is indexed; a debtor has few) and
    the actions that point at each (``dunning_actions.message_id`` is indexed), so the sweep's hot
    table ``dunning_actions`` needs no index of its own for the chat.
    """
    about_open_invoice = (
        select(literal(1))
        .select_from(DunningAction)
        .join(Invoice, col(Invoice.id) == col(DunningAction.invoice_id))
        .where(
            col(DunningAction.message_id) == col(Message.id),
            # Constant values, not an expanding list: nothing to re-render at every execution.
            col(Invoice.status).in_(
                [literal(s.value, table_of(Invoice).c.status.type) for s in PAYABLE_STATUSES]
            ),
        )
        .exists()
    )
    return (
        select(col(Message.tone))
        .where(col(Message.debtor_id) == debtor_id, col(Message.kind) == "reminder", about_open_invoice)
        .order_by(col(Message.created_at).desc())
        .limit(1)
        .scalar_subquery()
    )


def _history_tone(debtor_id: Any) -> ColumnElement[Any]:
    """``dunning_tone.choose(BEFORE_ANY_REMINDER, history)`` in SQL, for one debtor: the history
    rule of core/dunning/tone.py (same window, same thresholds) at a friendly stage."""
    reminded = (
        select(literal(1))
        .where(
            col(DunningAction.invoice_id) == col(Invoice.id),
            col(DunningAction.stage_key) != dunning_tone.ISSUED,
        )
        .exists()
    )
    late = (
        select(func.count())
        .select_from(Invoice)
        .where(
            col(Invoice.debtor_id) == debtor_id,
            col(Invoice.status) == InvoiceStatus.paid.value,
            col(Invoice.due_date) >= bindparam(SINCE, type_=Date()),
            reminded,
        )
        .scalar_subquery()
    )
    broken = (
        select(func.count())
        .select_from(Promise)
        .where(
            col(Promise.debtor_id) == debtor_id,
            col(Promise.status) == PromiseStatus.broken.value,
            col(Promise.created_at) >= bindparam(SINCE_AT, type_=UTCDateTime()),
        )
        .scalar_subquery()
    )
    habitual = or_(late >= dunning_tone.HABITUAL_LATE, broken >= dunning_tone.HABITUAL_BROKEN)
    # A good payer at a friendly stage stays friendly: only the habitual branch moves the tone.
    firmer = dunning_tone.FIRMER[BEFORE_ANY_REMINDER]
    return case((habitual, literal(firmer)), else_=literal(BEFORE_ANY_REMINDER))


def column(debtor_id: Any) -> ColumnElement[str]:
    """The chat tone of debtor ``debtor_id`` (a column or a value) as a labelled SQL expression, to
    select next to the debtor; execute it with :func:`params`::

        select(Debtor, column(col(Debtor.id))).where(...), params(today)
    """
    return func.coalesce(_latest_open_reminder_tone(debtor_id), _history_tone(debtor_id)).label("chat_tone")


def params(today: date) -> dict[str, Any]:
    """The bound values :func:`column` needs: the start of the history window."""
    since = today - dunning_tone.WINDOW
    return {SINCE: since, SINCE_AT: datetime.combine(since, time(), UTC)}


@functools.cache
def _tone_statement() -> Select[str]:
    return select(column(bindparam("chat_tone_debtor_id", type_=Uuid())))


async def of(session: AsyncSession, debtor_id: uuid.UUID, today: date) -> str:
    """The chat tone alone (for texts sent outside an update, such as staff's plan decision)."""
    values = {"chat_tone_debtor_id": debtor_id, **params(today)}
    tone = await session.scalar(_tone_statement(), values)
    return str(tone or DEFAULT)
