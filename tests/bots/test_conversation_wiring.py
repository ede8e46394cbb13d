"""Staff notices reach Slack only after the debtor's transaction commits, and a failing Slack
never fails the debtor's answer (bots/conversation.py)."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from bots.conversation import StaffNotices
from bots.slack.notify import SlackStaffNotifier
from core.config import Settings
from core.conversation.context import StaffNotice
from core.db import Database
from core.debtors import service as debtors
from core.events.models import Event
from core.ports import FixedClock
from tests import factories
from tests.bots.slack.conftest import STAFF_CHANNEL, slack_settings
from tests.fakes.slack import FakeSlack


async def notices_for(settings: Settings, slack: FakeSlack, db: Database, clock: FixedClock) -> StaffNotices:
    notifier = SlackStaffNotifier.from_settings(slack_settings(settings, slack), db, clock)
    assert notifier is not None
    return StaffNotices(notifier)


async def human_notice(db: Database) -> StaffNotice:
    ext = await factories.debtor(db, name="Northwind Ltd")
    async with db.sessionmaker() as s:
        debtor = await debtors.get(s, ext)
    return StaffNotice("human", debtor.id, ext, debtor.name, "telegram", "42", "I want a person")


async def test_the_slack_post_waits_for_the_commit_and_a_rollback_posts_nothing(
    settings: Settings, slack: FakeSlack, db: Database, clock: FixedClock
) -> None:
    notices = await notices_for(settings, slack, db, clock)
    notice = await human_notice(db)

    with pytest.raises(RuntimeError):
        async with db.session_scope() as s:
            await notices(s, notice)
            raise RuntimeError("the debtor's update failed")
    await notices.drain()
    assert slack.calls_to("chat.postMessage") == []

    async with db.session_scope() as s:
        await notices(s, notice)
        await notices.drain()
        assert slack.calls_to("chat.postMessage") == []  # not yet: the transaction is open
    await notices.drain()
    [post] = slack.calls_to("chat.postMessage")
    assert post.body["channel"] == STAFF_CHANNEL and "Northwind" in str(post.body)


async def test_a_failing_slack_is_logged_and_the_debtors_transaction_stands(
    settings: Settings, slack: FakeSlack, db: Database, clock: FixedClock
) -> None:
    notices = await notices_for(settings, slack, db, clock)
    notice = await human_notice(db)
    slack.fail_next("chat.postMessage", 400, count=5)

    async with db.session_scope() as s:
        await notices(s, notice)
    await notices.drain()

    assert slack.calls_to("chat.postMessage") == []
    async with db.sessionmaker() as s:
        kinds = [e.type for e in (await s.scalars(select(Event))).all()]
    assert "conversation.human" in kinds
