"""Pure Block Kit builders compared directly, and the app manifest staff install from."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from pathlib import Path

import yaml

from bots.slack import views
from core.money import Money
from core.staff.service import BatchSummary, DebtorHit


def _summary(status: str = "pending_approval") -> BatchSummary:
    return BatchSummary(
        id=uuid.UUID(int=7),
        status=status,
        source="csv",
        count=2,
        totals=[Money(150_00, "EUR")],
        channel_mix={"email": 2},
        earliest_due=date(2026, 12, 1),
        samples=[("2026-1", "A <b> & Co", Money(100_00, "EUR"), date(2026, 12, 1))],
        created_by="api_key:abc",
        created_at=datetime(2026, 11, 24, 9, tzinfo=UTC),
        decided_by="staff:U1" if status != "pending_approval" else None,
        decided_at=datetime(2026, 11, 24, 9, 30, tzinfo=UTC) if status != "pending_approval" else None,
    )


def test_pause_modal() -> None:
    assert views.pause_modal("D-1", "Smit & <Zn>") == {
        "type": "modal",
        "callback_id": "pause_submit",
        "private_metadata": "D-1",
        "title": {"type": "plain_text", "text": "Pause dunning"},
        "submit": {"type": "plain_text", "text": "Save"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": [
            {
                "type": "section",
                "text": {
                    "type": "mrkdwn",
                    "text": "Dunning for *Smit &amp; &lt;Zn&gt;* stops until the date you give "
                    "(or until someone resumes it).",
                },
            },
            {
                "type": "input",
                "block_id": "reason",
                "label": {"type": "plain_text", "text": "Reason"},
                "optional": False,
                "element": {"type": "plain_text_input", "action_id": "value", "multiline": True},
            },
            {
                "type": "input",
                "block_id": "until",
                "optional": True,
                "label": {"type": "plain_text", "text": "Until (optional)"},
                "element": {"type": "datepicker", "action_id": "value"},
            },
        ],
    }


def test_batch_message_and_its_decided_form() -> None:
    pending = views.batch_message(_summary())
    assert pending[-1] == {
        "type": "actions",
        "block_id": "batch_decision",
        "elements": [
            {
                "type": "button",
                "text": {"type": "plain_text", "text": "Approve"},
                "action_id": "batch_approve",
                "value": "00000000-0000-0000-0000-000000000007",
                "style": "primary",
            },
            {
                "type": "button",
                "text": {"type": "plain_text", "text": "Reject"},
                "action_id": "batch_reject",
                "value": "00000000-0000-0000-0000-000000000007",
                "style": "danger",
            },
        ],
    }
    assert pending[2]["text"]["text"] == "• `2026-1` A &lt;b&gt; &amp; Co: €100.00, due 2026-12-01"
    decided = views.batch_decided(_summary("approved"), "<@U1>")
    assert decided[:-1] == pending[:-1]
    assert decided[-1] == {
        "type": "context",
        "elements": [
            {
                "type": "mrkdwn",
                "text": ":white_check_mark: *Approved* by <@U1> at 2026-11-24 09:30 UTC; "
                "the invoices go out at the distribution pace.",
            }
        ],
    }


def test_pick_list_has_one_open_button_per_debtor() -> None:
    blocks = views.pick_list(
        "smit", [DebtorHit("D-1", "Smit Bouw", 90.0), DebtorHit("D-2", "Smit Transport", 88.0)]
    )
    assert [(b["accessory"]["action_id"], b["accessory"]["value"]) for b in blocks[1:]] == [
        ("debtor_pick", "D-1"),
        ("debtor_pick", "D-2"),
    ]


def test_the_manifest_points_everything_at_slack_events(repo_root: Path) -> None:
    manifest = yaml.safe_load((repo_root / "bots/slack/manifest.yml").read_text())
    [command] = manifest["features"]["slash_commands"]
    settings = manifest["settings"]
    urls = {
        command["url"],
        settings["interactivity"]["request_url"],
        settings["event_subscriptions"]["request_url"],
    }
    assert command["command"] == "/ar"
    assert urls == {"https://duebot.example.com/slack/events"}
    assert {"commands", "chat:write"} <= set(manifest["oauth_config"]["scopes"]["bot"])
    assert "message.channels" in settings["event_subscriptions"]["bot_events"]
