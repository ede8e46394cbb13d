"""Linking a chat to a debtor: a one-time deep-link token, or an invoice number plus the amount due.

- Tokens are 32 URL-safe characters (Telegram allows 64 of ``A-Za-z0-9_-`` in a /start payload).
  Only their SHA-256 is stored. A token works once and expires after ``TOKEN_TTL``.
- Without a token the chat asks for an invoice number, then the amount due (the open amount or the
  invoice amount). Every failed try, and every bad token, counts; after ``MAX_FAILURES`` within
  ``FAILURE_WINDOW`` the chat is locked for ``LOCK_FOR``. The reply never says which part was wrong.
- A linked telegram or whatsapp chat becomes a verified contact point of the debtor, so that
  reminders can reach it; the same chat is removed from any other debtor.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import quote

from sqlalchemy.ext.asyncio import AsyncSession

from core import audit
from core.audit import Actor
from core.config import Settings
from core.conversation import repository as repo
from core.conversation.context import Ctx
from core.conversation.models import LinkToken
from core.conversation.nlu import parse_amount_minor
from core.conversation.schemas import Reply
from core.debtors import service as debtors
from core.debtors.models import ContactPoint, Debtor
from core.invoices.models import PAYABLE_STATUSES
from core.ledger import repository as ledger_repo
from core.money import exponent

TOKEN_TTL = timedelta(days=7)
MAX_FAILURES = 5
FAILURE_WINDOW = timedelta(hours=1)
LOCK_FOR = timedelta(hours=1)
BOT_PLACEHOLDER = "your_duebot_bot"  # used in t.me links until TELEGRAM_BOT_USERNAME is set
WHATSAPP_PREFIX = "LINK"  # the wa.me text: "LINK <token>"
CHAT_KINDS = ("telegram", "whatsapp")  # channels whose chats become contact points

_START = re.compile(r"^/start(?:@\w+)?(?:\s+(\S+))?\s*$", re.IGNORECASE)
_LINK_CODE = re.compile(rf"^{WHATSAPP_PREFIX}\s+([A-Za-z0-9_-]{{16,64}})\s*$", re.IGNORECASE)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class LinkOffer:
    token: str
    expires_at: datetime
    telegram_url: str
    whatsapp_url: str | None
    whatsapp_text: str


async def create_link(
    session: AsyncSession, external_id: str, *, settings: Settings, now: datetime, actor: Actor
) -> LinkOffer:
    """A new one-time token for the debtor, as a t.me deep link and a wa.me text code."""
    debtor = await debtors.get(session, external_id)
    token = secrets.token_urlsafe(24)
    expires = now + TOKEN_TTL
    session.add(
        LinkToken(
            token_hash=hash_token(token), debtor_id=debtor.id, expires_at=expires, created_by=actor.label
        )
    )
    await session.flush()
    await audit.record(
        session,
        actor,
        "debtor.link_created",
        "debtor",
        external_id,
        after={"expires_at": expires.isoformat()},
    )
    bot = (settings.telegram_bot_username or BOT_PLACEHOLDER).lstrip("@")
    text = f"{WHATSAPP_PREFIX} {token}"
    number = re.sub(r"\D", "", settings.whatsapp_number or "")
    return LinkOffer(
        token=token,
        expires_at=expires,
        telegram_url=f"https://t.me/{bot}?start={token}",
        whatsapp_url=f"https://wa.me/{number}?text={quote(text)}" if number else None,
        whatsapp_text=text,
    )


def token_in(text: str) -> str | bool | None:
    """The token of "/start <token>" or "LINK <token>"; True for a bare "/start"; None otherwise."""
    if match := _START.match(text):
        return match.group(1) or True
    if match := _LINK_CODE.match(text):
        return match.group(1)
    return None


def locked(ctx: Ctx) -> bool:
    until = ctx.chat.locked_until
    return until is not None and until > ctx.now


async def _fail(ctx: Ctx) -> Reply:
    """Count a failed try; lock the chat at the limit (audited: a sign of guessing)."""
    since = ctx.now - FAILURE_WINDOW
    recent = [t for t in ctx.chat.failures if datetime.fromisoformat(t) > since]
    recent.append(ctx.now.isoformat())
    ctx.goto("identify", "number") if ctx.debtor is None else ctx.goto(None)
    if len(recent) >= MAX_FAILURES:
        ctx.chat.failures = []
        ctx.chat.locked_until = ctx.now + LOCK_FOR
        await audit.record(
            ctx.session,
            Actor("chat", f"{ctx.chat.channel}:{ctx.chat.chat_id}"[:128]),
            "chat.locked",
            "chat",
            ctx.chat.id,
            after={"until": ctx.chat.locked_until.isoformat(), "failures": len(recent)},
        )
        return ctx.reply("link.locked")
    ctx.chat.failures = recent
    return ctx.reply("link.failed", left=MAX_FAILURES - len(recent))


async def redeem(ctx: Ctx, token: str) -> list[Reply]:
    row = await repo.token_for_update(ctx.session, hash_token(token))
    if row is None or row.used_at is not None or row.expires_at <= ctx.now:
        return [await _fail(ctx)]
    row.used_at, row.used_by = ctx.now, ctx.chat.id
    debtor = await ctx.session.get(Debtor, row.debtor_id)
    assert debtor is not None
    return await link(ctx, debtor, how="token")


async def link(ctx: Ctx, debtor: Debtor, *, how: str) -> list[Reply]:
    chat = ctx.chat
    before = {"debtor": None}
    chat.debtor_id, chat.linked_at, chat.failures, chat.locked_until = debtor.id, ctx.now, [], None
    chat.locale = debtor.locale
    ctx.debtor = debtor
    ctx.goto(None)
    if chat.channel in CHAT_KINDS:
        await repo.detach_chat_points(ctx.session, chat.channel, chat.chat_id, keep=debtor.id)
        point = await repo.contact_point(ctx.session, debtor.id, chat.channel, chat.chat_id)
        if point is None:
            ctx.session.add(
                ContactPoint(debtor_id=debtor.id, kind=chat.channel, address=chat.chat_id, verified=True)
            )
        else:
            point.verified, point.opted_out, point.opted_out_at = True, False, None
    await ctx.session.flush()
    await audit.record(
        ctx.session,
        ctx.actor,
        "chat.linked",
        "debtor",
        debtor.external_id,
        before=before,
        after={"channel": chat.channel, "how": how},
    )
    return [ctx.reply("link.linked", options=ctx.menu(), name=debtor.name)]


async def unlinked(ctx: Ctx, text: str) -> list[Reply]:
    """Everything an unlinked chat can do: identify itself, or read the help."""
    if ctx.chat.flow != "identify" or not text or text.startswith("/"):
        ctx.goto("identify", "number")
        return [ctx.reply("link.welcome")]
    if ctx.chat.step == "number":
        number = " ".join(text.split())[:64]
        if not number:
            return [ctx.reply("link.ask_number")]
        ctx.goto("identify", "amount", number=number)
        return [ctx.reply("link.ask_amount")]
    number = str(ctx.chat.data.get("number", ""))
    invoice = await repo.invoice_by_number(ctx.session, number) if number else None
    if invoice is None or invoice.status not in PAYABLE_STATUSES:
        return [await _fail(ctx)]
    typed = parse_amount_minor(text, exponent(invoice.currency))
    open_minor = await ledger_repo.open_amount(ctx.session, invoice.id)
    if typed is None or typed not in (open_minor, invoice.amount_minor):
        return [await _fail(ctx)]
    debtor = await ctx.session.get(Debtor, invoice.debtor_id)
    assert debtor is not None
    return await link(ctx, debtor, how="invoice")
