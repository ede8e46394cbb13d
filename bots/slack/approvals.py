"""Refunds with four-eyes and payment plan decisions, through the StaffHooks seams (bots/slack/seams.py)."""

from __future__ import annotations

import json
import uuid
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.respond.async_respond import AsyncRespond
from slack_sdk.web.async_client import AsyncWebClient

from bots.slack import auth, notify, views
from bots.slack.actions import action_value, message_at, view_fields, view_meta
from bots.slack.auth import StaffUser, user_of
from bots.slack.common import approver, ephemeral, error_text, parse_amount
from bots.slack.deps import SlackDeps
from bots.slack.texts import esc, text
from core.errors import DomainError, PolicyViolation
from core.money import Money
from core.staff import repository as posts

SUBMITTED = "refund_submitted"  # staff_posts kind that claims a confirmation's nonce (never posted)


def register(app: AsyncApp, deps: SlackDeps) -> None:
    register_refund_actions(app, deps)
    register_plan_actions(app, deps)


# ----------------------------------------------------------------------------- refunds (seam)


def register_refund_actions(app: AsyncApp, deps: SlackDeps) -> None:
    hooks = deps.hooks

    @app.view(views.REFUND_VIEW)
    async def refund_submit(ack: AsyncAck, body: dict[str, Any]) -> None:
        user = user_of(body)
        meta = view_meta(body)
        if not auth.may_act(deps.settings, user.id) or hooks.payment_info is None:
            await ack()
            await auth.record_refusal(deps.db, user, "refund_submit", "SLACK_ALLOWED_USERS")
            return
        fields = view_fields(body)
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
        view = views.refund_confirm(payment, amount, reason, nonce=uuid.uuid4().hex)
        view["private_metadata"] = json.dumps(
            json.loads(view["private_metadata"]) | {"channel": meta.get("channel", "")}
        )
        await ack(response_action="update", view=view)

    @app.view(views.REFUND_CONFIRM_VIEW)
    async def refund_confirm(ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient) -> None:
        user = user_of(body)
        meta = view_meta(body)
        if not auth.may_act(deps.settings, user.id) or hooks.request_refund is None:
            await ack()
            await auth.record_refusal(deps.db, user, "refund_confirm", "SLACK_ALLOWED_USERS")
            return
        amount = Money.parse(meta["amount"], meta["currency"])
        try:
            async with deps.db.session_scope() as session:
                nonce = str(meta.get("nonce") or "")
                if nonce and await posts.claim(session, SUBMITTED, nonce, {"user": user.id}) is None:
                    # the same confirmation again (a double click): one refund only
                    await ack(
                        response_action="update",
                        view=views.notice_modal("refund_title", text("refund_already_submitted")),
                    )
                    return
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
        refund_id = action_value(body)
        async with deps.db.sessionmaker() as session:
            post = await posts.find(session, "refund", refund_id)
        if decision == "approved" and post is not None and post.data.get("requested_by") == user.id:
            await ephemeral(respond, text("own_request"))
            return
        try:
            async with deps.db.session_scope() as session:
                result = await hook(session, refund_id, user.actor)
        except DomainError as exc:
            await ephemeral(respond, error_text(exc))
            return
        shown = result.status if result.status in ("executed", "failed") else decision
        channel, ts = message_at(body)
        blocks = (body.get("message") or {}).get("blocks") or []
        await client.chat_update(
            channel=channel,
            ts=ts,
            text=text("refund_decided", decision=shown, user=user.id, when=views.when(deps.clock.now())),
            blocks=views.refund_decided(blocks, shown, user.id, deps.clock.now()),
        )
        async with deps.db.session_scope() as session:
            await posts.close(session, "refund", refund_id, deps.clock.now())

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
            problem = await decide(user, action_value(body), decision, None, *message_at(body), client)
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
                trigger_id=body["trigger_id"],
                view=views.plan_counter_modal(action_value(body), *message_at(body)),
            )

    @app.view(views.PLAN_COUNTER_VIEW)
    async def counter_submit(ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient) -> None:
        user = user_of(body)
        meta = view_meta(body)
        if not auth.may_approve(deps.settings, user.id):
            await ack()
            await auth.record_refusal(deps.db, user, "plan_counter_submit", "SLACK_APPROVERS")
            return
        note = str(view_fields(body).get("note") or "").strip()
        if not note:
            await ack(response_action="errors", errors={"note": text("reason_required")})
            return
        problem = await decide(user, meta["plan"], "counter", note, meta["channel"], meta["ts"], client)
        if problem:
            await ack(response_action="errors", errors={"note": problem})
            return
        await ack()
