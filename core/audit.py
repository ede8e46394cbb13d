"""Append-only audit events: who, what, when, before/after. Every state change writes one."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Column, Index, insert, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import Field, SQLModel

from core.base import JSONType, created_field, id_field, new_id, table_of, utcnow
from core.bulk import copy_records


@dataclass(frozen=True, slots=True)
class Actor:
    """Who did it: ``system``, ``api_key``, ``staff`` (Slack user), ``debtor`` or ``cli``."""

    type: str
    id: str
    name: str | None = None

    @property
    def label(self) -> str:
        return f"{self.type}:{self.id}"


SYSTEM = Actor("system", "duebot")


class AuditEvent(SQLModel, table=True):
    __tablename__ = "audit_events"

    id: uuid.UUID = id_field()
    at: datetime = created_field()
    actor_type: str = Field(max_length=32, nullable=False)
    actor_id: str = Field(max_length=128, nullable=False)
    actor_name: str | None = Field(default=None, max_length=255)
    action: str = Field(max_length=64, nullable=False)
    entity: str = Field(max_length=64, nullable=False)
    entity_id: str = Field(max_length=128, nullable=False)
    before: dict[str, Any] | None = Field(default=None, sa_column=Column(JSONType, nullable=True))
    after: dict[str, Any] | None = Field(default=None, sa_column=Column(JSONType, nullable=True))

    __table_args__ = (Index("ix_audit_events_entity", "entity", "entity_id", "at"),)


COLUMNS = (
    "id",
    "at",
    "actor_type",
    "actor_id",
    "actor_name",
    "action",
    "entity",
    "entity_id",
    "before",
    "after",
)


def _record(
    actor: Actor,
    action: str,
    entity: str,
    entity_id: object,
    before: Mapping[str, Any] | None,
    after: Mapping[str, Any] | None,
    at: datetime,
) -> tuple[Any, ...]:
    return (
        new_id(),
        at,
        actor.type,
        actor.id,
        actor.name,
        action,
        entity,
        str(entity_id),
        dict(before) if before is not None else None,
        dict(after) if after is not None else None,
    )


async def record(
    session: AsyncSession,
    actor: Actor,
    action: str,
    entity: str,
    entity_id: object,
    *,
    before: Mapping[str, Any] | None = None,
    after: Mapping[str, Any] | None = None,
) -> None:
    values = _record(actor, action, entity, entity_id, before, after, utcnow())
    await session.execute(insert(table_of(AuditEvent)), [dict(zip(COLUMNS, values, strict=True))])


async def record_many(
    session: AsyncSession,
    actor: Actor,
    action: str,
    entity: str,
    items: Iterable[tuple[object, Mapping[str, Any] | None, Mapping[str, Any] | None]],
) -> int:
    """One event per (entity_id, before, after), written in one bulk statement."""
    at = utcnow()
    records = [_record(actor, action, entity, eid, before, after, at) for eid, before, after in items]
    return await copy_records(session, table_of(AuditEvent), COLUMNS, records)


async def trail(
    session: AsyncSession, *, entity: str | None, entity_id: str | None, limit: int = 200
) -> Sequence[AuditEvent]:
    stmt = select(AuditEvent)
    if entity:
        stmt = stmt.where(AuditEvent.entity == entity)  # type: ignore[arg-type]
    if entity_id:
        stmt = stmt.where(AuditEvent.entity_id == entity_id)  # type: ignore[arg-type]
    stmt = stmt.order_by(AuditEvent.at.desc(), AuditEvent.id.desc()).limit(limit)  # type: ignore[attr-defined]
    return (await session.scalars(stmt)).all()
