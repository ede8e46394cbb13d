"""The set-based import: every rule in one statement, in file order, with FIFO allocation and races."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import date

from sqlalchemy import select
from sqlmodel import col

from core.audit import AuditEvent
from core.db import Database
from core.invoices import repository as invoice_repo
from core.invoices.models import InvoiceStatus
from core.ledger import repository as ledger_repo
from core.payments.bank import service as bank
from core.payments.bank.models import BankLine, DebtorBankAccount
from tests import bank_scenario as sc
from tests.factories import TEST_ACTOR

TODAY = date(2026, 11, 24)
UNKNOWN_IBAN = "NL02ABNA0123456789"
OTHER_IBAN = "NL69INGB0123456789"


@dataclass
class Tx:
    amount: str
    ref: str  # bank reference, unique per transaction
    iban: str = UNKNOWN_IBAN
    rf: str | None = None  # structured creditor reference
    text: str = "thank you"
    currency: str = "EUR"


def camt(txs: list[Tx], *, account: str = "NL91ABNA0417164300", stmt_id: str = "T-1") -> bytes:
    entries = "".join(
        f'<Ntry><Amt Ccy="{t.currency}">{t.amount}</Amt><CdtDbtInd>CRDT</CdtDbtInd><Sts>BOOK</Sts>'
        "<BookgDt><Dt>2026-11-23</Dt></BookgDt><ValDt><Dt>2026-11-23</Dt></ValDt>"
        f"<AcctSvcrRef>{t.ref}</AcctSvcrRef><NtryDtls><TxDtls>"
        f"<RltdPties><Dbtr><Nm>Payer {t.ref}</Nm></Dbtr><DbtrAcct><Id><IBAN>{t.iban}</IBAN></Id></DbtrAcct>"
        "</RltdPties><RmtInf>"
        + (f"<Strd><CdtrRefInf><Ref>{t.rf}</Ref></CdtrRefInf></Strd>" if t.rf else f"<Ustrd>{t.text}</Ustrd>")
        + "</RmtInf></TxDtls></NtryDtls></Ntry>"
        for t in txs
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.02"><BkToCstmrStmt>'
        "<GrpHdr><MsgId>T</MsgId><CreDtTm>2026-11-23T18:00:00</CreDtTm></GrpHdr>"
        f"<Stmt><Id>{stmt_id}</Id><Acct><Id><IBAN>{account}</IBAN></Id></Acct>{entries}</Stmt>"
        "</BkToCstmrStmt></Document>"
    ).encode()


async def run_import(db: Database, data: bytes) -> bank.ImportResult:
    async with db.session_scope() as s:
        return await bank.import_statement(s, data, actor=TEST_ACTOR, today=TODAY)


async def open_of(db: Database, external_id: str) -> int:
    async with db.sessionmaker() as s:
        inv = await invoice_repo.get_by_external_id(s, external_id)
        assert inv is not None
        return await ledger_repo.open_amount(s, inv.id)


async def credit_of(db: Database, debtor: str) -> int:
    """Money on the debtor's account that belongs to no invoice (positive: in the debtor's favour)."""
    async with db.sessionmaker() as s:
        inv = await invoice_repo.get_by_external_id(
            s, next(e for e, v in sc.INVOICES.items() if v[0] == debtor)
        )
        assert inv is not None
        return -(await ledger_repo.unallocated(s, inv.debtor_id)).get("EUR", 0)


def rules(result: bank.ImportResult) -> list[tuple[str, str | None]]:
    return [
        (line.status, line.rule or line.reason) for line in sorted(result.lines, key=lambda x: x.position)
    ]


async def test_one_statement_uses_every_rule_in_file_order_and_learns_as_it_goes(db: Database) -> None:
    await sc.build(db)
    result = await run_import(
        db,
        camt(
            [
                Tx("100.00", "R1", iban=sc.JANSEN_IBAN, rf="RF18539007547034"),  # J1 by RF, teaches the IBAN
                Tx("75.50", "R2", iban=sc.JANSEN_IBAN),  # J2 by the IBAN learned one line up
                Tx("250.00", "R3", text="Betaling factuur 2026-0042"),  # M1 by number
                Tx("250.00", "R4", iban=OTHER_IBAN, text="factuur 2026-0042 nogmaals"),  # M1 is paid now
                Tx("120.00", "R5", text="2026-0050 en 2026-0051"),  # two debtors' invoices
                Tx("40.00", "R6", rf="RF58100000000000042", currency="USD"),  # A1 is in EUR
                Tx("5.00", "R7", iban=sc.JANSEN_IBAN),  # Jansen owes nothing of 5.00
            ]
        ),
    )
    assert rules(result) == [
        ("matched", "rf_reference"),
        ("matched", "learned_iban"),
        ("matched", "invoice_number"),
        ("unmatched", "no_match"),
        ("unmatched", "ambiguous_invoice_number"),
        ("unmatched", "currency_mismatch"),
        ("unmatched", "known_iban_no_amount"),
    ]
    assert [await open_of(db, e) for e in ("J1", "J2", "M1", "S1", "B1", "A1")] == [
        0,
        0,
        0,
        6_000,
        6_000,
        4_000,
    ]
    async with db.sessionmaker() as s:
        learned = (await s.scalars(select(DebtorBankAccount))).all()
        events = (
            await s.scalars(select(AuditEvent).where(col(AuditEvent.action) == "bank_statement.imported"))
        ).all()
        recorded = (
            await s.scalars(select(AuditEvent).where(col(AuditEvent.action) == "payment.recorded"))
        ).all()
    assert sorted((a.iban, a.holder_name, a.learned_from) for a in learned) == [
        (UNKNOWN_IBAN, "Payer R3", "invoice_number"),
        (sc.JANSEN_IBAN, "Payer R2", "rf_reference"),
    ]
    assert [(e.after or {}).get("matched") for e in events] == [3]
    assert [(e.after or {}).get("unmatched") for e in events] == [4]
    assert len(recorded) == 3


async def test_grouped_references_pay_oldest_first_and_a_later_line_sees_the_earlier_one(
    db: Database,
) -> None:
    await sc.build(db)
    result = await run_import(
        db,
        camt([Tx("150.00", "G-A", rf="RF31100000000000043"), Tx("200.00", "G-B", rf="RF31100000000000043")]),
    )
    assert rules(result) == [("matched", "rf_reference"), ("matched", "rf_reference")]
    # 150: G1 (due first) 100 and G2 50; 200: G2's other 150 and 50 on account.
    assert (await open_of(db, "G1"), await open_of(db, "G2"), await credit_of(db, "GROEP")) == (0, 0, 5_000)
    async with db.sessionmaker() as s:
        paid = (await s.scalars(select(AuditEvent).where(col(AuditEvent.action) == "invoice.paid"))).all()
        payments = (
            await s.scalars(select(AuditEvent).where(col(AuditEvent.action) == "payment.recorded"))
        ).all()
    assert sorted(e.entity_id for e in paid) == ["G1", "G2"]
    allocations = sorted(
        [(a["invoice"], a["amount"]) for a in (e.after or {})["allocations"]] for e in payments
    )
    assert allocations == [[("G1", "100.00"), ("G2", "50.00")], [("G2", "150.00"), (None, "50.00")]]


async def test_an_invoice_number_line_of_a_known_payer_after_the_invoice_is_paid_becomes_credit(
    db: Database,
) -> None:
    await sc.build(db)
    result = await run_import(
        db,
        camt(
            [
                Tx("100.00", "K1", iban=sc.JANSEN_IBAN, rf="RF18539007547034"),
                Tx("30.00", "K2", iban=sc.JANSEN_IBAN, text="nogmaals 2026-0101"),
            ]
        ),
    )
    assert rules(result) == [("matched", "rf_reference"), ("matched", "invoice_number")]
    assert (await open_of(db, "J1"), await open_of(db, "J2"), await credit_of(db, "JANSEN")) == (
        0,
        7_550,
        3_000,
    )


async def test_two_statements_paying_one_debtor_at_once_allocate_in_turn(committed: Database) -> None:
    """Two accounts (no shared advisory lock): the debtor lock makes the second book see the first."""
    await sc.build(committed)
    first = camt([Tx("150.00", "X-1", rf="RF31100000000000043")], account="NL91ABNA0417164300", stmt_id="A")
    second = camt([Tx("200.00", "X-2", rf="RF31100000000000043")], account=OTHER_IBAN, stmt_id="B")
    results = await asyncio.gather(run_import(committed, first), run_import(committed, second))
    assert [rules(r) for r in results] == [[("matched", "rf_reference")]] * 2
    assert (
        await open_of(committed, "G1"),
        await open_of(committed, "G2"),
        await credit_of(committed, "GROEP"),
    ) == (0, 0, 5_000)
    async with committed.sessionmaker() as s:
        statuses = (await s.scalars(select(col(BankLine.status)))).all()
        inv = await invoice_repo.get_by_external_id(s, "G2")
    assert statuses == ["matched", "matched"] and inv is not None and inv.status == InvoiceStatus.paid
