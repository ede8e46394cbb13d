"""Reminders over Telegram: the ``telegram`` MessageSender the worker's delivery uses.

The contact point's address is the chat id. The text goes as one or more sendMessage calls (split at
4,096 characters), then each attachment: PDFs and other files with sendDocument, images with
sendPhoto. The provider id is ``<chat id>:<message id>`` of the first message.

Errors map onto :class:`core.ports.DeliveryError`:

- 429 ``TelegramRetryAfter``: temporary, ``retry_after`` as Telegram said;
- 403 ``TelegramForbiddenError`` (the user blocked the bot, or never started it): permanent with
  code ``blocked``; the chat's contact points are marked blocked (with an audit event) and delivery
  falls back to the next channel;
- 400 "chat not found": permanent, code ``invalid_address`` (the point counts as bounced); any other
  400 and 413: permanent;
- 5xx, network errors, 401/404 (a wrong token or API base: a set-up problem that must not drop
  messages): temporary.

Throttling is not done here: delivery takes a slot from the shared rate limiter (30/s overall, 1/s
per chat, core/messaging/ratelimit.py) before every send.
"""

from __future__ import annotations

from aiogram import Bot
from aiogram.exceptions import (
    TelegramAPIError,
    TelegramBadRequest,
    TelegramEntityTooLarge,
    TelegramForbiddenError,
    TelegramNetworkError,
    TelegramRetryAfter,
)
from aiogram.methods import SendMessage

from bots.chat import attachment_of, mark_blocked
from bots.telegram.bot import bot_from_settings
from bots.telegram.render import attachment_call, split_text
from core.config import Settings
from core.db import Database
from core.ports import Clock, DeliveryError, OutboundMessage, SendResult, SystemClock


def _chat(address: str) -> int | str:
    address = address.strip()
    return int(address) if address.lstrip("-").isdigit() else address


class TelegramSender:
    """A MessageSender for the ``telegram`` channel over one aiogram Bot."""

    channel = "telegram"

    def __init__(self, bot: Bot, *, db: Database | None = None, clock: Clock | None = None) -> None:
        self.bot = bot
        self.db = db  # when given, a 403 marks the chat's contact points blocked right away
        self.clock: Clock = clock or SystemClock()

    @classmethod
    def from_settings(
        cls, settings: Settings, *, db: Database | None = None, clock: Clock | None = None
    ) -> TelegramSender | None:
        """The Telegram channel, or None when ``TELEGRAM_BOT_TOKEN`` is unset."""
        bot = bot_from_settings(settings)
        return cls(bot, db=db, clock=clock) if bot is not None else None

    async def aclose(self) -> None:
        await self.bot.session.close()

    async def send(self, message: OutboundMessage) -> SendResult:
        chat = _chat(message.address)
        if chat == "":
            raise DeliveryError("no Telegram chat id", permanent=True, code="invalid_address")
        first: str | None = None
        try:
            for piece in split_text(message.body):
                sent = await self.bot(SendMessage(chat_id=chat, text=piece))
                first = first or f"{sent.chat.id}:{sent.message_id}"
            for filename, data, content_type in message.attachments:
                await self.bot(attachment_call(chat, attachment_of(filename, data, content_type)))
        except TelegramRetryAfter as exc:
            raise DeliveryError(
                f"Telegram rate limit: {exc.message}",
                permanent=False,
                retry_after=exc.retry_after,
                code="429",
            ) from exc
        except TelegramForbiddenError as exc:
            if self.db is not None:
                await mark_blocked(self.db, self.channel, str(chat), self.clock, exc.message)
            raise DeliveryError(f"Telegram 403: {exc.message}", permanent=True, code="blocked") from exc
        except TelegramEntityTooLarge as exc:
            raise DeliveryError(f"Telegram 413: {exc.message}", permanent=True, code="413") from exc
        except TelegramBadRequest as exc:
            code = "invalid_address" if "chat not found" in exc.message.lower() else "400"
            raise DeliveryError(f"Telegram 400: {exc.message}", permanent=True, code=code) from exc
        except TelegramNetworkError as exc:
            raise DeliveryError(
                f"Telegram unreachable: {exc.message}", permanent=False, code="network"
            ) from exc
        except TelegramAPIError as exc:  # 5xx, 401, 404, 409: temporary or a set-up problem
            raise DeliveryError(f"Telegram error: {exc.message}", permanent=False, code="error") from exc
        return SendResult(provider_id=first, status="sent")
