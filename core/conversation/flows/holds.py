"""Promise to pay, "I already paid", and disputes: each ends in a dunning hold (core.dunning.holds).

Dates are confirmed back before anything is recorded; a date the bot could not read is asked
again, never guessed.
"""

from __future__ import annotations

from datetime import date, timedelta

from core.conversation import repository as repo
from core.conversation.context import Ctx
from core.conversation.nlu import Intent, Understanding, parse_date
from core.conversation.schemas import Reply
from core.dunning import holds
from core.errors import DomainError

DEFAULT_PROMISE_MAX_DAYS = 30
PAID_CHECK_DAYS = 5  # how long dunning waits while staff check a reported payment
PAID_LOOKBACK_DAYS = 120
METHODS = ("bank_transfer", "card", "cash", "other")


# --------------------------------------------------------------------------- promise


async def promise_start(ctx: Ctx, when: date | None = None) -> list[Reply]:
    if when is not None:
        return await _promise_check(ctx, when)
    ctx.goto("promise", "date")
    return [ctx.reply("holds.promise_ask")]


async def _promise_window(ctx: Ctx) -> tuple[list[repo.OpenInvoice], date]:
    found = await repo.open_invoices(ctx.session, ctx.linked.id, ctx.today)
    days = await repo.promise_max_days(ctx.session, [i.id for i in found])
    latest = ctx.today + timedelta(days=days if days is not None else DEFAULT_PROMISE_MAX_DAYS)
    return found, latest


async def _promise_check(ctx: Ctx, when: date) -> list[Reply]:
    found, latest = await _promise_window(ctx)
    if not found:
        ctx.goto(None)
        return [ctx.reply("account.nothing_open", options=ctx.menu(), currencies=[])]
    if when < ctx.today or when > latest:
        ctx.goto("promise", "date")
        return [ctx.reply("holds.promise_out_of_range", when=when, today=ctx.today, latest=latest)]
    ctx.goto("promise", "confirm", date=when.isoformat())
    total = [i.open for i in found]
    return [ctx.reply("holds.promise_confirm", options=ctx.yes_no("promise"), when=when, amounts=total)]


async def promise_text(ctx: Ctx, text: str, understood: Understanding) -> list[Reply]:
    if ctx.chat.step == "confirm":
        if understood.intent is Intent.yes:
            return await promise_choice(ctx, "yes")
        if understood.intent is Intent.no:
            return await promise_choice(ctx, "no")
    when = parse_date(text, ctx.locale, ctx.local_now)
    if when is None:
        return [ctx.reply("holds.date_not_understood")]
    return await _promise_check(ctx, when)


async def promise_choice(ctx: Ctx, action: str) -> list[Reply]:
    raw = ctx.chat.data.get("date") if ctx.chat.flow == "promise" else None
    if action == "no" or raw is None:
        ctx.goto("promise", "date")
        return [ctx.reply("holds.promise_ask")]
    when = date.fromisoformat(str(raw))
    found, latest = await _promise_window(ctx)
    if when < ctx.today or when > latest:  # the day turned, or the policy changed, since we asked
        ctx.goto("promise", "date")
        return [ctx.reply("holds.promise_out_of_range", when=when, today=ctx.today, latest=latest)]
    recorded = []
    for inv in found:
        try:
            await holds.promise(
                ctx.session,
                inv.balance.external_id,
                on=when,
                amount_minor=None,
                today=ctx.today,
                actor=ctx.actor,
                source=ctx.channel,
            )
        except DomainError:
            continue  # not in dunning (yet): nothing to hold
        recorded.append(inv.number)
    ctx.goto(None)
    if not recorded:
        return [ctx.reply("holds.promise_nothing", options=ctx.menu())]
    options = [ctx.option("menu:pay", "pay"), ctx.option("menu:balance", "balance")]
    return [ctx.reply("holds.promise_recorded", options=options, when=when, numbers=recorded)]


# --------------------------------------------------------------------------- already paid


async def paid_start(ctx: Ctx, when: date | None = None) -> list[Reply]:
    found = await repo.open_invoices(ctx.session, ctx.linked.id, ctx.today)
    if not found:
        ctx.goto(None)
        return [ctx.reply("account.nothing_open", options=ctx.menu(), currencies=[])]
    if when is not None and ctx.today - timedelta(days=PAID_LOOKBACK_DAYS) <= when <= ctx.today:
        return _ask_method(ctx, when)
    ctx.goto("paid", "date")
    return [ctx.reply("holds.paid_ask_date")]


def _ask_method(ctx: Ctx, when: date) -> list[Reply]:
    ctx.goto("paid", "method", date=when.isoformat())
    options = [ctx.option(f"paid:method:{m}", f"method_{m}") for m in METHODS]
    return [ctx.reply("holds.paid_ask_method", options=options, when=when)]


