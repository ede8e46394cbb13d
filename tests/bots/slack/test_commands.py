"""`/ar` through the real bolt stack: signatures, authorization, lookup, pause, resume, help."""

from __future__ import annotations

import json
import time
from datetime import date
from urllib.parse import urlencode

from sqlalchemy import select
from sqlmodel import col

from core.audit import AuditEvent
from core.db import Database
from core.debtors.models import Debtor
from tests import factories
from tests.bots.slack.conftest import ALLOWED, STRANGER, Staff, signed


async def _debtor(db: Database, external_id: str) -> Debtor:
    async with db.sessionmaker() as s:
        found = (await s.scalars(select(Debtor).where(col(Debtor.external_id) == external_id))).one()
        await s.refresh(found)
        return found


async def _audit(db: Database, action: str) -> list[AuditEvent]:
    async with db.sessionmaker() as s:
        return list((await s.scalars(select(AuditEvent).where(col(AuditEvent.action) == action))).all())


def _reply(staff: Staff, n: int = 0) -> str:
    """All text of the n-th answer sent to the response_url (blocks included)."""
    body = staff.fake.responses[n]
    return body.get("text", "") + "\n" + json.dumps(body.get("blocks", []), ensure_ascii=False)


async def test_bad_or_stale_signature_is_401_and_changes_nothing(staff: Staff, db: Database) -> None:
    await factories.debtor(db, "D-1", name="Bakkerij Smit")
    body = urlencode(
        {
            "command": "/ar",
            "text": "pause D-1 stop it",
            "user_id": ALLOWED,
            "response_url": staff.fake.response_url,
        }
    ).encode()
    forged = await staff.post(body, signed(body, secret="not-the-secret"))
    stale = await staff.post(body, signed(body, timestamp=int(time.time()) - 600))
    assert forged.status_code == 401
    assert stale.status_code == 401
    assert not (await _debtor(db, "D-1")).dunning_paused
    assert staff.fake.responses == []
    assert staff.fake.calls_to("chat.postMessage") == []


async def test_unknown_subcommand_gets_the_help(staff: Staff) -> None:
    response = await staff.command("frobnicate now")
    assert response.status_code == 200
    reply = _reply(staff)
    assert "I don't know `frobnicate`" in reply
    assert "/ar debtor <name or id>" in reply
    assert staff.fake.responses[0]["response_type"] == "ephemeral"


async def test_empty_command_and_help_show_the_help(staff: Staff) -> None:
    await staff.command("")
    await staff.command("help")
    assert all("/ar pause <debtor>" in _reply(staff, n) for n in (0, 1))


async def test_a_stranger_is_refused_politely_and_the_attempt_is_audited(staff: Staff, db: Database) -> None:
    await factories.debtor(db, "D-1", name="Bakkerij Smit")
    await staff.command("pause D-1 because", user=STRANGER)
    assert "not on the list of people who may use duebot" in _reply(staff)
    assert not (await _debtor(db, "D-1")).dunning_paused
    [refusal] = await _audit(db, "slack.refused")
    assert (refusal.actor_type, refusal.actor_id, refusal.actor_name) == ("staff", STRANGER, "name-ustranger")
    assert refusal.after == {"attempt": "/ar pause D-1 because", "needs": "SLACK_ALLOWED_USERS"}


async def test_debtor_by_external_id_shows_balance_invoices_state_and_buttons(
    staff: Staff, db: Database
) -> None:
    await factories.debtor(db, "D-7", name="Bakkerij Smit B.V.")
    await factories.invoice(db, "D-7", amount_minor=12_050, number="2026-07001", due_date=date(2026, 10, 31))
    await staff.command("debtor d-7")
    reply = _reply(staff)
    assert "Bakkerij Smit B.V." in reply
    assert "open €120.50, overdue €120.50" in reply
    assert "`2026-07001`" in reply and "24 days overdue" in reply
    assert "Dunning is running" in reply
    actions = next(b for b in staff.fake.responses[0]["blocks"] if b["type"] == "actions")
    assert [e["action_id"] for e in actions["elements"]] == ["pause_open", "payment_request", "refund_open"]


