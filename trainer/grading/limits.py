"""Size limits on grader definitions, and the check that keeps user regexes from exploding.

A grader comes from anyone with an account (the web form, `POST /v1/...`), is compiled in
the web process and cached there, so everything in it is bounded before any work is done:
its JSON size and nesting, the criteria of a multi grader, formulas, templates, patterns.

Regular expressions need more than a length cap. The `regex` engine expands counted
repeats when it compiles, so `x{1000000}` allocates about 300 MB and `(a{1000}){1000}` as
much; `check_pattern` scans the pattern (without compiling it) and bounds each count and
the product of nested counts, so such a pattern is refused with a message in microseconds.
Matching time is bounded separately, by the `regex` engine's timeout.
"""

from __future__ import annotations

from .result import GraderValidationError

MAX_GRADER_BYTES = 512 * 1024  # a python grader's source may be 256 kB (OpenAI's cap)
MAX_GRADER_DEPTH = 32  # nesting of objects/lists in a grader's JSON
MAX_CRITERIA = 64  # graders inside one multi grader
MAX_GRADERS_TOTAL = 256  # graders in the whole tree (multis may nest)
MAX_TEMPLATE_CHARS = 100_000  # one template: a judge's instructions with examples fit
MAX_FORMULA_CHARS = 2_000
MAX_PATTERN_CHARS = 2_000
MAX_LIST_ENTRIES = 1_000  # keywords, labels, options
MAX_REPEAT = 1_000  # one counted repeat, e.g. \d{1,1000}
MAX_PATTERN_SIZE = 5_000  # atoms after expanding counted repeats: about 0.7 MB and 60 ms to compile
MAX_SCHEMA_PATTERNS = 32  # `pattern`s and `patternProperties` in one JSON schema
BYTES_PER_PATTERN_ATOM = 150  # what the `regex` engine allocates per expanded atom (measured)

# Escapes whose `{...}` is an argument, not a repeat count: \x{263a}, \N{DASH}, \p{L}, \g{name}.
_BRACED_ESCAPES = frozenset("xuUNpPgkL")


def check_text_length(value: str, limit: int, param: str | None, what: str = "text") -> None:
    if len(value) > limit:
        raise GraderValidationError(
            f"is {len(value):,} characters long; the limit for a {what} is {limit:,}", param
        )


def json_depth_exceeds(value: object, limit: int) -> bool:
    """Whether `value` nests objects/lists deeper than `limit` (iterative: no recursion)."""
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children = node.values()
        elif isinstance(node, list | tuple):
            children = node
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def _repeat_at(pattern: str, i: int) -> tuple[int, int] | None:
    """`(count, end)` when `pattern[i]` starts a counted repeat `{n}`, `{n,}`, `{,m}`, `{n,m}`."""
    end = pattern.find("}", i + 1)
    if end == -1 or end - i > 24:
        return None
    body = pattern[i + 1 : end]
    low, comma, high = body.partition(",")
    if not (low or high) or not all(part == "" or part.isdigit() for part in (low, high)):
        return None
    if not comma and not low:
        return None
    return max(int(low or 0), int(high or 0)), end + 1


def check_pattern(pattern: str, param: str | None) -> int:
    """Refuse patterns whose compiled form would be huge; one linear pass, no compiling.

    Returns the pattern's size in expanded atoms (what compiling it will allocate).
    """
    check_text_length(pattern, MAX_PATTERN_CHARS, param, "pattern")
    levels = [0]  # atoms of the sequence being read, per open group
    last = 0  # size of the last atom or group, which a following repeat multiplies
    i, n = 0, len(pattern)
    while i < n:
        char = pattern[i]
        if char == "\\":
            if i + 2 < n and pattern[i + 1] in _BRACED_ESCAPES and pattern[i + 2] == "{":
                close = pattern.find("}", i + 2)
                i = n if close == -1 else close + 1
            else:
                i += 2
            levels[-1] += 1
            last = 1
            continue
        if char == "[":
            i = _class_end(pattern, i)
            levels[-1] += 1
            last = 1
            continue
        if char == "(":
            levels.append(0)
            last = 0
        elif char == ")":
            inner = levels.pop() if len(levels) > 1 else 0
            levels[-1] += inner
            last = inner
        elif char == "{" and (repeat := _repeat_at(pattern, i)) is not None:
            count, i = repeat
            if count > MAX_REPEAT:
                raise GraderValidationError(
                    f"repeats something {count:,} times; the limit is {MAX_REPEAT:,} "
                    "(use + or * for 'any number')",
                    param,
                )
            levels[-1] += last * max(count - 1, 0)
            last *= max(count, 1)
            if sum(levels) > MAX_PATTERN_SIZE:
                raise GraderValidationError(
                    f"its repeats multiply to more than {MAX_PATTERN_SIZE:,} pieces "
                    "(e.g. a repeated group inside a repeated group); simplify it",
                    param,
                )
            continue
        elif char == "|":
            last = 0
        elif char not in "*+?":
            levels[-1] += 1
            last = 1
        i += 1
    size = sum(levels)
    if size > MAX_PATTERN_SIZE:
        raise GraderValidationError("is too large to compile; simplify it", param)
    return size


def _class_end(pattern: str, start: int) -> int:
    """The index after the `]` closing the character class that opens at `start`."""
    i = start + 1
    if i < len(pattern) and pattern[i] == "^":
        i += 1
    if i < len(pattern) and pattern[i] == "]":
        i += 1  # a `]` first in a class is literal
    while i < len(pattern):
        if pattern[i] == "\\":
            i += 2
            continue
        if pattern[i] == "]":
            return i + 1
        i += 1
    return len(pattern)
