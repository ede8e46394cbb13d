"""Dunning policies: one per debtor segment, editable through the API and loadable from YAML.

``upsert_policy`` creates the policy of a segment or replaces it whole: its settings and all of its
stages (positions 0..n-1 in the given order). Every change is audited with before and after.

Invoices already in dunning keep the policy they started with and their place in it. When the
stages of a policy change, each of its open invoices is placed after the last stage of the new list
it was already sent (by stage key); if none of its sent stages is left, it keeps its position. Its
next action date is then recomputed from the new stages: a stage that now falls earlier is not
missed, one that now falls later is not sent early, and no invoice waits for a stage it already had.
Debtors whose segment gets a policy of its own move to it with their next booked invoices.

The ``default`` policy (seeded by the migrations) serves every segment without its own policy. It
can be replaced, never removed; there is no delete for now.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import yaml
from pydantic import ValidationError
from sqlalchemy import and_, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from core import audit
from core.audit import Actor
from core.base import table_of, utcnow
from core.dunning.models import DunningAction, DunningPolicy, DunningStage, DunningState
from core.dunning.schemas import PolicyFile, PolicyIn, format_rate
from core.dunning.sweep import ACTIVE_STATUSES
from core.errors import Conflict, FieldError, InvalidInput, NotFound
from core.invoices.models import Invoice
from core.money import format_minor
from core.sqlfuncs import add_days

DEFAULT_SEGMENT = "default"
MAX_FILE_BYTES = 1024 * 1024
MAX_YAML_NODES = 50_000  # after expanding aliases: a policy file is small


@dataclass
class UpsertResult:
    policy: DunningPolicy
    stages: list[DunningStage]
    created: bool
    changed: bool
    rescheduled: int  # open invoices whose place or next action date was recomputed


def stage_view(stage: DunningStage) -> dict[str, Any]:
    fee = None
    if stage.fee_minor is not None and stage.fee_currency:
        fee = {"amount": format_minor(stage.fee_minor, stage.fee_currency), "currency": stage.fee_currency}
    return {
        "position": stage.position,
        "key": stage.key,
        "offset_days": stage.offset_days,
        "template": stage.template,
        "tone": stage.tone,
        "channels": list(stage.channels),
        "fee": fee,
        "charge_interest": stage.charge_interest,
        "action": stage.action,
    }


def _settings_view(policy: DunningPolicy, stages: Sequence[DunningStage]) -> dict[str, Any]:
    return {
        "segment": policy.segment,
        "name": policy.name,
        "quiet_start_hour": policy.quiet_start_hour,
        "quiet_end_hour": policy.quiet_end_hour,
        "max_messages_per_week": policy.max_messages_per_week,
        "min_gap_hours": policy.min_gap_hours,
        "interest_rate": format_rate(policy.interest_rate_bp),
        "promise_max_days": policy.promise_max_days,
        "promise_grace_days": policy.promise_grace_days,
        "stages": [stage_view(s) for s in stages],
    }


def policy_view(policy: DunningPolicy, stages: Sequence[DunningStage]) -> dict[str, Any]:
    """The API's JSON for one policy; money and the interest rate as decimal strings."""
    return {
        **_settings_view(policy, stages),
        "default": policy.segment == DEFAULT_SEGMENT,
        "created_at": policy.created_at.isoformat(),
        "updated_at": policy.updated_at.isoformat(),
    }


async def _find(session: AsyncSession, segment: str, *, for_update: bool = False) -> DunningPolicy | None:
    stmt = select(DunningPolicy).where(col(DunningPolicy.segment) == segment)
    if for_update:
        stmt = stmt.with_for_update()
    return (await session.scalars(stmt)).first()


async def stages_of(session: AsyncSession, policy_id: Any) -> list[DunningStage]:
    stmt = (
        select(DunningStage)
        .where(col(DunningStage.policy_id) == policy_id)
        .order_by(col(DunningStage.position))
        .execution_options(populate_existing=True)  # stages may have been replaced by a bulk statement
    )
    return list((await session.scalars(stmt)).all())


async def get_policy(session: AsyncSession, segment: str) -> tuple[DunningPolicy, list[DunningStage]]:
    policy = await _find(session, segment)
    if policy is None:
        raise NotFound(f"there is no dunning policy for segment {segment!r}", "policy_not_found")
    return policy, await stages_of(session, policy.id)


