"""Every operation of the REST API, fuzzed from the app's own OpenAPI schema: no request gets a 5xx.

Schemathesis (its ``st`` command, as a user would run it against a deployment) reads
``/openapi.json`` from the real app, served under uvicorn on the test database (tests/serve.py), and
sends each operation valid and invalid requests: the schema's examples, its boundary values
(coverage) and generated ones (fuzzing; NUL bytes, huge numbers, wrong types and missing fields
included). The check is ``not_a_server_error``: bad input gets a 4xx problem, never a 500. Path
parameters are pinned to seeded objects (a debtor, an invoice with its PDF, a batch waiting for
approval, a plan waiting for staff, an unmatched bank line, a refund waiting for its second
approver, the default policies), so that the
operations on them reach their logic instead of answering 404. Generation is deterministic (``--generation-deterministic``): the
same requests in every run, so a failure is reproducible and CI cannot turn red by chance.

What the generated requests commit is undone afterwards: every table is emptied and the rows the
migrations seeded (the default dunning and plan policies, which the fuzzer may have replaced) are
put back as they were, and the jobs the app enqueued are flushed from the test Redis, so that later
tests start as they would without this one.

The webhooks are left out: their signatures refuse anything generated, and their bad input has
tests of its own (test_mollie_webhook.py, tests/e2e, tests/bots/slack).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr
from redis.asyncio import Redis
from sqlalchemy import Table

from core.config import Settings
from core.db import Database
from core.models import metadata
from core.payments import events
from core.payments.providers.mollie import MollieProvider
from core.ports import FixedClock, SystemClock
from tests import factories
from tests.conftest import SEEDED, empty
from tests.core.test_psp_payments import checkout_for
from tests.fakes.mollie import FakeMollie, mollie_server
from tests.serve import serving

ST = Path(sys.executable).with_name("st")  # Schemathesis' command, installed with the dev extra
DEBTOR, INVOICE, PAID = "FUZZ-1", "FUZZ-INV-1", "FUZZ-INV-PAID"
PDF = b"%PDF-1.4\n1 0 obj << >> endobj\ntrailer << >>\n%%EOF\n"
BANK_FILE = Path(__file__).parents[1] / "data" / "bank" / "camt053_2026-11-23.xml"


@dataclass(frozen=True)
class Served:
    """The app's address, an API key with every scope, and the ids the path parameters are pinned to."""

    url: str
    key: str
    pins: dict[str, dict[str, str]]  # path regex → parameter → value

    def config(self) -> str:
        """Schemathesis' configuration: every operation under a pinned path gets the seeded object."""
        blocks = []
        for regex, params in self.pins.items():
            values = ", ".join(f'"path.{name}" = "{value}"' for name, value in params.items())
            blocks.append(f'[[operations]]\ninclude-path-regex = "{regex}"\nparameters = {{ {values} }}\n')
        return "\n".join(blocks)


SEEDED_TABLES: list[Table] = [t for t in metadata.sorted_tables if t.name in SEEDED]  # parents first


async def _seeded_rows(db: Database) -> dict[str, list[dict[str, object]]]:
    async with db.session_scope() as s:
        return {
            t.name: [dict(r._mapping) for r in (await s.execute(t.select())).all()] for t in SEEDED_TABLES
        }


async def _restore(db: Database, seeded: dict[str, list[dict[str, object]]]) -> None:
    """Every table emptied, then the seeded rows as they were before the run."""
    async with db.session_scope() as s:
        await empty(s, metadata.sorted_tables)
        for table in SEEDED_TABLES:
            if seeded[table.name]:
                await s.execute(table.insert(), seeded[table.name])


@pytest.fixture
async def served(committed: Database, settings: Settings, redis: Redis) -> AsyncIterator[Served]:
    """The app with a PSP (the local fake Mollie) and a creditor IBAN, a debtor with an overdue
    invoice (with its PDF), a batch waiting for approval, a plan waiting for staff, an unmatched
    bank line, a paid Mollie payment with a refund waiting for its second approver, and an API key
    with every scope."""
    seeded = await _seeded_rows(committed)
    try:
        async with _app(committed, settings) as served:
            yield served
    finally:
        await _restore(committed, seeded)
        await redis.flushdb()  # the jobs the app enqueued (the test Redis is the suite's alone)


