"""What crosses between a chat channel and the conversation engine.

Channel adapters (Telegram, WhatsApp, the demo chat page) translate their updates into ``Inbound``
and render each ``Reply`` with their own pure builder. The engine never sees a transport type, and
an adapter never decides anything about a debtor.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Channel = Literal["telegram", "whatsapp", "demo"]


@dataclass(frozen=True)
class Inbound:
    """One thing a person did in a chat.

    ``chat_id`` is the channel's address of the chat (Telegram chat id, WhatsApp number or
    business-scoped user id, demo session id). ``text`` is what they typed; ``choice`` is the id of
    a button or list row they pressed (an ``Option.id`` from an earlier reply). Exactly one of the
    two is set. ``locale_hint`` is the language the client reports, used only until the chat is
    linked to a debtor. ``message_id`` is the provider's id, used to ignore redelivered updates.
    """

    channel: Channel
    chat_id: str
    text: str | None = None
    choice: str | None = None
    locale_hint: str | None = None
    message_id: str | None = None
    display_name: str | None = None


@dataclass(frozen=True)
class Option:
    """A button or list row: ``id`` comes back as ``Inbound.choice`` (at most 64 bytes)."""

    id: str
    label: str


@dataclass(frozen=True)
class Attachment:
    """A file to send with a reply: an invoice PDF (``document``) or a QR code (``image``)."""

    kind: Literal["document", "image"]
    filename: str
    content: bytes
    mime_type: str
    caption: str | None = None


@dataclass(frozen=True)
class Reply:
    """One message back to the chat: rendered text plus options and attachments.

    ``template`` names the template the text came from (for tests and audit); ``text`` is already
    rendered in the debtor's language. Adapters turn ``options`` into an inline keyboard (Telegram),
    reply buttons or a list (WhatsApp, more than 3 options) or HTML buttons (demo).
    """

    template: str
    text: str
    options: tuple[Option, ...] = ()
    attachments: tuple[Attachment, ...] = ()
    locale: str = "en"
    links: tuple[tuple[str, str], ...] = field(default=())
