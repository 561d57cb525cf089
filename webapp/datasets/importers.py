"""Reading task files: OpenAI RFT JSONL and mapped CSV, validated strictly and kindly.

Pure functions (no database): they turn bytes into rows or a list of problems, each
naming the line/row and field. A file with any problem is rejected whole by the caller.
"""

from __future__ import annotations

import csv
import io
import json
import random
from dataclasses import dataclass, field

from webapp.core import jsonsafe

MAX_PROBLEMS_SHOWN = 50
MAX_ROWS = 50_000  # OpenAI's limit for a training file
MESSAGE_ROLES = {"system", "developer", "user", "assistant", "tool"}
UTF8_BOM = b"\xef\xbb\xbf"


class ImportProblems(Exception):
    """Raised with every problem found; `str()` lists the first 50 and counts the rest."""

    def __init__(self, problems: list[str], total: int | None = None):
        self.problems = problems[:MAX_PROBLEMS_SHOWN]
        self.total = total if total is not None else len(problems)
        super().__init__(self.summary())

    @property
    def hidden(self) -> int:
        return self.total - len(self.problems)

    def summary(self) -> str:
        text = "\n".join(self.problems)
        if self.hidden:
            text += f"\n… and {self.hidden} more problem{'s' if self.hidden != 1 else ''}."
        return text


@dataclass
class Problems:
    """Collects problems for one file, keeping at most the first 50 texts but counting all."""

    source: str = ""
    shown: list[str] = field(default_factory=list)
    total: int = 0

    def add(self, text: str) -> None:
        self.total += 1
        if len(self.shown) < MAX_PROBLEMS_SHOWN:
            self.shown.append(f"{self.source}: {text}" if self.source else text)

    def merge(self, other: Problems) -> None:
        for text in other.shown:
            if len(self.shown) < MAX_PROBLEMS_SHOWN:
                self.shown.append(text)
        self.total += other.total

    def raise_if_any(self) -> None:
        if self.total:
            raise ImportProblems(self.shown, self.total)


def decode_upload(data: bytes, *, source: str) -> str:
    """Bytes to text: UTF-8 only (a leading BOM is accepted and dropped), no binary files."""
    if not data.strip():
        raise ImportProblems([f"{source}: the file is empty."])
    if b"\x00" in data[:65536]:
        raise ImportProblems([f"{source}: this looks like a binary file, not UTF-8 text (JSONL or CSV)."])
    if data.startswith(UTF8_BOM):
        data = data[len(UTF8_BOM):]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ImportProblems([
            f"{source}: line {line}: the file is not UTF-8 text (byte 0x{data[exc.start]:02x} at "
            f"offset {exc.start}). Save it as UTF-8 and upload again."
        ]) from None


def content_text(content) -> str | None:
    """The text of a message's content (a string or a list of text parts), None if malformed."""
    if isinstance(content, str):
        return content
    if isinstance(content, list) and all(
        isinstance(p, dict) and p.get("type") in {"text", "input_text"} and isinstance(p.get("text"), str)
        for p in content
    ):
        return "".join(p["text"] for p in content)
    return None


def row_problems(row, where: str) -> list[str]:
    """Everything wrong with one task row (OpenAI RFT shape), each naming `where` and the field."""
    if not isinstance(row, dict):
        return [f"{where}: each line must be a JSON object with a `messages` list, got {type(row).__name__}"]
    problems = []
    messages = row.get("messages")
    if messages is None:
        return [f"{where}: `messages` is missing (each task needs its chat messages)"]
    if not isinstance(messages, list) or not messages:
        return [f"{where}: `messages` must be a non-empty list of messages"]
    for i, message in enumerate(messages):
        at = f"{where}: `messages[{i}]`"
        if not isinstance(message, dict):
            problems.append(f"{at} must be an object with `role` and `content`")
            continue
        role = message.get("role")
        if role not in MESSAGE_ROLES:
            problems.append(f"{at}.role must be one of {', '.join(sorted(MESSAGE_ROLES))}; got {role!r}")
        content = message.get("content")
        if role != "assistant" or "tool_calls" not in message:
            if content_text(content) is None:
                problems.append(f"{at}.content must be a string (or a list of text parts)")
    last = messages[-1]
    if isinstance(last, dict) and last.get("role") in MESSAGE_ROLES:
        if last.get("role") != "user":
            problems.append(f"{where}: `messages` must end with a user message (the prompt), not {last['role']!r}")
        elif not (content_text(last.get("content")) or "").strip():
            problems.append(f"{where}: the prompt (last user message) is empty")
    if "tools" in row and not isinstance(row["tools"], list):
        problems.append(f"{where}: `tools` must be a list")
    if "id" in row and not isinstance(row["id"], str | int):
        problems.append(f"{where}: `id` must be a string or a number")
    return problems


