"""Chat texts from ``templates/messages/<language>/chat/<group>.j2``: one block per message.

Each file extends the empty ``messages/_chat_base.j2``, so that its top-level macros are defined
before one block is rendered on its own.

A key names the file and the block: ``"account.balance"`` is block ``balance`` of ``chat/account.j2``.
Texts are channel-neutral plain text (adapters add markup). They share the filters of
core.templates (``money``, ``date``, ``ucfirst``) and its strict rules: a missing variable or a
printed None fails loudly, so a debtor never reads "None".

Every text gets ``tone`` (friendly, neutral or firm; core/conversation/tone.py chooses it for the
chat's debtor). Texts where the tone matters branch on it inside the block; the others ignore it.
"""

from __future__ import annotations

import functools
from typing import Any

import jinja2

from core.templates import TONES, TemplateNotFound, TemplateRenderError, _resolve_locale, environment

GROUPS = ("account", "holds", "link", "plan", "prefs", "labels")


def _tidy(text: str) -> str:
    lines = [line.rstrip() for line in text.strip().splitlines()]
    out: list[str] = []
    for line in lines:
        if not line and out and not out[-1]:
            continue
        out.append(line)
    return "\n".join(out)


def render(key: str, locale: str, *, tone: str = "neutral", **ctx: Any) -> str:
    """The text of message ``key`` ("group.block") in the debtor's language and the chat's tone."""
    if tone not in TONES:
        raise TemplateNotFound(f"unknown tone {tone!r}; expected one of: {', '.join(TONES)}")
    group, _, block = key.partition(".")
    if group not in GROUPS or not block:
        raise TemplateNotFound(f"unknown chat text {key!r}")
    language, fmt_locale = _locale_of(locale) if isinstance(locale, str) else _resolve_locale(locale)
    path = f"messages/{language}/chat/{group}.j2"
    try:
        template = environment().get_template(path)
    except jinja2.TemplateNotFound:
        raise TemplateNotFound(f"template {path} is missing") from None
    if block not in template.blocks:
        raise TemplateNotFound(f"template {path} has no block {block!r}")
    context = template.new_context({**ctx, "locale": fmt_locale, "language": language, "tone": tone})
    try:
        for _ in template.root_render_func(context):  # defines the file's macros; renders nothing
            pass
        text = "".join(context.blocks[block][0](context))
    except Exception as exc:
        raise TemplateRenderError(f"chat text {key} ({language}, {tone}) failed: {exc}") from exc
    return _tidy(text)


@functools.lru_cache(maxsize=4096)
def _locale_of(locale: str) -> tuple[str, str]:
    # babel parses the tag on every call otherwise (every text and label of every reply).
    return _resolve_locale(locale)


def label(name: str, locale: str, **ctx: Any) -> str:
    """A button label (block ``name`` of ``chat/labels.j2``): one short line."""
    if not ctx:
        return _plain_label(name, locale)
    return " ".join(render(f"labels.{name}", locale, **ctx).split())


@functools.lru_cache(maxsize=1024)
def _plain_label(name: str, locale: str) -> str:
    """A label without variables depends on its name and language only (the menus' buttons): it is
    rendered once per process (a template edit needs a restart to reach the labels)."""
    return " ".join(render(f"labels.{name}", locale).split())
