"""The dunning sweep: against a raw INSERT … SELECT of the same due rows, and against a smaller book.

Two books, loaded one after the other into their own database (``<bench database>_dunning``) with
asyncpg COPY: a small one (100,000 open invoices, 10% due on the sweep day) and a large one
(1,000,000 invoices, 1% due). Both have the same 10,000 due invoices, for the same debtors, at the
same stages, so that the sweep has the same work to do in both; only the book around them differs.

Per book, up to ``repeats`` timed rounds (after an untimed one that warms SQLAlchemy's compile
cache and the prepared statements, unless the first sweep is slow enough for that not to matter;
no new round once the counted sweeps took ROUNDS_BUDGET_S), each run from the same state (what the
previous run wrote deleted, the due states restored from a saved copy, VACUUM, CHECKPOINT):

* the sweep: ``core.dunning.sweep.sweep(session, now=...)`` inside ``Database.session_scope()``,
  timed from opening the scope to its commit; every statement's round trip is logged, and so is the
  time inside each helper coroutine the sweep module calls from other core modules;
* the baseline: one raw ``INSERT INTO messages … SELECT`` over asyncpg that finds the same due rows
  and enqueues one message per debtor, timed from BEGIN to COMMIT.

When a book's sweep takes more than RATIO_GOAL times its baseline (or with BENCH_DUNNING_EXPLAIN=1)
the statements of its median sweep are replayed under EXPLAIN (ANALYZE, BUFFERS) in a transaction
that is rolled back, and the markdown names what costs what, with suggestions for known patterns.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import re
import statistics
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from typing import Any

import asyncpg
from sqlalchemy import event
from sqlalchemy.dialects import postgresql

from bench import data, pg
from bench.report import Context, Result, Section, env_int
from core.base import new_id
from core.db import Database
from core.dunning import sweep as sweep_module
from core.dunning.sweep import SweepResult, due_query, sweep

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
ACTION_COLUMNS = ("invoice_id", "stage_key", "debtor_id", "sweep_id", "created_at")
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


def run(ctx: Context) -> Section:
    big_n = env_int("BENCH_DUNNING_INVOICES", 1_000_000)
    small_n = env_int("BENCH_DUNNING_SMALL_INVOICES", 100_000)
    due = env_int("BENCH_DUNNING_DUE", 10_000)
    n_debtors = env_int("BENCH_DUNNING_DEBTORS", 100_000)
    repeats = env_int("BENCH_DUNNING_REPEATS", 3, size=False)
    if due > min(big_n, small_n, n_debtors):
        raise SystemExit("BENCH_DUNNING_DUE must not exceed either book's invoices nor the debtors")
    small = Book("100k_10pct", small_n, due, n_debtors)
    big = Book("1m_1pct", big_n, due, n_debtors)

    url = pg.sibling_url(ctx.database_url, "dunning")
    print(f"dunning: recreating {url.rsplit('/', 1)[-1]} and migrating", flush=True)
    pg.recreate_and_migrate(url)
    small_m, big_m = asyncio.run(_measure(ctx, url, small, big, repeats))

    ratio = big_m.sweep_s / big_m.baseline_s
    scale = small_m.sweep_s / big_m.sweep_s
    results = [
        Result("dunning.sweep.seconds_1m_1pct", round(big_m.sweep_s, 4), "s"),
        Result("dunning.insert_select.seconds_1m_1pct", round(big_m.baseline_s, 4), "s"),
        Result.checked("dunning.sweep.ratio_to_insert_select", round(ratio, 3), "ratio", "<=", RATIO_GOAL),
        Result("dunning.sweep.seconds_100k_10pct", round(small_m.sweep_s, 4), "s"),
        Result.checked("dunning.sweep.ratio_100k10_vs_1m1", round(scale, 3), "ratio", "<=", SCALE_GOAL),
        Result.checked("dunning.sweep.ratio_1m1_vs_100k10", round(1 / scale, 3), "ratio", "<=", SCALE_GOAL),
    ]
    title = "Dunning sweep: against INSERT … SELECT, and 1M against 100k invoices"
    return Section(title, results, _markdown(big_m, small_m))


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
            yield (_uuid(base, i), stage.key, debtor_ids[d], _uuid(sweep_base, day.toordinal()), at)


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
        f"CREATE TABLE {SAVED} AS SELECT invoice_id, stage_position, stage_key, next_action_on, updated_at"
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
            " WHERE a.invoice_id = b.invoice_id AND a.created_at >= $1",
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


# Timing ------------------------------------------------------------------------------------------


class StatementLog:
    """Every statement SQLAlchemy sends, with its round trip (cursor execute to result)."""

    def __init__(self, db: Database) -> None:
        self.entries: list[tuple[str, Any, bool, float]] = []
        self._engine = db.engine.sync_engine
        event.listen(self._engine, "before_cursor_execute", self._before)
        event.listen(self._engine, "after_cursor_execute", self._after)

    def _before(self, conn: Any, _cursor: Any, _stmt: str, _params: Any, _ctx: Any, _many: bool) -> None:
        conn.info["bench_started"] = time.perf_counter()

    def _after(self, conn: Any, _cursor: Any, stmt: str, params: Any, _ctx: Any, many: bool) -> None:
        started = conn.info.pop("bench_started", None)
        if started is not None:
            self.entries.append((stmt, params, many, time.perf_counter() - started))

    def close(self) -> None:
        event.remove(self._engine, "before_cursor_execute", self._before)
        event.remove(self._engine, "after_cursor_execute", self._after)


class HelperTimer:
    """Times the coroutines ``core.dunning.sweep`` calls from other core modules (its helpers).

    They are wrapped in that module's namespace for the duration of a sweep and put back after; the
    wrapper costs two clock reads a call.
    """

    def __init__(self) -> None:
        self.spent: dict[str, tuple[int, float]] = {}
        self._saved: dict[str, Any] = {}

    def __enter__(self) -> HelperTimer:
        for name, fn in list(vars(sweep_module).items()):
            module = getattr(fn, "__module__", "") or ""
            if (
                inspect.iscoroutinefunction(fn)
                and module.startswith("core.")
                and module != sweep_module.__name__
            ):
                self._saved[name] = fn
                setattr(sweep_module, name, self._wrap(f"{module}.{name}", fn))
        return self

    def __exit__(self, *_exc: object) -> None:
        for name, fn in self._saved.items():
            setattr(sweep_module, name, fn)

    def _wrap(self, label: str, fn: Any) -> Any:
        async def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return await fn(*args, **kwargs)
            finally:
                calls, seconds = self.spent.get(label, (0, 0.0))
                self.spent[label] = (calls + 1, seconds + time.perf_counter() - start)

        return timed


async def _time_sweep(db: Database, log: StatementLog) -> SweepRun:
    log.entries.clear()
    with HelperTimer() as helpers:
        start = time.perf_counter()
        async with db.session_scope() as session:
            result = await sweep(session, now=NOW)
        seconds = time.perf_counter() - start
    return SweepRun(seconds, result, list(log.entries), helpers.spent)


async def _time_baseline(conn: asyncpg.Connection, book: Book, expected: Expected) -> float:
    start = time.perf_counter()
    async with conn.transaction():
        status = await conn.execute(BASELINE_SQL, SWEEP_DAY, NOW, new_id())
    seconds = time.perf_counter() - start
    inserted = int(status.rsplit(" ", 1)[-1])
    found = await pg.count(conn, "messages")
    if inserted != expected.messages or found != expected.messages:
        raise RuntimeError(
            f"{book.label}: the INSERT … SELECT wrote {inserted} messages ({found} found),"
            f" not {expected.messages}"
        )
    return seconds


def _check_time(ctx: Context, what: str) -> None:
    if time.monotonic() > ctx.deadline:
        raise TimeoutError(f"the bench ran out of time during {what}")


async def _measure_book(
    ctx: Context,
    url: str,
    conn: asyncpg.Connection,
    book: Book,
    policy: Policy,
    debtor_ids: list[uuid.UUID],
    repeats: int,
) -> Measured:
    _check_time(ctx, f"loading {book.label}")
    expected = _expected(book, policy)
    print(f"dunning: loading {book.invoices:,} invoices ({book.due:,} due) with COPY", flush=True)
    load = await _load(conn, book, policy.stages, debtor_ids)
    print(
        f"dunning: loaded in {sum(load.seconds.values()):.1f} s"
        f" (+ {load.vacuum_s:.1f} s VACUUM ANALYZE, CHECKPOINT)",
        flush=True,
    )
    if load.rows["dunning_actions"] != expected.history:
        raise RuntimeError(
            f"{book.label}: {load.rows['dunning_actions']} earlier actions, not {expected.history}"
        )
    db = Database.from_url(url)
    log = StatementLog(db)
    rounds: list[tuple[SweepRun, float]] = []
    warmup: tuple[SweepRun, float] | None = None
    try:
        await db.ping()
        while len(rounds) < repeats:
            _check_time(ctx, f"the dunning sweep of {book.label}")
            await _reset(conn, book, load.counts)
            swept = await _time_sweep(db, log)
            await _check_sweep(conn, book, expected, swept)
            await _reset(conn, book, load.counts)
            baseline = await _time_baseline(conn, book, expected)
            first = warmup is None and not rounds
            if first and swept.seconds < SLOW_S:
                warmup = (swept, baseline)
                name = "warm-up"
            else:
                rounds.append((swept, baseline))
                name = f"round {len(rounds)}"
            print(
                f"dunning: {book.label} {name}: sweep {swept.seconds:.3f} s, INSERT … SELECT {baseline:.3f} s",
                flush=True,
            )
            spent = sum(r.seconds for r, _ in rounds)
            if rounds and spent > ROUNDS_BUDGET_S and len(rounds) < repeats:
                print(f"dunning: {book.label}: {spent:.0f} s of sweeps, no further round", flush=True)
                break
        await _reset(conn, book, load.counts)
    finally:
        log.close()
        await db.dispose()
    m = Measured(book, expected, load, warmup, [s for s, _ in rounds], [b for _, b in rounds], policy.stages)
    compiled = due_query(SWEEP_DAY).compile(
        dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}
    )
    m.explain = "\n".join(r[0] for r in await conn.fetch(f"EXPLAIN {compiled}"))
    if m.sweep_s > RATIO_GOAL * m.baseline_s or os.environ.get("BENCH_DUNNING_EXPLAIN", "") not in ("", "0"):
        await _profile(ctx, url, conn, m)
    return m


async def _measure(ctx: Context, url: str, small: Book, big: Book, repeats: int) -> tuple[Measured, Measured]:
    conn = await pg.connect(url)
    try:
        policy = await _policy(conn)
        externals = [f"DD-{i:06d}" for i in range(1, big.debtors + 1)]
        ids = await pg.seed_debtors(conn, externals)
        debtor_ids = [ids[e] for e in externals]
        small_m = await _measure_book(ctx, url, conn, small, policy, debtor_ids, repeats)
        big_m = await _measure_book(ctx, url, conn, big, policy, debtor_ids, repeats)
    finally:
        await conn.close()
    return small_m, big_m


# Where the time goes -----------------------------------------------------------------------------

PROFILE_CALLS = 2  # statements sent once per debtor or invoice: replay only the first few


def _label(stmt: str) -> str:
    """The statement's first words: ``UPDATE dunning_states``, ``SELECT … FROM dunning_actions``."""
    s = " ".join(stmt.split())
    if s.startswith("SELECT count(*)"):
        return "SELECT count(*)"
    m = re.match(r"(INSERT INTO|UPDATE|DELETE FROM) (\w+)", s) or re.match(r"SELECT .*? FROM (\w+)", s)
    if m is None:
        return s[:40]
    return f"{m.group(1)} {m.group(2)}" if m.re.groups == 2 else f"SELECT … FROM {m.group(1)}"


