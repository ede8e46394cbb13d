"""Where the dunning sweep's time goes: its statements replayed under EXPLAIN (ANALYZE, BUFFERS, WAL), and
the markdown section of BENCHMARKS.md. See bench/dunning.py for the method."""

from __future__ import annotations

import re
import statistics
from dataclasses import dataclass

import asyncpg

from bench.dunning_book import (
    MAX_LAG,
    NEXT_ACTION_INDEX,
    RATIO_GOAL,
    ROUNDS_BUDGET_S,
    SCALE_GOAL,
    SLOW_S,
    SWEEP_DAY,
    Measured,
    SweepRun,
    _check_time,
    _reset,
)
from bench.report import Context
from core.db import Database

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
    """EXPLAIN (ANALYZE, BUFFERS, WAL) the median sweep's statements, replayed in one rolled-back
    transaction (WAL: the records, full-page images and bytes each statement wrote).

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
                    if not _explainable(sql):  # CREATE/DROP/ANALYZE of the sweep's temporary table
                        await sa_conn.exec_driver_sql(sql, params)
                        continue
                    if many or replayed.get(sql, 0) >= PROFILE_CALLS:
                        continue
                    replayed[sql] = replayed.get(sql, 0) + 1
                    res = await sa_conn.exec_driver_sql(f"EXPLAIN (ANALYZE, BUFFERS, WAL) {sql}", params)
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


def _explainable(sql: str) -> bool:
    return sql.lstrip().split(None, 1)[0].upper() in ("SELECT", "INSERT", "UPDATE", "DELETE", "WITH")


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
        " `core.db.Database` on the bench database, timed from opening the scope to its commit. Its"
        " webhook events are no part of deciding: it records one work item for its stage events and the"
        " agency hand-offs with their evidence files pending, and the event fan-out"
        " (`core.events.service.fan_out`, which the worker runs every minute) writes the one"
        " `dunning.stage_reached` event per invoice and builds the evidence files after the commit; the"
        " bench runs it right after each sweep and times it apart (below the table). The"
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
    lines += [
        "",
        "After each sweep, not part of it: the event fan-out that writes its stage events and builds the"
        " evidence files of the debtors handed to the agency (median): "
        + "; ".join(
            f"{m.book.label} {statistics.median(r.fan_out_s for r in m.sweeps):.3f} s"
            f" ({m.median_run.evidence_files:,} files)"
            for m in (small, big)
        )
        + ".",
    ]
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
                f"\nThe agency hand-off takes {seconds / run.seconds:.0%} of the {m.book.label} sweep"
                f" ({queries:,} queries in {len(per_debtor)} statements sent most often). It should only mark"
                " the invoices and record the events; their evidence files are built by the event fan-out."
            )
    return hints


def _profile_markdown(m: Measured) -> list[str]:
    run_stats = {st.sql: st for st in statements(m.median_run)}
    top = sorted(run_stats.values(), key=lambda st: st.seconds, reverse=True)[:3]
    lines = [
        f"**Profile of the {m.book.label} sweep** (it took more than {RATIO_GOAL:g} times its INSERT …"
        " SELECT, or BENCH_DUNNING_EXPLAIN=1): the median sweep's statements replayed under `EXPLAIN (ANALYZE, BUFFERS, WAL)` in one transaction that is rolled back"
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
