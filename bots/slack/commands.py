"""`/ar` and its subcommands (CONTRACT section 5). Every reply is ephemeral: only the caller sees it.

ack() comes first, with no body, so Slack never waits; the answer goes to the response_url.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.respond.async_respond import AsyncRespond
from slack_sdk.web.async_client import AsyncWebClient

from bots.slack import views
from bots.slack.auth import StaffUser, user_of
from bots.slack.common import allowed, ephemeral, error_text, parse_amount, parse_day, split_words
from bots.slack.deps import SlackDeps
from bots.slack.texts import esc, text
from core.debtors import service as debtors
from core.errors import DomainError
from core.reports import digest
from core.staff import service as staff


class Call:
    """One `/ar` invocation: who, the words after the subcommand, and how to answer."""

    def __init__(
        self,
        deps: SlackDeps,
        user: StaffUser,
        args: str,
        body: dict[str, Any],
        respond: AsyncRespond,
        client: AsyncWebClient,
    ) -> None:
        self.deps, self.user, self.args, self.body, self.respond, self.client = (
            deps,
            user,
            args,
            body,
            respond,
            client,
        )

    async def say(self, message: str | None = None, **kwargs: Any) -> None:
        await ephemeral(self.respond, message, **kwargs)


Handler = Callable[[Call], Awaitable[None]]


async def show_help(call: Call) -> None:
    await call.say(text("help"), blocks=views.help_blocks())


async def lookup(call: Call, query: str) -> str | None:
    """The one debtor ``query`` names; otherwise answer with a pick list or "not found" and return None."""
    async with call.deps.db.sessionmaker() as session:
        hits = await staff.find_debtors(session, query)
    if not hits:
        await call.say(text("debtor_not_found", query=esc(query)))
        return None
    if len(hits) > 1:
        await call.say(
            text("pick_list", query=esc(query), count=len(hits)), blocks=views.pick_list(query, hits)
        )
        return None
    return hits[0].external_id


async def show_debtor(call: Call) -> None:
    if not call.args.strip():
        await call.say(text("debtor_missing_query"))
        return
    external_id = await lookup(call, call.args.strip())
    if external_id is not None:
        await send_card(call.deps, call.respond, external_id)


async def send_card(
    deps: SlackDeps, respond: AsyncRespond, external_id: str, *, replace: bool = False
) -> None:
    async with deps.db.sessionmaker() as session:
        overview = await staff.debtor_overview(session, external_id, deps.clock.today())
        plan = await deps.hooks.plan_summary(session, external_id) if deps.hooks.plan_summary else None
    blocks = views.debtor_card(overview, plan)
    fallback = text(
        "debtor_header",
        name=esc(overview.debtor.name),
        external_id=esc(external_id),
        segment=esc(overview.debtor.segment),
    )
    if replace:
        await respond(text=fallback, blocks=blocks, replace_original=True)
    else:
        await ephemeral(respond, fallback, blocks=blocks)


async def pause(call: Call) -> None:
    """`/ar pause <debtor> [until YYYY-MM-DD] [reason…]`; without a reason, the pause form opens."""
    words = split_words(call.args)
    if not words:
        await call.say(text("pause_usage"))
        return
    until = None
    if "until" in [w.lower() for w in words[1:]]:
        at = [w.lower() for w in words].index("until", 1)
        query, rest = " ".join(words[:at]), words[at + 1 :]
        if not rest:
            await call.say(text("pause_usage"))
            return
        until = parse_day(rest[0])
        if until is None:
            await call.say(text("bad_date", value=esc(rest[0])))
            return
        reason = " ".join(rest[1:])
    else:
        query, reason = words[0], " ".join(words[1:])
    external_id = await lookup(call, query)
    if external_id is None:
        return
    if not reason:
        await open_pause_modal(call.deps, call.client, call.body, external_id)
        return
    async with call.deps.db.session_scope() as session:
        debtor = await debtors.pause(
            session,
            external_id,
            reason=reason,
            until=until,
            today=call.deps.clock.today(),
            actor=call.user.actor,
        )
        name = debtor.name
    await call.say(
        text(
            "paused",
            name=esc(name),
            until=until.isoformat() if until else "",
            reason=esc(reason),
            user=call.user.id,
        )
    )


async def open_pause_modal(
    deps: SlackDeps, client: AsyncWebClient, body: dict[str, Any], external_id: str
) -> None:
    async with deps.db.sessionmaker() as session:
        debtor = await debtors.get(session, external_id)
    view = views.pause_modal(external_id, debtor.name)
    channel = body.get("channel_id") or (body.get("channel") or {}).get("id") or ""
    view["private_metadata"] = json.dumps({"debtor": external_id, "channel": channel})
    await client.views_open(trigger_id=body["trigger_id"], view=view)


async def resume(call: Call) -> None:
    if not call.args.strip():
        await call.say(text("debtor_missing_query"))
        return
    external_id = await lookup(call, call.args.strip())
    if external_id is not None:
        await call.say(await do_resume(call.deps, call.user, external_id))


async def do_resume(deps: SlackDeps, user: StaffUser, external_id: str) -> str:
    async with deps.db.session_scope() as session:
        before = await debtors.get(session, external_id)
        was_paused = before.dunning_paused
        debtor = await debtors.resume(session, external_id, actor=user.actor)
        name = debtor.name
    return text("resumed", name=esc(name), user=user.id) if was_paused else text("not_paused", name=esc(name))


async def refund(call: Call) -> None:
    """`/ar refund <payment id> [amount]`: the refund form, prefilled; a confirmation follows."""
    hooks = call.deps.hooks
    words = call.args.split()
    if hooks.payment_info is None or hooks.request_refund is None:
        await call.say(text("not_available"))
        return
    if not words:
        await call.say(text("help"))
        return
    async with call.deps.db.sessionmaker() as session:
        payment = await hooks.payment_info(session, words[0])
    view = views.refund_modal(None, payment)
    if len(words) > 1:
        amount = parse_amount(words[1], payment.amount.currency)
        if amount is None:
            await call.say(text("bad_amount", value=esc(words[1])))
            return
        for block in view["blocks"]:
            if block.get("block_id") == "amount":
                block["element"]["initial_value"] = amount.decimal_str
    meta = json.loads(view["private_metadata"])
    meta["channel"] = call.body.get("channel_id", "")
    view["private_metadata"] = json.dumps(meta)
    await call.client.views_open(trigger_id=call.body["trigger_id"], view=view)


async def batches(call: Call) -> None:
    async with call.deps.db.sessionmaker() as session:
        pending = await staff.pending_batches(session)
    await call.say(
        text("batches_header", count=len(pending)),
        blocks=views.batches_list(pending, call.deps.settings.public_base_url),
    )


async def show_digest(call: Call) -> None:
    async with call.deps.db.sessionmaker() as session:
        report = await digest.build(session, call.deps.clock.today(), call.deps.clock.now())
    await call.say(text("digest_title", day=report.today.isoformat()), blocks=views.digest_blocks(report))


SUBCOMMANDS: dict[str, Handler] = {
    "debtor": show_debtor,
    "pause": pause,
    "resume": resume,
    "refund": refund,
    "batches": batches,
    "digest": show_digest,
    "help": show_help,
}


def register(app: AsyncApp, deps: SlackDeps) -> None:
    @app.command("/ar")
    async def ar(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond, client: AsyncWebClient) -> None:
        await ack()
        user = user_of(body)
        line = str(body.get("text") or "").strip()
        if not await allowed(deps, user, f"/ar {line}", respond):
            return
        word, _, args = line.partition(" ")
        handler = SUBCOMMANDS.get(word.lower())
        call = Call(deps, user, args, body, respond, client)
        if handler is None:
            prefix = text("unknown_command", word=esc(word)) if word else None
            await call.say(text("help"), blocks=views.help_blocks(prefix))
            return
        try:
            await handler(call)
        except DomainError as exc:
            await call.say(error_text(exc))
