"""Pure Block Kit builders: facts in, JSON-ready dicts out. No I/O; tests compare the output.

Every word comes from templates/staff/slack.j2 (via bots.slack.texts); user text is escaped.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

from bots.slack.seams import DisputeNotice, PaymentInfo, PlanRequest, RefundRequest, RelayNotice
from bots.slack.texts import esc, label, text
from core.invoices.models import InvoiceBatch
from core.money import Money
from core.reports.digest import BUCKETS, Digest
from core.staff.service import BatchSummary, DebtorHit, DebtorOverview

Blocks = list[dict[str, Any]]

# action_id values (block_actions) and callback_id values (view_submission)
DEBTOR_PICK = "debtor_pick"
PAUSE_OPEN = "pause_open"
RESUME = "resume"
PAYMENT_REQUEST = "payment_request"
REFUND_OPEN = "refund_open"
BATCH_APPROVE = "batch_approve"
BATCH_REJECT = "batch_reject"
REFUND_APPROVE = "refund_approve"
REFUND_DECLINE = "refund_decline"
PLAN_ACCEPT = "plan_accept"
PLAN_COUNTER = "plan_counter"
PLAN_DECLINE = "plan_decline"
DISPUTE_RESOLVE = "dispute_resolve"
DISPUTE_CREDIT = "dispute_credit"
PAUSE_VIEW = "pause_submit"
REFUND_VIEW = "refund_submit"
REFUND_CONFIRM_VIEW = "refund_confirm"
PLAN_COUNTER_VIEW = "plan_counter_submit"
PAYMENT_REQUEST_VIEW = "payment_request_submit"
MAX_INVOICES = 10


def money(value: Money | None) -> str:
    return value.format("en") if value is not None else text("nothing")


def day(value: date | None) -> str:
    return value.isoformat() if value is not None else text("nothing")


def when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value is not None else text("nothing")


def section(mrkdwn: str, accessory: dict[str, Any] | None = None) -> dict[str, Any]:
    block: dict[str, Any] = {"type": "section", "text": {"type": "mrkdwn", "text": mrkdwn}}
    if accessory is not None:
        block["accessory"] = accessory
    return block


def context(mrkdwn: str) -> dict[str, Any]:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": mrkdwn}]}


def button(key: str, action_id: str, value: str, style: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "type": "button",
        "text": {"type": "plain_text", "text": label(key)},
        "action_id": action_id,
        "value": value,
    }
    if style:
        out["style"] = style
    return out


def actions(block_id: str, *buttons: dict[str, Any]) -> dict[str, Any]:
    return {"type": "actions", "block_id": block_id, "elements": list(buttons)}


def plain(key: str) -> dict[str, Any]:
    return {"type": "plain_text", "text": label(key)}


def text_input(
    block_id: str, key: str, *, optional: bool = False, multiline: bool = False, initial: str | None = None
) -> dict[str, Any]:
    element: dict[str, Any] = {"type": "plain_text_input", "action_id": "value", "multiline": multiline}
    if initial:
        element["initial_value"] = initial
    return {
        "type": "input",
        "block_id": block_id,
        "label": plain(key),
        "optional": optional,
        "element": element,
    }


# ----------------------------------------------------------------------------- commands


def help_blocks(prefix: str | None = None) -> Blocks:
    blocks = [section(prefix)] if prefix else []
    return [*blocks, section(text("help"))]


def pick_list(query: str, hits: Sequence[DebtorHit]) -> Blocks:
    blocks: Blocks = [section(text("pick_list", query=esc(query), count=len(hits)))]
    for hit in hits:
        blocks.append(
            section(
                f"*{esc(hit.name)}*  ·  `{esc(hit.external_id)}`",
                button("open", DEBTOR_PICK, hit.external_id),
            )
        )
    return blocks


def debtor_card(view: DebtorOverview, plan_summary: str | None = None) -> Blocks:
    d = view.debtor
    blocks: Blocks = [
        section(
            text("debtor_header", name=esc(d.name), external_id=esc(d.external_id), segment=esc(d.segment))
        )
    ]
    lines = [
        text(
            "balance_line",
            currency=b.currency,
            open=money(Money(b.open, b.currency)),
            overdue=money(Money(b.overdue, b.currency)),
            fees=money(Money(b.fees_and_interest, b.currency)),
            promised=money(Money(b.promised, b.currency)),
            credit=money(Money(b.credit, b.currency)) if b.credit else "",
        )
        for b in view.balance.currencies.values()
    ]
    blocks.append(section("\n".join(lines) or text("no_balance")))
    invoice_lines = []
    for inv in view.balance.invoices[:MAX_INVOICES]:
        state = view.holds.get(inv.external_id)
        invoice_lines.append(
            text(
                "invoice_line",
                number=esc(inv.number),
                external_id=esc(inv.external_id),
                status=inv.status,
                amount=money(inv.amount),
                open=money(inv.open),
                due=day(inv.due_date),
                days_overdue=inv.days_overdue,
                hold=text("hold_stage", stage=state.stage_key) if state and state.stage_key else "",
            )
        )
    if len(view.balance.invoices) > MAX_INVOICES:
        invoice_lines.append(text("more_invoices", count=len(view.balance.invoices) - MAX_INVOICES))
    if invoice_lines:
        blocks.append(section("\n".join(invoice_lines)))
    state_lines = [
        text(
            "dunning_state",
            paused=d.dunning_paused,
            until=day(d.paused_until) if d.paused_until else "",
            reason=esc(d.pause_reason or ""),
        )
    ]
    for ext, promise in view.promises:
        amount = (
            Money(promise.amount_minor, _currency_of(view, ext)) if promise.amount_minor is not None else None
        )
        state_lines.append(
            text(
                "promise_line",
                invoice=esc(ext),
                on=day(promise.promised_on),
                amount=money(amount) if amount else text("nothing"),
            )
        )
    for ext, reason in view.disputes:
        state_lines.append(text("dispute_line", invoice=esc(ext), reason=esc(reason)))
    if plan_summary:
        state_lines.append(text("plan_line", summary=esc(plan_summary)))
    blocks.append(section("\n".join(state_lines)))
    ext = d.external_id
    blocks.append(
        actions(
            "debtor_actions",
            button("resume", RESUME, ext) if d.dunning_paused else button("pause", PAUSE_OPEN, ext),
            button("payment_request", PAYMENT_REQUEST, ext),
            button("refund", REFUND_OPEN, ext),
        )
    )
    return blocks


def _currency_of(view: DebtorOverview, invoice_external_id: str) -> str:
    for inv in view.balance.invoices:
        if inv.external_id == invoice_external_id:
            return inv.amount.currency
    return next(iter(view.balance.currencies), "EUR")


def pause_modal(external_id: str, name: str, *, reason: str | None = None) -> dict[str, Any]:
    return {
        "type": "modal",
        "callback_id": PAUSE_VIEW,
        "private_metadata": external_id,
        "title": plain("pause_title"),
        "submit": plain("submit"),
        "close": plain("cancel"),
        "blocks": [
            section(text("pause_intro", name=esc(name))),
            text_input("reason", "reason", multiline=True, initial=reason),
            {
                "type": "input",
                "block_id": "until",
                "optional": True,
                "label": plain("until"),
                "element": {"type": "datepicker", "action_id": "value"},
            },
        ],
    }


def batches_list(batches: Sequence[InvoiceBatch], base_url: str) -> Blocks:
    if not batches:
        return [section(text("no_batches"))]
    lines = [
        text(
            "batch_line",
            batch_id=str(b.id),
            count=b.count,
            totals=", ".join(money(Money(int(v), c)) for c, v in sorted(b.totals.items())),
            created=when(b.created_at),
            link=f"{base_url.rstrip('/')}/api/v1/invoice-batches/{b.id}",
        )
        for b in batches
    ]
    return [section(text("batches_header", count=len(batches))), section("\n".join(lines))]


# ----------------------------------------------------------------------------- batches


def _batch_facts(s: BatchSummary) -> Blocks:
    mix = ", ".join(f"{channel} {n}" for channel, n in s.channel_mix.items()) or text("nothing")
    blocks: Blocks = [
        section(text("batch_title", count=s.count, source=esc(s.source))),
        section(
            text(
                "batch_facts",
                totals=", ".join(money(t) for t in s.totals) or text("nothing"),
                mix=mix,
                earliest=day(s.earliest_due),
                created_by=esc(s.created_by),
                batch_id=str(s.id),
            )
        ),
    ]
    if s.samples:
        blocks.append(
            section(
                "\n".join(
                    text("batch_sample", number=esc(n), debtor=esc(d), amount=money(a), due=day(due))
                    for n, d, a, due in s.samples
                )
            )
        )
    return blocks


def batch_message(s: BatchSummary) -> Blocks:
    """The approval request: facts, three samples, Approve and Reject (approvers only)."""
    value = str(s.id)
    return [
        *_batch_facts(s),
        actions(
            "batch_decision",
            button("approve", BATCH_APPROVE, value, "primary"),
            button("reject", BATCH_REJECT, value, "danger"),
        ),
    ]


def batch_decided(s: BatchSummary, who: str) -> Blocks:
    """The same message once decided: the buttons give way to who decided and when."""
    return [
        *_batch_facts(s),
        context(text("batch_decided", decision=s.status, who=who, when=when(s.decided_at))),
    ]


def batch_fallback(s: BatchSummary) -> str:
    """The notification text (shown where blocks are not)."""
    return text("batch_title", count=s.count, source=esc(s.source))


# ----------------------------------------------------------------------------- digest


def digest_blocks(d: Digest) -> Blocks:
    def count_and_names(lines: Sequence[Any]) -> str:
        if not lines:
            return "0"
        names = ", ".join(
            f"{esc(p.debtor)} ({money(p.amount) if p.amount else esc(p.invoice)})" for p in lines[:5]
        )
        return f"{len(lines)}: {names}" + ("…" if len(lines) > 5 else "")

    body = text(
        "digest_body",
        cash=", ".join(money(m) for m in d.cash_collected) or money(None),
        due_today=count_and_names(d.promises_due_today),
        broken=count_and_names(d.promises_broken),
        disputes=str(len(d.new_disputes)),
        batches=d.batches_waiting,
        invoices_waiting=d.invoices_waiting,
    )
    ageing = [
        text(
            "digest_ageing",
            currency=cur,
            b0=money(b[BUCKETS[0]]),
            b1=money(b[BUCKETS[1]]),
            b2=money(b[BUCKETS[2]]),
            b3=money(b[BUCKETS[3]]),
            dso=str(d.dso.get(cur)) if d.dso.get(cur) is not None else text("nothing"),
        )
        for cur, b in d.ageing.items()
    ]
    return [
        section(text("digest_title", day=day(d.today))),
        section(body),
        section("\n".join(ageing) or text("digest_no_receivables")),
    ]


# ----------------------------------------------------------------------------- notifications


def promise_broken(invoice: str, number: str, debtor: str, on: date | None, amount: Money | None) -> Blocks:
    return [
        section(
            text(
                "promise_broken",
                invoice=esc(invoice),
                number=esc(number),
                debtor=esc(debtor),
                on=day(on) if on else "",
                amount=money(amount) if amount else "",
            )
        )
    ]


def dispute_thread(n: DisputeNotice) -> Blocks:
    value = n.invoice_external_id
    return [
        section(
            text(
                "dispute_root",
                debtor=esc(n.debtor_name),
                number=esc(n.number),
                amount=money(n.amount),
                words=esc(n.words),
            )
        ),
        actions(
            "dispute_decision",
            button("resolve", DISPUTE_RESOLVE, value, "primary"),
            button("credit", DISPUTE_CREDIT, value, "danger"),
        ),
    ]


def dispute_resolved(n_blocks: Blocks, user: str, how: str) -> Blocks:
    kept = [b for b in n_blocks if b.get("type") != "actions"]
    return [*kept, context(text("dispute_resolved", user=user, how=how))]


def relay_root(n: RelayNotice) -> Blocks:
    return [
        section(text("relay_root", debtor=esc(n.debtor_name), channel=esc(n.channel), words=esc(n.words)))
    ]


def relay_from_debtor(debtor: str, words: str) -> str:
    return text("relay_from_debtor", debtor=esc(debtor), words=esc(words))


def plan_approval(p: PlanRequest) -> Blocks:
    return [
        section(
            text(
                "plan_request",
                debtor=esc(p.debtor_name),
                total=money(p.total),
                count=p.instalments,
                first=day(p.first_due),
                reason=esc(p.policy_reason),
            )
        ),
        actions(
            "plan_decision",
            button("accept", PLAN_ACCEPT, p.id, "primary"),
            button("counter", PLAN_COUNTER, p.id),
            button("decline", PLAN_DECLINE, p.id, "danger"),
        ),
    ]


def plan_decided(blocks: Blocks, decision: str, user: str, at: datetime) -> Blocks:
    kept = [b for b in blocks if b.get("type") != "actions"]
    return [*kept, context(text("plan_decided", decision=decision, user=user, when=when(at)))]


def plan_counter_modal(plan_id: str, channel: str, ts: str) -> dict[str, Any]:
    return {
        "type": "modal",
        "callback_id": PLAN_COUNTER_VIEW,
        "private_metadata": json.dumps({"plan": plan_id, "channel": channel, "ts": ts}),
        "title": plain("counter_title"),
        "submit": plain("submit"),
        "close": plain("cancel"),
        "blocks": [text_input("note", "note", multiline=True)],
    }


def refund_modal(debtor_external_id: str | None, payment: PaymentInfo | None) -> dict[str, Any]:
    """Amount and reason (and the payment id when opened from a debtor card)."""
    blocks: Blocks = []
    meta: dict[str, str] = {}
    if payment is not None:
        meta["payment"] = payment.id
        blocks.append(
            section(
                text(
                    "refund_intro",
                    payment=esc(payment.id),
                    debtor=esc(payment.debtor_name),
                    amount=money(payment.amount),
                    refundable=money(payment.refundable),
                )
            )
        )
    else:
        blocks.append(text_input("payment", "payment"))
    if debtor_external_id:
        meta["debtor"] = debtor_external_id
    initial = payment.refundable.decimal_str if payment is not None else None
    blocks += [
        text_input("amount", "amount", initial=initial),
        text_input("reason", "reason", multiline=True),
    ]
    return {
        "type": "modal",
        "callback_id": REFUND_VIEW,
        "private_metadata": json.dumps(meta),
        "title": plain("refund_title"),
        "submit": plain("submit"),
        "close": plain("cancel"),
        "blocks": blocks,
    }


def refund_confirm(
    payment: PaymentInfo, amount: Money, reason: str, nonce: str | None = None
) -> dict[str, Any]:
    """The confirmation step, pushed onto the refund modal."""
    meta = {
        "payment": payment.id,
        "amount": amount.decimal_str,
        "currency": amount.currency,
        "reason": reason,
    }
    if nonce:
        meta["nonce"] = nonce  # a double submit of this confirmation refunds once
    return {
        "type": "modal",
        "callback_id": REFUND_CONFIRM_VIEW,
        "private_metadata": json.dumps(meta),
        "title": plain("refund_confirm_title"),
        "submit": plain("confirm"),
        "close": plain("cancel"),
        "blocks": [
            section(
                text(
                    "refund_confirm",
                    amount=money(amount),
                    payment=esc(payment.id),
                    debtor=esc(payment.debtor_name),
                    reason=esc(reason),
                )
            )
        ],
    }


def refund_four_eyes(r: RefundRequest) -> Blocks:
    return [
        section(
            text(
                "refund_four_eyes",
                requester=r.requested_by,
                amount=money(r.amount),
                payment=esc(r.payment_id),
                debtor=esc(r.debtor_name),
                reason=esc(r.reason),
            )
        ),
        actions(
            "refund_decision",
            button("approve", REFUND_APPROVE, r.id, "primary"),
            button("decline", REFUND_DECLINE, r.id, "danger"),
        ),
    ]


def refund_decided(blocks: Blocks, decision: str, user: str, at: datetime) -> Blocks:
    kept = [b for b in blocks if b.get("type") != "actions"]
    return [*kept, context(text("refund_decided", decision=decision, user=user, when=when(at)))]


def notice_modal(title_key: str, message: str) -> dict[str, Any]:
    """A modal that only tells something (the outcome of a submitted form)."""
    return {
        "type": "modal",
        "title": plain(title_key),
        "close": plain("close"),
        "blocks": [section(message)],
    }


def payment_request_modal(external_id: str, name: str, amount: Money | None, channel: str) -> dict[str, Any]:
    """Amount (prefilled with what is open) and reason; the currency travels in the metadata."""
    currency = amount.currency if amount is not None else "EUR"
    return {
        "type": "modal",
        "callback_id": PAYMENT_REQUEST_VIEW,
        "private_metadata": json.dumps({"debtor": external_id, "currency": currency, "channel": channel}),
        "title": plain("payment_request_title"),
        "submit": plain("submit"),
        "close": plain("cancel"),
        "blocks": [
            section(text("payment_request_intro", name=esc(name))),
            text_input(
                "amount", "amount", initial=amount.decimal_str if amount and amount.minor > 0 else None
            ),
            text_input("reason", "reason", multiline=True),
        ],
    }
