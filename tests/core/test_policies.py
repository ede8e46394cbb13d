"""Dunning policies: validation, the YAML file format, and upserts (stages replaced, audited, invoices placed)."""

from __future__ import annotations

import copy
from datetime import UTC, date, datetime
from typing import Any

import pytest
from pydantic import ValidationError
from sqlalchemy import func, select
from sqlmodel import col

from core.audit import Actor, AuditEvent
from core.db import Database
from core.dunning import policies
from core.dunning.models import DunningAction, DunningState
from core.dunning.schemas import PolicyIn, parse_rate_bp
from core.dunning.sweep import sweep
from core.errors import Conflict, InvalidInput, NotFound
from core.invoices import repository as invoice_repo
from core.ledger import service as ledger
from core.ledger.schemas import PaymentIn
from tests import factories

STAFF = Actor("test", "policy-editor")


def stage(key: str, offset: int, **over: Any) -> dict[str, Any]:
    return {
        "key": key,
        "offset_days": offset,
        "template": "reminder_overdue",
        "tone": "neutral",
        "channels": ["email", "sms"],
        **over,
    }


def body(*stages: dict[str, Any], **over: Any) -> dict[str, Any]:
    return {
        "name": "Small business",
        "interest_rate": "8.00",
        "stages": list(stages)
        or [
            stage("due_today", 0, template="reminder_due_today", tone="friendly"),
            stage("first", 7),
            stage("second", 14, template="reminder_second", fee={"amount": "15.00", "currency": "EUR"}),
            stage("agency", 45, template="agency_handoff", tone="firm", action="agency"),
        ],
        **over,
    }


def errors_of(data: dict[str, Any]) -> dict[str, str]:
    """field → error type, for a body that must be refused."""
    with pytest.raises(ValidationError) as caught:
        PolicyIn.model_validate(data)
    return {".".join(map(str, e["loc"])): e["type"] for e in caught.value.errors()}


