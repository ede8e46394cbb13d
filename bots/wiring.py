"""Building the chat adapters for the API process (api/main.py) and `duebot run`.

:func:`conversation_handler` is the one place where the adapters meet the conversation engine.
"""

from __future__ import annotations

from dataclasses import dataclass

from bots.chat import ConversationHandler
from bots.telegram.bot import TelegramBot
from bots.whatsapp.bot import WhatsAppBot
from core.config import Settings
from core.db import Database
from core.ports import Clock


def conversation_handler(settings: Settings, db: Database, clock: Clock) -> ConversationHandler | None:
    """The conversation engine with its dependencies bound, or None while there is none.

    To be bound at merge: ``core.conversation.engine.handle(session, inbound, *, deps)``, e.g.
    ``lambda session, inbound: engine.handle(session, inbound, deps=deps)``. Without a handler the
    chat adapters are not started and their webhooks answer 503.
    """
    return None


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
    return ChatBots(
        telegram=TelegramBot.from_settings(settings, handler, db, clock=clock),
        whatsapp=WhatsAppBot.from_settings(settings, handler, db, clock=clock),
    )
