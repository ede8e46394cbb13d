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
* after the sweep's commit, timed apart and not part of the sweep: the event fan-out
  (``core.events.service.fan_out`` with no endpoint), which writes the sweep's stage events and
  builds the evidence files of the debtors it handed to the agency;
* the baseline: one raw ``INSERT INTO messages … SELECT`` over asyncpg that finds the same due rows
  and enqueues one message per debtor, timed from BEGIN to COMMIT.

When a book's sweep takes more than RATIO_GOAL times its baseline (or with BENCH_DUNNING_EXPLAIN=1)
the statements of its median sweep are replayed under EXPLAIN (ANALYZE, BUFFERS, WAL) in a transaction
that is rolled back, and the markdown names what costs what, with suggestions for known patterns.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import time
import uuid
from typing import Any

import asyncpg
from sqlalchemy import event, func, select
from sqlalchemy.dialects import postgresql
from sqlmodel import col

from bench import pg
from bench.dunning_book import (
    BASELINE_SQL,
    NOW,
    RATIO_GOAL,
    ROUNDS_BUDGET_S,
    SCALE_GOAL,
    SLOW_S,
    SWEEP_DAY,
    Book,
    Expected,
    Measured,
    Policy,
    SweepRun,
    _check_sweep,
    _check_time,
    _expected,
    _load,
    _policy,
    _reset,
)
from bench.dunning_report import _markdown, _profile
from bench.report import Context, Result, Section, env_int
from core.base import new_id
from core.db import Database
from core.dunning import sweep as sweep_module
from core.dunning.sweep import due_query, sweep
from core.events.models import Event, EventType
from core.events.service import fan_out


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
    statements = list(log.entries)
    # What the sweep leaves to the fan-out: stage events, the hand-offs' evidence (timed apart).
    start = time.perf_counter()
    async with db.session_scope() as session:
        await fan_out(session, [], NOW)
        files = await session.scalar(
            select(func.count())
            .select_from(Event)
            .where(
                col(Event.type) == EventType.handed_to_agency.value,
                col(Event.payload)["invoices"].is_not(None),
            )
        )
    fan_out_s = time.perf_counter() - start
    return SweepRun(seconds, result, statements, helpers.spent, fan_out_s, int(files or 0))


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