def messages_of(data: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(ValidationError) as caught:
        PolicyIn.model_validate(data)
    return {".".join(map(str, e["loc"])): e["msg"] for e in caught.value.errors()}


# Validation -------------------------------------------------------------------------------------------


def test_a_good_policy_is_taken_with_its_fee_and_interest_in_minor_units() -> None:
    policy = PolicyIn.model_validate(body())
    assert policy.interest_rate == "8.00" and policy.interest_rate_bp == 800
    assert [s.key for s in policy.stages] == ["due_today", "first", "second", "agency"]
    second = policy.stages[2]
    assert second.fee is not None and (second.fee.minor, second.fee.currency) == (1500, "EUR")
    assert policy.stages[3].action == "agency"
    # The contact rules default to the seeded policy's.
    assert (policy.quiet_start_hour, policy.quiet_end_hour, policy.max_messages_per_week) == (21, 8, 3)


@pytest.mark.parametrize(
    ("text", "bp"), [("8", 800), ("8.00", 800), ("8.5", 850), ("12.15", 1215), ("0", 0), ("100.00", 10_000)]
)
def test_interest_rates_are_decimal_percent_strings(text: str, bp: int) -> None:
    assert parse_rate_bp(text) == bp
    assert PolicyIn.model_validate(body(interest_rate=text)).interest_rate_bp == bp


@pytest.mark.parametrize(
    ("value", "code"),
    [
        (8.0, "not_a_string"),
        (8, "not_a_string"),
        (True, "not_a_string"),
        ("8.125", "too_many_decimals"),
        ("-1", "negative"),
        ("100.01", "too_large"),
        ("1000", "too_large"),
        ("8,5", "malformed"),
        ("8%", "malformed"),
        ("", "malformed"),
        ("1e2", "malformed"),
    ],
)
def test_bad_interest_rates_are_refused(value: object, code: str) -> None:
    assert errors_of(body(interest_rate=value)) == {"interest_rate": code}


def test_a_decimal_comma_gets_a_hint() -> None:
    assert "not a comma" in messages_of(body(interest_rate="8,5"))["interest_rate"]


def test_two_stages_on_the_same_day_overlap() -> None:
    data = body(stage("a", 0), stage("b", 7), stage("c", 7))
    assert errors_of(data) == {"stages.2.offset_days": "overlapping_stages"}
    assert "stages.1 already falls on offset 7" in messages_of(data)["stages.2.offset_days"]


def test_two_stages_with_one_key_overlap() -> None:
    data = body(stage("first", 0), stage("first", 7))
    assert errors_of(data) == {"stages.1.key": "duplicate_stage"}
    assert "already used by stages.0" in messages_of(data)["stages.1.key"]


def test_stages_must_be_listed_by_increasing_offset() -> None:
    data = body(stage("a", 0), stage("b", 14), stage("c", 7))
    assert errors_of(data) == {"stages.2.offset_days": "stages_out_of_order"}
    assert "7 comes after 14" in messages_of(data)["stages.2.offset_days"]


def test_several_stage_problems_are_reported_together() -> None:
    data = body(stage("a", 0), stage("a", 0), stage("b", -5), stage("c", 3, action="agency"), stage("d", 9))
    assert errors_of(data) == {
        "stages.1.key": "duplicate_stage",
        "stages.1.offset_days": "overlapping_stages",
        "stages.2.offset_days": "stages_out_of_order",
        "stages.3.action": "agency_not_last",
    }


@pytest.mark.parametrize(
    ("over", "field", "code"),
    [
        ({"template": "reminder_third"}, "template", "unknown_template"),
        ({"tone": "rude"}, "tone", "unknown_tone"),
        ({"channels": ["email", "fax"]}, "channels", "unknown_channel"),
        ({"channels": ["email", "sms", "email"]}, "channels", "duplicate_channel"),
        ({"channels": []}, "channels", "too_short"),
        ({"action": "sue"}, "action", "literal_error"),
        ({"key": "First Reminder"}, "key", "string_pattern_mismatch"),
        ({"key": "issued"}, "key", "reserved_stage_key"),
        ({"offset_days": 366}, "offset_days", "less_than_equal"),
        ({"offset_days": -61}, "offset_days", "greater_than_equal"),
        ({"colour": "red"}, "colour", "extra_forbidden"),
    ],
)
def test_bad_stage_fields_are_named_with_their_stage(over: dict[str, Any], field: str, code: str) -> None:
    data = body(stage("a", 0), {**stage("b", 7), **over})
    assert errors_of(data) == {f"stages.1.{field}": code}


def test_unknown_names_list_the_known_ones() -> None:
    found = messages_of(body(stage("a", 0, template="nope", tone="rude", channels=["fax"])))
    assert "unknown template 'nope'; expected one of: invoice_delivery" in found["stages.0.template"]
    assert "friendly, neutral, firm" in found["stages.0.tone"]
    assert "unknown channel(s) 'fax'; expected: email, sms, telegram, whatsapp" in found["stages.0.channels"]


def test_only_the_last_stage_may_hand_over_to_the_agency() -> None:
    data = body(stage("a", 0, action="agency"), stage("b", 7))
    assert errors_of(data) == {"stages.0.action": "agency_not_last"}
    assert (
        PolicyIn.model_validate(body(stage("a", 0), stage("b", 7, action="agency"))).stages[1].action
        == "agency"
    )


@pytest.mark.parametrize(
    ("fee", "minor"),
    [({"amount": "15.00", "currency": "EUR"}, 1500), ({"amount": "15", "currency": "JPY"}, 15)],
)
def test_fees_are_decimal_strings_in_a_currency(fee: dict[str, str], minor: int) -> None:
    policy = PolicyIn.model_validate(body(stage("a", 0, fee=fee)))
    assert policy.stages[0].fee is not None and policy.stages[0].fee.minor == minor


@pytest.mark.parametrize(
    ("fee", "field", "code"),
    [
        ({"amount": 15.0, "currency": "EUR"}, "amount", "not_a_string"),
        ({"amount": "15.001", "currency": "EUR"}, "amount", "too_many_decimals"),
        ({"amount": "-1.00", "currency": "EUR"}, "amount", "negative"),
        ({"amount": "0.00", "currency": "EUR"}, "amount", "zero"),
        ({"amount": "15.00", "currency": "eur"}, "currency", "unknown_currency"),
        ({"amount": "15.00"}, "currency", "missing"),
    ],
)
def test_bad_fees_are_refused(fee: dict[str, Any], field: str, code: str) -> None:
    assert errors_of(body(stage("a", 0), stage("b", 7, fee=fee))) == {f"stages.1.fee.{field}": code}


@pytest.mark.parametrize(
    ("over", "field"),
    [
        ({"quiet_start_hour": 24}, "quiet_start_hour"),
        ({"quiet_end_hour": -1}, "quiet_end_hour"),
        ({"max_messages_per_week": 0}, "max_messages_per_week"),
        ({"max_messages_per_week": 51}, "max_messages_per_week"),
        ({"min_gap_hours": 721}, "min_gap_hours"),
        ({"segment": "Small Business"}, "segment"),
        ({"name": "  "}, "name"),
        ({"stages": []}, "stages"),
        ({"stages": [stage(f"s{i}", i) for i in range(21)]}, "stages"),
        ({"owner": "me"}, "owner"),
    ],
)
def test_bad_policy_fields_are_refused(over: dict[str, Any], field: str) -> None:
    assert list(errors_of(body(**over))) == [field]


# YAML -------------------------------------------------------------------------------------------------

GOOD_YAML = """\
# two segments
policies:
  - segment: smb
    name: Small business
    interest_rate: "8.00"
    stages:
      - {key: due_today, offset_days: 0, template: reminder_due_today, tone: friendly, channels: [email]}
      - key: second
        offset_days: 14
        template: reminder_second
        tone: neutral
        channels: [email, sms]
        fee: {amount: "15.00", currency: EUR}
  - segment: consumer
    name: Consumers
    stages:
      - {key: first, offset_days: 7, template: reminder_overdue, tone: friendly, channels: [sms, email]}
"""


def test_a_yaml_file_holds_policies_with_their_segments() -> None:
    loaded = policies.load_yaml(GOOD_YAML)
    assert [(p.segment, p.name, len(p.stages)) for p in loaded] == [
        ("smb", "Small business", 2),
        ("consumer", "Consumers", 1),
    ]
    fee = loaded[0].stages[1].fee
    assert fee is not None and fee.minor == 1500
    assert loaded[1].interest_rate_bp == 0


def test_a_yaml_syntax_error_names_its_line() -> None:
    text = GOOD_YAML.replace("    name: Consumers\n", "    name: Consumers\n   stages: [oops\n")
    with pytest.raises(InvalidInput) as caught:
        policies.load_yaml(text)
    (err,) = caught.value.errors
    assert "not valid YAML" in caught.value.message
    assert err.line == 16  # the badly indented line
    assert caught.value.message.endswith("(line 16)")


def test_a_tab_indent_is_a_syntax_error_on_its_line() -> None:
    with pytest.raises(InvalidInput) as caught:
        policies.load_yaml("policies:\n  - segment: smb\n\tname: x\n")
    assert caught.value.errors[0].line == 3


def test_yaml_validation_errors_name_the_policy_and_the_line() -> None:
    text = (
        GOOD_YAML.replace("tone: neutral", "tone: stern")
        .replace('interest_rate: "8.00"', "interest_rate: 8.00")
        .replace("channels: [sms, email]", "channels: [sms, pigeon]")
    )
    with pytest.raises(InvalidInput) as caught:
        policies.load_yaml(text)
    found = {".".join(map(str, e.loc)): e.line for e in caught.value.errors}
    assert found == {
        "policies.0.interest_rate": 5,
        "policies.0.stages.1.tone": 11,
        "policies.1.stages.0.channels": 17,
    }
    assert "3 error(s); nothing was loaded" in caught.value.message


def test_yaml_stage_overlaps_point_at_the_stage() -> None:
    text = GOOD_YAML.replace("offset_days: 14", "offset_days: 0")
    with pytest.raises(InvalidInput) as caught:
        policies.load_yaml(text)
    (err,) = caught.value.errors
    assert (err.loc, err.code, err.line) == (
        ("policies", 0, "stages", 1, "offset_days"),
        "overlapping_stages",
        9,
    )


@pytest.mark.parametrize(
    ("text", "field", "code"),
    [
        ("policies:\n  - name: x\n    stages: [{key: a, offset_days: 0, template: final_notice, "
         "tone: firm, channels: [email]}]\n", "policies.0.segment", "missing"),
        (GOOD_YAML.replace("segment: consumer", "segment: smb"), "policies.1.segment", "duplicate_segment"),
        ("policies: []\n", "policies", "too_short"),
        ("policies:\n  - 42\n", "policies.0", "model_type"),
        ("policies: x\npolicy: y\n", "policy", "extra_forbidden"),
    ],
)  # fmt: skip
def test_bad_policy_files(text: str, field: str, code: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        policies.load_yaml(text)
    assert (field, code) in [(".".join(map(str, e.loc)), e.code) for e in caught.value.errors]


@pytest.mark.parametrize("text", ["", "just text\n", "- a\n- b\n", "stages: []\n"])
def test_a_file_without_a_policies_list_is_refused(text: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        policies.load_yaml(text)
    assert "top-level 'policies:' list" in caught.value.message


def test_an_alias_bomb_is_refused() -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [*a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}]" for i in range(1, 12)]
    with pytest.raises(InvalidInput) as caught:
        policies.load_yaml("\n".join([*lines, "policies: [*a11]"]))
    assert caught.value.code == "too_large"


def test_unsafe_yaml_tags_are_refused() -> None:
    with pytest.raises(InvalidInput) as caught:
        policies.load_yaml("policies: !!python/object/apply:os.system ['true']\n")
    assert caught.value.errors[0].line == 1


# Upserts ----------------------------------------------------------------------------------------------


async def audit_events(db: Database, segment: str) -> list[AuditEvent]:
    async with db.sessionmaker() as s:
        rows = await s.scalars(
            select(AuditEvent)
            .where(col(AuditEvent.entity) == "dunning_policy", col(AuditEvent.entity_id) == segment)
            .order_by(col(AuditEvent.at))
        )
        return list(rows.all())


async def upsert(db: Database, segment: str, data: dict[str, Any]) -> policies.UpsertResult:
    async with db.session_scope() as s:
        return await policies.upsert_policy(s, segment, PolicyIn.model_validate(data), STAFF)


async def test_upsert_creates_then_replaces_the_stages_and_audits_each_change(db: Database) -> None:
    created = await upsert(db, "smb", body())
    assert (created.created, created.changed) == (True, True)
    assert [(s.position, s.key) for s in created.stages] == [
        (0, "due_today"),
        (1, "first"),
        (2, "second"),
        (3, "agency"),
    ]
    assert (created.stages[2].fee_minor, created.stages[2].fee_currency) == (1500, "EUR")
    assert created.policy.interest_rate_bp == 800

    again = await upsert(db, "smb", body())
    assert (again.created, again.changed) == (False, False)

    fewer = body(
        stage("late", 10, template="final_notice", tone="firm"), stage("later", 20), interest_rate="9.5"
    )
    replaced = await upsert(db, "smb", fewer)
    assert (replaced.created, replaced.changed) == (False, True)
    async with db.sessionmaker() as s:
        policy, stages = await policies.get_policy(s, "smb")
    assert [(s.position, s.key, s.offset_days, s.fee_minor) for s in stages] == [
        (0, "late", 10, None),
        (1, "later", 20, None),
    ]
    view = policies.policy_view(policy, stages)
    assert view["interest_rate"] == "9.50" and view["default"] is False

    events = await audit_events(db, "smb")
    assert [e.action for e in events] == ["dunning_policy.created", "dunning_policy.updated"]
    assert events[0].before is None and events[0].after is not None
    assert events[0].after["stages"][2]["fee"] == {"amount": "15.00", "currency": "EUR"}
    assert events[1].before == events[0].after
    assert events[1].after is not None and [s["key"] for s in events[1].after["stages"]] == ["late", "later"]
    assert (events[1].actor_type, events[1].actor_id) == ("test", "policy-editor")


async def test_only_settings_changed_keeps_the_stages(db: Database) -> None:
    await upsert(db, "smb", body())
    result = await upsert(db, "smb", body(max_messages_per_week=5))
    assert result.changed and result.rescheduled == 0
    events = await audit_events(db, "smb")
    assert events[-1].before is not None and events[-1].after is not None
    assert (events[-1].before["max_messages_per_week"], events[-1].after["max_messages_per_week"]) == (3, 5)
    assert events[-1].before["stages"] == events[-1].after["stages"]


async def test_policy_names_are_unique_across_segments(db: Database) -> None:
    with pytest.raises(Conflict) as caught:
        await upsert(db, "smb", body(name="default"))
    assert caught.value.errors[0].loc == ("name",)
    assert "already used by segment 'default'" in caught.value.message


async def test_a_body_naming_another_segment_is_refused(db: Database) -> None:
    with pytest.raises(InvalidInput) as caught:
        await upsert(db, "smb", body(segment="consumer"))
    assert caught.value.errors[0].loc == ("segment",)
    assert (await upsert(db, "smb", body(segment="smb"))).created


async def test_get_and_list(db: Database) -> None:
    await upsert(db, "consumer", body(name="Consumers"))
    async with db.sessionmaker() as s:
        listed = await policies.list_policies(s)
        with pytest.raises(NotFound):
            await policies.get_policy(s, "nobody")
    assert [p.segment for p, _ in listed] == ["consumer", "default"]
    assert [len(stages) for _, stages in listed] == [4, 6]


async def test_load_policies_is_all_or_nothing(db: Database) -> None:
    loaded = policies.load_yaml(GOOD_YAML.replace("name: Consumers", "name: default"))
    with pytest.raises(Conflict) as caught:
        async with db.session_scope() as s:
            await policies.load_policies(s, loaded, STAFF)
    assert caught.value.errors[0].loc == ("policies", 1, "name")
    assert caught.value.message.startswith("policies.1 (segment 'consumer'): ")
    async with db.sessionmaker() as s:
        assert [p.segment for p, _ in await policies.list_policies(s)] == ["default"]


# Invoices already in dunning when the stages change ---------------------------------------------------


def at(day: str) -> datetime:
    return datetime.fromisoformat(day).replace(hour=6, tzinfo=UTC)


async def run_sweep(db: Database, day: str) -> int:
    async with db.session_scope() as s:
        return (await sweep(s, now=at(day))).actions


async def state_of(db: Database, invoice_external_id: str) -> DunningState:
    async with db.sessionmaker() as s:
        invoice = await invoice_repo.get_by_external_id(s, invoice_external_id)
        assert invoice is not None
        found = await s.get(DunningState, invoice.id)
        assert found is not None
        return found


async def default_body(db: Database) -> dict[str, Any]:
    """The seeded default policy as a PUT body."""
    async with db.sessionmaker() as s:
        policy, stages = await policies.get_policy(s, "default")
    view = policies.policy_view(policy, stages)
    for key in ("segment", "default", "created_at", "updated_at"):
        view.pop(key)
    for st in view["stages"]:
        st.pop("position")
        if st["fee"] is None:
            st.pop("fee")
    return copy.deepcopy(view)


async def test_a_new_stage_in_front_does_not_block_invoices_already_under_way(db: Database) -> None:
    d = await factories.debtor(db)
    inv = await factories.invoice(db, d, issue_date=date(2026, 11, 1), due_date=date(2026, 11, 30))
    assert await run_sweep(db, "2026-11-27") == 1  # before_due
    assert await run_sweep(db, "2026-11-30") == 1  # due_today
    assert (await state_of(db, inv)).stage_position == 1

    data = await default_body(db)
    data["stages"].insert(0, stage("early", -7, template="reminder_before_due", tone="friendly"))
    result = await upsert(db, "default", data)
    assert result.rescheduled == 1
    # Kept at position 1, its next stage would be due_today again, which it already had (and which
    # the (invoice, stage) key would refuse forever). It is placed after due_today instead.
    state = await state_of(db, inv)
    assert (state.stage_position, state.next_action_on) == (2, date(2026, 12, 7))

    assert await run_sweep(db, "2026-12-06") == 0
    assert await run_sweep(db, "2026-12-07") == 1
    assert (await state_of(db, inv)).stage_key == "first_reminder"


async def test_moved_offsets_give_invoices_under_way_a_new_next_date(db: Database) -> None:
    d = await factories.debtor(db)
    inv = await factories.invoice(db, d, issue_date=date(2026, 11, 1), due_date=date(2026, 11, 30))
    paid = await factories.invoice(db, d, issue_date=date(2026, 11, 1), due_date=date(2026, 11, 30))
    assert await run_sweep(db, "2026-11-30") == 2  # due_today, for both
    async with db.session_scope() as s:
        await ledger.record_payment(
            s,
            PaymentIn(debtor_external_id=d, invoice_external_id=paid, currency="EUR", amount="100.00"),
            actor=STAFF,
            today=date(2026, 12, 1),
        )
    untouched = await state_of(db, paid)

    data = await default_body(db)
    assert data["stages"][2]["key"] == "first_reminder"
    data["stages"][2]["offset_days"] = 3  # was 7
    result = await upsert(db, "default", data)
    assert result.rescheduled == 1  # the paid invoice is left alone
    assert (await state_of(db, inv)).next_action_on == date(2026, 12, 3)
    assert (await state_of(db, paid)).next_action_on == untouched.next_action_on

    assert await run_sweep(db, "2026-12-03") == 1
    assert (await state_of(db, inv)).stage_key == "first_reminder"
    async with db.sessionmaker() as s:
        reminded = await s.scalar(
            select(func.count()).where(col(DunningAction.stage_key) == "first_reminder")
        )
    assert reminded == 1


async def test_invoices_past_the_end_of_a_shorter_policy_get_nothing_more(db: Database) -> None:
    d = await factories.debtor(db)
    inv = await factories.invoice(db, d, issue_date=date(2026, 9, 1), due_date=date(2026, 10, 1))
    assert await run_sweep(db, "2026-10-20") == 1  # second_reminder, position 3
    result = await upsert(
        db, "default", body(stage("one", 0, template="reminder_due_today"), stage("two", 5))
    )
    assert result.rescheduled == 1
    state = await state_of(db, inv)
    assert (state.stage_position, state.next_action_on) == (3, None)
    assert await run_sweep(db, "2026-12-31") == 0
