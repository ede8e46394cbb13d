"""Staff texts from ``templates/staff/slack.j2``: one macro per message, and the LABELS for buttons."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from core.templates import environment


@lru_cache(maxsize=1)
def _module() -> Any:
    return environment().get_template("staff/slack.j2").module


def text(name: str, /, **ctx: Any) -> str:
    """Render macro ``name`` with ``ctx``; a missing macro or value is a bug and raises."""
    macro = getattr(_module(), name)
    return str(macro(**ctx)).strip()


def label(key: str) -> str:
    labels: dict[str, str] = _module().LABELS
    return labels[key]


def esc(value: object) -> str:
    """Escape user-provided text for Slack mrkdwn (&, <, >), so it cannot ping or link."""
    return str(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
