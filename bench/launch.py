"""Run one command and report its exit code, wall clock and peak RSS as JSON: `launch.py REPORT CMD...`.

Why a separate small process: Linux records the old address space's high-water mark in the
process's ``maxrss`` when it calls exec. CPython's subprocess spawns with vfork, so a child started
straight from the bench would report the *bench's* peak RSS (holding 100,000 rows) whenever that is
larger than its own. Started from this launcher (stdlib only, run with ``-I -S``, ~10 MB), the
command's ``ru_maxrss`` from ``os.wait4`` is its own peak. SIGINT and SIGTERM are forwarded.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from types import FrameType


def main(argv: list[str]) -> int:
    if len(argv) < 3:
        print("usage: launch.py REPORT CMD [ARG...]", file=sys.stderr)
        return 2
    report, cmd = argv[1], argv[2:]
    start = time.perf_counter()
    pid = os.posix_spawnp(cmd[0], cmd, dict(os.environ))

    def forward(signum: int, _frame: FrameType | None) -> None:
        os.kill(pid, signum)

    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGTERM, forward)
    _, status, usage = os.wait4(pid, 0)  # retried after a forwarded signal (PEP 475)
    wall = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    with open(report, "w") as out:
        json.dump({"pid": pid, "code": code, "wall_s": wall, "maxrss_kib": usage.ru_maxrss}, out)
    return code if code >= 0 else 128 - code


if __name__ == "__main__":
    sys.exit(main(sys.argv))
