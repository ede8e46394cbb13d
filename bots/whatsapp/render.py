"""Pure builders: Cloud API message bodies for a conversation :class:`Reply`, and for templates.

``render(to, reply)`` answers, in order, JSON bodies for ``POST /{phone-number-id}/messages`` and
:class:`Media` items (an attachment that must be uploaded first; the client then builds its body with
:func:`media_payload` from the media id). Nothing here talks to WhatsApp.

- Without options: the text, in pieces of at most 4,096 characters.
- With at most 3 options: reply buttons (``interactive.type = "button"``), titles cut to 20
  characters; the body (at most 1,024 characters) is the text, or its last piece when it is longer.
- With more than 3 options: a list (``interactive.type = "list"``): rows titled with up to 24
  characters, the full label as the row's description when it is longer; at most 10 rows per list
  message, so more options take more list messages.
- Links are added to the text as "label: url" lines (a chat shows them as links).
- Attachments: documents (the invoice PDF) and images (QR codes), each with its caption.

Outside the 24-hour window only a template may be sent: :func:`template_payload`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core.conversation.schemas import Attachment, Option, Reply

MAX_TEXT = 4096
MAX_BODY = 1024
MAX_BUTTONS = 3
BUTTON_TITLE = 20
ROW_TITLE = 24
ROW_DESCRIPTION = 72
ROWS_PER_LIST = 10
MAX_ID = 200
MAX_CAPTION = 1024
MAX_PARAMETER = 1024
LIST_BUTTON = "☰"  # the list's opener button must have a label; a symbol keeps it language-neutral


@dataclass(frozen=True)
class Media:
    """An attachment to upload (``POST /{phone-number-id}/media``) and then send by its id."""

    to: str
    attachment: Attachment


def split_text(text: str, limit: int) -> list[str]:
    """``text`` in pieces of at most ``limit`` characters, cut at a line end (else a space) if any."""
    text = text.strip() or "…"
    pieces: list[str] = []
    while len(text) > limit:
        cut = text.rfind("\n", 0, limit + 1)
        if cut <= 0:
            cut = text.rfind(" ", 0, limit + 1)
        if cut <= 0:
            cut = limit
        pieces.append(text[:cut].rstrip())
        text = text[cut:].lstrip()
    pieces.append(text)
    return [p for p in pieces if p]


def _cut(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _base(to: str) -> dict[str, Any]:
    return {"messaging_product": "whatsapp", "recipient_type": "individual", "to": to}


def text_payload(to: str, body: str) -> dict[str, Any]:
    return {**_base(to), "type": "text", "text": {"body": body, "preview_url": "http" in body}}


def _check_id(option: Option) -> str:
    if not option.id or len(option.id) > MAX_ID:
        raise ValueError(f"an option id must be 1-{MAX_ID} characters: {option.id!r}")
    return option.id


def buttons_payload(to: str, body: str, options: list[Option] | tuple[Option, ...]) -> dict[str, Any]:
    """Reply buttons: at most 3, titles at most 20 characters."""
    if not 1 <= len(options) <= MAX_BUTTONS:
        raise ValueError(f"reply buttons take 1 to {MAX_BUTTONS} options, not {len(options)}")
    buttons = [
        {"type": "reply", "reply": {"id": _check_id(o), "title": _cut(o.label, BUTTON_TITLE)}}
        for o in options
    ]
    return {
        **_base(to),
        "type": "interactive",
        "interactive": {"type": "button", "body": {"text": body}, "action": {"buttons": buttons}},
    }


def list_payload(
    to: str, body: str, options: list[Option] | tuple[Option, ...], *, button: str = LIST_BUTTON
) -> dict[str, Any]:
    """A list message with one section of at most 10 rows."""
    if not 1 <= len(options) <= ROWS_PER_LIST:
        raise ValueError(f"a list takes 1 to {ROWS_PER_LIST} rows, not {len(options)}")
    rows: list[dict[str, Any]] = []
    for o in options:
        row: dict[str, Any] = {"id": _check_id(o), "title": _cut(o.label, ROW_TITLE)}
        if len(" ".join(o.label.split())) > ROW_TITLE:
            row["description"] = _cut(o.label, ROW_DESCRIPTION)
        rows.append(row)
    return {
        **_base(to),
        "type": "interactive",
        "interactive": {
            "type": "list",
            "body": {"text": body},
            "action": {"button": _cut(button, BUTTON_TITLE), "sections": [{"rows": rows}]},
        },
    }


def media_payload(to: str, attachment: Attachment, media_id: str) -> dict[str, Any]:
    """A document or image already uploaded as ``media_id``."""
    caption = _cut(attachment.caption, MAX_CAPTION) if attachment.caption else None
    if attachment.kind == "image":
        image: dict[str, Any] = {"id": media_id}
        if caption:
            image["caption"] = caption
        return {**_base(to), "type": "image", "image": image}
    document: dict[str, Any] = {"id": media_id, "filename": attachment.filename}
    if caption:
        document["caption"] = caption
    return {**_base(to), "type": "document", "document": document}


def template_payload(
    to: str, name: str, language: str, parameters: list[str] | tuple[str, ...] = ()
) -> dict[str, Any]:
    """An approved template; ``parameters`` fill its body's {{1}}, {{2}}, … (one line each: WhatsApp
    refuses line breaks, tabs and runs of spaces in a parameter)."""
    template: dict[str, Any] = {"name": name, "language": {"code": language}}
    if parameters:
        template["components"] = [
            {
                "type": "body",
                "parameters": [{"type": "text", "text": _cut(p, MAX_PARAMETER)} for p in parameters],
            }
        ]
    return {**_base(to), "type": "template", "template": template}


def _text_with_links(reply: Reply) -> str:
    lines = [reply.text.strip()] + [f"{label}: {url}" for label, url in reply.links]
    return "\n".join(line for line in lines if line)


def render(to: str, reply: Reply) -> list[dict[str, Any] | Media]:
    """The messages that show ``reply`` in the chat, in order."""
    calls: list[dict[str, Any] | Media] = []
    text = _text_with_links(reply)
    options = list(reply.options)
    if text or options or not reply.attachments:
        pieces = split_text(text, MAX_BODY if options else MAX_TEXT)
        body_pieces, last = (pieces[:-1], pieces[-1]) if options else (pieces, "")
        calls += [text_payload(to, p) for p in body_pieces]
        if options and len(options) <= MAX_BUTTONS:
            calls.append(buttons_payload(to, last, options))
        elif options:
            for start in range(0, len(options), ROWS_PER_LIST):
                chunk = options[start : start + ROWS_PER_LIST]
                calls.append(list_payload(to, last if start == 0 else "…", chunk))
    calls += [Media(to, a) for a in reply.attachments]
    return calls
