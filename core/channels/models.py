"""The last inbound message per chat, for WhatsApp's 24-hour customer-service window."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from core.base import UTCDateTime


class ChatWindow(SQLModel, table=True):
    """When the person behind ``chat_id`` on ``channel`` last wrote to us.

    WhatsApp allows free-form messages only within 24 hours of the user's last message; outside that
    window only an approved template may be sent. ``chat_id`` is the channel's address of the chat
    (the same string a contact point of that kind holds).
    """

    __tablename__ = "chat_windows"

    channel: str = Field(max_length=16, primary_key=True)
    chat_id: str = Field(max_length=128, primary_key=True)
    last_inbound_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
