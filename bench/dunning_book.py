"""The dunning bench's two books: what they hold, how they are loaded with COPY, and how every
round is reset to the state as loaded. See bench/dunning.py for the method."""

from __future__ import annotations

import statistics
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from typing import Any

import asyncpg

from bench import data, pg
from bench.report import Context
from core.base import new_id
from core.dunning.sweep import SweepResult

SWEEP_DAY = date(2026, 6, 2)
NOW = datetime.combine(SWEEP_DAY, dtime(6, 0), tzinfo=UTC)
HISTORY_TIME = dtime(0, 30)  # earlier sweeps ran at 00:30 on their day, before NOW
LOADED_AT = NOW - timedelta(days=1)  # created_at / updated_at of every loaded row
DEFAULT_POLICY_ID = uuid.UUID("0192f0d0-0000-7000-8000-000000000001")  # seeded by migration 0002
NEXT_ACTION_INDEX = "ix_dunning_states_next_action"
RATIO_GOAL = 2.0
SLOW_S = 10.0  # a first sweep this slow counts: no separate warm-up round
ROUNDS_BUDGET_S = 150.0  # per book, no further round once the counted sweeps took this long together
SCALE_GOAL = 1.5
GROUP = 20  # of every GROUP due invoices, the last two go to the debtor of the first
MAX_LAG = 2  # a due invoice's next action fell on the sweep day or up to this many days before
BATCH = 1000  # invoices per invoice_batches row
SAVED = "bench_saved_states"  # the due states as loaded, restored before every run
# What the sweep writes besides actions, fees, states and invoice statuses: emptied before every run.
EMPTIED = ("messages", "events", "webhook_deliveries", "audit_events")
LOW48 = (1 << 48) - 1
STATE_COLUMNS = (
    "invoice_id",
    "debtor_id",
    "policy_id",
    "due_date",
    "currency",
    "invoice_external_id",
    "invoice_number",
    "stage_position",
    "stage_key",
    "next_action_on",
    "paused_until",
    "pause_reason",
    "disputed",
    "dispute_reason",
    "promise_date",
    "promise_minor",
    "updated_at",
)
LEDGER_COLUMNS = (
    "id",
    "debtor_id",
    "invoice_id",
    "kind",
    "amount_minor",
    "currency",
    "effective_date",
    "created_by",
    "created_at",
)
ACTION_COLUMNS = ("due_date", "invoice_id", "stage_key", "debtor_id", "sweep_id", "created_at")
BASELINE_SQL = """
INSERT INTO messages (id, debtor_id, kind, template, tone, channels, status, attempts,
                      next_attempt_at, sweep_id, payload, created_at, updated_at)
SELECT gen_random_uuid(), d.debtor_id, 'reminder', st.template, st.tone, st.channels, 'queued', 0,
       $2, $3, '{"kind": "reminder"}'::jsonb, $2, $2
FROM (
    SELECT DISTINCT ON (s.debtor_id) s.debtor_id, s.policy_id, s.stage_position + 1 AS position
    FROM dunning_states s
    WHERE s.next_action_on <= $1
    ORDER BY s.debtor_id, s.stage_position DESC
) d
JOIN dunning_stages st ON st.policy_id = d.policy_id AND st.position = d.position
""".strip()


@dataclass(frozen=True)
class Stage:
    position: int
    key: str
    offset: int
    fee: bool  # charges a fee in EUR
    interest: bool  # charges statutory interest


@dataclass(frozen=True)
class Policy:
    stages: list[Stage]
    interest_rate_bp: int


@dataclass(frozen=True)
class Book:
    label: str  # "1m_1pct"
    invoices: int
    due: int
    debtors: int

    @property
    def step(self) -> int:
        """Invoice i is due when i % step == 0 (and i // step < due): spread over the whole table."""
        return self.invoices // self.due

    @property
    def percent(self) -> float:
        return 100 * self.due / self.invoices


