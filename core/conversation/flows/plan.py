"""The payment plan dialogue: ask instalments or a monthly amount, confirm, show the decision.

The decision is core/plans/service (``ConversationDeps.plans``: ``propose`` and ``accept``). Within
policy the debtor confirms and the plan is accepted; a counter-offer is shown to accept or refuse;
outside policy it goes to staff (``notify_staff``, kind ``plan_approval``) and the answer comes
back through ``relay_to_debtor``. Without a plans service, a plan request goes to staff.
The plan covers the open invoices in the currency with the most open.
"""

from __future__ import annotations

import contextlib
import re
import uuid
from collections import defaultdict
from datetime import date
from typing import Any

from core.conversation import repository as repo
from core.conversation.context import Ctx
from core.conversation.nlu import Intent, Understanding, parse_amount_minor
from core.conversation.schemas import Reply
from core.money import Money, exponent

MAX_INSTALMENTS = 60
_COUNT = re.compile(
    r"^\s*(\d{1,2})\s*(x|keer|times|instal+ments?|termijnen|termijn|months?|maanden|maand|delen|parts)?\s*$",
    re.IGNORECASE,
)
_COUNT_IN_TEXT = re.compile(
    r"(\d{1,2})\s*(instal+ments?|termijnen|termijn|delen|parts|x\b|keer)", re.IGNORECASE
)
_MONTHLY = re.compile(
    r"per (month|maand)|a month|each month|every month|monthly|maandelijks|p/?m\b|pm\b|/\s*m", re.I
)


def read_proposal(text: str, currency: str) -> tuple[int | None, int | None]:
    """(instalments, monthly amount in minor units) from "3", "6 termijnen", "€ 50 per maand"; at
    most one of them, and (None, None) when the text is not clearly one or the other."""
    if (m := _COUNT.match(text)) and not _MONTHLY.search(text):
        n = int(m.group(1))
        return (n, None) if 2 <= n <= MAX_INSTALMENTS else (None, None)
    if _MONTHLY.search(text) or re.search(r"[€$£]|eur", text, re.I):
        cleaned = _COUNT_IN_TEXT.sub(" ", text)
        amount = parse_amount_minor(_MONTHLY.sub(" ", cleaned), exponent(currency))
        if amount and not _COUNT_IN_TEXT.search(text):
            return None, amount
        return None, None
    if m := _COUNT_IN_TEXT.search(text):
        n = int(m.group(1))
        return (n, None) if 2 <= n <= MAX_INSTALMENTS else (None, None)
    return None, None


async def _scope(ctx: Ctx) -> tuple[list[repo.OpenInvoice], str] | None:
    found = await repo.open_invoices(ctx.session, ctx.linked.id, ctx.today)
    if not found:
        return None
    per: dict[str, int] = defaultdict(int)
    for inv in found:
        per[inv.open.currency] += inv.open.minor
    currency = max(per, key=lambda c: per[c])
    return [i for i in found if i.open.currency == currency], currency


async def start(ctx: Ctx) -> list[Reply]:
    scope = await _scope(ctx)
    if scope is None:
        ctx.goto(None)
        return [ctx.reply("account.nothing_open", options=ctx.menu(), currencies=[])]
    invoices, currency = scope
    total = Money(sum(i.open.minor for i in invoices), currency)
    if ctx.deps.plans is None:
        await ctx.notify(
            "plan_request", f"{ctx.linked.name} asks for a payment plan", total=total.decimal_str
        )
        ctx.goto(None)
        return [ctx.reply("plan.to_staff", options=ctx.menu())]
    ctx.goto("plan", "ask")
    options = [ctx.option(f"plan:n:{n}", "instalments", n=n) for n in (2, 3, 6)]
    return [ctx.reply("plan.ask", options=options, total=total)]


async def text(ctx: Ctx, typed: str, understood: Understanding) -> list[Reply]:
    if ctx.chat.step in ("confirm", "decision"):
        if understood.intent in (Intent.yes, Intent.no):
            return await choice(ctx, understood.intent.value, None)
        if ctx.chat.step == "decision":
            return [ctx.reply("holds.use_buttons")]
    scope = await _scope(ctx)
    if scope is None:
        ctx.goto(None)
        return [ctx.reply("account.nothing_open", options=ctx.menu(), currencies=[])]
    count, monthly = read_proposal(typed, scope[1])
    if count is None and monthly is None:
        return [ctx.reply("plan.not_understood")]
    return await _confirm(ctx, count, monthly)


