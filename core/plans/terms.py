"""Plan arithmetic, pure: down payment, schedules that add up exactly, and the policy's verdict.

Rounding: the rest after the down payment is split evenly; what does not divide goes one minor unit
at a time onto the first instalments. So the instalments add up to the total exactly, they differ
by at most one minor unit, none is larger than a monthly amount the debtor asked for, and the
smallest is the last.

Dates: the down payment (number 0) falls on the plan's first day, instalment k (1…n) k intervals
later (calendar months for ``monthly``: 31 January + 1 month is 28/29 February).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from dateutil.relativedelta import relativedelta

from core.plans.models import Interval, PlanPolicy
from core.plans.schemas import Instalment, Outcome

MAX_INSTALMENTS = 1000


def add_intervals(start: date, interval: str, k: int) -> date:
    if interval == Interval.weekly:
        return start + timedelta(weeks=k)
    if interval == Interval.biweekly:
        return start + timedelta(weeks=2 * k)
    return start + relativedelta(months=k)


def down_payment(policy: PlanPolicy, total: int, currency: str) -> int:
    """The share due at once: the percentage (rounded up), at least the minimum, at most the total."""
    share = -(-total * policy.down_payment_bp // 10_000)
    minimum = policy.down_payment_min_minor if currency == policy.currency else 0
    return min(total, max(share, minimum))


def split(rest: int, n: int) -> list[int]:
    """``rest`` in ``n`` parts that add up exactly; the remainder one unit each on the first parts."""
    base, extra = divmod(rest, n)
    return [base + 1 if i < extra else base for i in range(n)]


def schedule(start: date, interval: str, down: int, rest: int, n: int) -> list[Instalment]:
    out = [Instalment(0, start, down)] if down else []
    out += [Instalment(k + 1, add_intervals(start, interval, k + 1), a) for k, a in enumerate(split(rest, n))]
    return out


def count_for_amount(rest: int, monthly_minor: int) -> int:
    """How many instalments of at most ``monthly_minor`` pay ``rest``."""
    return -(-rest // monthly_minor)


@dataclass(frozen=True)
class Verdict:
    outcome: Outcome
    instalments: int  # of the schedule to offer
    reason_code: str | None


def most_instalments(policy: PlanPolicy, start: date, rest: int, currency: str) -> tuple[int, str]:
    """The most instalments the policy allows for ``rest``, and the limit that binds."""
    limits: list[tuple[int, str]] = [(policy.max_instalments, "too_many_instalments")]
    latest = start + timedelta(days=policy.max_duration_days)
    n = 0
    while n < MAX_INSTALMENTS and add_intervals(start, policy.interval, n + 1) <= latest:
        n += 1
    limits.append((n, "too_long"))
    if currency == policy.currency and policy.min_instalment_minor > 0:
        limits.append((rest // policy.min_instalment_minor, "instalment_too_small"))
    n, code = min(limits, key=lambda item: item[0])
    return max(n, 1), code


def judge(policy: PlanPolicy, start: date, total: int, rest: int, currency: str, wanted: int) -> Verdict:
    """Accept ``wanted`` instalments, counter with the most allowed, or send to staff / refuse."""
    beyond: Outcome = "needs_approval" if policy.staff_approval else "refused"
    if policy.max_total_minor is not None and currency == policy.currency and total > policy.max_total_minor:
        return Verdict(beyond, wanted, "total_above_limit")
    allowed, code = most_instalments(policy, start, rest, currency)
    if wanted <= allowed:
        return Verdict("accepted", wanted, None)
    if wanted * 100 <= allowed * (100 + policy.counter_range_pct):
        return Verdict("counter", allowed, code)
    return Verdict(beyond, wanted, code)
