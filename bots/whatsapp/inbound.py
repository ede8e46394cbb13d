"""WhatsApp webhooks in: the signature check and the translation into Inbound and receipts (pure).

A POST carries ``X-Hub-Signature-256: sha256=<hex HMAC-SHA256(raw body, app secret)>``; :func:`verify`
checks it in constant time. The body is ``{"object": "whatsapp_business_account", "entry": [{"changes":
[{"field": "messages", "value": {...}}]}]}`` where ``value`` holds

- ``messages[]`` (``from``, ``id``, ``timestamp``, ``type``): ``text.body``;
  ``interactive.button_reply{id,title}`` or ``interactive.list_reply{id,title}`` (a pressed button
  or row: its id is ``Inbound.choice``); ``button{payload,text}`` (a template's quick reply: the
  payload is the choice, else its text is typed text); any other type (image, sticker, location)
  becomes an empty text, which the engine answers politely;
- ``contacts[]`` with ``wa_id`` (may be missing for users with a username), ``user_id`` (a
  business-scoped id) and ``profile.name``;
- ``statuses[]`` (``id`` = the wamid we sent, ``status`` sent/delivered/read/failed, ``errors[]``).

The chat id is the contact's ``wa_id``, else the message's ``from``, else the contact's ``user_id``.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from core.conversation.schemas import Inbound

MAX_TEXT = 4096
STOPPED_MARKETING = 131050


def signature(body: bytes, secret: str) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(body: bytes, header: str | None, secret: str) -> bool:
    """True when ``header`` is the HMAC-SHA256 of the raw ``body`` under the app secret."""
    if not header or not secret:
        return False
    return hmac.compare_digest(header.strip().encode(), signature(body, secret).encode())


class _Model(BaseModel):
    model_config = ConfigDict(extra="allow")


class PickedReply(_Model):
    id: str = Field(min_length=1, max_length=256)
    title: str | None = None


class Interactive(_Model):
    type: str | None = None
    button_reply: PickedReply | None = None
    list_reply: PickedReply | None = None


class Button(_Model):
    payload: str | None = None
    text: str | None = None


class Text(_Model):
    body: str = ""


class WaMessage(_Model):
    id: str = Field(min_length=1, max_length=256)
    type: str = "text"
    from_: str | None = Field(default=None, alias="from", max_length=128)
    from_user_id: str | None = Field(default=None, max_length=128)
    timestamp: str | None = None
    text: Text | None = None
    interactive: Interactive | None = None
    button: Button | None = None


class Profile(_Model):
    name: str | None = None


class Contact(_Model):
    wa_id: str | None = Field(default=None, max_length=128)
    user_id: str | None = Field(default=None, max_length=128)
    profile: Profile | None = None


class StatusError(_Model):
    code: int | None = None
    title: str | None = None
    message: str | None = None


class Status(_Model):
    id: str = Field(min_length=1, max_length=256)
    status: str
    recipient_id: str | None = None
    errors: list[StatusError] = Field(default_factory=list)


class Value(_Model):
    messages: list[WaMessage] = Field(default_factory=list)
    contacts: list[Contact] = Field(default_factory=list)
    statuses: list[Status] = Field(default_factory=list)


class Change(_Model):
    field: str | None = None
    value: Value


class Entry(_Model):
    id: str | None = None
    changes: list[Change] = Field(default_factory=list)


class Notification(_Model):
    object: str | None = None
    entry: list[Entry] = Field(min_length=1)


@dataclass(frozen=True)
class Receipt:
    """A status of a message we sent: apply with core.messaging.receipts.apply_receipt."""

    provider_id: str
    status: str
    error: str | None = None
    code: str = ""


def _chat_id(message: WaMessage, contacts: list[Contact]) -> str | None:
    contact = contacts[0] if len(contacts) == 1 else None
    for c in contacts:
        if c.wa_id and c.wa_id == message.from_:
            contact = c
    if contact is not None and contact.wa_id:
        return contact.wa_id
    if message.from_:
        return message.from_
    if contact is not None and contact.user_id:
        return contact.user_id
    return message.from_user_id


def to_inbound(message: WaMessage, contacts: list[Contact]) -> Inbound | None:
    chat_id = _chat_id(message, contacts)
    if not chat_id:
        return None
    name = contacts[0].profile.name if contacts and contacts[0].profile else None
    common: dict[str, Any] = {
        "channel": "whatsapp",
        "chat_id": chat_id,
        "message_id": message.id,
        "display_name": name,
    }
    if message.type == "interactive" and message.interactive is not None:
        picked = message.interactive.button_reply or message.interactive.list_reply
        if picked is not None:
            return Inbound(choice=picked.id[:64], **common)
    if message.type == "button" and message.button is not None:
        if message.button.payload:
            return Inbound(choice=message.button.payload[:64], **common)
        return Inbound(text=(message.button.text or "")[:MAX_TEXT], **common)
    if message.type == "text" and message.text is not None:
        return Inbound(text=message.text.body[:MAX_TEXT], **common)
    return Inbound(text="", **common)


def _receipt(status: Status) -> Receipt:
    error = code = None
    if status.errors:
        first = status.errors[0]
        error = first.message or first.title or "failed"
        code = str(first.code) if first.code is not None else None
        if first.code == STOPPED_MARKETING:  # the user turned off our messages: treat as blocked
            code = "opted_out"
    return Receipt(status.id, status.status.lower(), error, code or "")


def parse(notification: Notification) -> tuple[list[Inbound], list[Receipt]]:
    """The people's messages and the receipts of one webhook notification."""
    inbound: list[Inbound] = []
    receipts: list[Receipt] = []
    for entry in notification.entry:
        for change in entry.changes:
            value = change.value
            for message in value.messages:
                item = to_inbound(message, value.contacts)
                if item is not None:
                    inbound.append(item)
            receipts += [_receipt(s) for s in value.statuses]
    return inbound, receipts
