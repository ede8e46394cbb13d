"""API keys (shown once, stored as a SHA-256 hash) and Idempotency-Key records."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from core import audit
from core.access.models import ApiKey, IdempotencyRecord
from core.audit import Actor
from core.base import utcnow
from core.errors import FieldError, InvalidInput

SCOPES: dict[str, str] = {
    "debtors:read": "read debtors and their balances",
    "debtors:write": "create and update debtors, pause and resume dunning",
    "invoices:read": "read invoices and batches",
    "invoices:write": "create invoice batches",
    "invoices:approve": "approve or reject invoice batches",
    "payments:write": "record payments and credit notes",
    "audit:read": "read the audit trail",
    "dunning:read": "read dunning policies and preview a sweep",
    "dunning:write": "create and replace dunning policies",
    "plans:read": "read payment plans and plan policies",
    "plans:write": "propose, accept and withdraw payment plans",
    "plans:approve": "approve or decline payment plans; replace plan policies",
    "bank:read": "list imported bank lines and the payments still to be processed",
    "bank:write": "import bank statements and assign their lines by hand",
    "exports:read": "export payments (MT940) and ledger mutations (CSV)",
}
ALL = "*"
KEY_PREFIX = "dbk"


def hash_secret(token: str) -> str:
    # Keys carry 256 bits of randomness, so a fast hash is enough (no password stretching needed).
    return hashlib.sha256(token.encode()).hexdigest()


def check_scopes(scopes: Iterable[str]) -> list[str]:
    wanted = sorted(set(scopes))
    unknown = [s for s in wanted if s != ALL and s not in SCOPES]
    if unknown or not wanted:
        raise InvalidInput(
            f"unknown scope(s): {', '.join(unknown)}" if unknown else "name at least one scope",
            "invalid_scope",
            [FieldError(("scope",), f"choose from {', '.join([ALL, *SCOPES])}", "invalid_scope")],
        )
    return wanted


async def create_key(
    session: AsyncSession, name: str, scopes: Iterable[str], actor: Actor
) -> tuple[str, ApiKey]:
    """Return the plaintext key (shown once) and its stored record."""
    scope_list = check_scopes(scopes)
    prefix = secrets.token_hex(6)
    token = f"{KEY_PREFIX}_{prefix}_{secrets.token_urlsafe(32)}"
    key = ApiKey(name=name, prefix=prefix, key_hash=hash_secret(token), scopes=scope_list)
    session.add(key)
    await session.flush()
    await audit.record(
        session, actor, "api_key.created", "api_key", key.id, after={"name": name, "scopes": scope_list}
    )
    return token, key


async def authenticate(session: AsyncSession, token: str) -> ApiKey | None:
    parts = token.split("_")
    if len(parts) < 3 or parts[0] != KEY_PREFIX:
        return None
    key = (await session.scalars(select(ApiKey).where(col(ApiKey.prefix) == parts[1]))).first()
    if key is None or key.revoked_at is not None:
        return None
    if not secrets.compare_digest(key.key_hash, hash_secret(token)):
        return None
    return key


def allows(key: ApiKey, scope: str) -> bool:
    return ALL in key.scopes or scope in key.scopes


async def list_keys(session: AsyncSession) -> Sequence[ApiKey]:
    return (await session.scalars(select(ApiKey).order_by(col(ApiKey.created_at)))).all()


async def revoke(session: AsyncSession, prefix: str, actor: Actor) -> bool:
    stmt = (
        select(ApiKey).where(col(ApiKey.prefix) == prefix, col(ApiKey.revoked_at).is_(None)).with_for_update()
    )
    key = (await session.scalars(stmt)).first()
    if key is None:
        return False
    key.revoked_at = utcnow()
    await session.flush()
    # Under the key's id, like api_key.created, so that one key has one trail.
    await audit.record(
        session,
        actor,
        "api_key.revoked",
        "api_key",
        key.id,
        before={"prefix": prefix, "revoked_at": None},
        after={"prefix": prefix, "revoked_at": key.revoked_at.isoformat()},
    )
    return True


# --------------------------------------------------------------------------- idempotency


@dataclass
class Replay:
    status_code: int
    body: str
    matches: bool  # False: the same key was used with a different request


async def find(session: AsyncSession, api_key_id: uuid.UUID, key: str, request_hash: str) -> Replay | None:
    rec = (
        await session.scalars(
            select(IdempotencyRecord).where(
                col(IdempotencyRecord.api_key_id) == api_key_id,
                col(IdempotencyRecord.key) == key,
            )
        )
    ).first()
    if rec is None:
        return None
    return Replay(rec.status_code, rec.response_body, rec.request_hash == request_hash)


async def claim(
    session: AsyncSession, api_key_id: uuid.UUID, key: str, method: str, path: str, request_hash: str
) -> IdempotencyRecord | None:
    """Insert the record before doing the work. A concurrent twin waits on the unique index,
    then fails here once the first commits; the caller rolls back and replays."""
    rec = IdempotencyRecord(
        api_key_id=api_key_id,
        key=key,
        method=method,
        path=path,
        request_hash=request_hash,
        status_code=0,
        response_body="",
    )
    try:
        async with session.begin_nested():
            session.add(rec)
            await session.flush()
    except IntegrityError:
        return None
    return rec


async def complete(session: AsyncSession, rec: IdempotencyRecord, status_code: int, body: str) -> None:
    rec.status_code = status_code
    rec.response_body = body
    await session.flush()


async def purge_idempotency(session: AsyncSession, older_than: datetime) -> int:
    """Forget Idempotency-Keys older than the retention window; returns how many were removed."""
    result = await session.execute(
        delete(IdempotencyRecord).where(col(IdempotencyRecord.created_at) < older_than)
    )
    return int(getattr(result, "rowcount", 0) or 0)
