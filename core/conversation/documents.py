"""Invoice PDFs for the chat: the uploaded document, or a simple one drawn with fpdf2 from the
invoice's data when none was uploaded. Its words come from the chat_account templates."""

from __future__ import annotations

from fpdf import FPDF
from sqlalchemy.ext.asyncio import AsyncSession

from core.config import Settings
from core.conversation import repository as repo
from core.conversation import texts
from core.conversation.schemas import Attachment
from core.invoices.models import Invoice
from core.ledger import repository as ledger_repo
from core.money import Money


def _latin1(text: str) -> str:
    """The core PDF fonts speak Latin-1; anything else becomes '?' rather than failing."""
    return text.replace("€", "EUR ").encode("latin-1", "replace").decode("latin-1")


def draw_invoice(invoice: Invoice, *, open_minor: int, debtor_name: str, creditor: str, locale: str) -> bytes:
    words = texts.render(
        "account.pdf_lines",
        locale,
        number=invoice.number,
        issue_date=invoice.issue_date,
        due_date=invoice.due_date,
        amount=Money(invoice.amount_minor, invoice.currency),
        open=Money(open_minor, invoice.currency),
        description=invoice.description or "",
        debtor_name=debtor_name,
        creditor_name=creditor,
    ).splitlines()
    pdf = FPDF(format="A4")
    pdf.set_title(_latin1(invoice.number))
    pdf.set_creator("duebot")
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 18)
    pdf.cell(0, 12, _latin1(words[0] if words else invoice.number), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", size=11)
    for line in words[1:]:
        pdf.cell(0, 7, _latin1(line), new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())


async def invoice_pdf(
    session: AsyncSession, invoice: Invoice, *, debtor_name: str, settings: Settings, locale: str
) -> Attachment:
    stored = await repo.document(session, invoice.id)
    if stored is not None:
        return Attachment(
            kind="document",
            filename=stored.filename,
            content=bytes(stored.content),
            mime_type=stored.content_type,
        )
    open_minor = await ledger_repo.open_amount(session, invoice.id)
    content = draw_invoice(
        invoice,
        open_minor=open_minor,
        debtor_name=debtor_name,
        creditor=settings.creditor_name or "",
        locale=locale,
    )
    return Attachment(
        kind="document",
        filename=f"invoice-{invoice.number}.pdf",
        content=content,
        mime_type="application/pdf",
    )
