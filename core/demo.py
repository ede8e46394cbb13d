"""Demo data for `make run`: a handful of debtors and invoices, seeded once."""

from __future__ import annotations

from datetime import date, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from core.audit import Actor
from core.debtors import repository as debtor_repo
from core.debtors import service as debtors
from core.debtors.schemas import DebtorIn
from core.invoices import intake
from core.invoices import service as invoices
from core.invoices.intake import NewInvoice
from core.ledger import service as ledger
from core.ledger.schemas import PaymentIn

DEMO = Actor("system", "demo-seed", "demo data")

DEBTORS: list[tuple[str, dict[str, object]]] = [
    (
        "DEMO-1",
        {
            "name": "Bakkerij de Vries",
            "email": "admin@bakkerij-devries.example",
            "phone": "+31612345678",
            "locale": "nl",
            "timezone": "Europe/Amsterdam",
            "segment": "smb",
        },
    ),
    (
        "DEMO-2",
        {
            "name": "Northwind Traders Ltd",
            "email": "ap@northwind.example",
            "locale": "en",
            "timezone": "Europe/London",
            "segment": "enterprise",
        },
    ),
    (
        "DEMO-3",
        {
            "name": "Jan Jansen",
            "email": "jan.jansen@example.com",
            "phone": "+31687654321",
            "locale": "nl",
            "timezone": "Europe/Amsterdam",
            "segment": "consumer",
        },
    ),
    (
        "DEMO-4",
        {
            "name": "Globex Corporation",
            "email": "finance@globex.example",
            "locale": "en",
            "timezone": "America/New_York",
            "segment": "enterprise",
        },
    ),
    (
        "DEMO-5",
        {
            "name": "Fietsenmaker Bos",
            "email": "info@fietsenbos.example",
            "locale": "nl",
            "timezone": "Europe/Amsterdam",
            "segment": "smb",
        },
    ),
]


async def seed(session: AsyncSession, today: date) -> bool:
    """Create the demo book unless it exists. Returns True when it seeded."""
    if await debtor_repo.get_by_external_id(session, DEBTORS[0][0]) is not None:
        return False
    for external_id, data in DEBTORS:
        await debtors.upsert(session, external_id, DebtorIn.model_validate(data), DEMO)

    def inv(
        n: int, debtor: str, issued_days_ago: int, term: int, amount: int, currency: str = "EUR"
    ) -> NewInvoice:
        issued = today - timedelta(days=issued_days_ago)
        return NewInvoice(
            external_id=f"DEMO-INV-{n}",
            debtor_external_id=debtor,
            number=f"DEMO-{today.year}-{n:04d}",
            issue_date=issued,
            due_date=issued + timedelta(days=term),
            currency=currency,
            amount_minor=amount,
            description=f"Demo invoice {n}",
        )

    rows = [
        inv(1, "DEMO-1", 40, 14, 24_950),  # overdue 26 days
        inv(2, "DEMO-1", 10, 14, 12_000),  # due in 4 days
        inv(3, "DEMO-2", 60, 30, 1_250_000),  # overdue 30 days
        inv(4, "DEMO-2", 20, 30, 310_000),
        inv(5, "DEMO-3", 17, 14, 8_999),  # due 3 days ago
        inv(6, "DEMO-4", 45, 30, 500_000, "USD"),
        inv(7, "DEMO-4", 35, 30, 75_000),
        inv(8, "DEMO-5", 14, 14, 4_500),  # due today
    ]
    result = await intake.create_batch(session, rows, actor=DEMO, source="demo", max_items=100)
    await invoices.approve(session, result.batch.id, actor=DEMO, note="demo data")
    await ledger.record_payment(
        session,
        PaymentIn(
            debtor_external_id="DEMO-2",
            invoice_external_id="DEMO-INV-3",
            currency="EUR",
            amount="5000.00",
            reference="partial payment",
        ),
        actor=DEMO,
        today=today,
    )
    # A second batch waits for approval, so the approval flow can be tried.
    pending = [inv(9, "DEMO-3", 1, 14, 6_400), inv(10, "DEMO-5", 1, 30, 18_750)]
    await intake.create_batch(session, pending, actor=DEMO, source="demo", max_items=100)
    return True
