"""`duebot import` hands the new batch to the worker right after its commit, so that Slack shows
it at once (the worker's minute cron stays the safety net)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from redis import Redis

from core.config import Settings
from tests.cli.test_cli import (  # noqa: F401 (module fixtures)
    BATCH_ID,
    CSV_HEADER,
    DUEBOT,
    Duebot,
    _copy_db,
    migrated,
    seeded,
)


@pytest.fixture
def home(tmp_path: Path, seeded: Path) -> Duebot:  # noqa: F811
    out = Duebot(tmp_path)
    _copy_db(seeded, out.db_path)
    return out


def test_an_imported_batch_is_enqueued_for_posting_once(home: Duebot, settings: Settings) -> None:
    assert settings.redis_url, "these tests run with a Redis server (TEST_REDIS_URL)"
    path = home.write("new.csv", CSV_HEADER, "CLI-9,DEMO-1,CLI-2026-9,2026-10-01,2026-10-31,40.00,EUR")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DUEBOT_", "DATABASE_", "REDIS_"))}
    env |= {
        "DATABASE_URL": f"sqlite+aiosqlite:///{home.db_path}",
        "DUEBOT_VAR_DIR": str(home.home / "var"),
        "DUEBOT_LOG_LEVEL": "WARNING",
        "REDIS_URL": settings.redis_url,
    }

    def run() -> str:
        done = subprocess.run(  # noqa: S603
            [str(DUEBOT), "import", str(path)],
            cwd=home.home,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    match = BATCH_ID.search(run())
    assert match
    redis = Redis.from_url(settings.redis_url)
    try:
        assert redis.exists(f"arq:job:batch-post:{match.group(1)}") == 1
        queued = redis.zcard("arq:queue")
        assert "nothing changed" in run()  # the same file again: no new batch, no new job
        assert redis.zcard("arq:queue") == queued
    finally:
        redis.close()
