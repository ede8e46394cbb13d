"""Posts made to the staff channel, so that each subject is posted once and its thread can be found.

``kind`` names what was posted (``batch``, ``promise_broken``, ``dispute``, ``relay``, ``plan``,
``refund``); ``ref`` is the subject's id (a batch id, an event id, a conversation id). ``channel``
and ``ts`` locate the message in the chat tool once it is out; a row without ``ts`` is a claim
that is still being posted. ``closed_at`` is set once the subject is decided and the message shows it.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Column, Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from core.base import JSONType, UTCDateTime, created_field, id_field


class StaffPost(SQLModel, table=True):
    __tablename__ = "staff_posts"

    id: uuid.UUID = id_field()
    kind: str = Field(max_length=32, nullable=False)
    ref: str = Field(max_length=128, nullable=False)
    channel: str | None = Field(default=None, max_length=64)
    ts: str | None = Field(default=None, max_length=32)
    data: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSONType, nullable=False))
    created_at: datetime = created_field()
    posted_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    closed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)  # decided; buttons gone

    __table_args__ = (
        UniqueConstraint("kind", "ref", name="uq_staff_posts_kind_ref"),
        Index("ix_staff_posts_thread", "channel", "ts"),
    )