@dataclass
class Expected:
    actions: int
    messages: int
    fees: int  # fee and interest ledger entries
    shared_debtors: int  # debtors with more than one due invoice
    history: int  # dunning_actions rows of earlier sweeps


@dataclass
class Load:
    seconds: dict[str, float]  # table → COPY seconds
    rows: dict[str, int]
    vacuum_s: float
    counts: dict[str, int] = field(default_factory=dict)  # every table's rows after loading


@dataclass
class SweepRun:
    seconds: float
    result: SweepResult
    statements: list[tuple[str, Any, bool, float]]  # statement, parameters, executemany, seconds
    helpers: dict[str, tuple[int, float]] = field(default_factory=dict)  # name → (calls, seconds)
    # After the sweep's commit, not part of it: the event fan-out that builds the hand-offs'
    # evidence files (core.events.service.fan_out with no endpoint), and how many it built.
    fan_out_s: float = 0.0
    evidence_files: int = 0


@dataclass
class Measured:
    book: Book
    expected: Expected
    load: Load
    warmup: tuple[SweepRun, float] | None  # None: the first sweep was slow enough to count
    sweeps: list[SweepRun]
    baselines: list[float]
    stages: list[Stage] = field(default_factory=list)
    explain: str = ""
    profile: dict[str, tuple[float, str]] = field(default_factory=dict)  # SQL → (ms, plan)

    @property
    def sweep_s(self) -> float:
        return statistics.median(r.seconds for r in self.sweeps)

    @property
    def baseline_s(self) -> float:
        return statistics.median(self.baselines)

    @property
    def median_run(self) -> SweepRun:
        return sorted(self.sweeps, key=lambda r: r.seconds)[len(self.sweeps) // 2]


# The books ---------------------------------------------------------------------------------------


def _due_debtor(j: int, n_debtors: int) -> int:
    """The debtor of due invoice j: spread over the debtors; one in GROUP gets three due invoices."""
    base = j - j % GROUP if j % GROUP >= GROUP - 2 else j
    return (base * 7919) % n_debtors


def _amount(i: int) -> int:
    return 100 + (i * 7919) % 99_900  # 1.00 .. 999.99


def _stage_cycle(n: int) -> list[int]:
    """The next stages of due invoices, in proportion n : n-1 : … : 1 from the first stage to the last:
    more invoices get their first reminder than go to the agency."""
    return [k for k in range(n) for _ in range(n - k)]


def _plan(i: int, book: Book, stages: list[Stage]) -> tuple[int, date, int, date]:
    """(debtor index, due date, stage position, next action date) of invoice i of ``book``.

    A due invoice has reached the stage before its next one (see _stage_cycle), which fell on the
    sweep day or up to MAX_LAG days before. The others have reached stage -1 … len-2 and their next stage is 1 to 60
    days ahead (stage -1: not even the first stage has come).
    """
    n = len(stages)
    if i % book.step == 0 and i // book.step < book.due:
        j = i // book.step
        cycle = _stage_cycle(n)
        nxt = cycle[j % len(cycle)]
        on = SWEEP_DAY - timedelta(days=(j // len(cycle)) % (MAX_LAG + 1))
        return _due_debtor(j, book.debtors), on - timedelta(days=stages[nxt].offset), nxt - 1, on
    debtor = i % book.debtors
    reached = i % n - 1
    if reached < 0:
        on = SWEEP_DAY + timedelta(days=1 + (i // n) % 60)
        return debtor, on - timedelta(days=stages[0].offset), -1, on
    gap = stages[reached + 1].offset - stages[reached].offset
    due = SWEEP_DAY - timedelta(days=stages[reached].offset + (i // n) % gap)
    return debtor, due, reached, due + timedelta(days=stages[reached + 1].offset)


def _expected(book: Book, policy: Policy) -> Expected:
    stages = policy.stages
    per_debtor: dict[int, int] = {}
    fees = 0
    for j in range(book.due):
        i = j * book.step
        _, due, position, _ = _plan(i, book, stages)
        nxt = position + 1
        reached = max(s.position for s in stages if due + timedelta(days=s.offset) <= SWEEP_DAY)
        assert reached == nxt, "a due invoice would cross two stages: lower MAX_LAG"
        days = (SWEEP_DAY - due).days
        interest = (_amount(i) * policy.interest_rate_bp * days + 1_825_000) // 3_650_000
        fees += stages[nxt].fee + (stages[nxt].interest and policy.interest_rate_bp > 0 and interest > 0)
        d = _due_debtor(j, book.debtors)
        per_debtor[d] = per_debtor.get(d, 0) + 1
    history = sum(_plan(i, book, stages)[2] + 1 for i in range(book.invoices))
    shared = sum(1 for k in per_debtor.values() if k > 1)
    return Expected(book.due, len(per_debtor), fees, shared, history)


def _uuid(base: int, i: int) -> uuid.UUID:
    """Time-ordered like the application's UUIDv7 ids, and computable again from ``i``."""
    return uuid.UUID(int=base | i)


def _bases() -> tuple[int, int, int]:
    return new_id().int & ~LOW48, new_id().int & ~LOW48, new_id().int & ~LOW48


def _invoice_records(
    book: Book, stages: list[Stage], base: int, debtor_ids: list[uuid.UUID], batch_ids: list[uuid.UUID]
) -> Iterator[tuple[Any, ...]]:
    """In data.COPY_COLUMNS order; every invoice is open (booked and delivered)."""
    for i in range(book.invoices):
        d, due, _, _ = _plan(i, book, stages)
        yield (
            _uuid(base, i),
            f"DI-{i + 1:07d}",
            f"DN-{i + 1:07d}",
            debtor_ids[d],
            batch_ids[i // BATCH],
            due - timedelta(days=14),
            due,
            "EUR",
            _amount(i),
            None,
            "open",
            False,
            LOADED_AT,
            LOADED_AT,
        )


def _ledger_records(
    book: Book, stages: list[Stage], base: int, entry_base: int, debtor_ids: list[uuid.UUID]
) -> Iterator[tuple[Any, ...]]:
    """The booking of each invoice: the principal that statutory interest is charged on."""
    for i in range(book.invoices):
        d, due, _, _ = _plan(i, book, stages)
        issued = due - timedelta(days=14)
        yield (
            _uuid(entry_base, i),
            debtor_ids[d],
            _uuid(base, i),
            "invoice",
            _amount(i),
            "EUR",
            issued,
            "cli:bench",
            LOADED_AT,
        )


def _state_records(
    book: Book, stages: list[Stage], base: int, debtor_ids: list[uuid.UUID]
) -> Iterator[tuple[Any, ...]]:
    for i in range(book.invoices):
        d, due, position, on = _plan(i, book, stages)
        key = stages[position].key if position >= 0 else None
        yield (
            _uuid(base, i),
            debtor_ids[d],
            DEFAULT_POLICY_ID,
            due,
            "EUR",
            f"DI-{i + 1:07d}",
            f"DN-{i + 1:07d}",
            position,
            key,
            on,
            None,
            None,
            False,
            None,
            None,
            None,
            LOADED_AT,
        )


def _action_records(
    book: Book, stages: list[Stage], base: int, sweep_base: int, debtor_ids: list[uuid.UUID]
) -> Iterator[tuple[Any, ...]]:
    """What earlier daily sweeps decided: one row per stage each invoice has reached."""
    for i in range(book.invoices):
        d, due, position, _ = _plan(i, book, stages)
        for stage in stages[: position + 1]:
            day = due + timedelta(days=stage.offset)
            at = datetime.combine(day, HISTORY_TIME, tzinfo=UTC)
            yield (due, _uuid(base, i), stage.key, debtor_ids[d], _uuid(sweep_base, day.toordinal()), at)


# Loading, resetting, checking --------------------------------------------------------------------


async def _policy(conn: asyncpg.Connection) -> Policy:
    rows = await conn.fetch(
        "SELECT position, key, offset_days, fee_minor IS NOT NULL AND fee_currency = 'EUR' AS fee,"
        " charge_interest FROM dunning_stages WHERE policy_id = $1 ORDER BY position",
        DEFAULT_POLICY_ID,
    )
    stages = [Stage(r[0], r[1], r[2], r[3], r[4]) for r in rows]
    if [s.position for s in stages] != list(range(len(stages))) or len(stages) < 2:
        raise RuntimeError(f"unexpected stages of the default policy: {stages}")
    bp = await conn.fetchval("SELECT interest_rate_bp FROM dunning_policies WHERE id = $1", DEFAULT_POLICY_ID)
    return Policy(stages, int(bp))


async def _load(
    conn: asyncpg.Connection, book: Book, stages: list[Stage], debtor_ids: list[uuid.UUID]
) -> Load:
    existing = {r[0] for r in await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
    emptied = ", ".join(t for t in EMPTIED if t in existing)
    await conn.execute(
        f"TRUNCATE invoice_batches, invoices, dunning_states, dunning_actions, ledger_entries, {emptied} CASCADE"
    )
    await conn.execute(f"DROP TABLE IF EXISTS {SAVED}")
    base, entry_base, sweep_base = _bases()
    batch_ids = [new_id() for _ in range(-(-book.invoices // BATCH))]
    batches = [
        (
            bid,
            "approved",
            "bench",
            min(BATCH, book.invoices - k * BATCH),
            "{}",
            "cli:bench",
            LOADED_AT,
            "cli:bench",
            LOADED_AT,
        )
        for k, bid in enumerate(batch_ids)
    ]
    copies: list[tuple[str, Any, tuple[str, ...]]] = [
        (
            "invoice_batches",
            batches,
            (
                "id",
                "status",
                "source",
                "count",
                "totals",
                "created_by",
                "created_at",
                "decided_by",
                "decided_at",
            ),
        ),
        ("invoices", _invoice_records(book, stages, base, debtor_ids, batch_ids), data.COPY_COLUMNS),
        ("ledger_entries", _ledger_records(book, stages, base, entry_base, debtor_ids), LEDGER_COLUMNS),
        ("dunning_states", _state_records(book, stages, base, debtor_ids), STATE_COLUMNS),
        ("dunning_actions", _action_records(book, stages, base, sweep_base, debtor_ids), ACTION_COLUMNS),
    ]
    seconds: dict[str, float] = {}
    rows: dict[str, int] = {}
    # The rows are consistent by construction: skip the foreign-key triggers while loading.
    await conn.execute("SET session_replication_role = replica")
    try:
        for table, records, columns in copies:
            start = time.perf_counter()
            status = await conn.copy_records_to_table(table, records=records, columns=list(columns))
            seconds[table] = time.perf_counter() - start
            rows[table] = int(status.rsplit(" ", 1)[-1])
    finally:
        await conn.execute("RESET session_replication_role")
    start = time.perf_counter()
    await conn.execute("VACUUM (ANALYZE)")
    await conn.execute("CHECKPOINT")
    vacuum_s = time.perf_counter() - start
    await conn.execute(
        f"CREATE TABLE {SAVED} AS SELECT invoice_id, due_date, stage_position, stage_key, next_action_on, updated_at"
        f" FROM dunning_states WHERE next_action_on <= DATE '{SWEEP_DAY.isoformat()}'"
    )
    await conn.execute(f"ALTER TABLE {SAVED} ADD PRIMARY KEY (invoice_id)")
    await conn.execute(f"VACUUM (ANALYZE) {SAVED}")
    saved = await pg.count(conn, SAVED)
    if saved != book.due:
        raise RuntimeError(f"{book.label}: {saved} states are due after loading, not {book.due}")
    return Load(seconds, rows, vacuum_s, await _table_counts(conn))


async def _table_counts(conn: asyncpg.Connection) -> dict[str, int]:
    names = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1")
    return {r[0]: await pg.count(conn, r[0]) for r in names}


async def _reset(conn: asyncpg.Connection, book: Book, loaded: dict[str, int]) -> None:
    """Undo a sweep or a baseline, so that every timed run starts from the same state.

    The bench loads nothing into the tables emptied here; the sweep only appends to them. Foreign-key
    triggers are off while deleting: each deleted message would otherwise look for referencing
    actions, a scan of all `dunning_actions` since `message_id` has no index.
    """
    await conn.execute("SET session_replication_role = replica")
    try:
        await conn.execute(
            f"DELETE FROM dunning_actions a USING {SAVED} b"
            " WHERE a.due_date = b.due_date AND a.invoice_id = b.invoice_id AND a.created_at >= $1",
            NOW,
        )
        for table in EMPTIED:
            if table in loaded:
                await conn.execute(f"DELETE FROM {table}")
        await conn.execute("DELETE FROM ledger_entries WHERE kind IN ('fee', 'interest')")
    finally:
        await conn.execute("RESET session_replication_role")
    await conn.execute(
        f"UPDATE invoices i SET status = 'open', updated_at = $1 FROM {SAVED} b"
        " WHERE i.id = b.invoice_id AND i.status <> 'open'",
        LOADED_AT,
    )
    await conn.execute(
        f"UPDATE dunning_states s SET stage_position = b.stage_position, stage_key = b.stage_key,"
        f" next_action_on = b.next_action_on, updated_at = b.updated_at FROM {SAVED} b"
        " WHERE s.invoice_id = b.invoice_id AND (s.stage_position, s.stage_key, s.next_action_on)"
        " IS DISTINCT FROM (b.stage_position, b.stage_key, b.next_action_on)"
    )
    await conn.execute(
        f"VACUUM invoices, dunning_states, dunning_actions, ledger_entries, {', '.join(t for t in EMPTIED if t in loaded)}"
    )
    await conn.execute("CHECKPOINT")
    due = await conn.fetchval("SELECT count(*) FROM dunning_states WHERE next_action_on <= $1", SWEEP_DAY)
    if due != book.due:
        raise RuntimeError(f"{book.label}: {due} states are due after the reset, not {book.due}")
    if await conn.fetchval("SELECT count(*) FROM invoices WHERE status <> 'open'"):
        raise RuntimeError(f"{book.label}: invoices left in another status than open after the reset")
    counts = await _table_counts(conn)
    if counts != loaded:
        changed = {t: (loaded.get(t), n) for t, n in counts.items() if loaded.get(t) != n}
        raise RuntimeError(f"{book.label}: the reset left other row counts than the load: {changed}")


async def _check_sweep(conn: asyncpg.Connection, book: Book, expected: Expected, run: SweepRun) -> None:
    r = run.result
    found = (
        int(await conn.fetchval("SELECT count(*) FROM dunning_actions WHERE created_at >= $1", NOW)),
        await pg.count(conn, "messages"),
        int(await conn.fetchval("SELECT count(*) FROM ledger_entries WHERE kind IN ('fee', 'interest')")),
        int(await conn.fetchval("SELECT count(*) FROM dunning_states WHERE next_action_on <= $1", SWEEP_DAY)),
        int(
            await conn.fetchval(
                "SELECT count(*) FROM dunning_actions WHERE created_at >= $1 AND message_id IS NULL", NOW
            )
        ),
    )
    want = (expected.actions, expected.messages, expected.fees, 0, 0)
    if (r.actions, r.messages, r.fees) != want[:3] or found != want:
        raise RuntimeError(
            f"{book.label}: the sweep returned (actions, messages, fees) = {(r.actions, r.messages, r.fees)};"
            f" the database holds (actions, messages, fees, still due, unlinked actions) = {found};"
            f" expected {want}"
        )


def _check_time(ctx: Context, what: str) -> None:
    if time.monotonic() > ctx.deadline:
        raise TimeoutError(f"the bench ran out of time during {what}")
