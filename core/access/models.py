"""API keys (stored hashed, with scopes) and Idempotency-Key records."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Column, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from core.base import JSONType, UTCDateTime, created_field, id_field


class ApiKey(SQLModel, table=True):
    __tablename__ = "api_keys"

    id: uuid.UUID = id_field()
    name: str = Field(max_length=128, nullable=False)
    prefix: str = Field(max_length=32, unique=True, nullable=False)
    key_hash: str = Field(max_length=128, nullable=False)
    scopes: list[str] = Field(default_factory=list, sa_column=Column(JSONType, nullable=False))
    created_at: datetime = created_field()
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class IdempotencyRecord(SQLModel, table=True):
    """The first answer to a POST with an Idempotency-Key, replayed for the same key and body."""

    __tablename__ = "idempotency_records"

    id: uuid.UUID = id_field()
    api_key_id: uuid.UUID = Field(foreign_key="api_keys.id", nullable=False, ondelete="CASCADE")
    key: str = Field(max_length=255, nullable=False)
    method: str = Field(max_length=8, nullable=False)
    path: str = Field(max_length=500, nullable=False)
    request_hash: str = Field(max_length=64, nullable=False)
    status_code: int = Field(nullable=False)
    response_body: Any = Field(sa_column=Column(Text, nullable=False))
    response_headers: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSONType, nullable=False))
    created_at: datetime = created_field()

    __table_args__ = (UniqueConstraint("api_key_id", "key", name="uq_idempotency_records_key"),)
