"""What every benchmark shares: the run context, its figures, and the two files they end up in."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = ROOT / "bench"
RESULTS_JSON = BENCH_DIR / "results.json"
BENCHMARKS_MD = ROOT / "BENCHMARKS.md"
DEFAULT_DATABASE_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/duebot_bench"

_overridden: dict[str, int] = {}


def env_int(name: str, default: int, *, size: bool = True) -> int:
    """A number from the environment; a size other than its default marks the run as scaled."""
    raw = os.environ.get(name, "").strip()
    value = int(raw.replace("_", "")) if raw else default
    if value <= 0:
        raise SystemExit(f"{name} must be positive, not {raw!r}")
    if size and value != default:
        _overridden[name] = value
    return value


def overridden_sizes() -> dict[str, int]:
    return dict(_overridden)


@dataclass(frozen=True)
class Result:
    """One figure, as it appears in bench/results.json."""

    name: str
    value: float
    unit: str
    goal: str | None = None  # e.g. ">= 0.10" or "< 300"
    met: bool | None = None

    @classmethod
    def checked(cls, name: str, value: float, unit: str, op: str, target: float) -> Result:
        ops = {">=": value >= target, ">": value > target, "<=": value <= target, "<": value < target}
        shown = f"{target:.2f}" if abs(target) < 1 else f"{target:g}"
        return cls(name, value, unit, f"{op} {shown}", ops[op])

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Section:
    title: str
    results: list[Result]
    markdown: str  # the body under the section's heading


@dataclass
class Context:
    """Handed to every benchmark's run()."""

    database_url: str
    work_dir: Path
    deadline: float  # time.monotonic() by which everything must be done
    facts: dict[str, str] = field(default_factory=dict)  # machine facts, filled by the benchmarks

    @property
    def bin_dir(self) -> Path:
        return ROOT / ".venv" / "bin"

    def seconds_left(self) -> float:
        return max(1.0, self.deadline - time.monotonic())

    def subprocess_env(self, var_dir: Path) -> dict[str, str]:
        """The environment for `duebot ...` subprocesses: only the bench database, no Redis."""
        env = {
            k: v
            for k, v in os.environ.items()
            if not (k.startswith(("DUEBOT_", "BENCH_")) or k in ("DATABASE_URL", "REDIS_URL"))
        }
        env.update(
            DATABASE_URL=self.database_url,
            REDIS_URL="",  # fakeredis in-process
            DUEBOT_SECRET_KEY="bench",
            DUEBOT_LOG_LEVEL="WARNING",
            DUEBOT_VAR_DIR=str(var_dir),
        )
        return env


def _git_revision() -> str:
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{rev}{' (with uncommitted changes)' if dirty else ''}" if rev else "unknown"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_total() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    return "unknown"


def machine_facts() -> dict[str, str]:
    nproc = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "Date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "CPUs (`nproc`)": str(nproc),
        "CPU": _cpu_model(),
        "Memory": _memory_total(),
        "OS": f"{platform.system()} {platform.release()}",
        "Python": f"{platform.python_implementation()} {platform.python_version()}",
        "Commit": _git_revision(),
    }


def write_results(sections: list[Section], path: Path = RESULTS_JSON) -> None:
    entries = [r.as_json() for s in sections for r in s.results]
    path.write_text(json.dumps(entries, indent=2) + "\n")


def render_markdown(sections: list[Section], facts: dict[str, str], elapsed: float) -> str:
    lines = [
        "# Benchmarks",
        "",
        "Measured by `make bench` (`.venv/bin/python -m bench`), which rewrites this file and",
        "`bench/results.json` (one `{name, value, unit, goal, met}` entry per figure) on every run.",
        "Each run measures every section again; the figures below all come from one run.",
        "",
        "## Machine and run",
        "",
        "| | |",
        "|---|---|",
        *(f"| {k} | {v} |" for k, v in facts.items()),
        f"| Bench wall time | {elapsed:.0f} s |",
        "",
        "## Summary",
        "",
        "| Figure | Value | Unit | Goal | Met |",
        "|---|---:|---|---|---|",
    ]
    for s in sections:
        for r in s.results:
            met = "" if r.met is None else ("yes" if r.met else "**no**")
            lines.append(f"| `{r.name}` | {format_value(r.value)} | {r.unit} | {r.goal or ''} | {met} |")
    for s in sections:
        lines += ["", f"## {s.title}", "", s.markdown.strip()]
    return "\n".join(lines) + "\n"


def format_value(value: float) -> str:
    if value >= 1000:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.3f}"