def _check_duplicate_id(row: dict, where: str, seen: dict[str, str], problems: Problems) -> None:
    if isinstance(row, dict) and isinstance(row.get("id"), str | int):
        key = str(row["id"])
        if key in seen:
            problems.add(f"{where}: duplicate id {key!r} (first used on {seen[key]})")
        else:
            seen[key] = where


def _jsonl_objects(text: str, problems: Problems, *, max_rows: int, noun: str):
    """(where, value) for each non-blank line that parses as JSON; a line that does not, a
    blank file and a file over `max_rows` lines each add a problem. The lines past the limit
    are counted for the message, not parsed."""
    count = 0
    for line_no, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        count += 1
        if count > max_rows:
            continue
        where = f"line {line_no}"
        try:
            yield where, jsonsafe.loads(line)
        except json.JSONDecodeError as exc:
            problems.add(f"{where}: invalid JSON ({exc.msg} at column {exc.colno})")
        except ValueError as exc:  # NaN, Infinity, 1e400, nesting: see jsonsafe
            problems.add(f"{where}: {exc}")
    if count == 0:
        problems.add(f"the file has no {noun} (every line is blank)")
    if count > max_rows:
        problems.add(f"the file has {count:,} {noun}; the limit is {max_rows:,}. Split it or trim it.")


def parse_jsonl(text: str, *, source: str = "", max_rows: int = MAX_ROWS) -> list[dict]:
    """Parse and validate an RFT JSONL file; rows are returned verbatim. Raises ImportProblems."""
    problems = Problems(source)
    rows: list[dict] = []
    seen_ids: dict[str, str] = {}
    for where, row in _jsonl_objects(text, problems, max_rows=max_rows, noun="tasks"):
        found = row_problems(row, where)
        for p in found:
            problems.add(p)
        _check_duplicate_id(row, where, seen_ids, problems)
        if not found:
            rows.append(row)
    problems.raise_if_any()
    return rows


EVAL_LINE_KEYS = ("item", "sample")


def parse_eval_jsonl(text: str, *, source: str = "", max_rows: int = MAX_ROWS) -> list[dict]:
    """Parse and validate an OpenAI evals data file (Files API purpose "evals"): every line is
    `{"item": {...}, "sample": {...}}`, `sample` optional (the answer a jsonl eval run grades).
    Raises ImportProblems naming the line and the field."""
    problems = Problems(source)
    rows: list[dict] = []
    for where, row in _jsonl_objects(text, problems, max_rows=max_rows, noun="items"):
        found = _eval_line_problems(row, where)
        for p in found:
            problems.add(p)
        if not found:
            rows.append(row)
    problems.raise_if_any()
    return rows


def _eval_line_problems(row, where: str) -> list[str]:
    if not isinstance(row, dict):
        return [f'{where}: each line must be an object like {{"item": {{...}}, "sample": {{...}}}}, '
                f"not {type(row).__name__}"]
    found = []
    extra = sorted(k for k in row if k not in EVAL_LINE_KEYS)
    if extra:
        found.append(f"{where}: unknown field{'s' if len(extra) > 1 else ''} "
                     f"{', '.join(repr(k[:40]) for k in extra[:5])}; a line has only \"item\" and \"sample\" "
                     "(put the task's fields inside \"item\")")
    if "item" not in row:
        found.append(f'{where}: "item" is missing: the task\'s fields, e.g. {{"item": {{"question": "...", '
                     '"answer": "..."}}}}')
    elif not isinstance(row["item"], dict):
        found.append(f'{where}: "item" must be an object, not {type(row["item"]).__name__}')
    sample = row.get("sample")
    if "sample" in row and not isinstance(sample, dict):
        found.append(f'{where}: "sample" must be an object like {{"output_text": "..."}}, '
                     f"not {type(sample).__name__}")
    elif isinstance(sample, dict) and "output_text" in sample and not isinstance(sample["output_text"], str):
        found.append(f'{where}: "sample.output_text" must be a text')
    return found


# --- CSV -------------------------------------------------------------------------------


@dataclass(frozen=True)
class CsvTable:
    header: list[str]
    rows: list[tuple[int, list[str]]]  # (spreadsheet row number, cells)