@dataclass
class Statement:
    sql: str
    label: str
    calls: int
    seconds: float  # all its calls together, in the median sweep


def statements(run: SweepRun) -> list[Statement]:
    """The median sweep's statements, identical SQL together, in the order they were first sent."""
    by_sql: dict[str, Statement] = {}
    for sql, _, _, seconds in run.statements:
        st = by_sql.setdefault(sql, Statement(sql, _label(sql), 0, 0.0))
        st.calls += 1
        st.seconds += seconds
    return list(by_sql.values())


async def _profile(ctx: Context, url: str, conn: asyncpg.Connection, m: Measured) -> None:
    """EXPLAIN (ANALYZE, BUFFERS) the median sweep's statements, replayed in one rolled-back transaction.

    A statement sent many times (once per debtor, say) is replayed PROFILE_CALLS times; the plan kept
    is the last one.
    """
    _check_time(ctx, f"profiling the sweep of {m.book.label}")
    print(
        f"dunning: {m.book.label}: profiling the sweep's statements (EXPLAIN ANALYZE, rolled back)",
        flush=True,
    )
    db = Database.from_url(url)
    replayed: dict[str, int] = {}
    try:
        await _reset(conn, m.book, m.load.counts)
        async with db.engine.connect() as sa_conn:
            tx = await sa_conn.begin()
            try:
                for sql, params, many, _ in m.median_run.statements:
                    if many or replayed.get(sql, 0) >= PROFILE_CALLS:
                        continue
                    replayed[sql] = replayed.get(sql, 0) + 1
                    res = await sa_conn.exec_driver_sql(f"EXPLAIN (ANALYZE, BUFFERS) {sql}", params)
                    plan = "\n".join(row[0] for row in res.all())
                    found = re.search(r"Execution Time: ([\d.]+) ms", plan)
                    m.profile[sql] = (float(found.group(1)) if found else 0.0, plan)
            finally:
                await tx.rollback()
        await _reset(conn, m.book, m.load.counts)
    finally:
        await db.dispose()
    out = ctx.work_dir / f"dunning-explain-{m.book.label}.txt"
    out.write_text(
        "\n\n".join(
            f"-- {_label(sql)} ({ms:.1f} ms)\n{sql}\n\n{plan}" for sql, (ms, plan) in m.profile.items()
        )
        + "\n"
    )
    print(f"dunning: plans written to {out}", flush=True)


