"""Debtor transcripts on Telegram through the real stacks, with staff on Slack.

Each test is what a debtor sees in the fake Telegram chat and what staff see in the fake Slack.
"""

from __future__ import annotations

from datetime import date

from sqlalchemy import select
from sqlmodel import col

from bots.slack import views
from core.db import Database
from core.dunning.models import DunningState
from core.invoices.models import Invoice
from core.plans.models import PaymentPlan
from tests import factories
from tests.bots.slack.conftest import ALLOWED, APPROVER, STAFF_CHANNEL
from tests.e2e.conftest import CHAT, Stack, texts


async def northwind(db: Database) -> str:
    ext = await factories.debtor(db, name="Northwind Ltd", locale="en")
    await factories.invoice(db, ext, number="NW-1", amount_minor=24_950, due_date=date(2026, 10, 31))
    await factories.invoice(db, ext, number="NW-2", amount_minor=10_000, due_date=date(2026, 12, 10))
    return ext


async def big_debt(db: Database) -> str:
    ext = await factories.debtor(db, name="Big Debt B.V.", locale="en")
    await factories.invoice(db, ext, number="BD-1", amount_minor=40_000, due_date=date(2026, 10, 31))
    return ext


async def plans_of(db: Database) -> list[PaymentPlan]:
    async with db.sessionmaker() as s:
        return list((await s.scalars(select(PaymentPlan).order_by(col(PaymentPlan.created_at)))).all())


async def test_link_balance_invoice_pdf_and_pay_with_a_mollie_link_and_qr_codes(stack: Stack) -> None:
    ext = await northwind(stack.db)

    [linked] = await stack.link(ext)
    assert linked.chat_id == str(CHAT) and "Northwind" in linked.params["text"]

    [balance] = await stack.say("what do I owe?")
    assert "€349.50" in balance.params["text"]

    await stack.tap("menu:invoices")
    sent = await stack.tap_label("PDF NW-1")
    [document] = [c for c in sent if c.method == "sendDocument"]
    assert document.files["document"].content.startswith(b"%PDF")

    sent = await stack.tap("menu:pay")
    photos = [c for c in sent if c.method == "sendPhoto"]
    assert len(photos) == 2  # the checkout link's QR and the SEPA (EPC) QR
    assert all(p.files["photo"].content.startswith(b"\x89PNG") for p in photos)
    [message] = [c for c in sent if c.method == "sendMessage"]
    assert "https://www.mollie.com/checkout/select-method/" in message.params["text"]
    assert "NL91ABNA0417164300" in message.params["text"] and "RF" in message.params["text"]
    assert any(url and "mollie.com/checkout" in url for row in message.buttons() for _, url in row)


async def test_a_dispute_pauses_the_invoice_and_opens_a_thread_in_slack(stack: Stack) -> None:
    ext = await northwind(stack.db)
    await stack.link(ext)

    await stack.say("I want to dispute an invoice")
    await stack.tap_label("NW-1")
    [answer] = await stack.say("The goods arrived broken")

    assert "NW-1" in answer.params["text"]
    [post] = stack.slack.calls_to("chat.postMessage")
    assert post.body["channel"] == STAFF_CHANNEL
    assert "The goods arrived broken" in json_text(post.body) and "NW-1" in json_text(post.body)
    async with stack.db.sessionmaker() as s:
        invoice = (await s.scalars(select(Invoice).where(col(Invoice.number) == "NW-1"))).one()
        state = await s.get(DunningState, invoice.id)
    assert state is not None and state.disputed


