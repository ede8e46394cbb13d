"""Reminders over WhatsApp: the ``whatsapp`` MessageSender the worker's delivery uses.

The contact point's address is the chat id (the number as WhatsApp reports it, ``wa_id``, or a
business-scoped user id). WhatsApp allows free-form messages only within 24 hours of the person's
last message to us (``core.channels.service.window_open``, fed by the webhook):

- window open: the text (and attachments, uploaded first) as free-form messages;
- window closed, or the API answers 131047 anyway: the approved template
  ``WHATSAPP_REMINDER_TEMPLATE`` in ``WHATSAPP_REMINDER_TEMPLATE_LANGUAGE``, whose body's ``{{1}}`` is
  the reminder text on one line (``WHATSAPP_REMINDER_TEMPLATE_BODY_PARAM=0``: a template without
  parameters). No template configured: a permanent error with code ``window_closed``, and delivery
  falls back to the next channel.

The provider id is the wamid of the first message, which the status webhooks refer to.

Errors: 130429 (throughput), 131056 (pair rate), 429, 5xx and network errors are temporary (with
Retry-After when given); any other 4xx is permanent. Throttling is the shared rate limiter's job
(80/s per number and one message per 6 s per user, core/messaging/ratelimit.py).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from bots.chat import attachment_of
from bots.whatsapp.client import WhatsAppClient, WhatsAppConfig, WhatsAppError
from bots.whatsapp.render import MAX_TEXT, Media, split_text, template_payload, text_payload
from core.channels import service as channels
from core.config import Settings
from core.db import Database
from core.ports import Clock, DeliveryError, OutboundMessage, SendResult, SystemClock

WindowCheck = Callable[[str], Awaitable[bool]]


def _delivery_error(exc: WhatsAppError) -> DeliveryError:
    code = str(exc.code) if exc.code else str(exc.status or "network")
    return DeliveryError(str(exc), permanent=not exc.retryable, retry_after=exc.retry_after, code=code)


class WhatsAppSender:
    channel = "whatsapp"

    def __init__(
        self,
        client: WhatsAppClient,
        *,
        window_open: WindowCheck,
        template: str | None = None,
        language: str = "en",
        body_param: bool = True,
    ) -> None:
        self.client = client
        self.window_open = window_open
        self.template = (template or "").strip() or None
        self.language = language
        self.body_param = body_param

    @classmethod
    def from_settings(
        cls, settings: Settings, db: Database, *, clock: Clock | None = None
    ) -> WhatsAppSender | None:
        """The WhatsApp channel, or None when WHATSAPP_TOKEN or WHATSAPP_PHONE_NUMBER_ID is unset."""
        config = WhatsAppConfig.from_settings(settings)
        if config is None:
            return None
        return cls(
            WhatsAppClient(config),
            window_open=window_in(db, clock or SystemClock()),
            template=settings.whatsapp_reminder_template,
            language=settings.whatsapp_reminder_template_language,
            body_param=settings.whatsapp_reminder_template_body_param,
        )

    async def aclose(self) -> None:
        await self.client.aclose()

    async def send(self, message: OutboundMessage) -> SendResult:
        to = message.address.strip().lstrip("+")
        if not to:
            raise DeliveryError("no WhatsApp number", permanent=True, code="invalid_address")
        if not await self.window_open(to):
            return await self._template(to, message)
        first: str | None = None
        try:
            for piece in split_text(message.body, MAX_TEXT):
                wamid = await self.client.send(text_payload(to, piece))
                first = first or wamid
            for filename, data, content_type in message.attachments:
                await self.client.send_media(Media(to, attachment_of(filename, data, content_type)))
        except WhatsAppError as exc:
            if exc.window_closed and first is None:
                return await self._template(to, message)
            raise _delivery_error(exc) from exc
        return SendResult(provider_id=first, status="sent")

    async def _template(self, to: str, message: OutboundMessage) -> SendResult:
        if self.template is None:
            raise DeliveryError(
                "outside WhatsApp's 24-hour window and no WHATSAPP_REMINDER_TEMPLATE is configured",
                permanent=True,
                code="window_closed",
            )
        params = [" ".join(message.body.split())] if self.body_param else []
        try:
            wamid = await self.client.send(template_payload(to, self.template, self.language, params))
        except WhatsAppError as exc:
            raise _delivery_error(exc) from exc
        return SendResult(provider_id=wamid, status="sent")


def window_in(db: Database, clock: Clock) -> WindowCheck:
    """Whether the chat wrote to us in the last 24 hours, read from the database."""

    async def check(chat_id: str) -> bool:
        async with db.sessionmaker() as session:
            return await channels.window_open(session, "whatsapp", chat_id, clock.now())

    return check