async def test_debtor_fuzzy_name_finds_the_one_close_match(staff: Staff, db: Database) -> None:
    await factories.debtor(db, "D-1", name="Bakkerij Smit B.V.")
    await factories.debtor(db, "D-2", name="Garage Jansen")
    await staff.command("debtor bakkerj smit")
    assert "*Bakkerij Smit B.V.*" in _reply(staff)
    assert "Pick one" not in _reply(staff)


async def test_several_matches_give_a_pick_list_and_picking_shows_the_card(
    staff: Staff, db: Database
) -> None:
    await factories.debtor(db, "D-1", name="Smit Bouw")
    await factories.debtor(db, "D-2", name="Smit Transport")
    await factories.debtor(db, "D-3", name="Garage Jansen")
    await staff.command("debtor smit")
    reply = _reply(staff)
    assert "2 debtors match “smit”. Pick one" in reply
    buttons = [b["accessory"] for b in staff.fake.responses[0]["blocks"] if "accessory" in b]
    assert sorted(b["value"] for b in buttons) == ["D-1", "D-2"]
    await staff.click("debtor_pick", "D-2")
    assert "*Smit Transport*" in _reply(staff, 1)
    assert staff.fake.responses[1]["replace_original"] is True


async def test_unknown_debtor_is_a_clear_message(staff: Staff, db: Database) -> None:
    await factories.debtor(db, "D-1", name="Garage Jansen")
    await staff.command("debtor Zwanenburg")
    assert "No debtor matches “Zwanenburg”" in _reply(staff)


async def test_pause_inline_with_until_and_reason_is_audited_with_the_slack_user(
    staff: Staff, db: Database
) -> None:
    await factories.debtor(db, "D-1", name="Garage Jansen")
    await staff.command("pause D-1 until 2026-12-15 waiting for the purchase order")
    debtor = await _debtor(db, "D-1")
    assert (debtor.dunning_paused, debtor.paused_until) == (True, date(2026, 12, 15))
    assert debtor.pause_reason == "waiting for the purchase order"
    assert "<@UALLOWED> paused dunning for *Garage Jansen* until 2026-12-15" in _reply(staff)
    [event] = await _audit(db, "debtor.paused")
    assert (event.actor_type, event.actor_id, event.actor_name) == ("staff", ALLOWED, "name-uallowed")


async def test_pause_with_a_bad_date_says_so(staff: Staff, db: Database) -> None:
    await factories.debtor(db, "D-1")
    await staff.command("pause D-1 until 15-12-2026 reason")
    assert "“15-12-2026” is not a date" in _reply(staff)
    assert not (await _debtor(db, "D-1")).dunning_paused


async def test_pause_in_the_past_inline_is_refused(staff: Staff, db: Database) -> None:
    await factories.debtor(db, "D-1")
    await staff.command("pause D-1 until 2026-11-01 reason")
    assert "a pause cannot end in the past" in _reply(staff)
    assert not (await _debtor(db, "D-1")).dunning_paused


