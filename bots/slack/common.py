"""Helpers shared by the command and action handlers: authorization gates, replies, parsing."""

from __future__ import annotations

import json
import shlex
from datetime import date
from typing import Any

from slack_bolt.context.respond.async_respond import AsyncRespond

from bots.slack import auth
from bots.slack.deps import SlackDeps
from bots.slack.texts import esc, text
from core.errors import DomainError
from core.money import Money, MoneyError, parse_minor


async def ephemeral(respond: AsyncRespond, message: str | None = None, **kwargs: Any) -> None:
    await respond(text=message or "", response_type="ephemeral", replace_original=False, **kwargs)


async def allowed(deps: SlackDeps, user: auth.StaffUser, attempt: str, respond: AsyncRespond | None) -> bool:
    """True when ``user`` may act; otherwise refuse politely and audit the attempt."""
    if auth.may_act(deps.settings, user.id):
        return True
    await auth.record_refusal(deps.db, user, attempt, "SLACK_ALLOWED_USERS")
    if respond is not None:
        await ephemeral(respond, text("refused", user=user.id))
    return False


async def approver(deps: SlackDeps, user: auth.StaffUser, attempt: str, respond: AsyncRespond | None) -> bool:
    """True when ``user`` may approve; otherwise refuse politely and audit the attempt."""
    if auth.may_approve(deps.settings, user.id):
        return True
    await auth.record_refusal(deps.db, user, attempt, "SLACK_APPROVERS")
    if respond is not None:
        await ephemeral(respond, text("not_approver", user=user.id))
    return False


def error_text(exc: DomainError) -> str:
    """A domain error as staff read it: the message, then each field problem."""
    parts = [exc.message, *(e.message for e in exc.errors)]
    return text("error", message=esc("; ".join(dict.fromkeys(parts))))


def split_words(value: str) -> list[str]:
    """Words, with "quoted names" kept together (unbalanced quotes fall back to plain words)."""
    try:
        return shlex.split(value)
    except ValueError:
        return value.split()


def parse_day(value: str) -> date | None:
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        return None


def parse_amount(value: str, currency: str) -> Money | None:
    try:
        return Money(parse_minor(value.strip(), currency), currency)
    except (MoneyError, DomainError, ValueError):
        return None


def action_value(body: dict[str, Any]) -> str:
    return str(body["actions"][0].get("value") or "")


def message_at(body: dict[str, Any]) -> tuple[str, str]:
    """The channel and ts of the message whose button was pressed."""
    return str((body.get("channel") or {}).get("id", "")), str((body.get("message") or {}).get("ts", ""))


def who(label: str | None) -> str:
    """How a decider is shown: a Slack mention for staff, the label for an API key or the CLI."""
    if label and label.startswith("staff:"):
        return f"<@{label.removeprefix('staff:')}>"
    return esc(label or "?")


def view_fields(body: dict[str, Any]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for block_id, block in body["view"]["state"]["values"].items():
        element = block.get("value") or {}
        values[block_id] = element.get("value") if "value" in element else element.get("selected_date")
    return values


def view_meta(body: dict[str, Any]) -> dict[str, Any]:
    raw = body["view"].get("private_metadata") or "{}"
    try:
        meta = json.loads(raw)
    except ValueError:
        return {"debtor": raw}
    return meta if isinstance(meta, dict) else {}
