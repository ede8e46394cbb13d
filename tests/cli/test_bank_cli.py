"""`duebot bank import FILE` as an operator runs it, on a SQLite file of its own."""

from __future__ import annotations

import shutil
from pathlib import Path

from tests import bank_scenario as sc
from tests.cli.test_cli import Duebot


def test_bank_import_reports_the_lines_and_a_second_run_changes_nothing(tmp_path: Path) -> None:
    cli = Duebot(tmp_path)
    cli.ok("migrate")
    statement = tmp_path / sc.CAMT_DAY1.name
    shutil.copy(sc.CAMT_DAY1, statement)

    out = cli.ok("bank", "import", str(statement))
    # No invoices here: every credit waits to be processed, the debit is ignored.
    assert "imported camt.053 statement NL91ABNA-2026-11-23 (NL91ABNA0417164300)" in out
    assert "0 matched, 6 to be processed, 1 ignored, 0 already imported" in out
    assert "to process: line 29  100.00 EUR  Jansen Installaties BV  (no_match)" in out
    assert cli.count("bank_lines") == 7

    again = cli.ok("bank", "import", str(statement))
    assert again.startswith("already imported as statement")
    assert cli.count("bank_lines") == 7 and cli.count("payments") == 0


def test_bank_import_refuses_a_broken_file_with_its_line(tmp_path: Path) -> None:
    cli = Duebot(tmp_path)
    cli.ok("migrate")
    broken = tmp_path / "broken.sta"
    shutil.copy(sc.MT940_BAD_LINE, broken)
    done = cli("bank", "import", str(broken))
    assert done.returncode == 1
    assert "(line 7)" in done.stderr and "nothing was imported" in done.stderr
    assert cli.count("bank_statements") == 0
    assert cli("bank", "import", str(tmp_path / "missing.xml")).returncode == 2
