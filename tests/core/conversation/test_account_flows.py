"""Balance, invoices with their PDF, and pay options, in English and Dutch."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from core.conversation.engine import ConversationDeps
from core.conversation.payopts import PayOptions
from core.db import Database
from core.money import Money
from core.ports import FixedClock
from tests import factories
from tests.core.conversation.conftest import linked_chat
from tests.core.conversation.transcript import Chat


async def test_balance_and_invoices_en(en_chat: Chat) -> None:
    await en_chat.run("""
        > /balance
        < account.balance | Open: €349.50, of which €249.50 overdue
        > send me the invoice please
        < account.invoices | NW-1: €249.50, due Oct 31, 2026 (24 days overdue)
    """)
    await en_chat.send(choice=en_chat.option("PDF NW-2"))
    reply = en_chat.last
    assert reply.template == "chat.account.invoice_pdf"
    [pdf] = reply.attachments
    assert pdf.kind == "document" and pdf.mime_type == "application/pdf"
    assert pdf.content.startswith(b"%PDF") and pdf.filename == "invoice-NW-2.pdf"


async def test_balance_nl_free_text(nl_chat: Chat) -> None:
    await nl_chat.run("""
        > hoeveel moet ik nog betalen?
        < account.balance | Open: € 89,99, waarvan € 89,99 te laat
    """)


async def test_uploaded_pdf_is_sent_as_is(db: Database, deps: ConversationDeps, clock: FixedClock) -> None:
    ext = await factories.debtor(db, locale="nl")
    row = factories.invoice_row(ext, number="UP-1", pdf=b"%PDF-1.4 uploaded")
    await factories.batch(db, [row])
    chat = await linked_chat(db, deps, clock, ext, locale_hint="nl")
    await chat.run("""
        > /invoices
        < account.invoice_pdf | Hier is factuur UP-1.
    """)
    assert chat.last.attachments[0].content == b"%PDF-1.4 uploaded"


async def test_nothing_open(db: Database, deps: ConversationDeps, clock: FixedClock) -> None:
    ext = await factories.debtor(db)
    chat = await linked_chat(db, deps, clock, ext)
    await chat.run("""
        > /balance
        < account.nothing_open | nothing open
        > /pay
        < account.nothing_open
    """)


async def test_pay_without_psp_shows_reference_iban_and_epc_qr(en_chat: Chat) -> None:
    await en_chat.run("""
        > how can I pay?
        < account.pay | To pay NW-1, NW-2: €349.50.
    """)
    reply = en_chat.last
    assert "Transfer it to NL91ABNA0417164300 (Acme B.V.), with payment reference RF" in reply.text
    [qr] = reply.attachments
    assert qr.kind == "image" and qr.content.startswith(b"\x89PNG")
    assert reply.links == ()


async def test_pay_one_invoice_from_its_pdf(en_chat: Chat) -> None:
    await en_chat.send("/invoices")
    await en_chat.send(choice="inv:pdf:NW-1")
    await en_chat.run(f"""
        >> {en_chat.option("Pay")}
        < account.pay | To pay NW-1: €249.50.
    """)


async def test_pay_with_psp_options(
    db: Database, deps: ConversationDeps, clock: FixedClock, debtor_nl: str
) -> None:
    calls: list[list[uuid.UUID]] = []

    async def pay_options(
        session: AsyncSession, debtor_id: uuid.UUID, invoice_ids: list[uuid.UUID]
    ) -> PayOptions:
        calls.append(invoice_ids)
        return PayOptions(
            amount=Money(8_999, "EUR"),
            reference="RF18539007547034",
            invoices=["NW-1"],
            checkout_url="https://pay.example/pl_123",
            checkout_qr_png=b"\x89PNG link",
            epc_qr_png=b"\x89PNG epc",
        )

    deps.pay_options = pay_options
    chat = await linked_chat(db, deps, clock, debtor_nl, locale_hint="nl")
    await chat.run("""
        > stuur een betaallink
        < account.pay | Online betalen: https://pay.example/pl_123
    """)
    assert [a.caption for a in chat.last.attachments] == [
        "Scan om online te betalen",
        "Scan met uw bankapp (SEPA-overboeking)",
    ]
    assert chat.last.links == (("Nu betalen", "https://pay.example/pl_123"),)
    assert len(calls) == 1 and len(calls[0]) == 1
