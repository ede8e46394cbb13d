"""Staff authorization: SLACK_ALLOWED_USERS may read and act, SLACK_APPROVERS may also approve.

Everyone else is refused politely, and the attempt is audited with their Slack user id.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core import audit
from core.audit import Actor
from core.config import Settings
from core.db import Database


@dataclass(frozen=True)
class StaffUser:
    id: str
    name: str | None = None

    @property
    def actor(self) -> Actor:
        return Actor("staff", self.id, self.name)


def user_of(body: dict[str, Any]) -> StaffUser:
    """The Slack user behind a command (``user_id``), an interaction (``user``) or an event."""
    user = body.get("user")
    if isinstance(user, dict):
        return StaffUser(str(user.get("id", "")), user.get("username") or user.get("name"))
    if "user_id" in body:
        return StaffUser(str(body["user_id"]), body.get("user_name"))
    event = body.get("event") or {}
    return StaffUser(str(event.get("user", "")), None)


def may_act(settings: Settings, user_id: str) -> bool:
    return user_id in settings.slack_allowed_user_ids or user_id in settings.slack_approver_ids


def may_approve(settings: Settings, user_id: str) -> bool:
    return user_id in settings.slack_approver_ids


async def record_refusal(db: Database, user: StaffUser, attempt: str, needs: str) -> None:
    """Audit a refused attempt: who (Slack id and name), what they tried, which list they lack."""
    async with db.session_scope() as session:
        await audit.record(
            session,
            user.actor,
            "slack.refused",
            "slack_user",
            user.id,
            after={"attempt": attempt[:200], "needs": needs},
        )