async def _confirm(ctx: Ctx, count: int | None, monthly: int | None) -> list[Reply]:
    scope = await _scope(ctx)
    if scope is None:
        ctx.goto(None)
        return [ctx.reply("account.nothing_open", options=ctx.menu(), currencies=[])]
    invoices, currency = scope
    ctx.goto("plan", "confirm", instalments=count, monthly=monthly, currency=currency)
    return [
        ctx.reply(
            "plan.confirm",
            options=ctx.yes_no("plan"),
            instalments=count,
            monthly=Money(monthly, currency) if monthly is not None else None,
            total=Money(sum(i.open.minor for i in invoices), currency),
            numbers=[i.number for i in invoices],
        )
    ]


async def choice(ctx: Ctx, action: str, arg: str | None) -> list[Reply]:
    if ctx.deps.plans is None:
        return await start(ctx)
    data = ctx.chat.data if ctx.chat.flow == "plan" else {}
    if action == "n" and arg and arg.isdigit() and 2 <= int(arg) <= MAX_INSTALMENTS:
        return await _confirm(ctx, int(arg), None)
    if action == "no":
        if ctx.chat.step == "decision":
            ctx.goto(None)
            return [ctx.reply("plan.declined", options=ctx.menu())]
        return await start(ctx)
    if action != "yes" or ctx.chat.step not in ("confirm", "decision"):
        return await start(ctx)
    if ctx.chat.step == "decision":
        return await _accept(ctx, data)
    return await _propose(ctx, data)


async def _propose(ctx: Ctx, data: dict[str, Any]) -> list[Reply]:
    assert ctx.deps.plans is not None
    scope = await _scope(ctx)
    if scope is None:
        ctx.goto(None)
        return [ctx.reply("account.nothing_open", options=ctx.menu(), currencies=[])]
    invoices = scope[0]
    decision = await ctx.deps.plans.propose(
        ctx.session,
        debtor_id=ctx.linked.id,
        invoice_ids=[i.id for i in invoices],
        instalments=data.get("instalments"),
        monthly_amount_minor=data.get("monthly"),
        actor=ctx.actor,
        today=ctx.today,
    )
    view = _decision_view(decision)
    if decision.outcome in ("accepted", "counter"):
        ctx.goto("plan", "decision", plan_id=str(decision.plan_id))
        return [ctx.reply(f"plan.{decision.outcome}", options=ctx.yes_no("plan"), **view)]
    ctx.goto(None)
    if decision.outcome == "needs_approval":
        await ctx.notify(
            "plan_approval",
            f"{ctx.linked.name} proposes a payment plan outside policy",
            plan_id=str(decision.plan_id),
            instalments=data.get("instalments"),
            monthly_minor=data.get("monthly"),
        )
        return [ctx.reply("plan.needs_approval", options=ctx.menu(), **view)]
    return [ctx.reply("plan.refused", options=[ctx.option("menu:human", "human")], **view)]


async def _accept(ctx: Ctx, data: dict[str, Any]) -> list[Reply]:
    assert ctx.deps.plans is not None
    plan_id: Any = data.get("plan_id")
    with contextlib.suppress(ValueError):
        plan_id = uuid.UUID(str(plan_id))
    await ctx.deps.plans.accept(ctx.session, plan_id, actor=ctx.actor, today=ctx.today, now=ctx.now)
    ctx.goto(None)
    return [ctx.reply("plan.active", options=ctx.menu())]


def _field(item: Any, *names: str) -> Any:
    for name in names:
        if isinstance(item, dict) and name in item:
            return item[name]
        if hasattr(item, name):
            return getattr(item, name)
    return None


def _decision_view(decision: Any) -> dict[str, Any]:
    """The decision as template context; a schedule item is (due date, amount) in any shape."""
    currency = str(decision.currency)
    rows = []
    for item in decision.schedule or []:
        if isinstance(item, tuple | list) and len(item) >= 2:
            due, amount = item[0], item[1]
        else:
            due = _field(item, "due_date", "due_on", "date")
            amount = _field(item, "amount_minor", "amount")
        money = amount if isinstance(amount, Money) else Money(int(amount or 0), currency)
        rows.append({"due": due if isinstance(due, date) else None, "amount": money})
    return {
        "total": Money(int(decision.total_minor or 0), currency),
        "down_payment": Money(int(decision.down_payment_minor or 0), currency),
        "schedule": rows,
        "reason": str(decision.reason_code or ""),
    }
