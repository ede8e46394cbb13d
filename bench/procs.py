"""Subprocesses measured by the kernel: exit code, wall clock and peak RSS from os.wait4().

Every command runs under ``bench/launch.py`` (see there why), in its own process group so that a
time-out can take down the launcher and the command together. ``ru_maxrss`` is KiB on Linux.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil

LAUNCHER = Path(__file__).resolve().parent / "launch.py"


@dataclass
class Exit:
    code: int
    peak_rss_mb: float  # ru_maxrss of the command (not the launcher), MiB
    wall_s: float  # from spawn to reaping, measured by the launcher


class Launched:
    """A command started through the launcher; ``finish()`` reaps it and reads its report."""

    def __init__(self, cmd: list[str], *, env: dict[str, str], cwd: Path, log: Path, report: Path) -> None:
        report.unlink(missing_ok=True)
        self.report = report
        self.log = log
        with log.open("wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-I", "-S", str(LAUNCHER), str(report), *cmd],
                env=env,
                cwd=cwd,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def running(self) -> bool:
        pid, _, _ = os.wait4(self.proc.pid, os.WNOHANG)
        if pid == 0:
            return True
        self.proc.returncode = -1  # reaped here; Popen must not wait for it again
        return False

    def command_pid(self) -> int | None:
        """The command's own pid (the launcher's child), once it exists."""
        with contextlib.suppress(psutil.Error):
            children = psutil.Process(self.proc.pid).children()
            if children:
                return children[0].pid
        return None

    def signal(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.proc.pid, signum)  # the launcher forwards it

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)

    def finish(self, timeout: float) -> Exit:
        """Wait for the launcher (everything is killed after ``timeout`` s) and read the report."""
        if self.proc.returncode is None:
            timer = threading.Timer(timeout, self.kill)
            timer.start()
            try:
                os.wait4(self.proc.pid, 0)
            except BaseException:  # e.g. the bench's own time limit: take the command down with us
                self.kill()
                os.wait4(self.proc.pid, 0)
                raise
            finally:
                timer.cancel()
                self.proc.returncode = -1
        try:
            data = json.loads(self.report.read_text())
        except (OSError, ValueError) as exc:
            raise RuntimeError(f"the command left no report (killed?):\n{tail(self.log)}") from exc
        return Exit(int(data["code"]), int(data["maxrss_kib"]) / 1024, float(data["wall_s"]))


def tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def run_measured(cmd: list[str], *, env: dict[str, str], cwd: Path, log: Path, timeout: float) -> Exit:
    """Run ``cmd`` to completion; its stdout and stderr go to ``log``."""
    return Launched(cmd, env=env, cwd=cwd, log=log, report=log.with_suffix(".rusage.json")).finish(timeout)


def vm_hwm_mb(pid: int) -> float | None:
    """The kernel's high-water mark of a live process's resident set (VmHWM), MiB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """`duebot serve` (one uvicorn process, no workers) on a free port of 127.0.0.1; or, with
    ``command`` (the port → the command line), another server that answers ``GET /healthz``."""

    def __init__(
        self,
        duebot: Path,
        *,
        env: dict[str, str],
        cwd: Path,
        log: Path,
        command: Callable[[int], list[str]] | None = None,
    ) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        if command is not None:
            self._cmd = command(self.port)
        else:
            self._cmd = [str(duebot), "serve", "--host", "127.0.0.1", "--port", str(self.port)]
        self._env = env
        self._cwd = cwd
        self.log = log
        self._launched: Launched | None = None
        self.exit: Exit | None = None

    def start(self, timeout: float = 60.0) -> None:
        launched = Launched(
            self._cmd, env=self._env, cwd=self._cwd, log=self.log, report=self.log.with_suffix(".rusage.json")
        )
        self._launched = launched
        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=2.0) as client:
            while time.monotonic() < deadline:
                if not launched.running():
                    self.exit = launched.finish(5.0)
                    raise RuntimeError(f"the server exited with {self.exit.code}:\n{tail(self.log)}")
                try:
                    if client.get(f"{self.base_url}/healthz").status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"the server did not answer /healthz within {timeout:.0f} s:\n{tail(self.log)}")

    @property
    def pid(self) -> int:
        assert self._launched is not None
        pid = self._launched.command_pid()
        assert pid is not None, "the server is not running"
        return pid

    def rss_mb(self) -> float:
        """The server's current resident set (psutil)."""
        return float(psutil.Process(self.pid).memory_info().rss) / 1024 / 1024

    def hwm_mb(self) -> float | None:
        return vm_hwm_mb(self.pid)

    def stop(self, timeout: float = 30.0) -> Exit:
        """SIGINT (uvicorn's graceful shutdown), SIGKILL after ``timeout``; returns the rusage."""
        if self.exit is not None:
            return self.exit
        assert self._launched is not None
        self._launched.signal(signal.SIGINT)
        self.exit = self._launched.finish(timeout)
        return self.exit
