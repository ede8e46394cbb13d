"""POST /bank-statements, the to-be-processed queue and manual assignment, as the ERP or finance sees them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from core.db import Database
from tests import bank_scenario as sc
from tests import factories
from tests.api.helpers import API, assert_problem, audit, bearer, counts, get_invoice


async def upload(client: httpx.AsyncClient, auth: dict[str, str], path: Path, status: int = 201) -> Any:
    r = await client.post(f"{API}/bank-statements", files={"file": (path.name, sc.read(path))}, headers=auth)
    assert r.status_code == status, r.text
    return r.json()


def at(body: dict[str, Any], position: int) -> dict[str, Any]:
    return next(line for line in body["lines"] if line["position"] == position)


async def test_a_camt_upload_answers_with_matched_unmatched_and_ignored_lines(
    client: httpx.AsyncClient, auth: dict[str, str], db: Database
) -> None:
    await sc.build(db)
    body = await upload(client, auth, sc.CAMT_DAY1)
    assert body["created"] is True
    assert body["statement"]["format"] == "camt.053"
    assert body["statement"]["account_iban"] == "NL91ABNA0417164300"
    assert body["summary"] == {
        "lines": 7,
        "matched": 3,
        "assigned": 0,
        "unmatched": 3,
        "ignored": 1,
        "duplicates": 0,
    }
    first = at(body, 1)
    assert first["rule"] == "rf_reference" and first["invoice_external_id"] == "J1"
    assert first["amount"] == {"amount": "100.00", "currency": "EUR"}
    assert first["counterparty"] == {"iban": sc.JANSEN_IBAN, "name": "Jansen Installaties BV"}
    assert at(body, 5)["direction"] == "debit" and at(body, 5)["reason"] == "debit"
    assert (await get_invoice(client, auth, "J1"))["status"] == "paid"


async def test_the_same_file_again_answers_200_and_changes_nothing(
    client: httpx.AsyncClient, auth: dict[str, str], db: Database
) -> None:
    await sc.build(db)
    first = await upload(client, auth, sc.CAMT_DAY1)
    before = await counts(db)
    r = await client.post(
        f"{API}/bank-statements",
        content=sc.CAMT_DAY1.read_bytes(),
        headers={**auth, "Content-Type": "application/xml"},
    )
    assert r.status_code == 200, r.text
    assert r.json()["created"] is False and r.json()["statement"]["id"] == first["statement"]["id"]
    assert await counts(db) == before


async def test_an_mt940_body_matches_by_learned_iban_and_reports_the_overlap(
    client: httpx.AsyncClient, auth: dict[str, str], db: Database
) -> None:
    await sc.build(db)
    await upload(client, auth, sc.CAMT_DAY1)
    r = await client.post(
        f"{API}/bank-statements",
        content=sc.MT940_DAY2.read_bytes(),
        headers={**auth, "Content-Type": "text/plain"},
    )
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["statement"]["format"] == "mt940"
    assert at(body, 1)["rule"] == "learned_iban" and at(body, 1)["invoice_external_id"] == "J2"
    assert [d["bank_reference"] for d in body["duplicates"]] == ["ABNA2611230002"]
    assert body["summary"]["duplicates"] == 1


async def test_unmatched_lines_are_listed_with_candidates_and_assigned_once(
    client: httpx.AsyncClient, auth: dict[str, str], db: Database
) -> None:
    await sc.build(db)
    await upload(client, auth, sc.CAMT_DAY1)
    r = await client.get(f"{API}/bank-lines", params={"status": "unmatched"}, headers=auth)
    assert r.status_code == 200, r.text
    queue = r.json()["lines"]
    assert [(line["position"], line["reason"]) for line in queue] == [
        (3, "ambiguous_invoice_number"),
        (4, "currency_mismatch"),
        (6, "no_match"),
    ]
    ambiguous = queue[0]
    assert {(c["invoice_number"], c["debtor_external_id"]) for c in ambiguous["candidates"]} == {
        ("2026-0050", "SMIT"),
        ("2026-0051", "BAKKER"),
    }

    url = f"{API}/bank-lines/{ambiguous['id']}/assign"
    r = await client.post(url, json={"debtor_external_id": "SMIT", "invoice_external_id": "S1"}, headers=auth)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "assigned" and r.json()["invoice_external_id"] == "S1"
    assert (await get_invoice(client, auth, "S1"))["status"] == "paid"

    again = await client.post(url, json={"debtor_external_id": "BAKKER"}, headers=auth)
    assert_problem(again, 409)
    r = await client.get(f"{API}/bank-lines", params={"status": "unmatched"}, headers=auth)
    assert [line["position"] for line in r.json()["lines"]] == [4, 6]

    trail = await audit(client, auth, "bank_line", ambiguous["id"])
    assert [e["action"] for e in trail] == ["bank_line.assigned"]
    assert trail[0]["after"]["debtor"] == "SMIT"
    learned = await audit(client, auth, "debtor", "SMIT")
    assert any(e["action"] == "debtor.bank_account_learned" for e in learned)


async def test_an_import_is_audited(client: httpx.AsyncClient, auth: dict[str, str], db: Database) -> None:
    await sc.build(db)
    body = await upload(client, auth, sc.CAMT_DAY1)
    trail = await audit(client, auth, "bank_statement", body["statement"]["id"])
    assert [e["action"] for e in trail] == ["bank_statement.imported"]
    assert trail[0]["after"]["matched"] == 3 and trail[0]["after"]["unmatched"] == 3


async def test_assigning_to_an_unknown_debtor_or_line_is_refused(
    client: httpx.AsyncClient, auth: dict[str, str], db: Database
) -> None:
    await sc.build(db)
    body = await upload(client, auth, sc.CAMT_DAY1)
    line = at(body, 6)
    r = await client.post(
        f"{API}/bank-lines/{line['id']}/assign", json={"debtor_external_id": "NOBODY"}, headers=auth
    )
    assert_problem(r, 422, "debtor_external_id")
    r = await client.post(
        f"{API}/bank-lines/{line['id']}/assign",
        json={"debtor_external_id": "JANSEN", "invoice_external_id": "M1"},
        headers=auth,
    )
    assert_problem(r, 422, "invoice_external_id")
    r = await client.post(
        f"{API}/bank-lines/0190b2c4-0000-7000-8000-000000000000/assign",
        json={"debtor_external_id": "JANSEN"},
        headers=auth,
    )
    assert_problem(r, 404)


async def test_a_bad_file_is_refused_with_its_line_and_nothing_is_stored(
    client: httpx.AsyncClient, auth: dict[str, str], db: Database
) -> None:
    await sc.build(db)
    before = await counts(db)
    r = await client.post(
        f"{API}/bank-statements", files={"file": ("bad.sta", sc.MT940_BAD_LINE.read_bytes())}, headers=auth
    )
    problem = assert_problem(r, 422, "file")
    assert problem["errors"][0]["line"] == 7
    assert "line 7" in problem["detail"]
    r = await client.post(f"{API}/bank-statements", files={"file": ("x.xml", b"<broken")}, headers=auth)
    assert_problem(r, 422, "file")
    assert await counts(db) == before


async def test_uploads_need_a_file_and_the_bank_write_scope(
    client: httpx.AsyncClient, auth: dict[str, str], db: Database
) -> None:
    r = await client.post(f"{API}/bank-statements", json={"file": "nope"}, headers=auth)
    assert_problem(r, 415)
    r = await client.post(f"{API}/bank-statements", files={"other": ("x", b"y")}, headers=auth)
    assert_problem(r, 422, "file")
    reader = bearer(await factories.api_key(db, ["bank:read"]))
    r = await client.post(
        f"{API}/bank-statements", files={"file": ("a.xml", sc.CAMT_DAY1.read_bytes())}, headers=reader
    )
    assert_problem(r, 403)
    assert (await client.get(f"{API}/bank-lines", headers=reader)).status_code == 200