async def test_a_hand_off_relays_both_ways_between_the_telegram_chat_and_a_slack_thread(stack: Stack) -> None:
    ext = await northwind(stack.db)
    await stack.link(ext)

    [handed] = await stack.say("I want to talk to a person")
    assert handed.chat_id == str(CHAT)
    [root] = stack.slack.calls_to("chat.postMessage")
    assert root.body["channel"] == STAFF_CHANNEL and "Northwind" in json_text(root.body)

    await stack.say("Can I pay next week instead?")
    posts = stack.slack.calls_to("chat.postMessage")
    assert len(posts) == 2
    thread_ts = posts[1].body["thread_ts"]
    assert "Can I pay next week instead?" in json_text(posts[1].body)

    answer = await stack.slack_event(
        {
            "type": "message",
            "channel": STAFF_CHANNEL,
            "user": ALLOWED,
            "text": "Yes, next Friday is fine.",
            "ts": "2.000",
            "thread_ts": thread_ts,
        }
    )
    assert answer.status_code == 200
    stats = await stack.deliver()
    assert stats.sent == 1
    [staff_message] = [c for c in stack.tg.calls if "next Friday is fine" in (c.params.get("text") or "")]
    assert staff_message.method == "sendMessage" and staff_message.chat_id == str(CHAT)


async def test_a_plan_within_policy_is_accepted_and_leaves_dunning(stack: Stack) -> None:
    ext = await big_debt(stack.db)
    await stack.link(ext)

    await stack.say("can I pay in instalments?")
    await stack.tap("plan:n:3")
    [offer] = await stack.tap("plan:yes")
    assert "Do you accept this plan?" in offer.params["text"]
    [active] = await stack.tap("plan:yes")

    assert "active" in active.params["text"]
    [plan] = await plans_of(stack.db)
    assert (plan.state, plan.instalment_count) == ("active", 3)
    assert stack.slack.calls_to("chat.postMessage") == []  # nothing for staff


async def test_a_counter_offer_is_accepted_by_the_debtor(stack: Stack) -> None:
    ext = await big_debt(stack.db)
    await stack.link(ext)

    await stack.say("payment plan")
    await stack.say("10")
    [counter] = await stack.tap("plan:yes")
    assert "not possible" in counter.params["text"]
    await stack.say("yes")

    [plan] = await plans_of(stack.db)
    assert (plan.state, plan.instalment_count) == ("active", 6)  # the most the policy allows


async def test_a_plan_outside_policy_goes_to_slack_and_the_approval_comes_back_into_the_chat(
    stack: Stack,
) -> None:
    ext = await big_debt(stack.db)
    await stack.link(ext)

    await stack.say("payment plan")
    await stack.say("20")
    [waiting] = await stack.tap("plan:yes")
    assert "approval of a colleague" in waiting.params["text"]
    [request] = stack.slack.calls_to("chat.postMessage")
    [plan] = await plans_of(stack.db)
    assert plan.state == "pending_approval"

    answer = await stack.slack_click(views.PLAN_ACCEPT, str(plan.id), APPROVER, request)
    assert answer.status_code == 200
    assert (await stack.deliver()).sent == 1
    [news] = [c for c in stack.tg.calls if "approved a payment plan" in (c.params.get("text") or "")]
    assert news.chat_id == str(CHAT)

    stack.seen = len([c for c in stack.tg.calls if c.method != "answerCallbackQuery"])
    [active] = await stack.say("yes")
    assert "active" in active.params["text"]
    [plan] = await plans_of(stack.db)
    assert (plan.state, plan.instalment_count) == ("active", 20)


async def test_a_declined_plan_is_told_in_the_chat(stack: Stack) -> None:
    ext = await big_debt(stack.db)
    await stack.link(ext)
    await stack.say("payment plan")
    await stack.say("20")
    await stack.tap("plan:yes")
    [request] = stack.slack.calls_to("chat.postMessage")
    [plan] = await plans_of(stack.db)

    await stack.slack_click(views.PLAN_DECLINE, str(plan.id), APPROVER, request)
    await stack.deliver()

    assert any("cannot offer this payment plan" in t for t in texts(stack.tg.calls))
    [plan] = await plans_of(stack.db)
    assert plan.state == "declined"


def json_text(body: object) -> str:
    import json

    return json.dumps(body, ensure_ascii=False)
