"""The Telegram adapter: aiogram updates in, conversation replies out.

:class:`TelegramBot` owns an aiogram ``Bot`` (its HTTP session points at ``TELEGRAM_API_BASE``) and a
``Dispatcher`` whose router turns

- a text message into ``Inbound(text=…)``;
- a command into ``Inbound(text="/<command> <args>")`` with the bot mention dropped, so that
  ``/start@duebot_bot abc`` and the deep link ``/start abc`` both reach the engine as ``/start abc``;
- any other message (a photo, a sticker) into ``Inbound(text=caption or "")``, which the engine
  answers politely;
- a callback query (a pressed inline button) into ``Inbound(choice=<callback data>)``, after
  answering the query at once so that the client stops its spinner;

calls the conversation handler (:func:`bots.chat.converse`, one unit of work per update) and sends
each reply as the calls :func:`bots.telegram.render.render` builds.

Sending: a 429 is retried after its ``retry_after`` (a few times), a 5xx or network error after a
short pause; a 403 (the user blocked the bot) marks the chat's contact points ``blocked`` so that
reminders fall back to the next channel, and the rest of the replies are dropped.

Updates come from the webhook route (``api/webhooks/telegram.py``, via :meth:`accept`, handled in the
background with bounded concurrency) or, in development, from long polling (:meth:`run_polling`).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from aiogram import Bot, Dispatcher, F, Router
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import (
    TelegramForbiddenError,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
)
from aiogram.filters import Command, CommandObject
from aiogram.methods import Response, TelegramMethod
from aiogram.types import CallbackQuery, Message, Update, User

from bots.chat import CONCURRENCY, Backlog, ConversationHandler, converse, mark_blocked
from bots.telegram.render import render
from core.config import Settings
from core.conversation.schemas import Inbound, Reply
from core.db import Database
from core.ports import Clock, SystemClock

log = structlog.get_logger(__name__)

ANY_COMMAND = re.compile(r"^[A-Za-z0-9_]{1,32}$")
MAX_INBOUND_TEXT = 4096
SEND_ATTEMPTS = 3
MAX_RETRY_WAIT = 30.0  # seconds; a longer retry_after is not waited for in a chat
SERVER_ERROR_WAIT = 0.5

Sleep = Callable[[float], Awaitable[Any]]

# aiogram parses every answer with ``Response[<returned type>]``, and pydantic keeps parametrized
# generic models only in a WeakValueDictionary: without a strong reference the model is collected
# and rebuilt on a later call (tens of milliseconds each, measured in the delivery benchmark). Keep
# the ones the adapter uses alive for the life of the process.
RESPONSE_MODELS = tuple(Response[t] for t in (Message, bool, User, list[Update]))  # type: ignore[valid-type]


def make_bot(token: str, api_base: str) -> Bot:
    """An aiogram Bot whose requests go to ``api_base`` (the real Bot API or a local fake)."""
    session = AiohttpSession(api=TelegramAPIServer.from_base(api_base.rstrip("/")))
    return Bot(token, session=session)


def bot_from_settings(settings: Settings) -> Bot | None:
    token = settings.telegram_bot_token.get_secret_value().strip() if settings.telegram_bot_token else ""
    return make_bot(token, settings.telegram_api_base) if token else None


async def call_with_retry(bot: Bot, method: TelegramMethod[Any], *, sleep: Sleep = asyncio.sleep) -> Any:
    """Execute ``method``, retrying a 429 after its retry_after and a 5xx or network error after a
    short pause, up to SEND_ATTEMPTS times; other errors propagate."""
    for attempt in range(1, SEND_ATTEMPTS + 1):
        try:
            return await bot(method)
        except TelegramRetryAfter as exc:
            if attempt == SEND_ATTEMPTS or exc.retry_after > MAX_RETRY_WAIT:
                raise
            await sleep(float(exc.retry_after))
        except (TelegramServerError, TelegramNetworkError):
            if attempt == SEND_ATTEMPTS:
                raise
            await sleep(SERVER_ERROR_WAIT * attempt)
    raise AssertionError("unreachable")


def _text(value: str | None) -> str:
    return (value or "")[:MAX_INBOUND_TEXT]


def _locale(message_or_query: Message | CallbackQuery) -> str | None:
    user = message_or_query.from_user
    return user.language_code if user is not None else None


def _name(message_or_query: Message | CallbackQuery) -> str | None:
    user = message_or_query.from_user
    return user.full_name if user is not None else None


class TelegramBot:
    """The Telegram edge of the conversation: a Dispatcher bound to the handler and the database."""

    channel = "telegram"

    def __init__(
        self,
        bot: Bot,
        handler: ConversationHandler,
        db: Database,
        *,
        clock: Clock | None = None,
        concurrency: int = CONCURRENCY,
        backlog: int = 1000,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.bot = bot
        self.handler = handler
        self.db = db
        self.clock: Clock = clock or SystemClock()
        self.sleep = sleep
        self.backlog = Backlog(concurrency=concurrency, limit=backlog)
        self.dispatcher = Dispatcher()
        self.dispatcher.include_router(self._router())

    @classmethod
    def from_settings(
        cls, settings: Settings, handler: ConversationHandler, db: Database, *, clock: Clock | None = None
    ) -> TelegramBot | None:
        """The adapter, or None when ``TELEGRAM_BOT_TOKEN`` is unset."""
        bot = bot_from_settings(settings)
        return cls(bot, handler, db, clock=clock) if bot is not None else None

    async def aclose(self) -> None:
        await self.backlog.drain()
        await self.bot.session.close()

    # -- updates in ------------------------------------------------------------------------
    def _router(self) -> Router:
        router = Router(name="duebot")
        router.callback_query.register(self.on_callback)
        router.message.register(self.on_command, Command(ANY_COMMAND))
        router.message.register(self.on_message, F.chat)
        return router

    async def on_command(self, message: Message, command: CommandObject) -> None:
        text = f"/{command.command.lower()}"
        if command.args:
            text = f"{text} {command.args.strip()}"
        await self._inbound(message, text=_text(text))

    async def on_message(self, message: Message) -> None:
        await self._inbound(
            message, text=_text(message.text if message.text is not None else message.caption)
        )

    async def _inbound(self, message: Message, *, text: str) -> None:
        inbound = Inbound(
            channel="telegram",
            chat_id=str(message.chat.id),
            text=text,
            locale_hint=_locale(message),
            message_id=f"m{message.message_id}",
            display_name=_name(message),
        )
        await self.handle(inbound)

    async def on_callback(self, query: CallbackQuery) -> None:
        # Answer first: the button stops spinning even when the engine or the database is slow.
        await call_with_retry(self.bot, query.answer(), sleep=self.sleep)
        chat_id = query.message.chat.id if query.message is not None else query.from_user.id
        inbound = Inbound(
            channel="telegram",
            chat_id=str(chat_id),
            choice=(query.data or "")[:64],
            locale_hint=_locale(query),
            message_id=f"c{query.id}",
            display_name=_name(query),
        )
        await self.handle(inbound)

    async def handle(self, inbound: Inbound) -> None:
        replies = await converse(self.db, self.handler, inbound, self.clock)
        await self.send_replies(inbound.chat_id, replies)

    # -- replies out -----------------------------------------------------------------------
    async def send_replies(self, chat_id: str, replies: list[Reply]) -> bool:
        """Send every reply in order; False when the chat blocked the bot (it is marked blocked)."""
        target: int | str = int(chat_id) if chat_id.lstrip("-").isdigit() else chat_id
        for reply in replies:
            for call in render(target, reply):
                try:
                    await call_with_retry(self.bot, call, sleep=self.sleep)
                except TelegramForbiddenError as exc:
                    await mark_blocked(self.db, self.channel, chat_id, self.clock, exc.message)
                    return False
        return True

    async def feed(self, update: Update) -> None:
        """Handle one update now (the webhook's background task, benchmarks)."""
        await self.dispatcher.feed_update(self.bot, update)

    def accept(self, update: Update) -> bool:
        """Queue an update from the webhook; False when the backlog is full (answer 503)."""
        return self.backlog.accept(lambda: self.feed(update), what=f"telegram update {update.update_id}")

    def parse(self, data: dict[str, Any]) -> Update:
        """A webhook body as an Update bound to this bot; raises pydantic's ValidationError."""
        return Update.model_validate(data, context={"bot": self.bot})

    async def drain(self) -> None:
        await self.backlog.drain()

    # -- development -------------------------------------------------------------------------
    async def run_polling(self) -> None:
        """Long polling (development without a public URL): drops any webhook first."""
        await self.bot.delete_webhook(drop_pending_updates=False)
        log.info("telegram.polling")
        await self.dispatcher.start_polling(
            self.bot,
            handle_signals=False,
            close_bot_session=False,
            allowed_updates=["message", "callback_query"],
        )


WEBHOOK_PATH = "/webhooks/telegram"
SECRET_TOKEN = re.compile(r"^[A-Za-z0-9_-]{1,256}$")


def webhook_url(public_base_url: str) -> str:
    return public_base_url.rstrip("/") + WEBHOOK_PATH


async def register_webhook(bot: Bot, url: str, secret: str) -> bool:
    """``setWebhook``: Telegram then POSTs updates to ``url`` with ``secret`` in
    X-Telegram-Bot-Api-Secret-Token (1-256 characters of ``A-Za-z0-9_-``)."""
    if not SECRET_TOKEN.match(secret):
        raise ValueError("TELEGRAM_WEBHOOK_SECRET must be 1-256 characters of A-Z, a-z, 0-9, _ and -")
    if not url.startswith("https://"):
        raise ValueError(f"Telegram only delivers webhooks to https:// URLs, not {url!r}")
    result: bool = await bot.set_webhook(
        url, secret_token=secret, allowed_updates=["message", "callback_query"], drop_pending_updates=False
    )
    return result
