"""REST v1: one-time links that attach a Telegram chat or a WhatsApp number to a debtor."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from sqlalchemy.ext.asyncio import AsyncSession

from api import idempotency
from api.deps import ServicesDep, actor_of, require
from api.routes.debtors import ExternalIdPath
from core.access.models import ApiKey
from core.conversation import linking

router = APIRouter(prefix="/debtors", tags=["debtors"])


@router.post(
    "/{external_id}/link",
    summary="One-time links that attach a Telegram chat or WhatsApp number to this debtor",
    status_code=201,
)
async def create_chat_link(
    external_id: ExternalIdPath,
    request: Request,
    services: ServicesDep,
    key: Annotated[ApiKey, Depends(require("debtors:write"))],
) -> Response:
    """A new token each call; it works once and expires after 7 days. Send the debtor the Telegram
    URL (``/start <token>``) or the wa.me URL (its text ``LINK <token>``); without
    ``TELEGRAM_BOT_USERNAME`` / ``WHATSAPP_NUMBER`` set, the URLs carry a placeholder or are null."""

    async def work(session: AsyncSession) -> tuple[int, dict[str, Any]]:
        offer = await linking.create_link(
            session, external_id, settings=services.settings, now=services.clock.now(), actor=actor_of(key)
        )
        return 201, {
            "external_id": external_id,
            "expires_at": offer.expires_at.isoformat(),
            "telegram": {"url": offer.telegram_url, "start": f"/start {offer.token}"},
            "whatsapp": {"url": offer.whatsapp_url, "text": offer.whatsapp_text},
        }

    return await idempotency.run(request, services, key, work)
