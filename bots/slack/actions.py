"""Buttons, modal submissions and thread replies.

Buttons ack at once. A modal submission acks after its checks, because field errors travel in the
ack (``response_action: errors``). Domain errors become ephemeral messages or modal field errors.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.respond.async_respond import AsyncRespond
from slack_sdk.web.async_client import AsyncWebClient

from bots.slack import auth, notify, views
from bots.slack.auth import StaffUser, user_of
from bots.slack.commands import do_resume, open_pause_modal, send_card
from bots.slack.common import allowed, approver, ephemeral, error_text, parse_amount, parse_day
from bots.slack.deps import SlackDeps
from bots.slack.texts import esc, text
from core.debtors import service as debtors
from core.dunning import holds
from core.errors import Conflict, DomainError, NotFound, PolicyViolation
from core.invoices import service as invoices
from core.ledger import repository as ledger_repo
from core.ledger import service as ledger
from core.ledger.schemas import CreditNoteIn
from core.money import Money
from core.staff import repository as posts
from core.staff import service as staff


def _value(body: dict[str, Any]) -> str:
    return str(body["actions"][0].get("value") or "")


def _where(body: dict[str, Any]) -> tuple[str, str]:
    """The channel and ts of the message whose button was pressed."""
    return str((body.get("channel") or {}).get("id", "")), str((body.get("message") or {}).get("ts", ""))


def who(label: str | None) -> str:
    """How a decider is shown: a Slack mention for staff, the label for an API key or the CLI."""
    if label and label.startswith("staff:"):
        return f"<@{label.removeprefix('staff:')}>"
    return esc(label or "?")


def _fields(body: dict[str, Any]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for block_id, block in body["view"]["state"]["values"].items():
        element = block.get("value") or {}
        values[block_id] = element.get("value") if "value" in element else element.get("selected_date")
    return values


def _meta(body: dict[str, Any]) -> dict[str, Any]:
    raw = body["view"].get("private_metadata") or "{}"
    try:
        meta = json.loads(raw)
    except ValueError:
        return {"debtor": raw}
    return meta if isinstance(meta, dict) else {}


async def _tell(client: AsyncWebClient, meta: dict[str, Any], user: StaffUser, message: str) -> None:
    """After a modal: an ephemeral note in the channel it was opened from (if known)."""
    if meta.get("channel"):
        await client.chat_postEphemeral(channel=meta["channel"], user=user.id, text=message)


def register(app: AsyncApp, deps: SlackDeps) -> None:
    register_debtor_actions(app, deps)
    register_batch_actions(app, deps)
    register_refund_actions(app, deps)
    register_plan_actions(app, deps)
    register_thread_actions(app, deps)


# ----------------------------------------------------------------------------- debtor card


def register_debtor_actions(app: AsyncApp, deps: SlackDeps) -> None:
    @app.action(views.DEBTOR_PICK)
    async def pick(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond) -> None:
        await ack()
        if await allowed(deps, user_of(body), "debtor_pick", respond):
            await _safely(respond, send_card(deps, respond, _value(body), replace=True))

    @app.action(views.PAUSE_OPEN)
    async def pause_open(
        ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond, client: AsyncWebClient
    ) -> None:
        await ack()
        if await allowed(deps, user_of(body), "pause", respond):
            await _safely(respond, open_pause_modal(deps, client, body, _value(body)))

    @app.action(views.RESUME)
    async def resume(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond) -> None:
        await ack()
        user = user_of(body)
        if await allowed(deps, user, "resume", respond):
            try:
                await ephemeral(respond, await do_resume(deps, user, _value(body)))
            except DomainError as exc:
                await ephemeral(respond, error_text(exc))

    @app.action(views.PAYMENT_REQUEST)
    async def payment_request(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond) -> None:
        await ack()
        user = user_of(body)
        if not await allowed(deps, user, "payment_request", respond):
            return
        hook = deps.hooks.request_payment
        if hook is None:
            await ephemeral(respond, text("not_available"))
            return
        try:
            async with deps.db.session_scope() as session:
                await hook(session, _value(body), user.actor)
                name = (await debtors.get(session, _value(body))).name
            await ephemeral(respond, text("payment_request_sent", name=esc(name)))
        except DomainError as exc:
            await ephemeral(respond, error_text(exc))

    @app.action(views.REFUND_OPEN)
    async def refund_open(
        ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond, client: AsyncWebClient
    ) -> None:
        await ack()
        if not await allowed(deps, user_of(body), "refund", respond):
            return
        if deps.hooks.payment_info is None or deps.hooks.request_refund is None:
            await ephemeral(respond, text("not_available"))
            return
        view = views.refund_modal(_value(body), None)
        meta = json.loads(view["private_metadata"]) | {"channel": _where(body)[0]}
        view["private_metadata"] = json.dumps(meta)
        await client.views_open(trigger_id=body["trigger_id"], view=view)

    @app.view(views.PAUSE_VIEW)
    async def pause_submit(ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient) -> None:
        user = user_of(body)
        meta = _meta(body)
        if not auth.may_act(deps.settings, user.id):
            await ack()
            await auth.record_refusal(deps.db, user, "pause_submit", "SLACK_ALLOWED_USERS")
            await _tell(client, meta, user, text("refused", user=user.id))
            return
        fields = _fields(body)
        reason = str(fields.get("reason") or "").strip()
        raw_until = fields.get("until")
        until = parse_day(raw_until) if raw_until else None
        today = deps.clock.today()
        errors: dict[str, str] = {}
        if not reason:
            errors["reason"] = text("reason_required")
        if raw_until and until is None:
            errors["until"] = text("bad_date", value=esc(raw_until))
        elif until is not None and until < today:
            errors["until"] = text("date_in_past", today=today.isoformat())
        if errors:
            await ack(response_action="errors", errors=errors)
            return
        try:
            async with deps.db.session_scope() as session:
                debtor = await debtors.pause(
                    session,
                    str(meta.get("debtor")),
                    reason=reason,
                    until=until,
                    today=today,
                    actor=user.actor,
                )
                name = debtor.name
        except DomainError as exc:
            field = str(exc.errors[0].loc[0]) if exc.errors and exc.errors[0].loc else "reason"
            await ack(
                response_action="errors",
                errors={field if field in ("reason", "until") else "reason": error_text(exc)},
            )
            return
        await ack()
        until_text = until.isoformat() if until else ""
        await _tell(
            client,
            meta,
            user,
            text("paused", name=esc(name), until=until_text, reason=esc(reason), user=user.id),
        )


async def _safely(respond: AsyncRespond, work: Any) -> None:
    try:
        await work
    except DomainError as exc:
        await ephemeral(respond, error_text(exc))


# ----------------------------------------------------------------------------- batches


def register_batch_actions(app: AsyncApp, deps: SlackDeps) -> None:
    async def decide(
        body: dict[str, Any], respond: AsyncRespond, client: AsyncWebClient, decision: str
    ) -> None:
        user = user_of(body)
        if not await approver(deps, user, f"batch_{decision}", respond):
            return
        try:
            batch_id = uuid.UUID(_value(body))
        except ValueError:
            return
        try:
            async with deps.db.session_scope() as session:
                if decision == "approve":
                    await invoices.approve(
                        session,
                        batch_id,
                        actor=user.actor,
                        distribution_per_hour=deps.settings.distribution_per_hour,
                    )
                else:
                    await invoices.reject(session, batch_id, actor=user.actor)
        except Conflict:
            async with deps.db.sessionmaker() as session:
                batch = await invoices.get_batch(session, batch_id)
            await ephemeral(
                respond,
                text(
                    "already_decided",
                    status=batch.status,
                    who=who(batch.decided_by),
                    when=views.when(batch.decided_at),
                ),
            )
            return
        except DomainError as exc:
            await ephemeral(respond, error_text(exc))
            return
        async with deps.db.sessionmaker() as session:
            summary = await staff.batch_summary(session, batch_id)
        channel, ts = _where(body)
        await client.chat_update(
            channel=channel,
            ts=ts,
            text=text(
                "batch_decided",
                decision=summary.status,
                who=who(summary.decided_by),
                when=views.when(summary.decided_at),
            ),
            blocks=views.batch_decided(summary, who(summary.decided_by)),
        )

    @app.action(views.BATCH_APPROVE)
    async def approve(
        ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond, client: AsyncWebClient
    ) -> None:
        await ack()
        await decide(body, respond, client, "approve")

    @app.action(views.BATCH_REJECT)
    async def reject(
        ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond, client: AsyncWebClient
    ) -> None:
        await ack()
        await decide(body, respond, client, "reject")


# ----------------------------------------------------------------------------- refunds (seam)


def register_refund_actions(app: AsyncApp, deps: SlackDeps) -> None:
    hooks = deps.hooks

    @app.view(views.REFUND_VIEW)
    async def refund_submit(ack: AsyncAck, body: dict[str, Any]) -> None:
        user = user_of(body)
        meta = _meta(body)
        if not auth.may_act(deps.settings, user.id) or hooks.payment_info is None:
            await ack()
            await auth.record_refusal(deps.db, user, "refund_submit", "SLACK_ALLOWED_USERS")
            return
        fields = _fields(body)
        payment_id = str(meta.get("payment") or fields.get("payment") or "").strip()
        reason = str(fields.get("reason") or "").strip()
        try:
            async with deps.db.sessionmaker() as session:
                payment = await hooks.payment_info(session, payment_id)
        except DomainError as exc:
            await ack(response_action="errors", errors={"payment": error_text(exc)})
            return
        raw_amount = str(fields.get("amount") or "").strip()
        amount = parse_amount(raw_amount, payment.amount.currency)
        errors: dict[str, str] = {}
        if amount is None:
            errors["amount"] = text("bad_amount", value=esc(raw_amount))
        elif amount.minor > payment.refundable.minor:
            errors["amount"] = text("error", message=views.money(payment.refundable))
        if not reason:
            errors["reason"] = text("reason_required")
        if errors or amount is None:
            await ack(response_action="errors", errors=errors)
            return
        view = views.refund_confirm(payment, amount, reason)
        view["private_metadata"] = json.dumps(
            json.loads(view["private_metadata"]) | {"channel": meta.get("channel", "")}
        )
        await ack(response_action="update", view=view)

    @app.view(views.REFUND_CONFIRM_VIEW)
    async def refund_confirm(ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient) -> None:
        user = user_of(body)
        meta = _meta(body)
        if not auth.may_act(deps.settings, user.id) or hooks.request_refund is None:
            await ack()
            await auth.record_refusal(deps.db, user, "refund_confirm", "SLACK_ALLOWED_USERS")
            return
        amount = Money.parse(meta["amount"], meta["currency"])
        try:
            async with deps.db.session_scope() as session:
                result = await hooks.request_refund(
                    session, meta["payment"], amount.minor, meta["reason"], user.actor
                )
        except PolicyViolation as exc:
            await ack(
                response_action="update",
                view=views.notice_modal("refund_title", text("refund_refused", message=esc(exc.message))),
            )
            return
        except DomainError as exc:
            await ack(response_action="update", view=views.notice_modal("refund_title", error_text(exc)))
            return
        await ack(
            response_action="update",
            view=views.notice_modal("refund_title", text("refund_done", status=result.status)),
        )
        if result.status == "needs_approval" and deps.staff_channel:
            await notify.post_refund_request(client, deps.db, deps.staff_channel, result, deps.clock.now())

    async def decide(
        body: dict[str, Any], respond: AsyncRespond, client: AsyncWebClient, decision: str
    ) -> None:
        user = user_of(body)
        if not await approver(deps, user, f"refund_{decision}", respond):
            return
        hook = hooks.approve_refund if decision == "approved" else hooks.decline_refund
        if hook is None:
            await ephemeral(respond, text("not_available"))
            return
        refund_id = _value(body)
        async with deps.db.sessionmaker() as session:
            post = await posts.find(session, "refund", refund_id)
        if decision == "approved" and post is not None and post.data.get("requested_by") == user.id:
            await ephemeral(respond, text("own_request"))
            return
        try:
            async with deps.db.session_scope() as session:
                await hook(session, refund_id, user.actor)
        except DomainError as exc:
            await ephemeral(respond, error_text(exc))
            return
        channel, ts = _where(body)
        blocks = (body.get("message") or {}).get("blocks") or []
        await client.chat_update(
            channel=channel,
            ts=ts,
            text=text("refund_decided", decision=decision, user=user.id, when=views.when(deps.clock.now())),
            blocks=views.refund_decided(blocks, decision, user.id, deps.clock.now()),
        )

    @app.action(views.REFUND_APPROVE)
    async def approve(
        ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond, client: AsyncWebClient
    ) -> None:
        await ack()
        await decide(body, respond, client, "approved")

    @app.action(views.REFUND_DECLINE)
    async def decline(
        ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond, client: AsyncWebClient
    ) -> None:
        await ack()
        await decide(body, respond, client, "declined")


# ----------------------------------------------------------------------------- plans (seam)


def register_plan_actions(app: AsyncApp, deps: SlackDeps) -> None:
    async def decide(
        user: StaffUser,
        plan_id: str,
        decision: str,
        note: str | None,
        channel: str,
        ts: str,
        client: AsyncWebClient,
    ) -> str | None:
        """None when decided; otherwise the text to show."""
        hook = deps.hooks.decide_plan
        if hook is None:
            return text("not_available")
        try:
            async with deps.db.session_scope() as session:
                await hook(session, plan_id, decision, note, user.actor)
        except DomainError as exc:
            return error_text(exc)
        async with deps.db.sessionmaker() as session:
            post = await posts.find(session, "plan", plan_id)
        blocks = list(post.data.get("blocks") or []) if post else []
        now = deps.clock.now()
        await client.chat_update(
            channel=channel,
            ts=ts,
            text=text("plan_decided", decision=decision, user=user.id, when=views.when(now)),
            blocks=views.plan_decided(blocks, decision, user.id, now),
        )
        return None

    def on_plan(decision: str) -> Any:
        async def handle(
            ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond, client: AsyncWebClient
        ) -> None:
            await ack()
            user = user_of(body)
            if not await approver(deps, user, f"plan_{decision}", respond):
                return
            problem = await decide(user, _value(body), decision, None, *_where(body), client)
            if problem:
                await ephemeral(respond, problem)

        return handle

    app.action(views.PLAN_ACCEPT)(on_plan("accept"))
    app.action(views.PLAN_DECLINE)(on_plan("decline"))

    @app.action(views.PLAN_COUNTER)
    async def counter(
        ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond, client: AsyncWebClient
    ) -> None:
        await ack()
        if await approver(deps, user_of(body), "plan_counter", respond):
            await client.views_open(
                trigger_id=body["trigger_id"], view=views.plan_counter_modal(_value(body), *_where(body))
            )

    @app.view(views.PLAN_COUNTER_VIEW)
    async def counter_submit(ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient) -> None:
        user = user_of(body)
        meta = _meta(body)
        if not auth.may_approve(deps.settings, user.id):
            await ack()
            await auth.record_refusal(deps.db, user, "plan_counter_submit", "SLACK_APPROVERS")
            return
        note = str(_fields(body).get("note") or "").strip()
        if not note:
            await ack(response_action="errors", errors={"note": text("reason_required")})
            return
        problem = await decide(user, meta["plan"], "counter", note, meta["channel"], meta["ts"], client)
        if problem:
            await ack(response_action="errors", errors={"note": problem})
            return
        await ack()


# ----------------------------------------------------------------------------- disputes and relays


def register_thread_actions(app: AsyncApp, deps: SlackDeps) -> None:
    async def resolve(body: dict[str, Any], respond: AsyncRespond, client: AsyncWebClient, how: str) -> None:
        user = user_of(body)
        gate = approver if how == "credit" else allowed
        if not await gate(deps, user, f"dispute_{how}", respond):
            return
        invoice = _value(body)
        try:
            async with deps.db.session_scope() as session:
                if how == "credit":
                    await _credit_invoice(session, invoice, user, deps.clock.today())
                await holds.resolve_dispute(
                    session, invoice, note=f"resolved in Slack: {how}", actor=user.actor
                )
        except DomainError as exc:
            await ephemeral(respond, error_text(exc))
            return
        channel, ts = _where(body)
        blocks = (body.get("message") or {}).get("blocks") or []
        await client.chat_update(
            channel=channel,
            ts=ts,
            text=text("dispute_resolved", user=user.id, how=how),
            blocks=views.dispute_resolved(blocks, user.id, how),
        )

    @app.action(views.DISPUTE_RESOLVE)
    async def on_resolve(
        ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond, client: AsyncWebClient
    ) -> None:
        await ack()
        await resolve(body, respond, client, "resume")

    @app.action(views.DISPUTE_CREDIT)
    async def on_credit(
        ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond, client: AsyncWebClient
    ) -> None:
        await ack()
        await resolve(body, respond, client, "credit")

    @app.event("message")
    async def on_message(event: dict[str, Any], client: AsyncWebClient) -> None:
        """A staff reply in a relay thread goes to the debtor's chat."""
        thread_ts, channel = event.get("thread_ts"), event.get("channel")
        if event.get("bot_id") or event.get("subtype") or not thread_ts or thread_ts == event.get("ts"):
            return
        async with deps.db.sessionmaker() as session:
            post = await posts.by_thread(session, str(channel), str(thread_ts))
        if post is None or post.kind != "relay":
            return
        user = StaffUser(str(event.get("user", "")))
        if not auth.may_act(deps.settings, user.id):
            await auth.record_refusal(deps.db, user, "relay_reply", "SLACK_ALLOWED_USERS")
            await client.chat_postEphemeral(
                channel=str(channel), user=user.id, text=text("refused", user=user.id)
            )
            return
        hook = deps.hooks.relay_to_debtor
        if hook is None:
            await client.chat_postEphemeral(channel=str(channel), user=user.id, text=text("not_available"))
            return
        try:
            async with deps.db.session_scope() as session:
                await hook(session, post.ref, str(event.get("text") or ""), user.actor)
        except DomainError as exc:
            await client.chat_postEphemeral(channel=str(channel), user=user.id, text=error_text(exc))


async def _credit_invoice(session: Any, invoice_external_id: str, user: StaffUser, today: Any) -> None:
    """Credit what is open on the invoice (the dispute is accepted)."""
    from core.invoices import repository as invoice_repo

    invoice = await invoice_repo.get_by_external_id(session, invoice_external_id)
    if invoice is None:
        raise NotFound(f"invoice {invoice_external_id!r} does not exist", "invoice_not_found")
    open_minor = await ledger_repo.open_amount(session, invoice.id)
    if open_minor <= 0:
        return
    data = CreditNoteIn(
        invoice_external_id=invoice_external_id,
        currency=invoice.currency,
        amount=Money(open_minor, invoice.currency).decimal_str,
        reason="dispute accepted in Slack",
    )
    await ledger.record_credit_note(session, data, actor=user.actor, today=today)
