"""Helpers shared by the command and action handlers: authorization gates, replies, parsing."""

from __future__ import annotations

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
