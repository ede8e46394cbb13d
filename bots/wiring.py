"""Building the chat adapters for the API process (api/main.py) and `duebot run`.

:func:`conversation_handler` is the one place where the adapters meet the conversation engine.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import structlog

from bots.chat import ConversationHandler
from bots.conversation import EngineHandler, conversation_deps
from bots.whatsapp.bot import WhatsAppBot
from core.config import Settings
from core.db import Database
from core.payments import providers
from core.ports import Clock, SystemClock

if TYPE_CHECKING:  # aiogram costs ~140 MB of memory: imported only when a bot token is set
    from bots.telegram.bot import TelegramBot

log = structlog.get_logger(__name__)


def conversation_handler(settings: Settings, db: Database, clock: Clock) -> ConversationHandler | None:
    """The conversation engine with its dependencies bound (bots/conversation.py: pay options over
    the configured PSP, payment plans, staff notices to Slack when configured)."""
    deps = conversation_deps(settings, db, clock, providers.from_settings(settings))
    return EngineHandler(deps)


@dataclass
class ChatBots:
    telegram: TelegramBot | None = None
    whatsapp: WhatsAppBot | None = None

    async def aclose(self) -> None:
        if self.telegram is not None:
            await self.telegram.aclose()
        if self.whatsapp is not None:
            await self.whatsapp.aclose()


def build_chat_bots(
    settings: Settings, db: Database, clock: Clock, handler: ConversationHandler | None = None
) -> ChatBots:
    """The configured chat adapters (Telegram with a token, WhatsApp with a token and a number)."""
    handler = handler or conversation_handler(settings, db, clock)
    if handler is None:
        return ChatBots()
    telegram = None
    if settings.telegram_bot_token is not None:
        from bots.telegram.bot import TelegramBot

        telegram = TelegramBot.from_settings(settings, handler, db, clock=clock)
    return ChatBots(telegram=telegram, whatsapp=WhatsAppBot.from_settings(settings, handler, db, clock=clock))


LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1", "0.0.0.0", ""})  # noqa: S104 (names, not a bind)


def wants_polling(settings: Settings) -> bool:
    """`duebot run` polls Telegram when a bot token is set and PUBLIC_BASE_URL is not reachable from
    outside (a local or non-https URL), so that a webhook cannot work."""
    if settings.telegram_bot_token is None or not settings.telegram_bot_token.get_secret_value().strip():
        return False
    url = urlsplit(settings.public_base_url.strip())
    host = url.hostname or ""
    return url.scheme != "https" or host in LOCAL_HOSTS or host.endswith(".localhost")


async def poll_telegram(settings: Settings) -> None:
    """Long-poll Telegram until cancelled (the development set-up of `duebot run`)."""
    from bots.telegram.bot import TelegramBot

    db = Database.from_url(settings.database_url)
    clock = SystemClock()
    handler = conversation_handler(settings, db, clock)
    bot = TelegramBot.from_settings(settings, handler, db, clock=clock) if handler is not None else None
    if bot is None:
        log.warning("telegram.polling_unavailable", reason="no conversation handler is bound")
        await db.dispose()
        return
    try:
        await bot.run_polling()
    finally:
        await bot.aclose()
        await db.dispose()
