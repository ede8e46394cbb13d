"""SQL functions that set-based statements need, compiled per engine (PostgreSQL and SQLite)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, Date, Integer, Uuid
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement


class add_days(FunctionElement[Any]):
    """``add_days(date, n)``: the date ``n`` days later (n may be negative)."""

    type = Date()
    inherit_cache = True


@compiles(add_days, "postgresql")
def _add_days_pg(element: add_days, compiler: Any, **kw: Any) -> str:
    day, n = list(element.clauses)
    return f"({compiler.process(day, **kw)} + CAST({compiler.process(n, **kw)} AS INTEGER))"


@compiles(add_days, "sqlite")
def _add_days_sqlite(element: add_days, compiler: Any, **kw: Any) -> str:
    day, n = list(element.clauses)
    days = compiler.process(n, **kw)
    # printf() would turn NULL into "+0 days"; keep NULL in, NULL out, as PostgreSQL does.
    return f"CASE WHEN {days} IS NULL THEN NULL ELSE date({compiler.process(day, **kw)}, printf('%+d days', {days})) END"


class new_uuid(FunctionElement[Any]):
    """A random UUID made by the database, for rows inserted by INSERT … SELECT."""

    type = Uuid()
    inherit_cache = True


@compiles(new_uuid, "postgresql")
def _new_uuid_pg(element: new_uuid, compiler: Any, **kw: Any) -> str:
    return "gen_random_uuid()"


@compiles(new_uuid, "sqlite")
def _new_uuid_sqlite(element: new_uuid, compiler: Any, **kw: Any) -> str:
    # SQLAlchemy keeps UUIDs on SQLite as 32 hex characters; set the version-4 bits as well.
    return (
        "lower(substr(hex(randomblob(4)),1,8) || substr(hex(randomblob(2)),1,4) || '4' || "
        "substr(hex(randomblob(2)),2,3) || substr('89ab', 1 + (abs(random()) % 4), 1) || "
        "substr(hex(randomblob(2)),2,3) || hex(randomblob(6)))"
    )


class days_between(FunctionElement[Any]):
    """``days_between(later, earlier)``: whole days from ``earlier`` to ``later``."""

    type = Integer()
    inherit_cache = True


@compiles(days_between, "postgresql")
def _days_between_pg(element: days_between, compiler: Any, **kw: Any) -> str:
    later, earlier = list(element.clauses)
    return f"({compiler.process(later, **kw)} - {compiler.process(earlier, **kw)})"


@compiles(days_between, "sqlite")
def _days_between_sqlite(element: days_between, compiler: Any, **kw: Any) -> str:
    later, earlier = list(element.clauses)
    return f"CAST(julianday({compiler.process(later, **kw)}) - julianday({compiler.process(earlier, **kw)}) AS INTEGER)"


class json_object(FunctionElement[Any]):
    """``json_object(key1, value1, key2, value2, …)``: a JSON object built by the database."""

    type = JSON()
    inherit_cache = True


@compiles(json_object, "postgresql")
def _json_object_pg(element: json_object, compiler: Any, **kw: Any) -> str:
    return f"jsonb_build_object({compiler.process(element.clauses, **kw)})"


@compiles(json_object, "sqlite")
def _json_object_sqlite(element: json_object, compiler: Any, **kw: Any) -> str:
    return f"json_object({compiler.process(element.clauses, **kw)})"
