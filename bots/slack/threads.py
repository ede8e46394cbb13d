"""Dispute threads (resolve or credit) and hand-off threads (staff replies relayed to the debtor)."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.respond.async_respond import AsyncRespond
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bots.slack import auth, views
from bots.slack.auth import StaffUser, user_of
from bots.slack.common import action_value, allowed, approver, ephemeral, error_text, message_at
from bots.slack.deps import SlackDeps
from bots.slack.texts import text
from core.dunning import holds
from core.errors import DomainError, NotFound
from core.invoices import repository as invoice_repo
from core.ledger import repository as ledger_repo
from core.ledger import service as ledger
from core.ledger.schemas import CreditNoteIn
from core.money import Money
from core.staff import repository as posts


def register(app: AsyncApp, deps: SlackDeps) -> None:
    register_thread_actions(app, deps)


# ----------------------------------------------------------------------------- disputes and relays


def register_thread_actions(app: AsyncApp, deps: SlackDeps) -> None:
    async def resolve(body: dict[str, Any], respond: AsyncRespond, client: AsyncWebClient, how: str) -> None:
        user = user_of(body)
        gate = approver if how == "credit" else allowed
        if not await gate(deps, user, f"dispute_{how}", respond):
            return
        invoice = action_value(body)
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
        channel, ts = message_at(body)
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
        user = StaffUser(user.id, await _display_name(client, user.id))  # events carry only the id
        hook = deps.hooks.relay_to_debtor
        if hook is None:
            await client.chat_postEphemeral(channel=str(channel), user=user.id, text=text("not_available"))
            return
        try:
            async with deps.db.session_scope() as session:
                await hook(session, post.ref, str(event.get("text") or ""), user.actor)
        except DomainError as exc:
            await client.chat_postEphemeral(channel=str(channel), user=user.id, text=error_text(exc))


async def _display_name(client: AsyncWebClient, user_id: str) -> str | None:
    """The staff member's name for the audit trail (users.info); None when Slack will not say."""
    try:
        found = await client.users_info(user=user_id)
    except SlackApiError:
        return None
    profile = found.get("user") or {}
    return profile.get("real_name") or profile.get("name") or None


async def _credit_invoice(session: Any, invoice_external_id: str, user: StaffUser, today: Any) -> None:
    """Credit what is open on the invoice (the dispute is accepted)."""
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