_NODE = re.compile(r"^\s*(?:->\s+)?(.*?)\s+\(cost=.*actual time=[\d.]+\.\.[\d.]+ rows=(\d+) loops=(\d+)\)")


def plan_facts(plan: str, calls: int, work: int) -> list[str]:
    """What makes a statement cost more than its rows: scans repeated at least 100 times (within the
    plan, or once per call) that discard rows each time, sequential scans of far more rows than the
    work due, and foreign-key triggers taking a large share."""
    lines = plan.splitlines()
    found = []
    for k, line in enumerate(lines):
        node = _NODE.search(line)
        if not node:
            continue
        name, rows, loops = node.group(1), int(node.group(2)), int(node.group(3))
        details = []
        for detail in lines[k + 1 : k + 5]:
            if _NODE.search(detail):
                break
            details.append(detail.strip())
        conds = "; ".join(d for d in details if d.startswith(("Index Cond:", "Filter:", "Recheck Cond:")))
        removed = next(
            (re.search(r"Rows Removed by Filter: (\d+)", d) for d in details if "Removed by Filter" in d),
            None,
        )
        if loops * calls >= 100 and removed is not None and int(removed.group(1)) >= 100:
            times = f"{loops:,} times per statement" if calls == 1 else f"once in each of {calls:,} calls"
            found.append(
                f"`{name}` runs {times} and discards {int(removed.group(1)):,} rows each time ({conds})"
            )
        elif name.startswith("Seq Scan") and rows * loops >= 10 * work:
            found.append(f"`{name}` reads {rows * loops:,} rows for {work:,} due ({conds or 'no filter'})")
    triggers = re.findall(r"Trigger for constraint (\w+): time=([\d.]+) calls=(\d+)", plan)
    total = re.search(r"Execution Time: ([\d.]+) ms", plan)
    spent = sum(float(t) for _, t, _ in triggers)
    if total and triggers and spent >= 0.2 * float(total.group(1)):
        names = ", ".join(f"`{n}` {float(t):.0f} ms" for n, t, _ in triggers)
        found.append(
            f"foreign-key triggers take {spent:,.0f} of its {float(total.group(1)):,.0f} ms"
            f" ({names}; {triggers[0][2]} calls each)"
        )
    return found


