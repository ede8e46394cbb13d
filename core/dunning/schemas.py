"""Input types for dunning policies: the PUT body of /api/v1/dunning/policies/{segment} and one YAML entry.

Per-field rules live on the fields. The rules across stages (unique keys, one stage per day, offsets in
increasing order, the agency hand-off only last) are checked on the whole policy and reported at the
stage that breaks them, e.g. ``stages.2.offset_days``.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from core.debtors.models import Channel
from core.dunning.models import StageAction
from core.money import parse_minor
from core.templates import TEMPLATE_NAMES, TONES
from core.validation import AmountText, Currency, minor_for

SEGMENT_PATTERN = r"^[a-z0-9_-]+$"
STAGE_KEY_PATTERN = r"^[a-z0-9_]+$"
CHANNEL_NAMES: tuple[str, ...] = tuple(c.value for c in Channel)
MAX_STAGES = 20
# Stage keys that mean something else in dunning_actions: "issued" records the invoice's own delivery.
RESERVED_STAGE_KEYS: tuple[str, ...] = ("issued",)
MAX_INTEREST_BP = 100_00  # 100 % a year
_RATE = re.compile(r"(-?)([0-9]+)(?:\.([0-9]+))?")


def parse_rate_bp(value: object) -> int:
    """An annual percentage as a decimal string ("8", "8.00", "12.15") → basis points (800, 1215)."""
    if isinstance(value, bool) or not isinstance(value, str):
        raise PydanticCustomError(
            "not_a_string", 'interest_rate must be a decimal string such as "8.00", not a number'
        )
    match = _RATE.fullmatch(value.strip())
    if match is None:
        hint = "; write the decimals after a dot, not a comma" if "," in value else ""
        raise PydanticCustomError(
            "malformed", f'interest_rate {value!r} is not a percentage such as "8.00"{hint}'
        )
    sign, whole, frac = match.groups()
    if sign:
        raise PydanticCustomError("negative", "interest_rate must not be negative")
    frac = frac or ""
    if len(frac) > 2:
        raise PydanticCustomError("too_many_decimals", "interest_rate allows at most 2 decimals")
    if len(whole) > 3:
        raise PydanticCustomError("too_large", "interest_rate is at most 100 (percent a year)")
    bp = int(whole) * 100 + int(frac.ljust(2, "0"))
    if bp > MAX_INTEREST_BP:
        raise PydanticCustomError("too_large", "interest_rate is at most 100 (percent a year)")
    return bp


def format_rate(bp: int) -> str:
    """Basis points → the API's percentage string: 800 → "8.00"."""
    return f"{bp // 100}.{bp % 100:02d}"


class FeeIn(BaseModel):
    """A fixed fee charged when the stage is reached (only on invoices in the same currency)."""

    model_config = ConfigDict(extra="forbid")

    currency: Currency
    amount: AmountText

    @field_validator("amount")
    @classmethod
    def _amount(cls, value: str, info: ValidationInfo) -> str:
        minor_for(value, info)
        return value

    @property
    def minor(self) -> int:
        return parse_minor(self.amount, self.currency)


class StageIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key: str = Field(min_length=1, max_length=32, pattern=STAGE_KEY_PATTERN)
    offset_days: int = Field(ge=-60, le=365, description="days relative to the due date; negative is before")
    template: str = Field(
        description=f"one of: {', '.join(TEMPLATE_NAMES)}", json_schema_extra={"enum": list(TEMPLATE_NAMES)}
    )
    tone: str = Field(description=f"one of: {', '.join(TONES)}", json_schema_extra={"enum": list(TONES)})
    channels: list[str] = Field(
        min_length=1,
        max_length=len(CHANNEL_NAMES),
        description=f"the channel order, best first; each of: {', '.join(CHANNEL_NAMES)}",
        json_schema_extra={"items": {"type": "string", "enum": list(CHANNEL_NAMES)}, "uniqueItems": True},
    )
    fee: FeeIn | None = None
    charge_interest: bool = Field(
        default=False, description="post statutory interest at the policy's interest_rate"
    )
    action: Literal["remind", "agency"] = StageAction.remind.value

    @field_validator("key")
    @classmethod
    def _key(cls, value: str) -> str:
        if value in RESERVED_STAGE_KEYS:
            raise PydanticCustomError(
                "reserved_stage_key", f"the stage key {value!r} is reserved (it records invoice delivery)"
            )
        return value

    @field_validator("template")
    @classmethod
    def _template(cls, value: str) -> str:
        if value not in TEMPLATE_NAMES:
            raise PydanticCustomError(
                "unknown_template",
                f"unknown template {value!r}; expected one of: {', '.join(TEMPLATE_NAMES)}",
            )
        return value

    @field_validator("tone")
    @classmethod
    def _tone(cls, value: str) -> str:
        if value not in TONES:
            raise PydanticCustomError(
                "unknown_tone", f"unknown tone {value!r}; expected one of: {', '.join(TONES)}"
            )
        return value

    @field_validator("channels")
    @classmethod
    def _channels(cls, value: list[str]) -> list[str]:
        unknown = [c for c in value if c not in CHANNEL_NAMES]
        if unknown:
            raise PydanticCustomError(
                "unknown_channel",
                f"unknown channel(s) {', '.join(map(repr, unknown))}; expected: {', '.join(CHANNEL_NAMES)}",
            )
        twice = sorted({c for c in value if value.count(c) > 1})
        if twice:
            raise PydanticCustomError(
                "duplicate_channel", f"channels lists {', '.join(twice)} more than once"
            )
        return value


