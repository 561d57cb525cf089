"""Parsing JSON from users: the API's request bodies, task files, JSON typed into forms.

Python's `json` accepts what nothing downstream can handle: `NaN` and `Infinity` (strict
JSON, PostgreSQL's jsonb and our API responses refuse them), numbers like `1e400` that
become infinity, and nesting deep enough to raise `RecursionError` (not a `ValueError`)
here or later in any recursive code. `loads` refuses all of that with a `ValueError` whose
message says what is wrong, so every caller's existing "invalid JSON" path answers 400.
"""

from __future__ import annotations

import json
import math
from typing import Any

from django.conf import settings
from rest_framework.exceptions import APIException, ParseError
from rest_framework.parsers import JSONParser

MAX_DEPTH = 64  # objects and lists inside each other; a grader needs about 10


class JsonError(ValueError):
    pass


def _no_constant(name: str) -> Any:
    raise JsonError(f"{name} is not allowed in JSON here (use null or a number)")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise JsonError(f"the number {text[:40]} is too large")
    return value


def _text_problem(text: str) -> str | None:
    if "\x00" in text:
        return "text may not contain NUL characters (\\u0000)"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "text may not contain lone surrogates (e.g. \\ud800)"
    return None


def problem(value: Any, limit: int = MAX_DEPTH) -> str | None:
    """What no part of the app can store or send back, if anything: nesting deeper than
    `limit`, NUL characters (PostgreSQL refuses them), lone surrogates (not UTF-8).
    Iterative, so it never recurses however deep the value is."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, str):
            found = _text_problem(node)
            if found:
                return found
            continue
        if isinstance(node, dict):
            for key in node:
                found = _text_problem(key) if isinstance(key, str) else None
                if found:
                    return found
            children: Any = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        if depth > limit:
            return f"the JSON is nested more than {limit} levels deep"
        stack.extend((child, depth + 1) for child in children)
    return None


def loads(text: str | bytes, *, max_depth: int = MAX_DEPTH) -> Any:
    """`json.loads`, refusing NaN/Infinity, overflowing numbers, deep nesting, NUL."""
    try:
        value = json.loads(text, parse_constant=_no_constant, parse_float=_finite_float)
    except RecursionError:
        raise JsonError(f"the JSON is nested more than {max_depth} levels deep") from None
    found = problem(value, max_depth)
    if found:
        raise JsonError(found)
    return value


class BodyTooLarge(APIException):
    status_code = 413
    default_code = "request_too_large"


class StrictJSONParser(JSONParser):
    """DRF's JSON parser with `loads`' rules; problems are a 400 that says what is wrong.

    The body is read up to `DATA_UPLOAD_MAX_MEMORY_SIZE` (DRF itself reads any size).
    """

    def parse(self, stream, media_type=None, parser_context=None):
        parser_context = parser_context or {}
        encoding = parser_context.get("encoding", "utf-8")
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        try:
            raw = stream.read(limit + 1) if stream is not None else b""
            if len(raw) > limit:
                raise BodyTooLarge(f"The request body is larger than {limit // (1024 * 1024)} MB.")
            return loads(raw.decode(encoding)) if raw.strip() else {}
        except UnicodeDecodeError:
            raise ParseError(f"The request body is not valid {encoding} text.") from None
        except ValueError as exc:
            raise ParseError(f"The request body is not valid JSON: {exc}") from None
