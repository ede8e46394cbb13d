"""The debtors and invoices that the sample bank files in tests/data/bank pay.

camt053_2026-11-23.xml (account NL91ABNA0417164300):
  1. 100.00 EUR, structured RF18539007547034 (Jansen's invoice 2026-0101)      → matched by RF
  2. 250.00 EUR, "Betaling factuur 2026-0042"  (Müller)                        → matched by number
  3. 120.00 EUR, "Invoices 2026-0050 and 2026-0051" (Smit's and Bakker's)      → ambiguous
  4.  40.00 USD, EndToEndId RF58100000000000042 (Acme's EUR invoice)           → currency mismatch
  5.  12.50 EUR debit, bank costs                                              → ignored
  6.  99.99 EUR "Gift" from an unknown IBAN, no bank reference                  → unmatched
  7. 300.00 EUR, "rf31 1000 0000 0000 043" in the text (Groep's debtor RF)      → grouped, FIFO
mt940_2026-11-24.sta (the next day):
  1.  75.50 EUR from Jansen's IBAN, no reference                               → learned IBAN + amount
  2. 250.00 EUR, bank reference ABNA2611230002 again (overlap with the CAMT)   → duplicate
  3.  25.00 EUR debit                                                          → ignored
  4.  60.00 EUR "factuur 2026-0050"                                            → matched by number
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

from sqlalchemy import select
from sqlmodel import col

from core.db import Database
from core.invoices.models import Invoice
from core.payments.models import PaymentReference
from tests import factories

DATA = Path(__file__).parent / "data" / "bank"
CAMT_DAY1 = DATA / "camt053_2026-11-23.xml"
MT940_DAY2 = DATA / "mt940_2026-11-24.sta"
MT940_BAD_LINE = DATA / "mt940_bad_line.sta"
CAMT_TRUNCATED = DATA / "camt053_truncated.xml"

JANSEN_IBAN = "NL20INGB0001234567"
SMIT_BAKKER_IBAN = "NL39RABO0300065264"

# invoice external id → (debtor, number, amount minor, due date)
INVOICES = {
    "J1": ("JANSEN", "2026-0101", 10_000, date(2026, 10, 31)),
    "J2": ("JANSEN", "2026-0102", 7_550, date(2026, 11, 15)),
    "M1": ("MULLER", "2026-0042", 25_000, date(2026, 10, 31)),
    "S1": ("SMIT", "2026-0050", 6_000, date(2026, 10, 31)),
    "B1": ("BAKKER", "2026-0051", 6_000, date(2026, 10, 31)),
    "A1": ("ACME", "2026-0077", 4_000, date(2026, 10, 31)),
    "G1": ("GROEP", "2026-0201", 10_000, date(2026, 10, 15)),
    "G2": ("GROEP", "2026-0202", 20_000, date(2026, 10, 31)),
}
INVOICE_RF = {"J1": "RF18539007547034", "A1": "RF58100000000000042"}
DEBTOR_RF = {"GROEP": "RF31100000000000043"}


async def build(db: Database) -> None:
    """Debtors, their booked and delivered invoices, and the RF references printed on them."""
    for debtor in sorted({d for d, *_ in INVOICES.values()}):
        await factories.debtor(db, debtor, name=debtor.title())
    rows = [
        factories.invoice_row(debtor, external_id=ext, number=number, amount_minor=amount, due_date=due)
        for ext, (debtor, number, amount, due) in INVOICES.items()
    ]
    await factories.batch(db, rows)
    async with db.session_scope() as s:
        found = await s.execute(
            select(col(Invoice.external_id), col(Invoice.id), col(Invoice.debtor_id)).where(
                col(Invoice.external_id).in_(list(INVOICES))
            )
        )
        ids = {ext: (iid, did) for ext, iid, did in found.all()}
        for ext, ref in INVOICE_RF.items():
            s.add(PaymentReference(reference=ref, invoice_id=ids[ext][0], debtor_id=ids[ext][1]))
        for debtor, ref in DEBTOR_RF.items():
            debtor_id = next(did for e, (iid, did) in ids.items() if INVOICES[e][0] == debtor)
            s.add(PaymentReference(reference=ref, invoice_id=None, debtor_id=debtor_id))


def read(path: Path) -> bytes:
    """The sample file's bytes (small files: read synchronously)."""
    return path.read_bytes()
