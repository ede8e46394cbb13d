"""The conversation engine: one ``Inbound`` in, a list of ``Reply`` out. Channel adapters call
:func:`handle` inside their own session scope and commit after it (the engine only flushes).

Order of business for one message:

1. The chat row is created on first contact and locked; a provider message id seen before is a
   redelivery and gets no answer (nothing changes).
2. A locked chat (too many failed identify tries) gets the "locked" reply and nothing else.
3. ``/start <token>`` or ``LINK <token>`` links the chat. An unlinked chat can only identify itself
   (invoice number + amount due) or read the help: it never sees debtor data.
4. Commands (``/balance`` …) and buttons (``Option.id`` = ``flow:action[:arg]``) go to their flow.
   Button arguments are checked against the chat's own debtor (a replayed button of another
   debtor's chat finds nothing).
5. Free text inside a flow step goes to that flow; otherwise the classifier picks an intent. When
   it is not sure, the bot says so and offers the menu.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from core.channels import service as channels
from core.conversation import linking
from core.conversation import repository as repo
from core.conversation.context import ConversationDeps, Ctx, StaffNotice, log_staff_notice
from core.conversation.flows import account, holds, plan, prefs
from core.conversation.nlu import Intent, Understanding, language_of
from core.conversation.schemas import Inbound, Reply
from core.errors import DomainError

__all__ = ["ConversationDeps", "StaffNotice", "handle", "log_staff_notice"]

log = structlog.get_logger(__name__)
MAX_TEXT = 1000  # longer messages are cut (a 4,000-character message gets a normal answer)

Flow = Callable[[Ctx], Awaitable[list[Reply]]]


def _starts() -> dict[str, Flow]:
    return {
        "balance": account.balance,
        "invoices": account.invoices,
        "pay": account.pay,
        "promise": holds.promise_start,
        "paid": holds.paid_start,
        "dispute": holds.dispute_start,
        "plan": plan.start,
        "channel": prefs.channel_start,
        "language": prefs.language_start,
        "human": prefs.human,
        "stop": prefs.stop,
        "help": _help,
        "menu": _menu,
        "main": _menu,
        "more": _more,
    }


async def _help(ctx: Ctx) -> list[Reply]:
    ctx.goto(None)
    return prefs.help_reply(ctx)


async def _menu(ctx: Ctx) -> list[Reply]:
    ctx.goto(None)
    return [ctx.reply("prefs.menu", options=ctx.menu(), name=ctx.linked.name)]


async def _more(ctx: Ctx) -> list[Reply]:
    return [ctx.reply("prefs.more", options=ctx.more_menu())]


def _locale_for(inbound: Inbound) -> str:
    return language_of(inbound.locale_hint or "en")


async def handle(
    session: AsyncSession, inbound: Inbound, *, deps: ConversationDeps, record_inbound: bool = False
) -> list[Reply]:
    """Answer one inbound chat message. The caller commits.

    ``record_inbound``: also note that the chat wrote to us (``core.channels.service.record_inbound``:
    its window, and its blocked contact points usable again), in the same statement as the chat on
    PostgreSQL; the chat adapters' unit of work (bots/chat.py) asks for it."""
    now = deps.clock.now()
    window = channels.inbound_params(inbound.channel, inbound.chat_id, now) if record_inbound else None
    # The chat, its debtor, the tone of the replies, the message id recorded, the chat touched
    # (last_inbound_at) and the window noted, in one statement.
    found = await repo.chat_and_debtor_for_update(
        session,
        inbound.channel,
        inbound.chat_id[:128],
        locale=_locale_for(inbound),
        now=now,
        message_id=inbound.message_id,
        window=window,
    )
    if record_inbound and found.unblocked is None:  # not folded in: a statement of its own
        await channels.record_inbound(session, inbound.channel, inbound.chat_id, now)
    elif found.unblocked:
        await channels.audit_unblocked(session, inbound.chat_id, found.unblocked)
    if not found.first_time:  # a redelivery: answered before
        return []
    chat, debtor, tone = found.chat, found.debtor, found.tone
    ctx = Ctx(session=session, chat=chat, deps=deps, now=now, debtor=debtor, tone=tone)
    try:
        if _reads_only(ctx, inbound):
            # Nothing to undo when it is refused: no savepoint (two round trips saved); the chat's
            # own changes are flushed below either way (last_inbound_at is already written).
            replies = await _route(ctx, inbound)
        else:
            async with session.begin_nested():  # a refused step leaves nothing half done
                replies = await _route(ctx, inbound)
    except DomainError as exc:
        log.warning("conversation.refused", code=exc.code, error=exc.message, chat=str(chat.id))
        await session.refresh(chat)
        if ctx.debtor is not None:
            await session.refresh(ctx.debtor)
        ctx.goto(None)
        replies = [ctx.reply("prefs.error", options=ctx.menu() if ctx.debtor else ())]
    await session.flush()
    return replies


