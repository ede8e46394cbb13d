"""Bank statement matching: a CAMT.053 of N credit lines against M open invoices, lines per second.

Set-up (not timed), in <database>_bank: debtors, open invoices with their ledger entries, RF
references for the invoices paid by reference, and a learned IBAN for the debtors paid by IBAN, all
by COPY. The statement pays distinct invoices: 40% by RF reference, 30% by invoice number in the
remittance text, 20% by learned IBAN plus amount, and 10% match nothing (they stay to be processed).

Timed: ``core.payments.bank.service.import_statement`` in one unit of work (parse, skip stored line
keys, read references, IBANs and invoice numbers set-based, lock the debtors involved, match and
allocate in memory in file order, write payments, entries, statuses, events, audit and lines in bulk),
then the commit. Settings: BENCH_BANK_LINES (50,000),
BENCH_BANK_INVOICES (1,000,000), BENCH_BANK_DEBTORS (100,000).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from xml.sax.saxutils import escape

from bench import pg
from bench.report import Context, Result, Section, env_int, format_value
from core.audit import Actor
from core.base import new_id
from core.payments.reference import make_reference

ACCOUNT = "NL91ABNA0417164300"


@dataclass
class Paid:
    kind: str  # rf | number | iban | none
    amount_minor: int
    invoice_number: str
    rf: str | None
    iban: str


def _iban(n: int) -> str:
    """A valid Dutch IBAN per debtor (bank code BANK, account n)."""
    from stdnum.iban import calc_check_digits

    bban = f"BANK{n:010d}"
    return f"NL{calc_check_digits('NL00' + bban)}{bban}"


async def _seed(url: str, invoices: int, debtors: int, lines: int) -> list[Paid]:
    conn = await pg.connect(url)
    try:
        ext_ids = [f"BD-{i:06d}" for i in range(debtors)]
        debtor_ids = await pg.seed_debtors(conn, ext_ids)
        ids = [debtor_ids[e] for e in ext_ids]
        now = datetime.now(UTC)
        inv_rows, entry_rows, refs, accounts, paid = [], [], [], [], []
        step = max(1, invoices // lines)
        for i in range(invoices):
            inv_id = new_id()
            debtor = i % debtors
            amount = 100 + (i * 7919) % 99_900
            due = date(2026, 1, 1) + timedelta(days=i % 300)
            number = f"B-{i:08d}"
            inv_rows.append(
                (
                    inv_id,
                    f"BI-{i:08d}",
                    number,
                    ids[debtor],
                    due - timedelta(days=30),
                    due,
                    "EUR",
                    amount,
                    "open",
                    False,
                    now,
                    now,
                )
            )
            entry_rows.append((new_id(), ids[debtor], inv_id, "invoice", amount, "EUR", due, "bench", now))
            if i % step == 0 and len(paid) < lines:
                slot = len(paid) % 10
                kind = "rf" if slot < 4 else "number" if slot < 7 else "iban" if slot < 9 else "none"
                rf = make_reference(f"{i:015d}") if kind == "rf" else None
                if rf:
                    refs.append((rf, ids[debtor], inv_id, now))
                iban = _iban(debtor)
                if kind == "iban":
                    accounts.append((new_id(), ids[debtor], iban, "Bench", "bench", now, now))
                paid.append(Paid(kind, amount if kind != "none" else 1, number, rf, iban))
        await conn.copy_records_to_table(
            "invoices",
            records=inv_rows,
            columns=[
                "id",
                "external_id",
                "number",
                "debtor_id",
                "issue_date",
                "due_date",
                "currency",
                "amount_minor",
                "status",
                "has_document",
                "created_at",
                "updated_at",
            ],
        )
        await conn.copy_records_to_table(
            "ledger_entries",
            records=entry_rows,
            columns=[
                "id",
                "debtor_id",
                "invoice_id",
                "kind",
                "amount_minor",
                "currency",
                "effective_date",
                "created_by",
                "created_at",
            ],
        )
        await conn.copy_records_to_table(
            "payment_references", records=refs, columns=["reference", "debtor_id", "invoice_id", "created_at"]
        )
        await conn.copy_records_to_table(
            "debtor_bank_accounts",
            records=list({a[2]: a for a in accounts}.values()),
            columns=["id", "debtor_id", "iban", "holder_name", "learned_from", "created_at", "last_seen_at"],
        )
        await conn.execute("ANALYZE")
        return paid
    finally:
        await conn.close()


def camt(paid: list[Paid]) -> bytes:
    entries = []
    for n, p in enumerate(paid, 1):
        if p.kind == "rf":
            rmt = f"<Strd><CdtrRefInf><Ref>{p.rf}</Ref></CdtrRefInf></Strd>"
        elif p.kind == "number":
            rmt = f"<Ustrd>Payment of invoice {p.invoice_number}</Ustrd>"
        else:
            rmt = "<Ustrd>thank you</Ustrd>"
        amount = f"{p.amount_minor // 100}.{p.amount_minor % 100:02d}"
        entries.append(
            f'<Ntry><Amt Ccy="EUR">{amount}</Amt><CdtDbtInd>CRDT</CdtDbtInd><Sts>BOOK</Sts>'
            f"<BookgDt><Dt>2026-11-23</Dt></BookgDt><ValDt><Dt>2026-11-23</Dt></ValDt>"
            f"<AcctSvcrRef>BENCH{n:010d}</AcctSvcrRef><NtryDtls><TxDtls>"
            f"<RltdPties><Dbtr><Nm>{escape('Bench & Co')}</Nm></Dbtr>"
            f"<DbtrAcct><Id><IBAN>{p.iban}</IBAN></Id></DbtrAcct></RltdPties>"
            f"<RmtInf>{rmt}</RmtInf></TxDtls></NtryDtls></Ntry>"
        )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.02"><BkToCstmrStmt>'
        "<GrpHdr><MsgId>BENCH</MsgId><CreDtTm>2026-11-23T18:00:00</CreDtTm></GrpHdr>"
        f"<Stmt><Id>BENCH-1</Id><Acct><Id><IBAN>{ACCOUNT}</IBAN></Id></Acct>{''.join(entries)}</Stmt>"
        "</BkToCstmrStmt></Document>"
    ).encode()


async def _import(url: str, data: bytes) -> tuple[float, dict[str, int]]:
    from core.db import Database
    from core.payments.bank import service as bank

    db = Database.from_url(url)
    try:
        started = time.perf_counter()
        async with db.session_scope() as session:
            result = await bank.import_statement(
                session, data, actor=Actor("cli", "bench"), today=date(2026, 11, 24)
            )
        seconds = time.perf_counter() - started
    finally:
        await db.dispose()
    counts: dict[str, int] = {}
    for line in result.lines:
        key = line.rule or line.status
        counts[key] = counts.get(key, 0) + 1
    return seconds, counts


def run(ctx: Context) -> Section:
    lines = env_int("BENCH_BANK_LINES", 50_000)
    invoices = env_int("BENCH_BANK_INVOICES", 1_000_000)
    debtors = env_int("BENCH_BANK_DEBTORS", 100_000)
    url = pg.sibling_url(ctx.database_url, "bank")
    pg.recreate_and_migrate(url)
    paid = asyncio.run(_seed(url, invoices, debtors, lines))
    data = camt(paid)
    seconds, counts = asyncio.run(_import(url, data))
    rate = len(paid) / seconds
    shown = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
    print(
        f"bank: {len(paid)} lines against {invoices} invoices in {seconds:.1f} s ({rate:.0f} lines/s): {shown}"
    )
    markdown = (
        f"A CAMT.053 of {len(paid):,} credit lines ({len(data) / 1e6:.1f} MB) against {invoices:,} open "
        f"invoices of {debtors:,} debtors, imported in one unit of work: {format_value(rate)} lines/s "
        f"({seconds:.1f} s). Outcome per rule: {shown}. Method: see the docstring of `bench/bank.py`.\n"
    )
    return Section(
        "Bank statement matching",
        [Result("bank_match_lines_per_s", rate, "lines/s")],
        markdown,
    )
