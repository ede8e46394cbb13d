"""POST /webhooks/mollie: a form body ``id=tr_…`` (CONTRACT section 3).

Mollie's classic webhooks carry no signature, so nothing in them is believed: the id is stored
(one waiting event per payment, on conflict do nothing), the answer is 200 for any well-formed id
(it reveals nothing), and the worker fetches the payment from Mollie. A malformed body gets 422.
The job is enqueued after the commit; if Redis is unreachable the event still waits, and the
``pick_up_psp_events`` cron processes it.
"""

from __future__ import annotations

import uuid

import structlog
from arq import ArqRedis
from fastapi import APIRouter, Request
from fastapi.responses import Response
from redis.exceptions import RedisError

from api.deps import ServicesDep
from core.errors import FieldError, InvalidInput
from core.payments import events

router = APIRouter(tags=["webhooks"])
log = structlog.get_logger(__name__)
MAX_BODY = 4096


async def enqueue_processing(redis: object, event_id: uuid.UUID) -> bool:
    """Enqueue ``process_psp_event``; False (logged) when Redis is unreachable."""
    try:
        pool = redis if isinstance(redis, ArqRedis) else ArqRedis(connection_pool=redis.connection_pool)  # type: ignore[attr-defined]
        await pool.enqueue_job("process_psp_event", str(event_id), _job_id=f"psp-event:{event_id}")
    except (RedisError, OSError) as exc:
        log.warning("mollie_webhook.enqueue_failed", event_id=str(event_id), error=str(exc))
        return False
    return True


@router.post("/webhooks/mollie", summary="Mollie payment status webhook (form body id=tr_…)")
async def mollie_webhook(request: Request, services: ServicesDep) -> Response:
    body = await request.body()
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if len(body) > MAX_BODY or ctype != "application/x-www-form-urlencoded":
        raise InvalidInput(
            "send the body as application/x-www-form-urlencoded id=tr_…",
            "malformed_webhook",
            [FieldError(("body",), "expected a small form body with one field id", "invalid_body")],
        )
    form = await request.form()
    provider_id = events.parse_mollie_id(form.get("id"))
    event_id = await events.record(services.db, "mollie", provider_id, services.clock)
    await enqueue_processing(services.redis, event_id)
    return Response(status_code=200)
