"""Domain errors: a stable code, a message, and optional per-field details.

Each edge translates them in one place (problem+json for HTTP, a reply for a chat).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class FieldError:
    """One problem with one input field. ``loc`` is the path, e.g. ("invoices", 3, "amount")."""

    loc: tuple[str | int, ...]
    message: str
    code: str = "invalid"
    line: int | None = None  # for file imports: the 1-based line in the file

    def as_dict(self) -> dict[str, object]:
        out: dict[str, object] = {
            "field": ".".join(str(p) for p in self.loc),
            "message": self.message,
            "code": self.code,
        }
        if self.line is not None:
            out["line"] = self.line
        return out


@dataclass
class DomainError(Exception):
    message: str
    code: str = "error"
    errors: list[FieldError] = field(default_factory=list)

    status = 400

    def __str__(self) -> str:
        return self.message


class NotFound(DomainError):
    status = 404


class Conflict(DomainError):
    status = 409


class InvalidInput(DomainError):
    status = 422


class PolicyViolation(DomainError):
    status = 422


class Forbidden(DomainError):
    status = 403


class Unauthorized(DomainError):
    status = 401
