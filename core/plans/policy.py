"""Plan policies: one per debtor segment, the ``default`` one (seeded) for every other segment.

``upsert_policy`` creates or replaces a segment's policy whole; changes are audited with before and
after. Plans already made keep the limits they were made under (``payment_plans.limits``).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from core import audit
from core.audit import Actor
from core.base import utcnow
from core.dunning.schemas import format_rate
from core.errors import NotFound
from core.money import format_minor
from core.plans.models import PlanPolicy
from core.plans.schemas import PlanPolicyIn

DEFAULT_SEGMENT = "default"


def _money(minor: int | None, currency: str) -> dict[str, str] | None:
    if minor is None:
        return None
    return {"amount": format_minor(minor, currency), "currency": currency}


def policy_view(policy: PlanPolicy) -> dict[str, Any]:
    """The API's JSON for one plan policy; money as decimal strings."""
    return {
        "segment": policy.segment,
        "default": policy.segment == DEFAULT_SEGMENT,
        "max_instalments": policy.max_instalments,
        "min_instalment": _money(policy.min_instalment_minor, policy.currency),
        "max_duration_days": policy.max_duration_days,
        "down_payment_percent": format_rate(policy.down_payment_bp),
        "down_payment_minimum": _money(policy.down_payment_min_minor or None, policy.currency),
        "interval": policy.interval,
        "max_total": _money(policy.max_total_minor, policy.currency),
        "counter_range_pct": policy.counter_range_pct,
        "staff_approval": policy.staff_approval,
        "reminder_days_before": policy.reminder_days_before,
        "grace_days": policy.grace_days,
        "updated_at": policy.updated_at.isoformat(),
    }


def limits_of(policy: PlanPolicy) -> dict[str, Any]:
    """What a plan records of the policy it was made under (minor units)."""
    return {
        "segment": policy.segment,
        "max_instalments": policy.max_instalments,
        "min_instalment_minor": policy.min_instalment_minor,
        "currency": policy.currency,
        "max_duration_days": policy.max_duration_days,
        "down_payment_bp": policy.down_payment_bp,
        "down_payment_min_minor": policy.down_payment_min_minor,
        "interval": policy.interval,
        "max_total_minor": policy.max_total_minor,
        "counter_range_pct": policy.counter_range_pct,
        "staff_approval": policy.staff_approval,
        "reminder_days_before": policy.reminder_days_before,
        "grace_days": policy.grace_days,
    }


async def get_policy(session: AsyncSession, segment: str) -> PlanPolicy:
    found = await session.get(PlanPolicy, segment)
    if found is None:
        raise NotFound(f"there is no plan policy for segment {segment!r}", "plan_policy_not_found")
    return found


async def policy_for(session: AsyncSession, segment: str) -> PlanPolicy:
    """The segment's own policy, else the default one."""
    found = await session.get(PlanPolicy, segment)
    return found if found is not None else await get_policy(session, DEFAULT_SEGMENT)


async def list_policies(session: AsyncSession) -> list[PlanPolicy]:
    return list((await session.scalars(select(PlanPolicy).order_by(col(PlanPolicy.segment)))).all())


async def upsert_policy(
    session: AsyncSession, segment: str, data: PlanPolicyIn, actor: Actor
) -> tuple[PlanPolicy, bool]:
    """Create or replace the plan policy of ``segment``; (policy, created). The caller commits."""
    policy = (
        await session.scalars(select(PlanPolicy).where(col(PlanPolicy.segment) == segment).with_for_update())
    ).first()
    created = policy is None
    before = None
    if policy is None:
        policy = PlanPolicy(segment=segment)
        session.add(policy)
    else:
        before = limits_of(policy)
    currency = data.min_instalment.currency
    policy.max_instalments = data.max_instalments
    policy.min_instalment_minor = data.min_instalment.minor
    policy.currency = currency
    policy.max_duration_days = data.max_duration_days
    policy.down_payment_bp = data.down_payment_bp
    policy.down_payment_min_minor = data.down_payment_minimum.minor if data.down_payment_minimum else 0
    policy.interval = data.interval
    policy.max_total_minor = data.max_total.minor if data.max_total else None
    policy.counter_range_pct = data.counter_range_pct
    policy.staff_approval = data.staff_approval
    policy.reminder_days_before = data.reminder_days_before
    policy.grace_days = data.grace_days
    policy.updated_at = utcnow()
    await session.flush()
    await audit.record(
        session,
        actor,
        "plan_policy.created" if created else "plan_policy.updated",
        "plan_policy",
        segment,
        before=before,
        after=limits_of(policy),
    )
    return policy, created