@asynccontextmanager
async def _app(committed: Database, settings: Settings) -> AsyncIterator[Served]:
    today = SystemClock().today()
    await factories.debtor(committed, DEBTOR, name="Fuzz B.V.", locale="nl")
    await factories.invoice(
        committed,
        DEBTOR,
        external_id=INVOICE,
        number="FZ-1",
        amount_minor=12_345,
        due_date=today - timedelta(days=20),
        pdf=PDF,
    )
    await factories.invoice(committed, DEBTOR, external_id=PAID, number="FZ-2", amount_minor=5_000)
    pending = await factories.batch(committed, [factories.invoice_row(DEBTOR)], approve=False)
    key = await factories.api_key(committed, scopes=["*"], name="fuzz")
    async with mollie_server() as mollie:
        app_settings = settings.model_copy(
            update={
                "mollie_api_key": SecretStr("test_duebot"),
                "mollie_api_base": mollie.url,
                "creditor_name": "Acme B.V.",
                "creditor_iban": "NL91ABNA0417164300",
                "refund_second_approval_above": "1.00",  # the seeded refund waits for a second approver
            }
        )
        paid = await _paid_by_mollie(committed, app_settings, mollie)
        async with serving(app_settings, "duebot-fuzz-test") as url:
            auth = {"Authorization": f"Bearer {key}"}
            async with httpx.AsyncClient(base_url=f"{url}/api/v1", headers=auth) as api:
                plan = await api.post(f"/debtors/{DEBTOR}/plans", json={"instalments": 36})
                assert plan.status_code in (200, 201) and plan.json()["state"] == "pending_approval", (
                    plan.text
                )
                statement = await api.post(
                    "/bank-statements",
                    content=BANK_FILE.read_bytes(),
                    headers={"Content-Type": "application/xml"},
                )
                assert statement.status_code == 201, statement.text
                lines = (await api.get("/bank-lines", params={"status": "unmatched"})).json()["lines"]
                refund = await api.post(
                    "/refunds",
                    json={
                        "payment_id": paid,
                        "currency": "EUR",
                        "amount": "10.00",
                        "reason": "fuzz",
                        "requested_by": "fuzz.staff",
                    },
                )
                assert refund.json()["needs_second_approval"], refund.text
            yield Served(
                url,
                key,
                {
                    "/debtors/\\\\{": {"external_id": DEBTOR},
                    "/invoices/\\\\{": {"external_id": INVOICE},
                    "/invoice-batches/\\\\{": {"batch_id": str(pending.id)},
                    "/plans/\\\\{": {"plan_id": plan.json()["plan_id"]},
                    "/bank-lines/\\\\{": {"line_id": lines[0]["id"]},
                    "/policies/\\\\{": {"segment": "default"},
                    "/refunds/\\\\{": {"refund_id": refund.json()["id"]},
                },
            )


async def _paid_by_mollie(db: Database, settings: Settings, mollie: FakeMollie) -> str:
    """A Mollie checkout for the PAID invoice, paid at the fake and posted as the worker would; its id."""
    provider = MollieProvider.from_settings(settings, timeout=(1, 1))
    clock = FixedClock(datetime.now(UTC))
    psp = await checkout_for(db, provider, PAID, clock)
    mollie.set_status(psp.provider_id, "paid")
    await events.record(db, "mollie", psp.provider_id, clock)
    await events.drain(db, provider, clock)
    return psp.provider_id


@pytest.mark.timeout(300)
async def test_no_generated_request_gets_a_server_error(served: Served, tmp_path: Path) -> None:
    url, key = served.url, served.key
    config = tmp_path / "schemathesis.toml"
    config.write_text(served.config())
    proc = await asyncio.create_subprocess_exec(
        str(ST),
        "--config-file",
        str(config),
        "run",
        f"{url}/openapi.json",
        "--header",
        f"Authorization: Bearer {key}",
        "--checks",
        "not_a_server_error",
        "--phases",
        "examples,coverage,fuzzing",
        "--mode",
        "all",
        "--max-examples",
        "15",
        "--generation-deterministic",
        "--exclude-path-regex",
        "^/webhooks/",
        "--request-timeout",
        "20",
        "--no-color",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        cwd=tmp_path,
    )
    out, _ = await proc.communicate()
    report = out.decode("utf-8", "replace")
    assert proc.returncode == 0, report
    tested = next(line for line in report.splitlines() if "Tested:" in line)
    assert int(tested.split(":")[1]) >= 40, report  # the REST operations were reached, not a few
