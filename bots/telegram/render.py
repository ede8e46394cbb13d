"""Pure builders: a conversation :class:`Reply` as the Bot API calls that show it in a chat.

``render(chat_id, reply)`` answers aiogram method objects (``SendMessage``, ``SendDocument``,
``SendPhoto``) that a Bot executes with ``await bot(method)``; nothing here talks to Telegram, so the
tests compare the builders' output directly.

- The text goes first, as one message, or several when it is longer than Telegram's 4,096
  characters (split at line ends where possible). The inline keyboard hangs under the last one.
- The keyboard: each option is a callback button whose data is the option's id (it comes back as
  ``Inbound.choice``); each link is a URL button. Short labels share a row two by two, long ones get
  a row of their own.
- Attachments follow: PDFs and other documents with sendDocument, images with sendPhoto, each from
  bytes (``BufferedInputFile``), with its caption (at most 1,024 characters).
"""

from __future__ import annotations

from aiogram.methods import SendDocument, SendMessage, SendPhoto
from aiogram.types import BufferedInputFile, InlineKeyboardButton, InlineKeyboardMarkup

from core.conversation.schemas import Attachment, Option, Reply

MAX_TEXT = 4096
MAX_CAPTION = 1024
MAX_CALLBACK_DATA = 64  # bytes
SHORT_LABEL = 18  # labels up to this long share a row two by two
MAX_BUTTON_TEXT = 64

TelegramCall = SendMessage | SendDocument | SendPhoto


def split_text(text: str, limit: int = MAX_TEXT) -> list[str]:
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


def _label(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_BUTTON_TEXT else text[: MAX_BUTTON_TEXT - 1] + "…"


def callback_button(option: Option) -> InlineKeyboardButton:
    if not option.id or len(option.id.encode()) > MAX_CALLBACK_DATA:
        raise ValueError(f"an option id must be 1-{MAX_CALLBACK_DATA} bytes: {option.id!r}")
    return InlineKeyboardButton(text=_label(option.label), callback_data=option.id)


def keyboard(
    options: tuple[Option, ...] | list[Option], links: tuple[tuple[str, str], ...] = ()
) -> InlineKeyboardMarkup | None:
    """The inline keyboard for a reply's options and links; None when it has neither."""
    buttons = [callback_button(o) for o in options]
    buttons += [InlineKeyboardButton(text=_label(label), url=url) for label, url in links]
    if not buttons:
        return None
    rows: list[list[InlineKeyboardButton]] = []
    for button in buttons:
        short = len(button.text) <= SHORT_LABEL
        last = rows[-1] if rows else None
        if short and last is not None and len(last) == 1 and len(last[0].text) <= SHORT_LABEL:
            last.append(button)
        else:
            rows.append([button])
    return InlineKeyboardMarkup(inline_keyboard=rows)


def _caption(attachment: Attachment) -> str | None:
    if not attachment.caption:
        return None
    caption = attachment.caption.strip()
    return caption if len(caption) <= MAX_CAPTION else caption[: MAX_CAPTION - 1] + "…"


def attachment_call(chat_id: int | str, attachment: Attachment) -> SendDocument | SendPhoto:
    file = BufferedInputFile(attachment.content, filename=attachment.filename)
    if attachment.kind == "image":
        return SendPhoto(chat_id=chat_id, photo=file, caption=_caption(attachment))
    return SendDocument(chat_id=chat_id, document=file, caption=_caption(attachment))


def render(chat_id: int | str, reply: Reply) -> list[TelegramCall]:
    """The calls that show ``reply`` in the chat, in order."""
    calls: list[TelegramCall] = []
    markup = keyboard(reply.options, reply.links)
    if reply.text.strip() or markup is not None or not reply.attachments:
        pieces = split_text(reply.text)
        for n, piece in enumerate(pieces, start=1):
            last = n == len(pieces)
            calls.append(SendMessage(chat_id=chat_id, text=piece, reply_markup=markup if last else None))
    calls += [attachment_call(chat_id, a) for a in reply.attachments]
    return calls
