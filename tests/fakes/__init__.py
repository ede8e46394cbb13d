"""Local fake servers that real client libraries talk to over loopback (DESIGN.md, tests/fakes/).

Shared helpers live here; each fake has its own module (smtp, sms, ...).
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

LOOPBACK = "127.0.0.1"


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now (also usable as a closed port)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


@asynccontextmanager
async def silent_server() -> AsyncIterator[int]:
    """A server that accepts connections and never says anything: for client timeouts.

    Yields its port. Connections are held open until the context exits.
    """
    writers: list[asyncio.StreamWriter] = []

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)

    server = await asyncio.start_server(hold, LOOPBACK, 0)
    port: int = server.sockets[0].getsockname()[1]
    try:
        yield port
    finally:
        for writer in writers:
            writer.close()
        server.close()
        await server.wait_closed()
