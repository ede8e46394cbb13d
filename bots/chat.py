"""What the chat adapters (Telegram, WhatsApp) share: the conversation handler they call.

An adapter turns a provider update into :class:`core.conversation.schemas.Inbound`, calls
:func:`converse` and renders the replies with its own pure builder. ``converse`` is the unit of work
of one update: it records that the chat wrote to us (WhatsApp's 24-hour window; a blocked chat that
writes again is reachable again), asks the handler for the replies and commits, all before anything
is sent, so that a reply never announces something that was rolled back. The engine's handler
(``bots.conversation.EngineHandler``) does the recording itself, in the statement that loads the chat.

The handler is the conversation engine (``core.conversation.engine.handle`` with its dependencies
bound); adapters take it as a constructor argument so that they do not depend on the engine module.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Protocol

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from core.channels import service as channels
from core.conversation.schemas import Attachment, Inbound, Reply
from core.db import Database
from core.ports import Clock

log = structlog.get_logger(__name__)


class ConversationHandler(Protocol):
    """``async (session, inbound) -> list[Reply]``: the engine with its dependencies bound.

    It only flushes; :func:`converse` commits. A handler with a true ``records_inbound`` attribute
    notes the inbound message itself (the engine does it in the statement that loads the chat, one
    round trip less per update); for any other, :func:`converse` does.
    """

    async def __call__(self, session: AsyncSession, inbound: Inbound) -> list[Reply]: ...


async def converse(db: Database, handler: ConversationHandler, inbound: Inbound, clock: Clock) -> list[Reply]:
    """One update's unit of work: note the inbound message, run the handler, commit."""
    async with db.session_scope() as session:
        if not getattr(handler, "records_inbound", False):
            await channels.record_inbound(session, inbound.channel, inbound.chat_id, clock.now())
        replies = await handler(session, inbound)
    log.debug("chat.handled", channel=inbound.channel, replies=len(replies))
    return replies


async def mark_blocked(db: Database, channel: str, chat_id: str, clock: Clock, reason: str) -> None:
    """A chat refused our message (Telegram 403): its contact points stop being used."""
    async with db.session_scope() as session:
        changed = await channels.mark_blocked(session, channel, chat_id, clock.now(), reason=reason)
    log.info("chat.blocked", channel=channel, chat_id=chat_id, contact_points=changed)


# Updates a bot handles at once per process. Each holds one pooled database connection for its unit of
# work; the pool has 10 (core/db.py), so two stay free for the API and the worker's jobs in the same
# process. A /balance spends most of its time waiting on its four round trips, so fewer slots leave the
# CPU idle: 8 instead of 4 took the webhook bench from ~240 to ~350 updates/s.
CONCURRENCY = 8


class Backlog:
    """Updates handled in the background, at most ``concurrency`` at a time.

    A webhook answers as soon as the update is accepted (providers redeliver slow answers); at most
    ``limit`` may wait, beyond that :meth:`accept` refuses and the route answers 503 so that the
    provider retries later. :meth:`drain` waits for everything accepted so far (tests, shutdown).
    """

    def __init__(self, *, concurrency: int = CONCURRENCY, limit: int = 1000) -> None:
        self._slots = asyncio.Semaphore(max(1, concurrency))
        self._limit = max(1, limit)
        self._tasks: set[asyncio.Task[None]] = set()

    def __len__(self) -> int:
        return len(self._tasks)

    def accept(self, work: Callable[[], Awaitable[object]], *, what: str) -> bool:
        if len(self._tasks) >= self._limit:
            log.warning("chat.backlog_full", what=what, waiting=len(self._tasks))
            return False
        task = asyncio.create_task(self._run(work, what))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return True

    async def _run(self, work: Callable[[], Awaitable[object]], what: str) -> None:
        async with self._slots:
            try:
                await work()
            except Exception:  # one bad update must not take the others down
                log.exception("chat.update_failed", what=what)

    async def drain(self) -> None:
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)


def attachment_of(filename: str, data: bytes, content_type: str) -> Attachment:
    """An OutboundMessage attachment as a chat Attachment: images as photos, the rest as documents."""
    if content_type.lower().startswith("image/"):
        return Attachment(kind="image", filename=filename, content=data, mime_type=content_type)
    return Attachment(kind="document", filename=filename, content=data, mime_type=content_type)
