"""`python -m bench`: run every benchmark, then write BENCHMARKS.md and bench/results.json.

Environment:
  BENCH_DATABASE_URL  default postgresql+asyncpg://postgres@127.0.0.1:5432/duebot_bench (dropped and
                      recreated on every run)
  BENCH_TIMEOUT       seconds for the whole run (default 3600); the run stops itself after that
  BENCH_WRITE         1: write the files even for a scaled-down run; 0: never write them
  BENCH_STRICT        1: exit 1 when a goal is missed (default: report it, exit 0)
  BENCH_ONLY          comma-separated module names (intake,dunning,...): run only those; the files
                      are then left alone unless BENCH_WRITE=1
and each benchmark's own settings (intake: BENCH_INVOICES, BENCH_DEBTORS, BENCH_COPY_REPEATS,
BENCH_IDEMPOTENCY=0 to send no Idempotency-Key; dunning, in <database>_dunning: BENCH_DUNNING_INVOICES,
BENCH_DUNNING_SMALL_INVOICES, BENCH_DUNNING_DUE, BENCH_DUNNING_DEBTORS, BENCH_DUNNING_REPEATS,
BENCH_DUNNING_EXPLAIN=1 to profile the sweep's statements even when every goal is met; payments, in
<database>_payments: BENCH_WEBHOOKS, BENCH_WEBHOOK_CONCURRENCY; telegram, in <database>_telegram:
BENCH_TELEGRAM_REMINDERS, BENCH_TELEGRAM_CHATS, BENCH_REDIS_URL for the shared rate limiter; bank, in
<database>_bank: BENCH_BANK_LINES, BENCH_BANK_INVOICES, BENCH_BANK_DEBTORS; telegram webhook, in
<database>_tgwebhook: BENCH_TGWEBHOOK_UPDATES, BENCH_TGWEBHOOK_CONCURRENCY, BENCH_TGWEBHOOK_WARMUP).
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Callable
from types import FrameType

from bench import bank, dunning, intake, payments, telegram_delivery, telegram_webhook
from bench.report import (
    BENCH_DIR,
    BENCHMARKS_MD,
    DEFAULT_DATABASE_URL,
    RESULTS_JSON,
    Context,
    Section,
    env_int,
    format_value,
    machine_facts,
    overridden_sizes,
    render_markdown,
    write_results,
)

# Later benchmarks add their module here; every run measures all of them again.
BENCHMARKS: list[Callable[[Context], Section]] = [
    intake.run,
    dunning.run,
    telegram_delivery.run,
    payments.run,
    bank.run,
    telegram_webhook.run,
]


def _selected() -> list[Callable[[Context], Section]]:
    only = {name.strip() for name in os.environ.get("BENCH_ONLY", "").split(",") if name.strip()}
    known = {bench.__module__.rsplit(".", 1)[-1] for bench in BENCHMARKS}
    if only - known:
        raise SystemExit(
            f"BENCH_ONLY: unknown {', '.join(sorted(only - known))}; known: {', '.join(sorted(known))}"
        )
    return [bench for bench in BENCHMARKS if not only or bench.__module__.rsplit(".", 1)[-1] in only]


def _out_of_time(_signum: int, _frame: FrameType | None) -> None:
    raise TimeoutError("the bench exceeded BENCH_TIMEOUT")


def main() -> int:
    timeout = env_int("BENCH_TIMEOUT", 3600, size=False)
    work_dir = BENCH_DIR / ".work"
    work_dir.mkdir(exist_ok=True)
    ctx = Context(
        database_url=os.environ.get("BENCH_DATABASE_URL", DEFAULT_DATABASE_URL),
        work_dir=work_dir,
        deadline=time.monotonic() + timeout,
    )
    signal.signal(signal.SIGALRM, _out_of_time)
    signal.alarm(timeout + 30)  # the phases watch ctx.deadline; this is the backstop
    started = time.monotonic()
    try:
        sections = [bench(ctx) for bench in _selected()]
    finally:
        signal.alarm(0)
    elapsed = time.monotonic() - started

    facts = machine_facts() | ctx.facts
    scaled: dict[str, object] = dict(overridden_sizes())
    if os.environ.get("BENCH_ONLY"):
        scaled["BENCH_ONLY"] = os.environ["BENCH_ONLY"]
    if scaled:
        facts["Scaled down"] = ", ".join(f"{k}={v}" for k, v in scaled.items())
    markdown = render_markdown(sections, facts, elapsed)

    print()
    for section in sections:
        for r in section.results:
            met = "" if r.met is None else ("  met" if r.met else "  MISSED")
            goal = f"  (goal {r.goal})" if r.goal else ""
            print(f"{r.name:32} {format_value(r.value):>12} {r.unit}{goal}{met}")
    write = os.environ.get("BENCH_WRITE", "")
    if write == "0" or (scaled and write != "1"):
        why = f"scaled-down run ({facts['Scaled down']})" if scaled else "BENCH_WRITE=0"
        print(f"\n{why}: {BENCHMARKS_MD.name} and {RESULTS_JSON.name} left alone")
    else:
        write_results(sections, RESULTS_JSON)
        BENCHMARKS_MD.write_text(markdown)
        print(f"\nwrote {BENCHMARKS_MD} and {RESULTS_JSON}")

    missed = [r.name for s in sections for r in s.results if r.met is False]
    if missed:
        print(f"goals missed: {', '.join(missed)}")
    return 1 if missed and os.environ.get("BENCH_STRICT") == "1" else 0


if __name__ == "__main__":
    sys.exit(main())
