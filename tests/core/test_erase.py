"""GDPR erasure: personal data gone from every table, the ledger intact, idempotent, refused with claims."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import SQLModel

from core import audit
from core.audit import Actor
from core.conversation.models import Chat, LinkToken
from core.db import Database
from core.debtors import service as debtors
from core.debtors.erase import ERASED_NAME, erase
from core.errors import Conflict, NotFound
from core.ledger import service as ledger
from core.ledger.schemas import PaymentIn
from core.payments.bank.models import DebtorBankAccount
from tests import factories

DPO = Actor("cli", "dpo")
TODAY = date(2026, 11, 24)
NAME = "Marieke van Oranje-Nassau"
EMAIL = "marieke.oranje@example.org"
PHONE = "+31612345678"
STREET = "Keizersgracht 123"
IBAN = "NL02ABNA0123456789"
PERSONAL = (NAME, EMAIL, PHONE, STREET, IBAN, "tg-555123")


async def _person(db: Database, external_id: str = "P-1") -> str:
    await factories.debtor(
        db,
        external_id,
        name=NAME,
        email=EMAIL,
        phone=PHONE,
        address={"line1": STREET, "postal_code": "1015 CJ", "city": "Amsterdam", "country": "NL"},
    )
    inv = await factories.invoice(db, external_id, amount_minor=12_345)
    async with db.session_scope() as s:
        await ledger.record_payment(
            s,
            PaymentIn(
                debtor_external_id=external_id, invoice_external_id=inv, currency="EUR", amount="123.45"
            ),
            actor=DPO,
            today=TODAY,
        )
        debtor = await debtors.get(s, external_id)
        chat = Chat(channel="telegram", chat_id="tg-555123", debtor_id=debtor.id, data={"name": NAME})
        s.add(chat)
        s.add(
            LinkToken(
                token_hash="a" * 64,
                debtor_id=debtor.id,
                expires_at=datetime(2026, 12, 1, tzinfo=UTC),
                created_by="test",
            )
        )
        s.add(
            DebtorBankAccount(debtor_id=debtor.id, iban=IBAN, holder_name=NAME, learned_from="rf_reference")
        )
        await audit.record(s, DPO, "debtor.noted", "debtor", external_id, after={"said": f"{NAME} called"})
    return external_id


async def _everything(session: AsyncSession) -> str:
    """Every text and JSON value of every row of every table, as one lower-case string."""
    parts: list[str] = []
    for table in SQLModel.metadata.sorted_tables:
        for row in (await session.execute(select(*table.columns))).all():
            parts.extend(str(v) for v in row if v is not None)
    return "\n".join(parts).lower()


async def _balance(db: Database, external_id: str) -> object:
    async with db.session_scope() as s:
        debtor = await debtors.get(s, external_id)
        return await ledger.debtor_balance(s, debtor.id, TODAY)


async def test_erase_removes_personal_data_everywhere_and_keeps_the_ledger(db: Database) -> None:
    ext = await _person(db)
    bystander = await factories.debtor(db, "P-10", name="Marieke van Oranje", email="junior@example.org")
    before = await _balance(db, ext)
    async with db.session_scope() as s:
        everything = await _everything(s)
    assert all(p.lower() in everything for p in PERSONAL)

    async with db.session_scope() as s:
        result = await erase(s, ext, actor=DPO)
    assert result.erased and not result.forced
    assert result.counts["contact_points"] == 2 and result.counts["chats"] == 1
    assert result.counts["bank_accounts"] == 1 and result.counts["link_tokens"] == 1

    assert await _balance(db, ext) == before  # the ledger recomputes identically
    async with db.session_scope() as s:
        everything = await _everything(s)
        leaks = [p for p in PERSONAL if p.lower() in everything]
        assert leaks == []
        debtor = await debtors.get(s, ext)
        assert debtor.name == ERASED_NAME and debtor.address is None
        # Another debtor with a similar name keeps hers.
        other = await debtors.get(s, bystander)
        assert other.name == "Marieke van Oranje" and "junior@example.org" in everything
        events = await audit.trail(s, entity="debtor", entity_id=ext)
        erased = [e for e in events if e.action == "debtor.erased"]
        assert len(erased) == 1 and erased[0].actor_id == "dpo"
        assert "[redacted] called" in str([e.after for e in events if e.action == "debtor.noted"])


async def test_second_erase_changes_nothing(db: Database) -> None:
    ext = await _person(db)
    async with db.session_scope() as s:
        await erase(s, ext, actor=DPO)
    async with db.session_scope() as s:
        again = await erase(s, ext, actor=DPO)
        events = await audit.trail(s, entity="debtor", entity_id=ext)
    assert not again.erased
    assert [e.action for e in events].count("debtor.erased") == 1


async def test_open_claims_are_refused_unless_forced(db: Database) -> None:
    ext = await factories.debtor(db, "P-2", name=NAME, email=EMAIL)
    await factories.invoice(db, ext, amount_minor=5_000)
    before = await _balance(db, ext)
    with pytest.raises(Conflict) as refused:
        async with db.session_scope() as s:
            await erase(s, ext, actor=DPO)
    assert refused.value.code == "debtor_has_open_claims" and "--force" in refused.value.message
    async with db.session_scope() as s:
        assert (await debtors.get(s, ext)).name == NAME  # nothing changed

    async with db.session_scope() as s:
        forced = await erase(s, ext, actor=DPO, force=True)
    assert forced.erased and forced.forced
    assert await _balance(db, ext) == before


async def test_unknown_debtor(db: Database) -> None:
    with pytest.raises(NotFound):
        async with db.session_scope() as s:
            await erase(s, "NOBODY", actor=DPO)
