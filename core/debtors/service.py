"""Debtor logic: upsert with contact points, pause and resume. Services flush; callers commit."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from core import audit
from core.audit import Actor
from core.base import utcnow
from core.debtors import repository as repo
from core.debtors.models import DEFAULT_CHANNEL_ORDER, ContactKind, ContactPoint, Debtor
from core.debtors.schemas import DebtorIn
from core.errors import FieldError, InvalidInput, NotFound

AUDITED_FIELDS = ("name", "locale", "timezone", "segment", "address", "channel_order")


def snapshot(debtor: Debtor, emails: str | None = None, phone: str | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {f: getattr(debtor, f) for f in AUDITED_FIELDS}
    data["email"] = emails
    data["phone"] = phone
    return data


def _contact(points: list[ContactPoint] | tuple[ContactPoint, ...], kind: str) -> str | None:
    return next((p.address for p in points if p.kind == kind), None)


@dataclass
class UpsertResult:
    debtor: Debtor
    created: bool
    changed: bool


async def get(session: AsyncSession, external_id: str, *, for_update: bool = False) -> Debtor:
    debtor = await repo.get_by_external_id(session, external_id, for_update=for_update)
    if debtor is None:
        raise NotFound(f"debtor {external_id!r} does not exist", "debtor_not_found")
    return debtor


async def upsert(session: AsyncSession, external_id: str, data: DebtorIn, actor: Actor) -> UpsertResult:
    debtor = await repo.get_by_external_id(session, external_id, for_update=True)
    created = debtor is None
    if debtor is None:
        debtor = Debtor(external_id=external_id, name=data.name)
        session.add(debtor)
        await session.flush()
        before: dict[str, Any] | None = None
    else:
        points = list(await repo.contact_points(session, debtor.id))
        before = snapshot(debtor, _contact(points, ContactKind.email), _contact(points, ContactKind.phone))

    debtor.name = data.name
    debtor.locale = data.locale
    debtor.timezone = data.timezone
    debtor.segment = data.segment
    debtor.address = data.address.model_dump(exclude_none=True) if data.address else None
    debtor.channel_order = [str(c) for c in (data.channel_order or DEFAULT_CHANNEL_ORDER)]

    for kind, value in ((ContactKind.email, data.email), (ContactKind.phone, data.phone)):
        await _set_contact(session, debtor, kind, value)

    after = snapshot(debtor, data.email, data.phone)
    changed = created or before != after
    if changed:
        debtor.updated_at = utcnow()
        await session.flush()
        await audit.record(
            session,
            actor,
            "debtor.created" if created else "debtor.updated",
            "debtor",
            external_id,
            before=before,
            after=after,
        )
    return UpsertResult(debtor, created, changed)


async def _set_contact(session: AsyncSession, debtor: Debtor, kind: str, value: str | None) -> None:
    """Keep exactly the given address for this kind; an unchanged address keeps its consent state."""
    await repo.remove_contact_points(session, debtor.id, kind, keep=value)
    if value is None:
        return
    existing = [p for p in await repo.contact_points(session, debtor.id) if p.kind == kind]
    if not existing:
        session.add(ContactPoint(debtor_id=debtor.id, kind=kind, address=value))
        await session.flush()


async def pause(
    session: AsyncSession, external_id: str, *, reason: str, until: date | None, today: date, actor: Actor
) -> Debtor:
    if until is not None and until < today:
        raise InvalidInput(
            "a pause cannot end in the past",
            "invalid_pause",
            [FieldError(("until",), f"until must be {today.isoformat()} or later", "date_in_past")],
        )
    debtor = await get(session, external_id, for_update=True)
    before = pause_state(debtor)
    debtor.dunning_paused = True
    debtor.paused_until = until
    debtor.pause_reason = reason
    debtor.updated_at = utcnow()
    await session.flush()
    await audit.record(
        session, actor, "debtor.paused", "debtor", external_id, before=before, after=pause_state(debtor)
    )
    return debtor


async def resume(session: AsyncSession, external_id: str, *, actor: Actor) -> Debtor:
    debtor = await get(session, external_id, for_update=True)
    before = pause_state(debtor)
    if debtor.dunning_paused:
        debtor.dunning_paused = False
        debtor.paused_until = None
        debtor.pause_reason = None
        debtor.updated_at = utcnow()
        await session.flush()
        await audit.record(
            session, actor, "debtor.resumed", "debtor", external_id, before=before, after=pause_state(debtor)
        )
    return debtor


def pause_state(debtor: Debtor) -> dict[str, Any]:
    return {
        "paused": debtor.dunning_paused,
        "until": debtor.paused_until.isoformat() if debtor.paused_until else None,
        "reason": debtor.pause_reason,
    }