async def paid_text(ctx: Ctx, text: str, understood: Understanding) -> list[Reply]:
    step = ctx.chat.step
    if step == "confirm":
        if understood.intent in (Intent.yes, Intent.no):
            return await paid_choice(ctx, understood.intent.value, None)
        return [ctx.reply("holds.use_buttons")]
    if step == "method":
        lowered = text.lower()
        for method, words in _METHOD_WORDS.items():
            if any(w in lowered for w in words):
                return await paid_choice(ctx, "method", method)
        return [ctx.reply("holds.use_buttons")]
    when = parse_date(text, ctx.locale, ctx.local_now, past=True)
    if when is None:
        return [ctx.reply("holds.date_not_understood")]
    if when > ctx.today or when < ctx.today - timedelta(days=PAID_LOOKBACK_DAYS):
        return [ctx.reply("holds.paid_date_out_of_range", when=when)]
    return _ask_method(ctx, when)


_METHOD_WORDS = {
    "bank_transfer": ("bank", "transfer", "overgemaakt", "overschrijving", "overmaken", "overboek"),
    "card": ("card", "kaart", "ideal", "online", "pin"),
    "cash": ("cash", "contant"),
    "other": ("other", "anders", "overig"),
}


async def paid_choice(ctx: Ctx, action: str, arg: str | None) -> list[Reply]:
    data = ctx.chat.data if ctx.chat.flow == "paid" else {}
    raw = data.get("date")
    if raw is None:
        return await paid_start(ctx)
    when = date.fromisoformat(str(raw))
    if action == "method" and arg in METHODS:
        ctx.goto("paid", "confirm", date=when.isoformat(), method=arg)
        method = ctx.text(f"labels.method_{arg}")
        return [ctx.reply("holds.paid_confirm", options=ctx.yes_no("paid"), when=when, method=method)]
    if action == "no":
        ctx.goto("paid", "date")
        return [ctx.reply("holds.paid_ask_date")]
    method = str(data.get("method") or "")
    if action != "yes" or method not in METHODS:
        return _ask_method(ctx, when)
    found = await repo.open_invoices(ctx.session, ctx.linked.id, ctx.today)
    states = await repo.hold_states(ctx.session, [i.id for i in found])
    until = ctx.today + timedelta(days=PAID_CHECK_DAYS)
    held = []
    for inv in found:
        state = states.get(inv.id)
        if state is None or state.pause_reason is not None:
            continue  # not in dunning, or already held by staff: leave that hold alone
        await holds.pause(
            ctx.session,
            inv.balance.external_id,
            reason=f"debtor reports payment on {when.isoformat()} by {method}; staff to check",
            until=until,
            today=ctx.today,
            actor=ctx.actor,
        )
        held.append(inv.number)
    await ctx.notify(
        "paid_claim",
        f"{ctx.linked.name} says they paid on {when.isoformat()} by {method}",
        paid_on=when.isoformat(),
        method=method,
        invoices=[i.number for i in found],
    )
    ctx.goto(None)
    return [ctx.reply("holds.paid_recorded", options=ctx.menu(), until=until, held=bool(held))]


# --------------------------------------------------------------------------- dispute


async def dispute_start(ctx: Ctx) -> list[Reply]:
    found = await repo.open_invoices(ctx.session, ctx.linked.id, ctx.today)
    if not found:
        ctx.goto(None)
        return [ctx.reply("account.nothing_open", options=ctx.menu(), currencies=[])]
    if len(found) == 1:
        return _ask_reason(ctx, found[0].number)
    ctx.goto("dispute", "invoice")
    options = [ctx.option(f"dispute:inv:{i.number}", "invoice_pick", number=i.number) for i in found[:10]]
    return [ctx.reply("holds.dispute_pick", options=options)]


def _ask_reason(ctx: Ctx, number: str) -> list[Reply]:
    ctx.goto("dispute", "reason", number=number)
    return [ctx.reply("holds.dispute_ask_reason", number=number)]


async def dispute_choice(ctx: Ctx, action: str, arg: str | None) -> list[Reply]:
    if action == "inv" and arg:
        invoice = await repo.invoice_of_debtor(ctx.session, ctx.linked.id, arg[:64])
        if invoice is None:  # not this debtor's: a forged or stale button
            return [ctx.reply("account.invoice_not_found", options=ctx.menu())]
        return _ask_reason(ctx, invoice.number)
    return await dispute_start(ctx)


async def dispute_text(ctx: Ctx, text: str) -> list[Reply]:
    if ctx.chat.step != "reason":
        return [ctx.reply("holds.use_buttons")]
    reason = " ".join(text.split())[:1000]
    if len(reason) < 3:
        return [ctx.reply("holds.dispute_ask_reason", number=str(ctx.chat.data.get("number", "")))]
    invoice = await repo.invoice_of_debtor(ctx.session, ctx.linked.id, str(ctx.chat.data.get("number", "")))
    ctx.goto(None)
    if invoice is None:
        return [ctx.reply("account.invoice_not_found", options=ctx.menu())]
    try:
        await holds.dispute(ctx.session, invoice.external_id, reason=reason, actor=ctx.actor)
    except DomainError as exc:
        if exc.code == "already_disputed":
            return [ctx.reply("holds.dispute_already", options=ctx.menu(), number=invoice.number)]
        return [ctx.reply("holds.dispute_not_possible", options=ctx.menu(), number=invoice.number)]
    await ctx.notify("dispute", reason, invoice=invoice.number)
    return [ctx.reply("holds.dispute_recorded", options=ctx.menu(), number=invoice.number)]
