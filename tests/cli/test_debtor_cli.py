"""`duebot debtor erase` as a DPO runs it, on a SQLite file of its own (the demo data)."""

from __future__ import annotations

from pathlib import Path

from tests.cli.test_cli import Duebot


def test_erase_refuses_open_claims_then_forced_erases_once(tmp_path: Path) -> None:
    cli = Duebot(tmp_path)
    cli.ok("migrate")
    cli.ok("demo")
    (name,) = cli.query("SELECT name FROM debtors WHERE external_id = 'DEMO-3'")[0]
    totals = cli.query("SELECT currency, SUM(amount_minor) FROM ledger_entries GROUP BY currency ORDER BY 1")

    refused = cli("debtor", "erase", "DEMO-3")
    assert refused.returncode == 1
    assert "open balance" in refused.stderr and "--force" in refused.stderr
    assert cli.query("SELECT name FROM debtors WHERE external_id = 'DEMO-3'")[0][0] == name

    out = cli.ok("debtor", "erase", "DEMO-3", "--force")
    assert out.startswith("erased the personal data of debtor DEMO-3 (forced: claims were open)")
    assert cli.query("SELECT name, address FROM debtors WHERE external_id = 'DEMO-3'")[0] == (
        "[erased]",
        None,
    )
    assert cli.query(
        "SELECT COUNT(*) FROM contact_points c JOIN debtors d ON d.id = c.debtor_id WHERE d.external_id = 'DEMO-3'"
    ) == [(0,)]
    assert cli.query("SELECT COUNT(*) FROM audit_events WHERE after LIKE ?", f"%{name}%") == [(0,)]
    assert (
        cli.query("SELECT currency, SUM(amount_minor) FROM ledger_entries GROUP BY currency ORDER BY 1")
        == totals
    )

    again = cli.ok("debtor", "erase", "DEMO-3", "--force")
    assert "nothing changed" in again

    unknown = cli("debtor", "erase", "NOBODY")
    assert unknown.returncode == 1 and "'NOBODY' does not exist" in unknown.stderr
