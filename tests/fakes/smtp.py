"""A local SMTP server (aiosmtpd) that records what it receives and fails on request.

Usage::

    async with smtp_server() as fake:
        fake.refuse("gone@example.com")        # 550 at RCPT for that address
        fake.defer_next(1)                      # 451 at DATA for the next message
        ...send to fake.url() with a real client...
        fake.received[0].message["Subject"]

The server runs in aiosmtpd's Controller thread on 127.0.0.1 and a free port; clients connect over
loopback. Received messages keep the wire bytes in ``raw`` and are parsed (LF line endings) with
``email.policy.default`` into ``message``. AUTH (PLAIN/LOGIN) is offered without TLS so tests can check credentials; every login
is recorded in ``logins`` and accepted unless ``credentials`` are set and differ.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any, cast
from urllib.parse import quote

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from tests.fakes import LOOPBACK, free_port


@dataclass
class ReceivedMail:
    mail_from: str
    rcpt_tos: list[str]
    raw: bytes
    message: EmailMessage


@dataclass
class _Rule:
    code: int
    text: str

    @property
    def reply(self) -> str:
        return f"{self.code} {self.text}"


@dataclass
class SmtpState:
    """What the handler knows; touched from the server thread, so guarded by a lock."""

    received: list[ReceivedMail] = field(default_factory=list)
    logins: list[tuple[str, str]] = field(default_factory=list)
    refused: dict[str, _Rule] = field(default_factory=dict)
    deferrals: list[_Rule] = field(default_factory=list)
    credentials: tuple[str, str] | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)


class _Handler:
    def __init__(self, state: SmtpState) -> None:
        self.state = state

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        with self.state.lock:
            rule = self.state.refused.get(address.lower())
        if rule is not None:
            return rule.reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.state.lock:
            if self.state.deferrals:
                return self.state.deferrals.pop(0).reply
        raw = envelope.original_content or envelope.content
        if isinstance(raw, str):
            raw = raw.encode()
        # Stored the way a local mailbox keeps it: line endings CRLF on the wire, LF at rest.
        local = raw.replace(b"\r\n", b"\n")
        parsed = cast(EmailMessage, email.message_from_bytes(local, policy=email.policy.default))
        mail = ReceivedMail(
            mail_from=str(envelope.mail_from), rcpt_tos=list(envelope.rcpt_tos), raw=raw, message=parsed
        )
        with self.state.lock:
            self.state.received.append(mail)
        return "250 2.0.0 Message accepted for delivery"


class _Authenticator:
    def __init__(self, state: SmtpState) -> None:
        self.state = state

    def __call__(
        self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> AuthResult:
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        login = auth_data.login.decode()
        password = auth_data.password.decode()
        with self.state.lock:
            self.state.logins.append((login, password))
            expected = self.state.credentials
        ok = expected is None or expected == (login, password)
        # handled=False: let aiosmtpd answer 535 itself (handled=True would leave the client waiting).
        return AuthResult(success=ok, handled=False, auth_data=auth_data)


class FakeSmtpServer:
    """aiosmtpd's threaded Controller around a recording, configurable handler."""

    def __init__(self, *, credentials: tuple[str, str] | None = None) -> None:
        self.host = LOOPBACK
        self.port = free_port()
        self.state = SmtpState(credentials=credentials)
        self._controller = Controller(
            _Handler(self.state),
            hostname=self.host,
            port=self.port,
            server_hostname="fake-smtp.test",
            authenticator=_Authenticator(self.state),
            auth_require_tls=False,
            auth_required=False,
        )

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> FakeSmtpServer:
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()

    # -- behaviour -------------------------------------------------------------------------
    def refuse(self, address: str, code: int = 550, text: str = "5.1.1 Recipient address rejected") -> None:
        """Answer RCPT TO for ``address`` with ``code`` (550 by default) from now on."""
        with self.state.lock:
            self.state.refused[address.lower()] = _Rule(code, f"{text}: <{address}>")

    def defer_next(self, count: int = 1, code: int = 451, text: str = "4.3.0 Try again later") -> None:
        """Answer DATA with a temporary ``code`` (451 by default) for the next ``count`` messages."""
        with self.state.lock:
            self.state.deferrals.extend(_Rule(code, text) for _ in range(count))

    def reset(self) -> None:
        with self.state.lock:
            self.state.received.clear()
            self.state.logins.clear()
            self.state.refused.clear()
            self.state.deferrals.clear()

    # -- observations ----------------------------------------------------------------------
    @property
    def received(self) -> list[ReceivedMail]:
        with self.state.lock:
            return list(self.state.received)

    @property
    def logins(self) -> list[tuple[str, str]]:
        with self.state.lock:
            return list(self.state.logins)

    def url(self, username: str | None = None, password: str | None = None) -> str:
        """An ``SMTP_URL`` pointing at this server (plain SMTP), credentials URL-encoded."""
        auth = ""
        if username is not None:
            auth = quote(username, safe="")
            if password is not None:
                auth += ":" + quote(password, safe="")
            auth += "@"
        return f"smtp://{auth}{self.host}:{self.port}"


@contextmanager
def running_smtp_server(*, credentials: tuple[str, str] | None = None) -> Iterator[FakeSmtpServer]:
    """Synchronous form, for non-async callers."""
    server = FakeSmtpServer(credentials=credentials).start()
    try:
        yield server
    finally:
        server.stop()


@asynccontextmanager
async def smtp_server(*, credentials: tuple[str, str] | None = None) -> AsyncIterator[FakeSmtpServer]:
    """Start a fake SMTP server without blocking the running event loop; stop it on exit."""
    server = FakeSmtpServer(credentials=credentials)
    await asyncio.to_thread(server.start)
    try:
        yield server
    finally:
        await asyncio.to_thread(server.stop)
