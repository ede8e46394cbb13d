"""The WhatsApp adapter: webhook notifications in, conversation replies out.

:meth:`WhatsAppBot.receive` takes a verified notification: its statuses become delivery receipts on
our messages at once (one short unit of work; they only ever move a message forward, so a
redelivered notification changes nothing), and each person's message is handled in the background
(:func:`bots.chat.converse`, then the replies through the Cloud API). A 429 or 5xx while replying is
retried after its Retry-After (or a short pause) a few times.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import structlog

from bots.chat import CONCURRENCY, Backlog, ConversationHandler, converse
from bots.whatsapp.client import WhatsAppClient, WhatsAppConfig, WhatsAppError
from bots.whatsapp.inbound import Receipt
from bots.whatsapp.render import Media, render
from core.config import Settings
from core.conversation.schemas import Inbound, Reply
from core.db import Database
from core.messaging.receipts import apply_receipt
from core.ports import Clock, SystemClock

log = structlog.get_logger(__name__)

SEND_ATTEMPTS = 3
MAX_RETRY_WAIT = 30.0
DEFAULT_WAIT = 1.0

Sleep = Callable[[float], Awaitable[Any]]


class WhatsAppBot:
    channel = "whatsapp"

    def __init__(
        self,
        client: WhatsAppClient,
        handler: ConversationHandler,
        db: Database,
        *,
        clock: Clock | None = None,
        concurrency: int = CONCURRENCY,
        backlog: int = 1000,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.client = client
        self.handler = handler
        self.db = db
        self.clock: Clock = clock or SystemClock()
        self.sleep = sleep
        self.backlog = Backlog(concurrency=concurrency, limit=backlog)

    @classmethod
    def from_settings(
        cls, settings: Settings, handler: ConversationHandler, db: Database, *, clock: Clock | None = None
    ) -> WhatsAppBot | None:
        """The adapter, or None when WHATSAPP_TOKEN or WHATSAPP_PHONE_NUMBER_ID is unset."""
        config = WhatsAppConfig.from_settings(settings)
        return cls(WhatsAppClient(config), handler, db, clock=clock) if config is not None else None

    async def aclose(self) -> None:
        await self.backlog.drain()
        await self.client.aclose()

    async def drain(self) -> None:
        await self.backlog.drain()

    async def apply_receipts(self, receipts: list[Receipt]) -> int:
        """Statuses → our messages' delivery state; answers how many changed."""
        if not receipts:
            return 0
        changed = 0
        async with self.db.session_scope() as session:
            for r in receipts:
                changed += await apply_receipt(
                    session, self.channel, r.provider_id, r.status, r.error, code=r.code, now=self.clock.now()
                )
        return changed

    def accept(self, inbound: Inbound) -> bool:
        return self.backlog.accept(
            lambda: self.handle(inbound), what=f"whatsapp message {inbound.message_id}"
        )

    async def handle(self, inbound: Inbound) -> None:
        replies = await converse(self.db, self.handler, inbound, self.clock)
        await self.send_replies(inbound.chat_id, replies)

    async def send_replies(self, to: str, replies: list[Reply]) -> list[str]:
        """Every reply in order (the chat just wrote, so its 24-hour window is open)."""
        ids: list[str] = []
        for reply in replies:
            for call in render(to, reply):
                wamid = await self._with_retry(call)
                if wamid:
                    ids.append(wamid)
        return ids

    async def _with_retry(self, call: dict[str, Any] | Media) -> str | None:
        for attempt in range(1, SEND_ATTEMPTS + 1):
            try:
                if isinstance(call, Media):
                    return await self.client.send_media(call)
                return await self.client.send(call)
            except WhatsAppError as exc:
                wait = exc.retry_after if exc.retry_after is not None else DEFAULT_WAIT * attempt
                if not exc.retryable or attempt == SEND_ATTEMPTS or wait > MAX_RETRY_WAIT:
                    raise
                log.info("whatsapp.retry", status=exc.status, code=exc.code, wait=wait)
                await self.sleep(wait)
        raise AssertionError("unreachable")
