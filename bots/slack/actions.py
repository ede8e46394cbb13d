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
from bots.slack.common import (
    action_value,
    allowed,
    approver,
    ephemeral,
    error_text,
    message_at,
    parse_amount,
    parse_day,
    view_fields,
    view_meta,
    who,
)
from bots.slack.deps import SlackDeps
from bots.slack.texts import esc, text
from core.debtors import service as debtors
from core.errors import Conflict, DomainError
from core.invoices import service as invoices
from core.money import Money
from core.staff import service as staff


async def _tell(client: AsyncWebClient, meta: dict[str, Any], user: StaffUser, message: str) -> None:
    """After a modal: an ephemeral note in the channel it was opened from (if known)."""
    if meta.get("channel"):
        await client.chat_postEphemeral(channel=meta["channel"], user=user.id, text=message)


def register(app: AsyncApp, deps: SlackDeps) -> None:
    from bots.slack import approvals, threads

    register_debtor_actions(app, deps)
    register_batch_actions(app, deps)
    approvals.register(app, deps)
    threads.register(app, deps)


# ----------------------------------------------------------------------------- debtor card


def register_debtor_actions(app: AsyncApp, deps: SlackDeps) -> None:
    @app.action(views.DEBTOR_PICK)
    async def pick(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond) -> None:
        await ack()
        if await allowed(deps, user_of(body), "debtor_pick", respond):
            await _safely(respond, send_card(deps, respond, action_value(body), replace=True))

    @app.action(views.PAUSE_OPEN)
    async def pause_open(
        ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond, client: AsyncWebClient
    ) -> None:
        await ack()
        if await allowed(deps, user_of(body), "pause", respond):
            await _safely(respond, open_pause_modal(deps, client, body, action_value(body)))

    @app.action(views.RESUME)
    async def resume(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond) -> None:
        await ack()
        user = user_of(body)
        if await allowed(deps, user, "resume", respond):
            try:
                await ephemeral(respond, await do_resume(deps, user, action_value(body)))
            except DomainError as exc:
                await ephemeral(respond, error_text(exc))

    @app.action(views.PAYMENT_REQUEST)
    async def payment_request(
        ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond, client: AsyncWebClient
    ) -> None:
        await ack()
        if not await allowed(deps, user_of(body), "payment_request", respond):
            return
        if deps.hooks.request_payment is None:
            await ephemeral(respond, text("not_available"))
            return
        await _safely(respond, open_payment_request_modal(deps, client, body, action_value(body)))

    @app.view(views.PAYMENT_REQUEST_VIEW)
    async def payment_request_submit(ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient) -> None:
        user = user_of(body)
        meta = view_meta(body)
        hook = deps.hooks.request_payment
        if not auth.may_act(deps.settings, user.id) or hook is None:
            await ack()
            await auth.record_refusal(deps.db, user, "payment_request_submit", "SLACK_ALLOWED_USERS")
            await _tell(client, meta, user, text("refused", user=user.id))
            return
        fields = view_fields(body)
        raw_amount = str(fields.get("amount") or "").strip()
        amount = parse_amount(raw_amount, str(meta.get("currency") or "EUR"))
        reason = str(fields.get("reason") or "").strip()
        errors: dict[str, str] = {}
        if amount is None:
            errors["amount"] = text("bad_amount", value=esc(raw_amount))
        if not reason:
            errors["reason"] = text("reason_required")
        if errors or amount is None:
            await ack(response_action="errors", errors=errors)
            return
        external_id = str(meta.get("debtor"))
        try:
            async with deps.db.session_scope() as session:
                await hook(session, external_id, amount, reason, user.actor)
                name = (await debtors.get(session, external_id)).name
        except DomainError as exc:
            field = str(exc.errors[0].loc[-1]) if exc.errors and exc.errors[0].loc else "amount"
            await ack(
                response_action="errors",
                errors={field if field in ("amount", "reason") else "amount": error_text(exc)},
            )
            return
        await ack()
        await _tell(client, meta, user, text("payment_request_sent", name=esc(name)))

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
        view = views.refund_modal(action_value(body), None)
        meta = json.loads(view["private_metadata"]) | {"channel": message_at(body)[0]}
        view["private_metadata"] = json.dumps(meta)
        await client.views_open(trigger_id=body["trigger_id"], view=view)

    @app.view(views.PAUSE_VIEW)
    async def pause_submit(ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient) -> None:
        user = user_of(body)
        meta = view_meta(body)
        if not auth.may_act(deps.settings, user.id):
            await ack()
            await auth.record_refusal(deps.db, user, "pause_submit", "SLACK_ALLOWED_USERS")
            await _tell(client, meta, user, text("refused", user=user.id))
            return
        fields = view_fields(body)
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


async def open_payment_request_modal(
    deps: SlackDeps, client: AsyncWebClient, body: dict[str, Any], external_id: str
) -> None:
    async with deps.db.sessionmaker() as session:
        overview = await staff.debtor_overview(session, external_id, deps.clock.today())
    open_ = [Money(b.open, b.currency) for b in overview.balance.currencies.values() if b.open > 0]
    view = views.payment_request_modal(
        external_id, overview.debtor.name, open_[0] if open_ else None, message_at(body)[0]
    )
    await client.views_open(trigger_id=body["trigger_id"], view=view)


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
            batch_id = uuid.UUID(action_value(body))
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
                summary = await staff.batch_summary(session, batch_id)
            await ephemeral(
                respond,
                text(
                    "already_decided",
                    status=summary.status,
                    who=who(summary.decided_by),
                    when=views.when(summary.decided_at),
                ),
            )
            return
        except DomainError as exc:
            await ephemeral(respond, error_text(exc))
            return
        async with deps.db.sessionmaker() as session:
            summary = await staff.batch_summary(session, batch_id)
        channel, ts = message_at(body)
        await notify.update_batch_message(client, deps.db, channel, ts, summary, deps.clock.now())

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
