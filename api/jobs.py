"""Enqueue worker jobs after a commit. Redis being away never fails the request: the job's cron
(the safety net) picks the work up within a minute."""

from __future__ import annotations

import uuid

import structlog
from arq import ArqRedis
from redis.asyncio import Redis
from redis.exceptions import RedisError

log = structlog.get_logger(__name__)


async def enqueue(redis: Redis, function: str, *args: str, job_id: str) -> bool:
    """Enqueue ``function(*args)`` once per ``job_id``; False (logged) when Redis is unreachable."""
    try:
        pool = redis if isinstance(redis, ArqRedis) else ArqRedis(connection_pool=redis.connection_pool)
        await pool.enqueue_job(function, *args, _job_id=job_id)
    except (RedisError, OSError) as exc:
        log.warning("jobs.enqueue_failed", function=function, job_id=job_id, error=str(exc))
        return False
    return True


async def post_batch_for_approval(redis: Redis, batch_id: uuid.UUID | str) -> bool:
    """Post a new batch to the staff channel at once (the worker's minute cron is the safety net)."""
    return await enqueue(redis, "post_batch_for_approval", str(batch_id), job_id=f"batch-post:{batch_id}")
