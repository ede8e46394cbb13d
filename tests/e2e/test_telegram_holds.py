"""Transcripts on Telegram through the real stacks: a promise that breaks, a plan that is breached,
and stop. The sweeps run as the worker runs them, on a frozen clock moved by hand."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlmodel import col

import worker
from bots.slack.deps import build_client
from core.debtors.models import ContactPoint
from core.dunning.models import DunningState
from core.invoices.models import Invoice
from core.plans.models import PaymentPlan
from core.ports import FixedClock
from tests.bots.slack.conftest import STAFF_CHANNEL
from tests.e2e.conftest import CHAT, Stack
from tests.e2e.test_telegram_flows import big_debt, json_text, northwind


async def state_of(stack: Stack, number: str) -> DunningState:
    async with stack.db.sessionmaker() as s:
        invoice = (await s.scalars(select(Invoice).where(col(Invoice.number) == number))).one()
        state = await s.get(DunningState, invoice.id)
    assert state is not None
    return state


def worker_ctx(stack: Stack) -> dict[str, Any]:
    return {
        "db": stack.db,
        "clock": stack.clock,
        "settings": stack.settings,
        "slack": build_client(stack.settings),
    }


async def test_a_promise_pauses_dunning_breaks_after_the_grace_days_and_dunning_resumes(stack: Stack) -> None:
    ext = await northwind(stack.db)
    await stack.link(ext)

    [confirm] = await stack.say("I will pay on Friday")
    assert "Friday, November 27, 2026" in confirm.params["text"]
    [recorded] = await stack.tap("promise:yes")
    assert "We will not send reminders" in recorded.params["text"]
    held = await state_of(stack, "NW-1")
    assert held.promise_date == date(2026, 11, 27)

    summary = await worker.sweep_dunning(worker_ctx(stack))  # while promised: nothing for NW-1
    assert summary["broken_promises"] == []

    stack.clock.current += timedelta(days=10)  # past the date and the grace days, nothing paid
    summary = await worker.sweep_dunning(worker_ctx(stack))
    assert len(summary["broken_promises"]) == 2  # the promise covered NW-1 and NW-2
    resumed = await state_of(stack, "NW-1")
    assert resumed.promise_date is None and resumed.next_action_on is not None

    # Events are stamped with the wall clock (core.events), so the Slack job looks back from it.
    posted = await worker.post_staff_notifications(
        worker_ctx(stack) | {"clock": FixedClock(datetime.now(UTC))}
    )
    assert posted["broken_promises"] == 2
    found = stack.slack.calls_to("chat.postMessage")
    assert {p.body["channel"] for p in found} == {STAFF_CHANNEL}
    assert "NW-1" in json_text([p.body for p in found]) and "NW-2" in json_text([p.body for p in found])

    [balance] = await stack.say("balance")
    assert "promise" not in balance.params["text"].lower()


async def test_a_missed_instalment_breaks_the_plan_and_its_invoices_come_due_again(stack: Stack) -> None:
    ext = await big_debt(stack.db)
    await stack.link(ext)
    await stack.say("payment plan")
    await stack.tap("plan:n:2")
    await stack.tap("plan:yes")
    [active] = await stack.tap("plan:yes")
    assert "active" in active.params["text"]
    await worker.sweep_dunning(worker_ctx(stack))
    assert (await state_of(stack, "BD-1")).stage_key is None  # under the plan: the sweep skips it

    stack.clock.current += timedelta(days=45)  # the first instalment and its grace days have passed
    summary = await worker.sweep_dunning(worker_ctx(stack))

    assert len(summary["plans"]["breached"]) == 1
    async with stack.db.sessionmaker() as s:
        [plan] = (await s.scalars(select(PaymentPlan))).all()
    assert plan.state == "breached"
    state = await state_of(stack, "BD-1")
    assert state.stage_key is not None  # dunning took the invoice up again in the same sweep


async def test_stop_opts_the_chat_out_of_reminders(stack: Stack) -> None:
    ext = await northwind(stack.db)
    await stack.link(ext)

    [stopped] = await stack.say("stop")

    assert "no longer get reminders in this chat" in stopped.params["text"]
    async with stack.db.sessionmaker() as s:
        point = (
            await s.scalars(
                select(ContactPoint).where(
                    col(ContactPoint.kind) == "telegram", col(ContactPoint.address) == str(CHAT)
                )
            )
        ).one()
    assert point.opted_out
