"""The `duebot` command as an operator runs it: a real process on a SQLite file of its own."""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

DUEBOT = Path(sys.executable).with_name("duebot")
CSV_HEADER = "external_id,debtor_external_id,number,issue_date,due_date,amount,currency"
BATCH_ID = re.compile(r"as batch ([0-9a-f-]{36}), waiting for approval")


@dataclass
class Duebot:
    """Runs `duebot ...` with DATABASE_URL and DUEBOT_VAR_DIR pointing into the test's folder."""

    home: Path

    @property
    def db_path(self) -> Path:
        return self.home / "duebot.db"

    def __call__(self, *args: str) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DUEBOT_", "DATABASE_", "REDIS_"))}
        env |= {
            "DATABASE_URL": f"sqlite+aiosqlite:///{self.db_path}",
            "DUEBOT_VAR_DIR": str(self.home / "var"),
            "DUEBOT_LOG_LEVEL": "WARNING",
        }
        return subprocess.run(  # noqa: S603
            [str(DUEBOT), *args],
            cwd=self.home,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def ok(self, *args: str) -> str:
        done = self(*args)
        assert done.returncode == 0, f"duebot {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
        return done.stdout

    def query(self, sql: str, *params: object) -> list[tuple[object, ...]]:
        with sqlite3.connect(self.db_path) as conn:
            return conn.execute(sql, params).fetchall()

    def count(self, table: str) -> int:
        (row,) = self.query(f"SELECT COUNT(*) FROM {table}")
        return int(str(row[0]))

    def write(self, name: str, *lines: str) -> Path:
        path = self.home / name
        path.write_text("\n".join(lines) + "\n")
        return path


def _copy_db(src: Path, dst: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        if (src.parent / (src.name + suffix)).exists():
            shutil.copy(src.parent / (src.name + suffix), dst.parent / (dst.name + suffix))


@pytest.fixture(scope="module")
def migrated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A database file migrated once by `duebot migrate`; tests work on copies of it."""
    cli = Duebot(tmp_path_factory.mktemp("migrated"))
    cli.ok("migrate")
    return cli.db_path


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory, migrated: Path) -> Path:
    cli = Duebot(tmp_path_factory.mktemp("seeded"))
    _copy_db(migrated, cli.db_path)
    cli.ok("demo")
    return cli.db_path


@pytest.fixture
def cli(tmp_path: Path, migrated: Path) -> Duebot:
    out = Duebot(tmp_path)
    _copy_db(migrated, out.db_path)
    return out


@pytest.fixture
def demo_cli(tmp_path: Path, seeded: Path) -> Duebot:
    out = Duebot(tmp_path)
    _copy_db(seeded, out.db_path)
    return out


def test_migrate_builds_an_empty_file_and_downgrades_it(tmp_path: Path) -> None:
    cli = Duebot(tmp_path)
    out = cli.ok("migrate")
    assert out.strip() == f"migrated sqlite+aiosqlite:///{cli.db_path} to head"
    tables = {name for (name,) in cli.query("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"debtors", "invoices", "invoice_batches", "ledger_entries", "api_keys", "audit_events"} <= tables
    cli.ok("migrate")  # again: nothing to do, no error

    out = cli.ok("migrate", "--downgrade", "base")
    assert out.strip() == f"downgraded sqlite+aiosqlite:///{cli.db_path} to base"
    tables = {name for (name,) in cli.query("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert tables <= {"alembic_version"}


def test_api_key_is_shown_once_and_listed_by_prefix_only(cli: Duebot) -> None:
    done = cli("api-key", "create", "--scope", "invoices:write", "--scope", "invoices:read", "--name", "erp")
    assert done.returncode == 0, done.stderr
    token = done.stdout.strip()
    match = re.fullmatch(r"dbk_([0-9a-f]{12})_(\S{20,})", token)
    assert match, done.stdout
    prefix, secret = match.groups()
    assert f"key {prefix} (invoices:read, invoices:write): shown once" in done.stderr
    assert secret not in done.stderr

    listing = cli.ok("api-key", "list")
    assert listing.count("\n") == 1
    assert listing.startswith(f"{prefix}\tactive\terp\tinvoices:read,invoices:write\t")
    assert secret not in listing
    # Only a hash is stored: the secret is nowhere in the database files.
    for stored_file in cli.home.glob(cli.db_path.name + "*"):
        assert secret.encode() not in stored_file.read_bytes()
    (stored,) = cli.query("SELECT prefix, key_hash FROM api_keys")
    assert stored[0] == prefix and stored[1] != token


def test_api_key_scopes_are_checked(cli: Duebot) -> None:
    done = cli("api-key", "create", "--scope", "invoices:write", "--scope", "everything")
    assert done.returncode != 0
    assert "unknown scope(s): everything" in done.stderr
    assert done.stdout == ""
    done = cli("api-key", "create")
    assert done.returncode != 0
    assert "scope" in done.stderr
    assert cli.count("api_keys") == 0
    assert cli.ok("api-key", "list") == ""


def test_api_key_revoke(cli: Duebot) -> None:
    token = cli.ok("api-key", "create", "--scope", "*").strip()
    prefix = token.split("_")[1]
    cli.ok("api-key", "revoke", prefix)
    assert f"{prefix}\trevoked\t" in cli.ok("api-key", "list")
    again = cli("api-key", "revoke", prefix)
    assert again.returncode == 1
    assert f"no active key {prefix}" in again.stderr


def test_demo_seeds_once(cli: Duebot) -> None:
    assert cli.ok("demo").strip() == "demo data seeded"
    tables = ("debtors", "invoices", "invoice_batches", "ledger_entries", "payments", "audit_events")
    seeded = {t: cli.count(t) for t in tables}
    assert all(seeded.values()), seeded
    assert cli.query("SELECT external_id FROM debtors WHERE external_id = 'DEMO-1'") == [("DEMO-1",)]
    # One batch waits for approval, so the approval flow can be tried.
    assert cli.count("invoice_batches WHERE status = 'pending_approval'") == 1

    assert cli.ok("demo").strip() == "demo data already present"
    assert {t: cli.count(t) for t in tables} == seeded


def test_import_a_good_file_then_approve_it_once(demo_cli: Duebot) -> None:
    cli = demo_cli
    invoices_before, entries_before = cli.count("invoices"), cli.count("ledger_entries")
    path = cli.write(
        "good.csv",
        CSV_HEADER,
        "CLI-1,DEMO-1,CLI-2026-1,2026-10-01,2026-10-31,100.00,EUR",
        "CLI-2,DEMO-2,CLI-2026-2,2026-10-01,2026-10-31,12.50,EUR",
        "CLI-3,DEMO-4,CLI-2026-3,2026-10-01,2026-10-31,7.00,USD",
    )
    done = cli("import", str(path))
    assert done.returncode == 0, done.stderr
    match = BATCH_ID.search(done.stdout)
    assert match, done.stdout
    batch_id = match.group(1)
    assert f"imported 3 invoices (112.50 EUR, 7.00 USD) as batch {batch_id}" in done.stdout
    assert f"approve with: duebot batch approve {batch_id}" in done.stdout

    again = cli.ok("import", str(path))
    assert again.strip() == f"already imported as batch {batch_id} (pending_approval); nothing changed"
    assert cli.count("invoices") == invoices_before + 3

    out = cli.ok("batch", "approve", batch_id, "--note", "checked")
    assert out.strip() == f"batch {batch_id}: approved (3 invoices)"
    statuses = cli.query("SELECT status FROM invoices WHERE batch_id = ?", uuid.UUID(batch_id).hex)
    assert {s for (s,) in statuses} == {"approved"}
    (decided,) = cli.query(
        "SELECT actor_type, actor_id FROM audit_events WHERE action = 'batch.approved' AND entity_id = ?",
        batch_id,
    )
    assert decided == ("cli", "operator")

    twice = cli("batch", "approve", batch_id)
    assert twice.returncode == 1
    assert "error: batch was already approved by cli:operator at " in twice.stderr
    rejected_late = cli("batch", "reject", batch_id)
    assert rejected_late.returncode == 1
    assert "already approved" in rejected_late.stderr
    assert cli.count("ledger_entries") == entries_before + 3  # booked once, by the one approval


def test_import_a_bad_file_lists_every_error_and_imports_nothing(demo_cli: Duebot) -> None:
    cli = demo_cli
    before = (cli.count("invoices"), cli.count("invoice_batches"), cli.count("audit_events"))
    path = cli.write(
        "bad.csv",
        CSV_HEADER,
        "CLI-1,DEMO-1,CLI-2026-1,2026-10-01,2026-10-31,100.00,EUR",
        "CLI-2,DEMO-1,CLI-2026-2,2026-10-01,2026-10-31,1.2.3,EUR",
        "CLI-3,DEMO-1,CLI-2026-3,2026-10-01,2026-10-31,5.00,EUR",
        "CLI-4,DEMO-1,CLI-2026-4,2026-10-01,31-10-2026,5.00,EUR",
        "CLI-5,DEMO-1,CLI-2026-5,2026-10-01,2026-10-31,5.00,eur",
    )
    done = cli("import", str(path))
    assert done.returncode == 1
    assert done.stdout == ""
    assert "error: bad.csv: 3 error(s); nothing was imported" in done.stderr
    reported = re.findall(r"line (\d+), column (\w+):", done.stderr)
    assert reported == [("3", "amount"), ("5", "due_date"), ("6", "currency")]
    assert (cli.count("invoices"), cli.count("invoice_batches"), cli.count("audit_events")) == before


def test_import_reports_unknown_debtors_and_taken_numbers_by_line(demo_cli: Duebot) -> None:
    cli = demo_cli
    ((taken,),) = cli.query("SELECT number FROM invoices WHERE external_id = 'DEMO-INV-1'")
    path = cli.write(
        "clash.csv",
        CSV_HEADER,
        "CLI-1,DEMO-1,CLI-2026-1,2026-10-01,2026-10-31,100.00,EUR",
        "CLI-2,NOBODY,CLI-2026-2,2026-10-01,2026-10-31,1.00,EUR",
        f"CLI-3,DEMO-1,{taken},2026-10-01,2026-10-31,1.00,EUR",
    )
    done = cli("import", str(path))
    assert done.returncode == 1
    reported = re.findall(r"line (\d+), column (\w+):", done.stderr)
    assert sorted(reported) == [("3", "debtor_external_id"), ("4", "number")]
    assert "NOBODY" in done.stderr and "DEMO-INV-1" in done.stderr


def test_import_of_a_missing_file(cli: Duebot) -> None:
    done = cli("import", str(cli.home / "nope.csv"))
    assert done.returncode == 2
    assert "is not a file" in done.stderr


def test_reject_a_pending_batch(demo_cli: Duebot) -> None:
    cli = demo_cli
    ((pending,),) = cli.query("SELECT id FROM invoice_batches WHERE status = 'pending_approval'")
    batch_id = str(uuid.UUID(str(pending)))
    in_batch = cli.count(f"invoices WHERE batch_id = '{pending}'")
    before = cli.count("invoices")
    out = cli.ok("batch", "reject", batch_id, "--note", "wrong amounts")
    assert out.strip() == f"batch {batch_id}: rejected ({in_batch} invoices)"
    assert cli.count("invoices") == before - in_batch
    decided = cli.query("SELECT status, decided_by, decision_note FROM invoice_batches WHERE id = ?", pending)
    assert decided == [("rejected", "cli:operator", "wrong amounts")]


def test_batch_commands_refuse_unknown_or_malformed_ids(cli: Duebot) -> None:
    unknown = cli("batch", "approve", str(uuid.uuid4()))
    assert unknown.returncode == 1
    assert "does not exist" in unknown.stderr

    malformed = cli("batch", "approve", "not-a-batch-id")
    assert malformed.returncode == 2
    assert "Traceback" not in malformed.stderr
    assert "not-a-batch-id" in malformed.stderr


def test_commands_before_migrate_say_so(tmp_path: Path) -> None:
    fresh = Duebot(tmp_path)
    done = fresh("api-key", "list")
    assert done.returncode == 2
    assert "run `duebot migrate` first" in done.stderr
    assert "Traceback" not in done.stderr