class PolicyIn(BaseModel):
    """A whole policy. PUT replaces the policy of the segment, its stages included."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=64)
    segment: str | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        pattern=SEGMENT_PATTERN,
        description="optional in the API body (the path names it); required in a YAML file",
    )
    quiet_start_hour: int = Field(default=21, ge=0, le=23, description="no messages from this hour …")
    quiet_end_hour: int = Field(default=8, ge=0, le=23, description="… until this hour, debtor's local time")
    max_messages_per_week: int = Field(default=3, ge=1, le=50, description="per debtor, all channels")
    min_gap_hours: int = Field(default=48, ge=0, le=720, description="between two messages to a debtor")
    interest_rate: str = Field(
        default="0.00",
        description='statutory interest, percent a year, as a decimal string ("8.00"), at most 100',
        json_schema_extra={"pattern": r"^[0-9]{1,3}(\.[0-9]{1,2})?$"},
    )
    promise_max_days: int = Field(default=30, ge=1, le=365, description="how far ahead a promise may lie")
    promise_grace_days: int = Field(
        default=3, ge=0, le=60, description="days after a promise before resuming"
    )
    stages: list[StageIn] = Field(min_length=1, max_length=MAX_STAGES)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise PydanticCustomError("blank", "name must not be blank")
        return value

    @field_validator("interest_rate", mode="before")
    @classmethod
    def _rate(cls, value: object) -> str:
        return format_rate(parse_rate_bp(value))

    @property
    def interest_rate_bp(self) -> int:
        return parse_rate_bp(self.interest_rate)

    @model_validator(mode="after")
    def _stages_in_order(self) -> PolicyIn:
        problems = stage_problems(self.stages)
        if problems:
            raise ValidationError.from_exception_data(type(self).__name__, problems)
        return self


def _problem(index: int, field: str, code: str, message: str, value: object) -> InitErrorDetails:
    return InitErrorDetails(
        type=PydanticCustomError(code, message), loc=("stages", index, field), input=value
    )


def stage_problems(stages: list[StageIn]) -> list[InitErrorDetails]:
    """What is wrong across the stages, each at the stage (``stages.<i>.<field>``) that breaks a rule."""
    found: list[InitErrorDetails] = []
    keys: dict[str, int] = {}
    offsets: dict[int, int] = {}
    last = len(stages) - 1
    for i, stage in enumerate(stages):
        if stage.key in keys:
            found.append(
                _problem(
                    i,
                    "key",
                    "duplicate_stage",
                    f"stage key {stage.key!r} is already used by stages.{keys[stage.key]}; keys must be unique",
                    stage.key,
                )
            )
        else:
            keys[stage.key] = i
        if stage.offset_days in offsets:
            found.append(
                _problem(
                    i,
                    "offset_days",
                    "overlapping_stages",
                    f"stages overlap: stages.{offsets[stage.offset_days]} already falls on offset "
                    f"{stage.offset_days}; two stages cannot fall on the same day",
                    stage.offset_days,
                )
            )
        elif i > 0 and stage.offset_days < stages[i - 1].offset_days:
            found.append(
                _problem(
                    i,
                    "offset_days",
                    "stages_out_of_order",
                    f"stages must be listed by increasing offset_days: {stage.offset_days} comes after "
                    f"{stages[i - 1].offset_days} (stages.{i - 1})",
                    stage.offset_days,
                )
            )
        offsets.setdefault(stage.offset_days, i)
        if stage.action == StageAction.agency and i != last:
            found.append(
                _problem(
                    i,
                    "action",
                    "agency_not_last",
                    "only the last stage may hand the claim to the agency (action 'agency')",
                    stage.action,
                )
            )
    return found


class PolicyFile(BaseModel):
    """A YAML policy file: ``policies:`` holding one or more policies, each with its ``segment``."""

    model_config = ConfigDict(extra="forbid")

    policies: Annotated[list[PolicyIn], Field(min_length=1, max_length=100)]

    @model_validator(mode="after")
    def _segments(self) -> PolicyFile:
        problems: list[InitErrorDetails] = []
        seen: dict[str, int] = {}
        for i, policy in enumerate(self.policies):
            if policy.segment is None:
                problems.append(
                    InitErrorDetails(
                        type=PydanticCustomError("missing", "each policy in a file names its segment"),
                        loc=("policies", i, "segment"),
                        input=None,
                    )
                )
            elif policy.segment in seen:
                problems.append(
                    InitErrorDetails(
                        type=PydanticCustomError(
                            "duplicate_segment",
                            f"segment {policy.segment!r} is already defined by policies.{seen[policy.segment]}",
                        ),
                        loc=("policies", i, "segment"),
                        input=policy.segment,
                    )
                )
            else:
                seen[policy.segment] = i
        if problems:
            raise ValidationError.from_exception_data(type(self).__name__, problems)
        return self
