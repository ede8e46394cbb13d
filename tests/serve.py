"""The real app (``create_app``, as ``duebot serve`` builds it) under uvicorn in a thread of its own,
on a free loopback port: for tests that drive it from outside the process (a browser, a fuzzer)."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn

from api.main import create_app
from core.config import Settings

STARTUP_TIMEOUT = 20


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Server(uvicorn.Server):
    """uvicorn in a thread of its own (its own event loop, database pool and Redis client)."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.up = threading.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        self.up.set()


@asynccontextmanager
async def serving(settings: Settings, name: str) -> AsyncIterator[str]:
    """The app on ``settings``; its base URL once it listens. Stopped on leaving."""
    port = free_port()
    config = uvicorn.Config(create_app(settings=settings), host="127.0.0.1", port=port, log_level="warning")
    srv = _Server(config)
    thread = threading.Thread(target=srv.run, name=name, daemon=True)
    thread.start()
    try:
        started = await asyncio.to_thread(srv.up.wait, STARTUP_TIMEOUT)
        assert started, "the app did not start listening"
        yield f"http://127.0.0.1:{port}"
    finally:
        srv.should_exit = True
        await asyncio.to_thread(thread.join, STARTUP_TIMEOUT)