async def list_policies(session: AsyncSession) -> list[tuple[DunningPolicy, list[DunningStage]]]:
    policies = (await session.scalars(select(DunningPolicy).order_by(col(DunningPolicy.segment)))).all()
    stages = (
        await session.scalars(
            select(DunningStage)
            .where(col(DunningStage.policy_id).in_([p.id for p in policies]))
            .order_by(col(DunningStage.policy_id), col(DunningStage.position))
        )
    ).all()
    by_policy: dict[Any, list[DunningStage]] = {p.id: [] for p in policies}
    for stage in stages:
        by_policy[stage.policy_id].append(stage)
    return [(p, by_policy[p.id]) for p in policies]


def _check_segment(segment: str, data: PolicyIn) -> None:
    if data.segment is not None and data.segment != segment:
        raise InvalidInput(
            f"the body names segment {data.segment!r} but the path names {segment!r}",
            "segment_mismatch",
            [FieldError(("segment",), f"must be {segment!r} or left out", "segment_mismatch")],
        )


async def upsert_policy(session: AsyncSession, segment: str, data: PolicyIn, actor: Actor) -> UpsertResult:
    """Create or replace the policy of ``segment``, stages included. The caller commits."""
    _check_segment(segment, data)
    taken = (
        await session.scalars(
            select(col(DunningPolicy.segment)).where(
                col(DunningPolicy.name) == data.name, col(DunningPolicy.segment) != segment
            )
        )
    ).first()
    if taken is not None:
        raise Conflict(
            f"the policy name {data.name!r} is already used by segment {taken!r}",
            "policy_name_taken",
            [FieldError(("name",), "policy names are unique; choose another", "policy_name_taken")],
        )

    policy = await _find(session, segment, for_update=True)
    created = policy is None
    before: dict[str, Any] | None = None
    if policy is None:
        policy = DunningPolicy(name=data.name, segment=segment)
        session.add(policy)
    else:
        before = _settings_view(policy, await stages_of(session, policy.id))
    policy.name = data.name
    policy.quiet_start_hour = data.quiet_start_hour
    policy.quiet_end_hour = data.quiet_end_hour
    policy.max_messages_per_week = data.max_messages_per_week
    policy.min_gap_hours = data.min_gap_hours
    policy.interest_rate_bp = data.interest_rate_bp
    policy.promise_max_days = data.promise_max_days
    policy.promise_grace_days = data.promise_grace_days
    try:
        await session.flush()
    except IntegrityError:  # a concurrent request created the same segment or name first
        raise Conflict(
            f"the policy for segment {segment!r} was changed concurrently; try again", "policy_conflict"
        ) from None

    wanted: list[dict[str, Any]] = [
        {
            "policy_id": policy.id,
            "position": position,
            "key": s.key,
            "offset_days": s.offset_days,
            "template": s.template,
            "tone": s.tone,
            "channels": list(s.channels),
            "fee_minor": s.fee.minor if s.fee else None,
            "fee_currency": s.fee.currency if s.fee else None,
            "charge_interest": s.charge_interest,
            "action": s.action,
        }
        for position, s in enumerate(data.stages)
    ]
    current = [stage_view(s) for s in await stages_of(session, policy.id)]
    rescheduled = 0
    if created or current != [stage_view(DunningStage(**row)) for row in wanted]:
        # Delete first, in its own statement: new stages reuse the (policy, position/key/offset) keys.
        await session.execute(
            delete(table_of(DunningStage)).where(table_of(DunningStage).c.policy_id == policy.id)
        )
        await session.execute(insert(table_of(DunningStage)), wanted)
        if not created:
            rescheduled = await _realign_states(session, policy.id)

    stages = await stages_of(session, policy.id)
    after = _settings_view(policy, stages)
    changed = created or before != after
    if changed:
        policy.updated_at = utcnow()
        await session.flush()
        await audit.record(
            session,
            actor,
            "dunning_policy.created" if created else "dunning_policy.updated",
            "dunning_policy",
            segment,
            before=before,
            after={**after, "rescheduled_invoices": rescheduled} if rescheduled else after,
        )
    return UpsertResult(policy, stages, created, changed, rescheduled)