async def test_pause_without_reason_opens_the_modal_and_a_past_date_is_a_field_error(
    staff: Staff, db: Database
) -> None:
    await factories.debtor(db, "D-1", name="Garage Jansen")
    await staff.command("pause D-1")
    [opened] = staff.fake.calls_to("views.open")
    view = opened.body["view"]
    assert view["callback_id"] == "pause_submit" and opened.body["trigger_id"] == "trigger-1"
    assert [b.get("block_id") for b in view["blocks"]][1:] == ["reason", "until"]
    metadata = view["private_metadata"]

    response = await staff.submit("pause_submit", {"reason": "talking", "until": "2026-11-20"}, metadata)
    assert response.json() == {
        "response_action": "errors",
        "errors": {"until": "The pause must end today (2026-11-24) or later."},
    }
    assert not (await _debtor(db, "D-1")).dunning_paused

    empty = await staff.submit("pause_submit", {"reason": " ", "until": None}, metadata)
    assert "reason" in empty.json()["errors"]

    ok = await staff.submit(
        "pause_submit", {"reason": "talking to their lawyer", "until": "2026-12-01"}, metadata
    )
    assert ok.status_code == 200 and ok.content in (b"", b"null")
    debtor = await _debtor(db, "D-1")
    assert (debtor.dunning_paused, debtor.paused_until, debtor.pause_reason) == (
        True,
        date(2026, 12, 1),
        "talking to their lawyer",
    )
    [note] = staff.fake.calls_to("chat.postEphemeral")
    assert note.body["channel"] == "CWORK" and note.body["user"] == ALLOWED
    assert "paused dunning for *Garage Jansen* until 2026-12-01" in note.body["text"]


async def test_resume_lifts_the_pause(staff: Staff, db: Database) -> None:
    await factories.debtor(db, "D-1", name="Garage Jansen")
    await staff.command("pause D-1 holiday")
    await staff.command("resume Garage Jansen")
    assert not (await _debtor(db, "D-1")).dunning_paused
    assert "<@UALLOWED> resumed dunning for *Garage Jansen*" in _reply(staff, 1)
    await staff.command("resume D-1")
    assert "was not paused; nothing changed" in _reply(staff, 2)


async def test_resume_button_on_the_card(staff: Staff, db: Database) -> None:
    await factories.debtor(db, "D-1", name="Garage Jansen")
    await staff.command("pause D-1 holiday")
    await staff.command("debtor D-1")
    actions = next(b for b in staff.fake.responses[1]["blocks"] if b["type"] == "actions")
    assert actions["elements"][0]["action_id"] == "resume"
    await staff.click("resume", "D-1")
    assert not (await _debtor(db, "D-1")).dunning_paused


async def test_buttons_of_other_modules_say_not_available_until_wired(staff: Staff, db: Database) -> None:
    await factories.debtor(db, "D-1")
    await staff.click("payment_request", "D-1")
    await staff.click("refund_open", "D-1")
    await staff.command("refund tr_123")
    assert all("not available in this installation yet" in _reply(staff, n) for n in range(3))


async def test_pause_button_on_the_card_opens_the_pause_modal(staff: Staff, db: Database) -> None:
    await factories.debtor(db, "D-1", name="Garage Jansen")
    await staff.click("pause_open", "D-1", channel="CWORK")
    [opened] = staff.fake.calls_to("views.open")
    assert opened.body["trigger_id"] == "trigger-2"
    assert json.loads(opened.body["view"]["private_metadata"]) == {"debtor": "D-1", "channel": "CWORK"}


async def test_the_card_shows_the_plan_when_the_plans_module_is_wired(staff: Staff, db: Database) -> None:
    async def plan_summary(session: object, external_id: str) -> str | None:
        return "3 instalments of €40.00, next on 2026-12-01" if external_id == "D-1" else None

    staff.hooks.plan_summary = plan_summary  # type: ignore[assignment]
    await factories.debtor(db, "D-1", name="Garage Jansen")
    await staff.command("debtor D-1")
    assert ":calendar: Payment plan: 3 instalments of €40.00, next on 2026-12-01" in _reply(staff)


async def test_a_command_whose_text_says_payload_is_still_a_command(staff: Staff, db: Database) -> None:
    await factories.debtor(db, "D-1", name="Payload Logistics")
    response = await staff.command("debtor payload logistics")
    assert response.status_code == 200
    assert "*Payload Logistics*" in _reply(staff)
    body = urlencode({"command": "/ar", "text": "debtor payload", "user_id": ALLOWED}).encode()
    forged = await staff.post(body, signed(body, secret="not-the-secret"))
    assert forged.status_code == 401
