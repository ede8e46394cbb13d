"""Dialog transcripts: feed Inbound lines to the engine, assert which reply templates came back.

A script reads like the chat itself::

    > /balance                       the debtor types this
    >> menu:pay                      the debtor presses the button with this id
    < account.balance | €100.00      a reply from template chat/account.j2 block balance,
                                     whose text contains "€100.00" (optional, after "|")
    < -                              no reply at all (a redelivered message)

Each input runs in its own committed session scope, as an adapter would.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from core.config import Settings
from core.conversation.engine import ConversationDeps, handle
from core.conversation.schemas import Inbound, Reply
from core.db import Database
from core.ports import Clock

_ids = itertools.count(1)


@dataclass
class Chat:
    db: Database
    deps: ConversationDeps
    channel: str = "telegram"
    chat_id: str = field(default_factory=lambda: str(900_000 + next(_ids)))
    locale_hint: str | None = "en"
    replies: list[Reply] = field(default_factory=list)

    async def send(
        self, text: str | None = None, *, choice: str | None = None, message_id: str | None = None
    ) -> list[Reply]:
        inbound = Inbound(
            channel=self.channel,  # type: ignore[arg-type]
            chat_id=self.chat_id,
            text=text,
            choice=choice,
            locale_hint=self.locale_hint,
            message_id=message_id or f"m{next(_ids)}",
        )
        async with self.db.session_scope() as session:
            self.replies = await handle(session, inbound, deps=self.deps)
        return self.replies

    @property
    def last(self) -> Reply:
        assert self.replies, "no reply"
        return self.replies[-1]

    def option(self, label_or_id: str) -> str:
        """The id of a button in the last reply, found by its label or id."""
        for reply in self.replies:
            for option in reply.options:
                if label_or_id in (option.label, option.id):
                    return option.id
        raise AssertionError(
            f"no button {label_or_id!r} in {[o.label for r in self.replies for o in r.options]}"
        )

    async def run(self, script: str) -> None:
        """Play a transcript (see the module docstring); fails at the first line that differs."""
        pending: list[Reply] = []
        for raw in script.strip().splitlines():
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            if line.startswith(">>"):
                pending = list(await self.send(choice=line[2:].strip()))
            elif line.startswith(">"):
                pending = list(await self.send(line[1:].strip()))
            elif line.startswith("<"):
                want = line[1:].strip()
                if want == "-":
                    assert pending == [], f"expected no reply, got {[r.template for r in pending]}"
                    continue
                template, _, snippet = (part.strip() for part in want.partition("|"))
                assert pending, f"expected {template}, got no (more) replies"
                got = pending.pop(0)
                assert got.template == f"chat.{template}", (
                    f"expected {template}, got {got.template}: {got.text}"
                )
                if snippet:  # babel puts no-break spaces in amounts: compare with plain ones
                    text = got.text.replace("\xa0", " ").replace("\u202f", " ")
                    assert snippet in text, f"{snippet!r} not in {template}: {got.text!r}"
            else:
                raise AssertionError(f"bad transcript line {raw!r}")


def deps(settings: Settings, clock: Clock, **kw: object) -> ConversationDeps:
    return ConversationDeps(settings=settings, clock=clock, **kw)  # type: ignore[arg-type]
