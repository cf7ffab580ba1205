"""A batch's input file, read row by row: JSONL (``{"custom_id", "input"}`` per line, OpenAI's
Batch API shape) or CSV whose columns fill a ``template``.

A template maps input fields to text with ``{column}`` placeholders: ``{"image":
"{image_url}", "scene": "{style} scene"}``. A value that is exactly one placeholder takes the
column's text as it is (pydantic turns "42" into 42 for a number field); others are
interpolated. A CSV's ``custom_id`` column names its rows; without one they are ``row-1`` …

The file is read as a stream of lines, so checking a file of 8,000 rows at submit holds one
row at a time (and the set of ids, to refuse duplicates), never all of them.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

from limner.errors import InvalidInput, LimitExceeded

Format = Literal["jsonl", "csv"]
PLACEHOLDER = re.compile(r"\{([^{}]+)\}")
MAX_CUSTOM_ID = 255


@dataclass(frozen=True)
class Row:
    index: int  # 0-based, in file order
    custom_id: str
    input: dict[str, Any]


def sniff_format(data: bytes, name: str = "") -> Format:
    """JSONL when the first non-blank character opens an object, else CSV."""
    if name.endswith(".csv"):
        return "csv"
    if name.endswith((".jsonl", ".ndjson")):
        return "jsonl"
    head = data.lstrip()[:1]
    return "jsonl" if head == b"{" else "csv"


def apply_template(template: dict[str, Any], values: dict[str, Any], where: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for field, pattern in template.items():
        if not isinstance(pattern, str):
            out[field] = pattern
            continue
        whole = PLACEHOLDER.fullmatch(pattern)
        names = PLACEHOLDER.findall(pattern)
        missing = [n for n in names if n not in values]
        if missing:
            raise InvalidInput(
                f"{where}: template field {field!r} names column {missing[0]!r}, which this row does not have "
                f"(columns: {', '.join(values) or 'none'})",
                loc=("body", "template", field),
            )
        out[field] = values[whole.group(1)] if whole else PLACEHOLDER.sub(lambda m: str(values[m.group(1)]), pattern)
    return out


def _lines(data: bytes) -> Iterator[tuple[int, str]]:
    for number, raw in enumerate(io.TextIOWrapper(io.BytesIO(data), encoding="utf-8", newline=""), start=1):
        line = raw.strip()
        if line:
            yield number, line


def read_rows(data: bytes, fmt: Format, template: dict[str, Any] | None, max_rows: int) -> Iterator[Row]:
    """The file's rows in order; a malformed file raises InvalidInput naming the line."""
    source = _jsonl(data, template) if fmt == "jsonl" else _csv(data, template)
    for index, row in enumerate(source):
        if index >= max_rows:
            raise LimitExceeded(f"the batch has more than {max_rows} rows (max_batch_rows)", loc=("body", "input_file"))
        yield Row(index, *row)


def _jsonl(data: bytes, template: dict[str, Any] | None) -> Iterator[tuple[str, dict[str, Any]]]:
    try:
        for number, line in _lines(data):
            where = f"line {number}"
            try:
                item = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InvalidInput(f"{where} is not JSON: {exc.msg}", loc=("body", "input_file")) from None
            if not isinstance(item, dict) or not isinstance(item.get("input"), dict):
                raise InvalidInput(
                    f'{where} must be an object {{"custom_id": …, "input": {{…}}}}', loc=("body", "input_file")
                )
            custom_id = str(item.get("custom_id") or f"row-{number}")
            body: dict[str, Any] = item["input"]
            if template:
                body = {**_untemplated(template, body), **apply_template(template, body, where)}
            yield custom_id, body
    except UnicodeDecodeError:
        raise InvalidInput("the input file is not UTF-8 text", loc=("body", "input_file")) from None


def _untemplated(template: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
    """JSONL rows keep their own fields; a template adds fields made from them."""
    return {k: v for k, v in body.items() if k not in template}


def _csv(data: bytes, template: dict[str, Any] | None) -> Iterator[tuple[str, dict[str, Any]]]:
    try:
        text = io.TextIOWrapper(io.BytesIO(data), encoding="utf-8-sig", newline="")
        reader = csv.DictReader(text)
        if not reader.fieldnames:
            raise InvalidInput("the CSV file has no header row", loc=("body", "input_file"))
        for row in reader:
            where = f"CSV line {reader.line_num}"
            if None in row:
                raise InvalidInput(f"{where} has more cells than the header", loc=("body", "input_file"))
            values = {k: v for k, v in row.items() if k is not None}
            custom_id = values.get("custom_id") or f"row-{reader.line_num - 1}"
            if template is None:
                body = {k: v for k, v in values.items() if k != "custom_id" and v != ""}
            else:
                body = apply_template(template, values, where)
            yield custom_id, body
    except UnicodeDecodeError:
        raise InvalidInput("the input file is not UTF-8 text", loc=("body", "input_file")) from None
    except csv.Error as exc:
        raise InvalidInput(f"the CSV file cannot be read: {exc}", loc=("body", "input_file")) from None


def check_rows(rows: Iterable[Row]) -> int:
    """Refuse duplicate or over-long custom ids; the number of rows."""
    seen: set[str] = set()
    count = 0
    for row in rows:
        if len(row.custom_id) > MAX_CUSTOM_ID:
            raise InvalidInput(
                f"row {row.index + 1}: custom_id is longer than {MAX_CUSTOM_ID} characters", loc=("body", "input_file")
            )
        if row.custom_id in seen:
            raise InvalidInput(
                f"row {row.index + 1}: custom_id {row.custom_id!r} appears twice; each row needs its own",
                loc=("body", "input_file"),
            )
        seen.add(row.custom_id)
        count += 1
    if count == 0:
        raise InvalidInput("the batch has no rows", loc=("body", "input_file"))
    return count
