"""`duebot dunning …` as an operator runs it: sweep, preview and load-policy on a SQLite file of its own."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.cli.test_cli import Duebot, _copy_db

PREVIEW_HEAD = re.compile(r"dunning preview for (\S+): (\d+) invoice\(s\), (\d+) message\(s\)")
SWEEP_LINE = re.compile(
    r"sweep (?P<id>\S+) on (\S+): (\d+) invoice\(s\) reached a stage, (\d+) message\(s\) queued, (\d+) fee\(s\) posted"
)

POLICY_FILE = """\
# dunning policies for duebot
policies:
  - segment: smb
    name: Small business
    interest_rate: "8.00"
    max_messages_per_week: 2
    stages:
      - key: due_today
        offset_days: 0
        template: reminder_due_today
        tone: friendly
        channels: [email, sms]
      - key: second
        offset_days: 14
        template: reminder_second
        tone: neutral
        channels: [email]
        fee: {amount: "15.00", currency: EUR}
  - segment: consumer
    name: Consumers
    stages:
      - {key: first, offset_days: 7, template: reminder_overdue, tone: friendly, channels: [sms, email]}
"""


@pytest.fixture(scope="module")
def seeded_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cli = Duebot(tmp_path_factory.mktemp("dunning-seeded"))
    cli.ok("migrate")
    cli.ok("demo")
    return cli.db_path


@pytest.fixture
def cli(tmp_path: Path, seeded_db: Path) -> Duebot:
    out = Duebot(tmp_path)
    _copy_db(seeded_db, out.db_path)
    return out


def today() -> str:
    return datetime.now(UTC).date().isoformat()


def test_preview_shows_what_the_sweep_then_does(cli: Duebot) -> None:
    day = today()
    before = cli.count("dunning_actions"), cli.count("messages")
    out = cli.ok("dunning", "preview", "--date", day)
    head = PREVIEW_HEAD.search(out)
    assert head, out
    assert head.group(1) == day
    invoices, messages = int(head.group(2)), int(head.group(3))
    assert invoices >= 5 and messages >= 4  # the demo has overdue invoices for most debtors
    lines = out.splitlines()
    assert lines[1].split() == ["DEBTOR", "INVOICE", "STAGE", "CHANNELS"]
    table = lines[2 : 2 + invoices]
    assert all(line.startswith("DEMO-") for line in table), out
    per_stage = next(line for line in lines if line.startswith("per stage: "))
    assert sum(int(n) for n in re.findall(r" (\d+)(?:,|$)", per_stage)) == invoices
    per_channel = next(line for line in lines if line.startswith("per channel (first choice): "))
    assert per_channel.endswith(f"email {invoices}")
    assert (cli.count("dunning_actions"), cli.count("messages")) == before  # nothing written

    done = SWEEP_LINE.search(cli.ok("dunning", "sweep", "--date", day))
    assert done, "no sweep summary"
    assert done.group(2) == day
    assert (int(done.group(3)), int(done.group(4))) == (invoices, messages)
    sweep_id = uuid.UUID(done.group("id")).hex
    assert cli.count(f"dunning_actions WHERE sweep_id = '{sweep_id}'") == invoices
    assert cli.count(f"messages WHERE sweep_id = '{sweep_id}'") == messages

    again = SWEEP_LINE.search(cli.ok("dunning", "sweep", "--date", day))
    assert again and again.group(3) == "0"  # a second sweep the same day sends nothing
    after = PREVIEW_HEAD.search(cli.ok("dunning", "preview", "--date", day))
    assert after and after.group(2) == "0"


def test_the_previewed_stages_are_the_ones_recorded(cli: Duebot) -> None:
    day = today()
    out = cli.ok("dunning", "preview", "--date", day)
    rows = [re.split(r"\s{2,}", line.strip()) for line in out.splitlines()[2:] if line.startswith("DEMO-")]
    previewed = sorted((number, stage) for _debtor, number, stage, _channels in rows)
    done = SWEEP_LINE.search(cli.ok("dunning", "sweep", "--date", day))
    assert done
    recorded = sorted(
        (str(number), str(stage))
        for number, stage in cli.query(
            "SELECT i.number, a.stage_key FROM dunning_actions a JOIN invoices i ON i.id = a.invoice_id "
            "WHERE a.sweep_id = ?",
            uuid.UUID(done.group("id")).hex,
        )
    )
    assert recorded == previewed


def test_sweep_without_a_date_uses_now(cli: Duebot) -> None:
    done = SWEEP_LINE.search(cli.ok("dunning", "sweep"))
    assert done and done.group(2) == today()


def test_a_bad_date_is_refused_by_the_parser(cli: Duebot) -> None:
    for args in (("sweep", "--date", "31-12-2026"), ("preview", "--date", "2026-02-30")):
        done = cli("dunning", *args)
        assert done.returncode == 2
        assert "is not a date in the form YYYY-MM-DD" in done.stderr
        assert "Traceback" not in done.stderr


def test_load_policy_creates_then_replaces_and_keeps_unchanged_ones(cli: Duebot) -> None:
    path = cli.write("policies.yaml", POLICY_FILE)
    out = cli.ok("dunning", "load-policy", str(path))
    assert out.splitlines() == [
        "created policy 'Small business' for segment smb (2 stages)",
        "created policy 'Consumers' for segment consumer (1 stages)",
    ]
    stages = cli.query(
        "SELECT s.position, s.key, s.offset_days, s.fee_minor, s.fee_currency FROM dunning_stages s "
        "JOIN dunning_policies p ON p.id = s.policy_id WHERE p.segment = 'smb' ORDER BY s.position"
    )
    assert stages == [(0, "due_today", 0, None, None), (1, "second", 14, 1500, "EUR")]
    assert cli.query(
        "SELECT interest_rate_bp, max_messages_per_week FROM dunning_policies WHERE segment = 'smb'"
    ) == [(800, 2)]

    path.write_text(POLICY_FILE.replace("offset_days: 14", "offset_days: 10"))
    out = cli.ok("dunning", "load-policy", str(path))
    assert out.splitlines() == [
        "replaced policy 'Small business' for segment smb (2 stages)",
        "unchanged policy 'Consumers' for segment consumer (1 stages)",
    ]
    audited = cli.query(
        "SELECT action, entity_id, actor_type FROM audit_events WHERE entity = 'dunning_policy' ORDER BY at"
    )
    assert audited == [
        ("dunning_policy.created", "smb", "cli"),
        ("dunning_policy.created", "consumer", "cli"),
        ("dunning_policy.updated", "smb", "cli"),
    ]


def test_bad_yaml_exits_non_zero_with_the_line(cli: Duebot) -> None:
    before = cli.count("dunning_policies"), cli.count("dunning_stages"), cli.count("audit_events")
    path = cli.write("broken.yaml", POLICY_FILE.replace("    name: Consumers", "    name: [Consumers"))
    done = cli("dunning", "load-policy", str(path))
    assert done.returncode == 1
    assert done.stdout == ""
    assert "error: the policy file is not valid YAML" in done.stderr
    assert "(line 21)" in done.stderr  # where the unclosed list on line 20 breaks
    assert "Traceback" not in done.stderr
    assert (cli.count("dunning_policies"), cli.count("dunning_stages"), cli.count("audit_events")) == before


def test_invalid_policies_are_listed_with_their_lines_and_nothing_is_loaded(cli: Duebot) -> None:
    before = cli.count("dunning_policies"), cli.count("dunning_stages")
    text = POLICY_FILE.replace("offset_days: 14", "offset_days: 0").replace("[sms, email]", "[sms, fax]")
    done = cli("dunning", "load-policy", str(cli.write("invalid.yaml", text)))
    assert done.returncode == 1
    assert "error: the policy file has 2 error(s); nothing was loaded" in done.stderr
    assert "  line 14: policies.0.stages.1.offset_days: stages overlap" in done.stderr
    assert "  line 22: policies.1.stages.0.channels: unknown channel(s) 'fax'" in done.stderr
    assert (cli.count("dunning_policies"), cli.count("dunning_stages")) == before


def test_a_policy_refused_by_the_database_rolls_back_the_whole_file(cli: Duebot) -> None:
    before = cli.count("dunning_policies")
    text = POLICY_FILE.replace("name: Consumers", "name: default")  # the name of the default policy
    done = cli("dunning", "load-policy", str(cli.write("clash.yaml", text)))
    assert done.returncode == 1
    assert "policies.1 (segment 'consumer'): the policy name 'default' is already used" in done.stderr
    assert "policies.1.name:" in done.stderr
    assert cli.count("dunning_policies") == before  # smb, which came first, is not kept either


def test_load_policy_of_a_missing_file(cli: Duebot) -> None:
    done = cli("dunning", "load-policy", str(cli.home / "nope.yaml"))
    assert done.returncode == 2
    assert "is not a file" in done.stderr
