"""Channel and language preferences, stop (opt out of chat reminders), a person, help."""

from __future__ import annotations

from core import audit
from core.base import utcnow
from core.conversation import repository as repo
from core.conversation.context import Ctx
from core.conversation.linking import CHAT_KINDS
from core.conversation.schemas import Reply
from core.debtors import repository as debtor_repo
from core.debtors.models import Channel, ContactKind

LANGUAGES = ("en", "nl")
_KIND_OF = {
    "email": ContactKind.email,
    "sms": ContactKind.phone,
    "whatsapp": "whatsapp",
    "telegram": "telegram",
}


async def _reachable(ctx: Ctx) -> list[str]:
    points = await debtor_repo.contact_points(ctx.session, ctx.linked.id)
    kinds = {p.kind for p in points if not p.opted_out}
    return [str(c) for c in Channel if _KIND_OF[str(c)] in kinds]


async def channel_start(ctx: Ctx) -> list[Reply]:
    usable = await _reachable(ctx)
    order = [c for c in ctx.linked.channel_order if c in usable] + [
        c for c in usable if c not in ctx.linked.channel_order
    ]
    options = [ctx.option(f"channel:set:{c}", f"channel_{c}") for c in order]
    current = ctx.text(f"labels.channel_{order[0]}") if order else ""
    return [ctx.reply("prefs.channel_ask", options=options, current=current)]


async def channel_choice(ctx: Ctx, action: str, arg: str | None) -> list[Reply]:
    usable = await _reachable(ctx)
    if action != "set" or arg not in usable:
        return await channel_start(ctx)
    debtor = ctx.linked
    before = list(debtor.channel_order)
    debtor.channel_order = [arg] + [c for c in before if c != arg]
    debtor.updated_at = utcnow()
    await ctx.session.flush()
    await audit.record(
        ctx.session,
        ctx.actor,
        "debtor.channel_order_changed",
        "debtor",
        debtor.external_id,
        before={"channel_order": before},
        after={"channel_order": debtor.channel_order},
    )
    return [ctx.reply("prefs.channel_set", options=ctx.menu(), channel=ctx.text(f"labels.inline_{arg}"))]


async def language_start(ctx: Ctx) -> list[Reply]:
    options = [ctx.option(f"language:set:{code}", f"language_{code}") for code in LANGUAGES]
    return [ctx.reply("prefs.language_ask", options=options)]


async def language_choice(ctx: Ctx, action: str, arg: str | None) -> list[Reply]:
    if action != "set" or arg not in LANGUAGES:
        return await language_start(ctx)
    debtor = ctx.linked
    before = debtor.locale
    if before.split("_")[0].split("-")[0] != arg:
        debtor.locale = arg
        debtor.updated_at = utcnow()
        await ctx.session.flush()
        await audit.record(
            ctx.session,
            ctx.actor,
            "debtor.locale_changed",
            "debtor",
            debtor.external_id,
            before={"locale": before},
            after={"locale": arg},
        )
    ctx.chat.locale = debtor.locale
    return [ctx.reply("prefs.language_set", options=ctx.menu())]


async def stop(ctx: Ctx) -> list[Reply]:
    """Opt this chat's contact point out of reminders; e-mail (the legally required channel) stays."""
    chat, debtor = ctx.chat, ctx.linked
    if chat.channel in CHAT_KINDS:
        point = await repo.contact_point(ctx.session, debtor.id, chat.channel, chat.chat_id)
        if point is not None and not point.opted_out:
            point.opted_out, point.opted_out_at = True, ctx.now
    ctx.goto(None)
    await ctx.session.flush()
    await audit.record(
        ctx.session,
        ctx.actor,
        "chat.opted_out",
        "debtor",
        debtor.external_id,
        after={"channel": chat.channel},
    )
    return [ctx.reply("prefs.stopped", options=[ctx.option("prefs:resume", "resume_reminders")])]


async def resume(ctx: Ctx) -> list[Reply]:
    chat, debtor = ctx.chat, ctx.linked
    if chat.channel in CHAT_KINDS:
        point = await repo.contact_point(ctx.session, debtor.id, chat.channel, chat.chat_id)
        if point is not None and point.opted_out:
            point.opted_out, point.opted_out_at = False, None
    await ctx.session.flush()
    await audit.record(
        ctx.session, ctx.actor, "chat.opted_in", "debtor", debtor.external_id, after={"channel": chat.channel}
    )
    return [ctx.reply("prefs.resumed", options=ctx.menu())]


async def human(ctx: Ctx, first_message: str | None = None) -> list[Reply]:
    debtor = ctx.linked
    await audit.record(
        ctx.session,
        ctx.actor,
        "chat.human_requested",
        "debtor",
        debtor.external_id,
        after={"channel": ctx.channel},
    )
    await ctx.notify("human", first_message or f"{debtor.name} asks for a person")
    ctx.goto("human", "relay")
    return [ctx.reply("prefs.human", options=[ctx.option("menu:main", "back_to_menu")])]


async def relay_text(ctx: Ctx, text: str) -> list[Reply]:
    """While handed off, what the debtor types goes to staff."""
    await ctx.notify("relay", text[:2000])
    return [ctx.reply("prefs.relayed", options=[ctx.option("menu:main", "back_to_menu")])]


def help_reply(ctx: Ctx) -> list[Reply]:
    if ctx.debtor is None:
        return [ctx.reply("link.help_unlinked")]
    return [ctx.reply("prefs.help", options=ctx.menu())]