async def _realign_states(session: AsyncSession, policy_id: Any) -> int:
    """Place the open invoices of a policy whose stages changed; two set-based UPDATEs.

    An invoice goes after the last new stage it was already sent (matched by stage key), else keeps
    its position; its next action falls on the due date plus the offset of the stage after that.
    """
    s = table_of(DunningState)
    st = table_of(DunningStage)
    a = table_of(DunningAction)
    i = table_of(Invoice)
    scope = and_(
        s.c.policy_id == policy_id,
        s.c.invoice_id.in_(select(i.c.id).where(i.c.status.in_(ACTIVE_STATUSES))),
    )
    last_sent = (
        select(func.max(st.c.position))
        .select_from(st.join(a, a.c.stage_key == st.c.key))
        .where(
            st.c.policy_id == s.c.policy_id,
            a.c.due_date == s.c.due_date,
            a.c.invoice_id == s.c.invoice_id,
        )
        .scalar_subquery()
    )
    result = await session.execute(
        update(s).where(scope).values(stage_position=func.coalesce(last_sent, s.c.stage_position))
    )
    nxt = st.alias("nxt")
    next_on = (
        select(add_days(i.c.due_date, nxt.c.offset_days))
        .select_from(nxt.join(i, i.c.id == s.c.invoice_id))
        .where(nxt.c.policy_id == s.c.policy_id, nxt.c.position == s.c.stage_position + 1)
        .scalar_subquery()
    )
    await session.execute(update(s).where(scope).values(next_action_on=next_on, updated_at=utcnow()))
    return int(getattr(result, "rowcount", 0) or 0)


# YAML ------------------------------------------------------------------------------------------------


def _node_count(node: yaml.Node, budget: int) -> int:
    """Nodes in the tree with aliases expanded, stopping once over ``budget``."""
    count = 1
    stack: list[yaml.Node] = [node]
    while stack and count <= budget:
        current = stack.pop()
        if isinstance(current, yaml.SequenceNode):
            stack.extend(current.value)
            count += len(current.value)
        elif isinstance(current, yaml.MappingNode):
            for k, v in current.value:
                stack.extend((k, v))
                count += 2
    return count


def _line_of(node: yaml.Node | None, loc: Sequence[str | int]) -> int | None:
    """The line of the YAML node at ``loc``; of its nearest parent when the field is missing."""
    if node is None:
        return None
    line = node.start_mark.line + 1
    for part in loc:
        child: yaml.Node | None = None
        if isinstance(node, yaml.MappingNode):
            child = next(
                (v for k, v in node.value if isinstance(k, yaml.ScalarNode) and k.value == str(part)), None
            )
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
            child = node.value[part]
        if child is None:
            break
        node = child
        line = node.start_mark.line + 1
    return line


def _yaml_error(message: str, line: int | None, code: str = "invalid_yaml") -> InvalidInput:
    where = f" (line {line})" if line else ""
    return InvalidInput(f"{message}{where}", code, [FieldError(("file",), message, code, line)])


def load_yaml(text: str) -> list[PolicyIn]:
    """Parse a policy file: a top-level ``policies:`` list, each entry like the API body plus ``segment``.

    Bad YAML is refused with its line; validation errors name the policy (``policies.1.stages.0.tone``)
    and the line they are on.
    """
    if len(text.encode()) > MAX_FILE_BYTES:
        raise _yaml_error(f"the policy file is larger than {MAX_FILE_BYTES // 1024} KB", None, "too_large")
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        if root is not None and _node_count(root, MAX_YAML_NODES) > MAX_YAML_NODES:
            raise _yaml_error("the policy file expands to too many values (aliases?)", None, "too_large")
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = exc.problem or exc.context or "syntax error"
        if exc.problem and exc.context and exc.context_mark and exc.context_mark.line + 1 != line:
            problem += f" ({exc.context} started on line {exc.context_mark.line + 1})"
        raise _yaml_error(f"the policy file is not valid YAML: {problem}", line) from None
    except yaml.YAMLError as exc:
        raise _yaml_error(f"the policy file is not valid YAML: {exc}", None) from None
    if not isinstance(data, dict) or "policies" not in data:
        raise _yaml_error("the policy file must hold a top-level 'policies:' list", 1, "invalid_policy_file")
    try:
        document = PolicyFile.model_validate(data)
    except ValidationError as exc:
        errors = [
            FieldError(tuple(e["loc"]), e["msg"], e["type"], _line_of(root, e["loc"])) for e in exc.errors()
        ]
        raise InvalidInput(
            f"the policy file has {len(errors)} error(s); nothing was loaded", "invalid_policy_file", errors
        ) from None
    return document.policies


async def load_policies(
    session: AsyncSession, policies: Sequence[PolicyIn], actor: Actor
) -> list[UpsertResult]:
    """Upsert each policy of a file in one unit of work (the caller commits, or rolls back on error)."""
    results = []
    for index, policy in enumerate(policies):
        assert policy.segment is not None  # PolicyFile requires it
        try:
            results.append(await upsert_policy(session, policy.segment, policy, actor))
        except (InvalidInput, Conflict) as exc:
            exc.errors = [
                FieldError(("policies", index, *e.loc), e.message, e.code, e.line) for e in exc.errors
            ]
            exc.message = f"policies.{index} (segment {policy.segment!r}): {exc.message}"
            raise
    return results
