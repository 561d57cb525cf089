"""OpenAI's `python` grader: user code `grade(sample, item) -> float`, run in the sandbox."""

from __future__ import annotations

import ast
from typing import Any

from .base import CompiledGrader, GradingEnv, register
from .result import (
    PYTHON_GRADER_RUNTIME_ERROR,
    PYTHON_GRADER_SERVER_ERROR,
    TRUNCATED_OBSERVATION_ERROR,
    GradeResult,
    GraderValidationError,
    GradingError,
)
from .sandbox import MAX_SOURCE_BYTES
from .spec import Field
from .templates import Sample


@register
class PythonGrader(CompiledGrader):
    """`python`: `source` defines `grade(sample, item)` returning a number.

    `sample` is `{"output_text": str, "output_json": object or None}`, `item` the task row.
    The code runs in a kernel-confined worker process (bubblewrap: no network, no files but
    the interpreter and a private scratch folder, an unprivileged uid, seccomp, memory and
    time limits; see `isolation.py`). An exception, a timeout or a non-number scores 0 with
    `python_grader_runtime_error` / `python_grader_server_error` and the details.
    """

    type_name = "python"
    label = "Python code"
    description = "Runs your own Python function grade(sample, item) that returns a score."
    category = "openai"
    waits = True
    fields = (
        Field(
            "source",
            "Python code",
            "code",
            "Must define grade(sample, item).",
            required=True,
            default=None,
        ),
    )
    ignored_fields = ("image_tag",)

    def setup(self, values: dict[str, Any]) -> None:
        source = values["source"]
        param = self.param("source")
        if len(source.encode("utf-8", "surrogatepass")) > MAX_SOURCE_BYTES:
            raise GraderValidationError(
                f"is {len(source.encode('utf-8', 'surrogatepass')) // 1024} kB; the limit is {MAX_SOURCE_BYTES // 1024} kB",
                param,
                flag=PYTHON_GRADER_SERVER_ERROR,
            )
        try:
            tree = ast.parse(source, "<grader>")  # parse only: nothing runs here
        except SyntaxError as exc:
            raise GraderValidationError(
                f"line {exc.lineno}: {exc.msg}", param, flag=PYTHON_GRADER_RUNTIME_ERROR
            ) from None
        except (RecursionError, MemoryError, ValueError) as exc:
            raise GraderValidationError(
                f"cannot be parsed: {exc}", param, flag=PYTHON_GRADER_RUNTIME_ERROR
            ) from None
        if not any(
            isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == "grade"
            for node in tree.body
        ):
            raise GraderValidationError(
                "must define a function grade(sample, item)",
                param,
                flag=PYTHON_GRADER_RUNTIME_ERROR,
            )
        self.source = source

    def batch_workers(self, env: GradingEnv) -> int:
        return env.sandbox_pool().size

    def evaluate(self, sample: Sample, item: dict[str, Any], env: GradingEnv) -> GradeResult:
        reply = env.sandbox_pool().run(self.source, sample.to_dict(), item, scope=env.scope)
        if reply.ok:
            assert reply.reward is not None
            return GradeResult(reply.reward, self.name, self.type_name, logs=reply.logs or None)
        if reply.kind == "output":
            error = GradingError(TRUNCATED_OBSERVATION_ERROR, f"the python grader {reply.error}")
        elif reply.kind in ("runtime", "compile"):
            error = GradingError(
                PYTHON_GRADER_RUNTIME_ERROR,
                f"the python grader failed: {_last_line(reply.error)}",
                reply.error,
            )
        else:
            error = GradingError(
                PYTHON_GRADER_SERVER_ERROR,
                f"the python grader could not run: {reply.error}",
                reply.kind,
            )
        raise _WithLogs(error, reply.logs)


class _WithLogs(GradingError):
    """A GradingError that keeps what the code printed, for the person debugging it."""

    def __init__(self, error: GradingError, logs: str):
        super().__init__(error.flag, error.message, error.details)
        self.logs = logs


def _last_line(text: str | None) -> str:
    lines = [line for line in (text or "").strip().splitlines() if line.strip()]
    return lines[-1] if lines else "unknown error"