READ_ONLY_COMMANDS = frozenset({"balance", "help", "menu", "main", "more"})


def _reads_only(ctx: Ctx, inbound: Inbound) -> bool:
    """A linked chat's command whose flow writes nothing (``/balance``, ``/help``, the menus)."""
    if ctx.debtor is None or inbound.choice or linking.locked(ctx):
        return False
    text = (inbound.text or "").strip()
    if not text.startswith("/") or linking.token_in(text) is not None:
        return False
    return text[1:].split(None, 1)[0].split("@", 1)[0].lower() in READ_ONLY_COMMANDS


async def _route(ctx: Ctx, inbound: Inbound) -> list[Reply]:
    if linking.locked(ctx):
        return [ctx.reply("link.locked")]
    text = (inbound.text or "").replace("\x00", "").strip()[:MAX_TEXT]
    choice = (inbound.choice or "").strip()[:64]
    if text:
        token = linking.token_in(text)
        if isinstance(token, str):
            return await linking.redeem(ctx, token)
        if token is True and ctx.debtor is not None:
            return await _menu(ctx)
    if ctx.debtor is None:
        if text.lower() in ("/help", "help", "hulp"):
            return prefs.help_reply(ctx)
        return await linking.unlinked(ctx, text)
    if choice:
        return await _choice(ctx, choice)
    if not text:
        return await _not_sure(ctx)
    if text.startswith("/"):
        name = text[1:].split(None, 1)[0].split("@", 1)[0].lower()
        start = _starts().get(name)
        if start is None:
            return prefs.help_reply(ctx)
        ctx.goto(None)
        return await start(ctx)
    return await _text(ctx, text)


async def _choice(ctx: Ctx, choice: str) -> list[Reply]:
    flow, _, rest = choice.partition(":")
    action, _, arg = rest.partition(":")
    arg_or_none = arg or None
    if flow == "menu":
        start = _starts().get(action)
        if start is None:
            return await _menu(ctx)
        ctx.goto(None)
        return await start(ctx)
    if flow == "inv" and action == "pdf" and arg:
        return await account.document(ctx, arg)
    if flow == "pay" and action == "inv" and arg:
        return await account.pay(ctx, arg)
    if flow == "promise":
        return await holds.promise_choice(ctx, action)
    if flow == "paid":
        return await holds.paid_choice(ctx, action, arg_or_none)
    if flow == "dispute":
        return await holds.dispute_choice(ctx, action, arg_or_none)
    if flow == "plan":
        return await plan.choice(ctx, action, arg_or_none)
    if flow == "channel":
        return await prefs.channel_choice(ctx, action, arg_or_none)
    if flow == "language":
        return await prefs.language_choice(ctx, action, arg_or_none)
    if flow == "prefs" and action == "resume":
        return await prefs.resume(ctx)
    return await _menu(ctx)  # an unknown or forged button: the menu, nothing else


async def _text(ctx: Ctx, text: str) -> list[Reply]:
    understood = ctx.deps.classifier.classify(text, locale=ctx.locale, now=ctx.local_now)
    flow, step = ctx.chat.flow, ctx.chat.step
    # Inside a step, the flow reads the text, unless the debtor clearly asks for something else.
    # While handed off to a person, everything typed goes to staff (commands and buttons still work).
    leaving = (
        flow != "human" and understood.sure and understood.intent in (Intent.stop, Intent.human, Intent.help)
    )
    if flow and step and not leaving:
        if flow == "promise":
            return await holds.promise_text(ctx, text, understood)
        if flow == "paid":
            return await holds.paid_text(ctx, text, understood)
        if flow == "dispute":
            return await holds.dispute_text(ctx, text)
        if flow == "plan":
            return await plan.text(ctx, text, understood)
        if flow == "human":
            return await prefs.relay_text(ctx, text)
    ctx.goto(None)
    return await _intent(ctx, understood, text)


async def _intent(ctx: Ctx, understood: Understanding, text: str) -> list[Reply]:
    if not understood.sure:
        return await _not_sure(ctx)
    intent = understood.intent
    if intent is Intent.promise:
        return await holds.promise_start(ctx, understood.date)
    if intent is Intent.paid:
        return await holds.paid_start(ctx, understood.date)
    if intent is Intent.human:
        return await prefs.human(ctx, text)
    if intent in (Intent.yes, Intent.no):
        return await _not_sure(ctx)
    start = _starts().get(intent.value)
    if start is None:
        return await _not_sure(ctx)
    return await start(ctx)


async def _not_sure(ctx: Ctx) -> list[Reply]:
    return [ctx.reply("prefs.not_sure", options=ctx.menu())]