@dataclass(frozen=True)
class CsvMapping:
    prompt_column: str
    reference_column: str = ""
    extra_columns: tuple[str, ...] = ()
    system_prompt: str = ""


def read_csv(text: str, *, source: str = "", max_rows: int = MAX_ROWS) -> CsvTable:
    """Read a CSV with a header row. Row numbers are as a spreadsheet shows them (header = 1)."""
    try:
        dialect = csv.Sniffer().sniff(text[:8192], delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    reader = csv.reader(io.StringIO(text), dialect)
    problems = Problems(source)
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        raise ImportProblems([f"{source}: the file is empty."]) from None
    except csv.Error as exc:
        raise ImportProblems([f"{source}: row 1: {exc}"]) from None
    if not any(header):
        problems.add("row 1: the header row is empty; the first row must name the columns")
    seen: set[str] = set()
    for i, name in enumerate(header, start=1):
        if not name:
            problems.add(f"row 1: column {i} has no name")
        elif name in seen:
            problems.add(f"row 1: column name {name!r} appears twice")
        seen.add(name)
    rows: list[tuple[int, list[str]]] = []
    row_no = 1
    try:
        for cells in reader:
            row_no = reader.line_num
            if not any(c.strip() for c in cells):
                continue
            if len(rows) >= max_rows:
                rows.append((row_no, []))  # counted, not kept
                continue
            if len(cells) != len(header):
                problems.add(f"row {row_no}: has {len(cells)} cells but the header has {len(header)} columns")
                continue
            rows.append((row_no, cells))
    except csv.Error as exc:
        problems.add(f"row {row_no + 1}: {exc}")
    if not rows:
        problems.add("the file has a header but no rows")
    if len(rows) > max_rows:
        problems.add(f"the file has {len(rows):,} rows; the limit is {max_rows:,}")
    problems.raise_if_any()
    return CsvTable(header=header, rows=rows)


def csv_to_rows(table: CsvTable, mapping: CsvMapping, *, source: str = "") -> list[dict]:
    """Turn mapped CSV rows into RFT rows: messages + `reference_answer` + extra fields."""
    problems = Problems(source)
    index = {name: i for i, name in enumerate(table.header)}
    for label, column in [("prompt", mapping.prompt_column), ("reference answer", mapping.reference_column)]:
        if column and column not in index:
            problems.add(f"the {label} column {column!r} is not in the header")
    for column in mapping.extra_columns:
        if column not in index:
            problems.add(f"the extra column {column!r} is not in the header")
    if not mapping.prompt_column:
        problems.add("choose which column holds the prompt")
    problems.raise_if_any()

    rows, seen_ids = [], {}
    system = mapping.system_prompt.strip()
    for row_no, cells in table.rows:
        prompt = cells[index[mapping.prompt_column]].strip()
        if not prompt:
            problems.add(f"row {row_no}: the prompt column {mapping.prompt_column!r} is empty")
            continue
        messages = ([{"role": "system", "content": system}] if system else [])
        messages.append({"role": "user", "content": prompt})
        row: dict = {"messages": messages}
        if mapping.reference_column:
            row["reference_answer"] = cells[index[mapping.reference_column]].strip()
        for column in mapping.extra_columns:
            if column not in (mapping.prompt_column, mapping.reference_column):
                row[column] = cells[index[column]].strip()
        _check_duplicate_id(row, f"row {row_no}", seen_ids, problems)
        rows.append(row)
    problems.raise_if_any()
    return rows


# --- splitting ---------------------------------------------------------------------------


def holdout_split(n: int, *, percent: int, seed: int) -> set[int]:
    """Indices (of n rows) to hold out for validation: a fixed-seed random `percent`."""
    if not 0 <= percent <= 50:
        raise ValueError("hold-out percent must be between 0 and 50")
    k = round(n * percent / 100)
    if percent and n > 1:
        k = min(max(k, 1), n - 1)  # never an empty train split, never an empty valid split
    return set(random.Random(seed).sample(range(n), k))


def prompt_text(row: dict) -> str:
    """The last user message's text, for tables and search."""
    for message in reversed(row.get("messages") or []):
        if isinstance(message, dict) and message.get("role") == "user":
            return content_text(message.get("content")) or ""
    return ""


def reference_fields(row: dict) -> dict:
    """Every key except the reserved ones: what graders reach as {{item.<key>}}."""
    return {k: v for k, v in row.items() if k not in ("messages", "tools")}

