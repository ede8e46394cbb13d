"""The local debtor chat page (``/demo/chat``): a third chat adapter, next to Telegram and WhatsApp.

It talks to the same conversation engine, as channel ``demo``, so that every flow can be tried
without bot tokens. It is on only in the embedded demo (``DUEBOT_DEMO_CHAT``, set by ``duebot run``);
otherwise every route answers 404. The page lists the debtors with a "link as" button: that makes
a one-time link token and sends ``/start <token>``, exactly as a Telegram deep link would.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import select
from sqlmodel import col

from api.deps import Services, ServicesDep
from bots.conversation import conversation_deps as chat_deps
from core.audit import Actor
from core.conversation import linking, relay
from core.conversation.engine import ConversationDeps, handle
from core.conversation.schemas import Inbound, Reply
from core.debtors.models import Debtor
from core.errors import NotFound
from core.templates import _root

router = APIRouter(prefix="/demo/chat", tags=["demo"], include_in_schema=False)
DEMO = Actor("system", "demo-chat", "demo chat page")
SessionId = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{8,64}$")]


def enabled(services: ServicesDep) -> Services:
    if not services.settings.demo_chat:
        raise NotFound("the demo chat is off; `duebot run` switches it on", "not_found")
    return services


DemoServices = Annotated[Services, Depends(enabled)]


def conversation_deps(services: Services) -> ConversationDeps:
    """The engine's dependencies for this adapter: the same builder as Telegram and WhatsApp."""
    return chat_deps(services.settings, services.db, services.clock, services.payments)


class MessageIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    session_id: SessionId
    text: Annotated[str, Field(max_length=4096)] | None = None
    choice: Annotated[str, Field(max_length=64)] | None = None
    locale: Annotated[str, Field(pattern=r"^[a-z]{2}$")] | None = None

    @model_validator(mode="after")
    def _one(self) -> MessageIn:
        if (self.text is None) == (self.choice is None):
            raise ValueError("send exactly one of text and choice")
        return self


class LinkIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    session_id: SessionId
    external_id: Annotated[str, Field(min_length=1, max_length=128)]


def _data_url(mime: str, content: bytes) -> str:
    return f"data:{mime};base64,{base64.b64encode(content).decode()}"


def reply_json(reply: Reply) -> dict[str, Any]:
    return {
        "template": reply.template,
        "text": reply.text,
        "options": [{"id": o.id, "label": o.label} for o in reply.options],
        "attachments": [
            {
                "kind": a.kind,
                "filename": a.filename,
                "mime_type": a.mime_type,
                "caption": a.caption,
                "data_url": _data_url(a.mime_type, a.content),
            }
            for a in reply.attachments
        ],
        "links": [{"label": label, "url": url} for label, url in reply.links],
    }


def _chat_id(session_id: str) -> str:
    return f"demo-{session_id}"


async def _answer(services: Services, inbound: Inbound) -> dict[str, Any]:
    async with services.db.session_scope() as session:
        replies = await handle(session, inbound, deps=conversation_deps(services))
    return {"replies": [reply_json(r) for r in replies]}


@router.get("", response_class=HTMLResponse)
async def page(_: DemoServices) -> HTMLResponse:
    html = (Path(_root()) / "demo" / "chat.html").read_text(encoding="utf-8")
    return HTMLResponse(html)


@router.get("/debtors")
async def debtors(services: DemoServices) -> dict[str, Any]:
    async with services.db.sessionmaker() as session:
        rows = (await session.scalars(select(Debtor).order_by(col(Debtor.external_id)).limit(50))).all()
    return {"debtors": [{"external_id": d.external_id, "name": d.name, "locale": d.locale} for d in rows]}


@router.post("/link")
async def link(body: LinkIn, services: DemoServices) -> dict[str, Any]:
    """Link the page's chat as this debtor: a fresh one-time token, sent as ``/start <token>``."""
    async with services.db.session_scope() as session:
        offer = await linking.create_link(
            session, body.external_id, settings=services.settings, now=services.clock.now(), actor=DEMO
        )
    inbound = Inbound(channel="demo", chat_id=_chat_id(body.session_id), text=f"/start {offer.token}")
    return await _answer(services, inbound)


@router.post("/messages")
async def message(body: MessageIn, services: DemoServices) -> dict[str, Any]:
    inbound = Inbound(
        channel="demo",
        chat_id=_chat_id(body.session_id),
        text=body.text,
        choice=body.choice,
        locale_hint=body.locale,
    )
    return await _answer(services, inbound)


@router.get("/messages")
async def staff_messages(
    services: DemoServices,
    session_id: Annotated[str, Query(pattern=r"^[A-Za-z0-9_-]{8,64}$")],
    since: Annotated[datetime | None, Query()] = None,
) -> dict[str, Any]:
    """Messages staff relayed into this chat (``relay_to_debtor``) since ``since``."""
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    async with services.db.sessionmaker() as session:
        found = await relay.pending_for_demo(session, _chat_id(session_id), since)
    return {
        "messages": [{"text": str(m.payload.get("text", "")), "at": m.created_at.isoformat()} for m in found]
    }
