"""Liveness, readiness and metrics."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from api.deps import ServicesDep

router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="200 while the process is alive")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="200 only when the database and Redis answer")
async def readyz(services: ServicesDep) -> JSONResponse:
    checks: dict[str, str] = {}

    async def check(name: str, coro: object) -> None:
        try:
            await asyncio.wait_for(coro, timeout=2)  # type: ignore[arg-type]
            checks[name] = "ok"
        except Exception as exc:  # any failure means "not ready"
            checks[name] = f"error: {type(exc).__name__}"

    await check("database", services.db.ping())
    await check("redis", services.redis.ping())
    ready = all(v == "ok" for v in checks.values())
    return JSONResponse(
        {"status": "ready" if ready else "not ready", "checks": checks}, status_code=200 if ready else 503
    )


@router.get("/metrics", summary="Prometheus text format", response_class=Response)
async def metrics(request: Request) -> Response:
    return request.app.state.metrics.endpoint(request)  # type: ignore[no-any-return]
