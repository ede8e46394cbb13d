"""`duebot import invoices.csv`: the same rules as the API, every error with its line and column.

A file is all or nothing: one bad row and nothing is imported. Importing the same file again
changes nothing and names the batch it already became.
"""

from __future__ import annotations

import base64
import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from core.audit import Actor
from core.errors import DomainError, FieldError
from core.invoices import intake
from core.invoices.intake import BatchResult, NewInvoice
from core.invoices.schemas import InvoiceIn

REQUIRED = ("external_id", "debtor_external_id", "number", "issue_date", "due_date", "amount", "currency")
OPTIONAL = ("description", "pdf_path")
COLUMNS = REQUIRED + OPTIONAL


@dataclass
class ParsedFile:
    rows: list[NewInvoice] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)  # the file line each row starts on
    errors: list[FieldError] = field(default_factory=list)


class ImportRefused(DomainError):
    status = 422


def _records(
    stream: IO[str], header: list[str], delimiter: str
) -> Iterator[tuple[int, dict[str, str | None]]]:
    """(file line the record starts on, cells by column) after the header line.

    csv.reader counts the lines it consumed (quoted newlines included) and, unlike DictReader,
    hands blank lines back as [] instead of skipping them, so every start line stays exact.
    """
    reader = csv.reader(stream, delimiter=delimiter)
    start = 2  # the header was line 1
    for cells in reader:
        record: dict[str, str | None] = {
            name: (cells[i] if i < len(cells) else None) for i, name in enumerate(header)
        }
        if len(cells) > len(header):
            record["__extra__"] = str(len(cells) - len(header))  # how many cells too many
        if cells:
            yield start, record
        start = reader.line_num + 2


def parse(stream: IO[str], base_dir: Path | None = None, *, max_rows: int = 1_000_000) -> ParsedFile:
    out = ParsedFile()
    header_line = stream.readline()
    if not header_line.strip():
        out.errors.append(
            FieldError(("header",), "the file is empty; the first line must name the columns", "empty", 1)
        )
        return out
    delimiter = ";" if header_line.count(";") > header_line.count(",") else ","
    reader = csv.DictReader(io.StringIO(header_line), delimiter=delimiter)
    header = [h.strip() for h in (reader.fieldnames or [])]
    missing = [c for c in REQUIRED if c not in header]
    unknown = [c for c in header if c not in COLUMNS]
    for col in missing:
        out.errors.append(FieldError((col,), f"required column {col!r} is missing", "missing_column", 1))
    for col in unknown:
        out.errors.append(
            FieldError((col,), f"unknown column {col!r}; known: {', '.join(COLUMNS)}", "unknown_column", 1)
        )
    if out.errors:
        return out

    seen = 0
    for line, record in _records(stream, header, delimiter):
        if not any((v or "").strip() for k, v in record.items() if k != "__extra__"):
            continue  # blank line
        seen += 1
        if seen > max_rows:
            out.errors.append(
                FieldError(("file",), f"more than {max_rows} rows; split the file", "too_many_rows", line)
            )
            break
        if record.get("__extra__"):
            out.errors.append(
                FieldError(("row",), "the row has more cells than the header", "extra_cells", line)
            )
            continue
        if any(record.get(c) is None for c in header):
            out.errors.append(
                FieldError(("row",), "the row has fewer cells than the header", "missing_cells", line)
            )
            continue
        data: dict[str, object] = {k: (v.strip() if v else None) for k, v in record.items() if k in COLUMNS}
        data = {k: v for k, v in data.items() if v not in (None, "")}
        pdf_path = data.pop("pdf_path", None)
        if pdf_path is not None:
            pdf = _read_pdf(str(pdf_path), base_dir)
            if isinstance(pdf, str):
                out.errors.append(FieldError(("pdf_path",), pdf, "unreadable_pdf", line))
                continue
            data["pdf_base64"] = base64.b64encode(pdf).decode()
        try:
            item = InvoiceIn.model_validate(data)
        except ValidationError as exc:
            for err in exc.errors():
                col = str(err["loc"][0]) if err["loc"] else "row"
                out.errors.append(
                    FieldError(("pdf_path" if col == "pdf_base64" else col,), err["msg"], err["type"], line)
                )
            continue
        out.rows.append(NewInvoice.from_input(item))
        out.lines.append(line)
    return out


def _read_pdf(path: str, base_dir: Path | None) -> bytes | str:
    full = Path(path) if Path(path).is_absolute() or base_dir is None else base_dir / path
    try:
        return full.read_bytes()
    except OSError as exc:
        return f"cannot read {path}: {exc.strerror or exc}"


async def import_file(
    session: AsyncSession, path: Path, *, actor: Actor, max_rows: int, max_batch: int | None = None
) -> BatchResult:
    """Parse and import one file as one batch. Raises ImportRefused with every error by line."""
    with path.open(encoding="utf-8-sig", newline="") as stream:
        parsed = parse(stream, path.parent, max_rows=max_rows)
    if parsed.errors:
        raise ImportRefused(
            f"{path.name}: {len(parsed.errors)} error(s); nothing was imported",
            "import_refused",
            parsed.errors,
        )
    try:
        return await intake.create_batch(
            session, parsed.rows, actor=actor, source="csv", max_items=max_batch or max_rows
        )
    except DomainError as exc:
        raise ImportRefused(
            f"{path.name}: {len(exc.errors) or 1} error(s); nothing was imported",
            "import_refused",
            [_with_line(e, parsed.lines) for e in exc.errors]
            or [FieldError(("file",), exc.message, exc.code)],
        ) from exc


def _with_line(err: FieldError, lines: list[int]) -> FieldError:
    """("invoices", i, column) from the batch rules → (column,) at the row's file line."""
    if len(err.loc) >= 3 and err.loc[0] == "invoices" and isinstance(err.loc[1], int):
        return FieldError((str(err.loc[2]),), err.message, err.code, lines[err.loc[1]])
    return err