def _plan_uses(plan: str, index: str) -> bool:
    return re.search(rf"\b{re.escape(index)}\b", plan) is not None


def _keyed(run: SweepRun) -> dict[tuple[str, int], Statement]:
    """Statements keyed by (label, ordinal among the distinct statements of that label)."""
    seen: dict[str, int] = {}
    out = {}
    for st in statements(run):
        n = seen.get(st.label, 0)
        seen[st.label] = n + 1
        out[(st.label, n)] = st
    return out


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:,.0f}" if seconds >= 0.0095 else f"{seconds * 1000:.1f}"


def _markdown(big: Measured, small: Measured) -> str:
    stages = ", ".join(f"{s.key} ({s.offset:+d} d)" for s in big.stages)
    e = big.expected
    lines = [
        f"**Data.** Two books in their own database, loaded one after the other: {small.book.invoices:,}"
        f" open invoices with {small.book.percent:g}% due on the sweep day ({SWEEP_DAY.isoformat()}),"
        f" then {big.book.invoices:,} with {big.book.percent:g}% due. Both have the same {e.actions:,} due"
        f" invoices for the same {e.messages:,} debtors at the same stages ({e.shared_debtors:,} debtors have"
        " three due invoices, the others one), so the sweep has the same work in both; only the book around"
        f" it differs. {big.book.debtors:,} debtors; invoice amounts 1.00 to 999.99 EUR; the seeded default"
        f" policy for every invoice: {stages}. The due invoices are every {big.book.step}th"
        f" (resp. {small.book.step}th) row of the table; their next stages are in proportion"
        f" {':'.join(str(len(big.stages) - k) for k in range(len(big.stages)))} from the first to the last"
        " (more invoices get a first reminder than go to the agency); each is at the stage before its"
        f" next one, which fell on the sweep day or up to {MAX_LAG} days before (none crosses two"
        f" stages); the sweep must write {e.actions:,} actions, {e.messages:,} messages and {e.fees:,} fee and"
        " interest entries. Every other invoice has reached stage -1 to "
        f"{len(big.stages) - 2} and its next stage is 1 to 60 days ahead. Besides invoices and"
        " `dunning_states`, each book has one `invoice` ledger entry per invoice (the principal that"
        " statutory interest is charged on) and the `dunning_actions` of earlier sweeps: one row per stage"
        " each invoice has reached, one sweep id per day, no message"
        f" ({small.expected.history:,} resp. {big.expected.history:,} rows). `messages`, `events` and"
        " `audit_events` start empty. Every table is loaded with asyncpg COPY into the migrated schema (its"
        " indexes in place; foreign-key triggers off, `session_replication_role = replica`), then"
        " `VACUUM (ANALYZE)` and `CHECKPOINT`:",
        "",
        "| Book | " + " | ".join(f"`{t}`" for t in big.load.seconds) + " | VACUUM ANALYZE |",
        "|---|" + "---:|" * (len(big.load.seconds) + 1),
    ]
    for m in (small, big):
        cells = [f"{m.load.rows[t]:,} in {m.load.seconds[t]:.1f} s" for t in m.load.seconds]
        lines.append(f"| {m.book.label} | " + " | ".join(cells) + f" | {m.load.vacuum_s:.1f} s |")
    lines += [
        "",
        "**Method.** Per book, rounds of: reset, the sweep, reset, the baseline. The **sweep** is"
        " `core.dunning.sweep.sweep(session, now=...)` inside one `Database.session_scope()` of a"
        " `core.db.Database` on the bench database, timed from opening the scope to its commit. The"
        " **baseline** is the least a sweep must do: one `INSERT INTO messages … SELECT DISTINCT ON"
        " (debtor_id) … FROM dunning_states … JOIN dunning_stages … WHERE next_action_on <= $1` with"
        " `gen_random_uuid()` (a state has a next action only while its invoice is open, so the invoices"
        " need not be read), one message per due debtor, over"
        " one asyncpg connection, timed from BEGIN to COMMIT. The **reset** deletes this sweep's"
        " `dunning_actions`, the fee and interest entries, and everything in `messages`, `events`,"
        " `webhook_deliveries` and `audit_events` (foreign-key triggers off), sets invoices back to `open`, restores the due"
        " `dunning_states` from a copy saved after loading, then runs `VACUUM` on the touched tables and"
        " `CHECKPOINT`; it checks that every table has its loaded row count again. After each sweep the"
        f" bench checks what it returned and what the database holds: {e.actions:,} new actions, all"
        f" linked to a message; {e.messages:,} messages; {e.fees:,} fee and interest entries; no state"
        f" still due. After each baseline: {e.messages:,} messages. A first round whose sweep takes less"
        f" than {SLOW_S:.0f} s only warms up (SQLAlchemy's compile cache, prepared statements) and is not"
        f" counted; no new round starts once the counted sweeps of a book took {ROUNDS_BUDGET_S:.0f} s"
        " together. Figures are medians of the counted rounds.",
        "",
        "| Book | Invoices | Due | Sweep (s) | INSERT … SELECT (s) | Sweep ÷ INSERT … SELECT | Counted rounds |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for m in (small, big):
        runs = ", ".join(f"{r.seconds:.3f}" for r in m.sweeps)
        warm = f"; warm-up {m.warmup[0].seconds:.3f} s" if m.warmup else ""
        lines.append(
            f"| {m.book.label} | {m.book.invoices:,} | {m.book.due:,} ({m.book.percent:g}%) | {m.sweep_s:.3f} |"
            f" {m.baseline_s:.3f} | {m.sweep_s / m.baseline_s:.2f} | {len(m.sweeps)} ({runs} s{warm}) |"
        )
    ratio = big.sweep_s / big.baseline_s
    scale = small.sweep_s / big.sweep_s
    lines += [
        "",
        f"Goal 1: the sweep of the {big.book.label} book at most {RATIO_GOAL:g} times the INSERT … SELECT:"
        f" **{ratio:.2f}** ({'met' if ratio <= RATIO_GOAL else 'missed'}). Goal 2: the same work due in"
        f" a book ten times smaller, time ratio at most {SCALE_GOAL:g}: {small.book.label} ÷"
        f" {big.book.label} = **{scale:.2f}**, and the other way round {1 / scale:.2f}"
        f" ({'met' if max(scale, 1 / scale) <= SCALE_GOAL else 'missed'}). Both directions are reported:"
        " the issue's ratio is the small book's time over the large one's; the other direction shows the"
        " cost growing with the book.",
        "",
    ]
    uses = _plan_uses(big.explain, NEXT_ACTION_INDEX)
    lines += [
        f"**Index.** `EXPLAIN` of `due_query({SWEEP_DAY.isoformat()})` on the {big.book.label} book"
        f" {'uses' if uses else '**does not use**'} `{NEXT_ACTION_INDEX}`:",
        "",
        "```text",
        big.explain,
        "```",
        "",
    ]
    lines += _time_table(big, small)
    for m in (small, big):
        if m.profile:
            lines += _profile_markdown(m)
    return "\n".join(lines)


def _time_table(big: Measured, small: Measured) -> list[str]:
    b, sm = _keyed(big.median_run), _keyed(small.median_run)
    lines = [
        "**Where the sweep's time goes** (the median sweep of each book; the round trip of every"
        " statement SQLAlchemy sends, identical SQL added up; the rest is Python, driver-level COPY"
        " (audit, events) and the commit):",
        "",
        f"| Statement | Calls ({small.book.label}) | ms ({small.book.label}) | Calls ({big.book.label}) |"
        f" ms ({big.book.label}) | Share of the {big.book.label} sweep |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for key in list(dict.fromkeys([*b, *sm])):
        x, y = sm.get(key), b.get(key)
        name = key[0] + (f" ({key[1] + 1})" if key[1] or (key[0], 1) in b or (key[0], 1) in sm else "")
        lines.append(
            f"| `{name}` | {x.calls if x else ''} | {_ms(x.seconds) if x else ''} | {y.calls if y else ''} |"
            f" {_ms(y.seconds) if y else ''} | {f'{y.seconds / big.median_run.seconds:.1%}' if y else ''} |"
        )
    rest = [m.median_run.seconds - sum(st.seconds for st in statements(m.median_run)) for m in (small, big)]
    lines.append(
        f"| everything else (Python, COPY, commit) | | {_ms(rest[0])} | | {_ms(rest[1])} |"
        f" {rest[1] / big.median_run.seconds:.1%} |"
    )
    lines.append(
        f"| **the sweep** | | **{_ms(small.median_run.seconds)}** | | **{_ms(big.median_run.seconds)}** | |"
    )
    helpers = list(dict.fromkeys([*small.median_run.helpers, *big.median_run.helpers]))
    if helpers:
        lines += [
            "",
            "Of which inside the helpers the sweep calls from other modules (their statements, Python and"
            " driver-level COPY included):",
            "",
            f"| Helper | ms ({small.book.label}) | ms ({big.book.label}) | Share of the {big.book.label} sweep |",
            "|---|---:|---:|---:|",
        ]
        for name in helpers:
            hx, hy = small.median_run.helpers.get(name), big.median_run.helpers.get(name)
            share = f"{hy[1] / big.median_run.seconds:.1%}" if hy else ""
            lines.append(f"| `{name}` | {_ms(hx[1]) if hx else ''} | {_ms(hy[1]) if hy else ''} | {share} |")
        lines += _helper_hints(big)
    return [*lines, ""]


def _helper_hints(m: Measured) -> list[str]:
    run = m.median_run
    hints = []
    for name, (_, seconds) in run.helpers.items():
        if name.endswith(".hand_over") and seconds >= 0.2 * run.seconds:
            most = max(st.calls for st in statements(run))
            per_debtor = [st for st in statements(run) if st.calls == most]
            queries = sum(st.calls for st in per_debtor)
            hints.append(
                f"\nThe agency hand-off takes {seconds / run.seconds:.0%} of the {m.book.label} sweep: for each"
                f" debtor with an invoice at the agency stage it builds the evidence file with"
                f" {len(per_debtor)} queries and ORM objects ({queries:,} queries in this sweep). Suggestion:"
                " build all files with one query per table (`debtor_id = ANY(:ids)`) and group in Python,"
                " or hand off (evidence and event) in a job after the sweep commits."
            )
    return hints


def _profile_markdown(m: Measured) -> list[str]:
    run_stats = {st.sql: st for st in statements(m.median_run)}
    top = sorted(run_stats.values(), key=lambda st: st.seconds, reverse=True)[:3]
    lines = [
        f"**Profile of the {m.book.label} sweep** (it took more than {RATIO_GOAL:g} times its INSERT …"
        " SELECT, or BENCH_DUNNING_EXPLAIN=1): the median sweep's statements replayed under `EXPLAIN (ANALYZE, BUFFERS)` in one transaction that is rolled back"
        f" (a statement sent more than {PROFILE_CALLS} times is replayed {PROFILE_CALLS} times). The"
        " costliest:",
        "",
    ]
    for k, st in enumerate(top, 1):
        ms, plan = m.profile.get(st.sql, (0.0, ""))
        per = (
            f"{st.calls:,} calls, {_ms(st.seconds)} ms together" if st.calls > 1 else f"{_ms(st.seconds)} ms"
        )
        lines.append(f"{k}. `{st.label}`: {per} ({st.seconds / m.median_run.seconds:.0%} of the sweep).")
        for spot in plan_facts(plan, st.calls, m.expected.actions):
            lines.append(f"   - {spot}.")
        for hint in _hints(st, plan):
            lines.append(f"   - Suggestion: {hint}")
        lines += [
            "",
            f"   <details><summary>SQL and plan ({ms:,.1f} ms under EXPLAIN ANALYZE)</summary>",
            "",
            "   ```sql",
            *("   " + x for x in _shorten(st.sql).splitlines()),
            "   ```",
            "",
            "   ```text",
            *("   " + x for x in _shorten(plan).splitlines()),
            "   ```",
            "",
            "   </details>",
            "",
        ]
    lines += [f"All plans: `bench/.work/dunning-explain-{m.book.label}.txt` (not committed).", ""]
    return lines


def _shorten(text: str) -> str:
    """Long IN lists and arrays of UUIDs cut down to their first two."""
    text = re.sub(r"(\$\d+::UUID, \$\d+::UUID)(, \$\d+::UUID)+", r"\1, …", text)
    return re.sub(r"('\{[0-9a-f-]{36},[0-9a-f-]{36})(,[0-9a-f-]{36})+", r"\1,…", text)


def _hints(st: Statement, plan: str) -> list[str]:
    """Concrete fixes for the patterns this bench has found in the sweep (core/ is not the bench's)."""
    hints = []
    if st.label == "UPDATE dunning_states" and re.search(
        r"Index Scan using ix_dunning_actions_sweep_id[^\n]*loops=(\d{3,})", plan
    ):
        hints.append(
            "each correlated subquery of the advance (`stage_position`, `stage_key`, `next_action_on`)"
            " finds its action through `ix_dunning_actions_sweep_id` and filters all of this sweep's"
            " actions by `invoice_id`, once per state: quadratic in the work due. The planner picks that"
            " index when it expects few rows for the new `sweep_id` (it cannot know the rows this"
            " transaction just inserted), so the plan flips with the statistics. Write the advance as one"
            " `UPDATE dunning_states s SET stage_position = cur.position, stage_key = a.stage_key,"
            " next_action_on = i.due_date + nxt.offset_days, updated_at = :now FROM dunning_actions a"
            " JOIN dunning_stages cur ON cur.key = a.stage_key JOIN invoices i ON i.id = a.invoice_id"
            " LEFT JOIN dunning_stages nxt ON nxt.policy_id = cur.policy_id AND nxt.position ="
            " cur.position + 1 WHERE a.sweep_id = :sweep AND s.invoice_id = a.invoice_id AND"
            " cur.policy_id = s.policy_id` (one pass over this sweep's actions), or replace"
            " `ix_dunning_actions_sweep_id` by an index on `(sweep_id, invoice_id)` (adding it beside"
            " the old one is not enough: the planner keeps the old one)."
        )
    if re.search(r"Seq Scan on dunning_actions", plan) and "debtor_id" in plan and st.calls > 1:
        hints.append(
            "this statement is sent once per debtor (the agency hand-off's evidence file) and, with no"
            " index on `dunning_actions.debtor_id`, each call reads the whole action history: cost grows"
            " with the book, not the work. Add an index on `dunning_actions (debtor_id)`, or build the"
            " evidence of all handed-over debtors with a few statements on `debtor_id = ANY(:ids)`."
        )
    if st.label == "UPDATE dunning_actions" and "Trigger for constraint" in plan:
        hints.append(
            "linking each new action to its message is a second pass over the actions, and PostgreSQL"
            " checks every foreign key of a row again when the transaction that inserted it updates it."
            " Insert the messages first (one per debtor of the due set) and the actions after, with"
            " `message_id` from a join on `(sweep_id, debtor_id)`; the UPDATE goes away."
        )
    if st.label == "INSERT INTO dunning_actions" and re.search(r"Seq Scan on (invoices|debtors)", plan):
        hints.append(
            "the due query finds its rows through `ix_dunning_states_next_action`, but then hash-joins"
            " them to a full scan of `invoices` (and `debtors`): that part grows with the book. Keep what"
            " it needs from the invoice on `dunning_states` (the due date; clear `next_action_on` when the"
            " invoice leaves approved/open) so the due query reads only the due states, or make sure it"
            " probes `pk_invoices` per due row."
        )
    return hints
