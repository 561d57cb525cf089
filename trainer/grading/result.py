"""Grade results, error flags and the two exceptions of the grading engine.

Error flag names are OpenAI's (REFERENCE.md), so an API client sees the same
`metadata.errors` shape it saw on the hosted product. Inside the engine a result only
carries the flags that are set; `GradeResult.to_openai()` fills in the rest.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

# Boolean flags, in the order OpenAI lists them.
FORMULA_PARSE_ERROR = "formula_parse_error"
SAMPLE_PARSE_ERROR = "sample_parse_error"
TRUNCATED_OBSERVATION_ERROR = "truncated_observation_error"
UNRESPONSIVE_REWARD_ERROR = "unresponsive_reward_error"
INVALID_VARIABLE_ERROR = "invalid_variable_error"
OTHER_ERROR = "other_error"
PYTHON_GRADER_SERVER_ERROR = "python_grader_server_error"
PYTHON_GRADER_RUNTIME_ERROR = "python_grader_runtime_error"
MODEL_GRADER_SERVER_ERROR = "model_grader_server_error"
MODEL_GRADER_REFUSAL_ERROR = "model_grader_refusal_error"
MODEL_GRADER_PARSE_ERROR = "model_grader_parse_error"

BOOLEAN_FLAGS: tuple[str, ...] = (
    FORMULA_PARSE_ERROR,
    SAMPLE_PARSE_ERROR,
    TRUNCATED_OBSERVATION_ERROR,
    UNRESPONSIVE_REWARD_ERROR,
    INVALID_VARIABLE_ERROR,
    OTHER_ERROR,
    PYTHON_GRADER_SERVER_ERROR,
    PYTHON_GRADER_RUNTIME_ERROR,
    MODEL_GRADER_SERVER_ERROR,
    MODEL_GRADER_REFUSAL_ERROR,
    MODEL_GRADER_PARSE_ERROR,
)

# String (or null) companions: which flag each one explains.
PYTHON_GRADER_SERVER_ERROR_TYPE = "python_grader_server_error_type"
PYTHON_GRADER_RUNTIME_ERROR_DETAILS = "python_grader_runtime_error_details"
MODEL_GRADER_SERVER_ERROR_DETAILS = "model_grader_server_error_details"

DETAIL_FIELDS: dict[str, str] = {
    PYTHON_GRADER_SERVER_ERROR: PYTHON_GRADER_SERVER_ERROR_TYPE,
    PYTHON_GRADER_RUNTIME_ERROR: PYTHON_GRADER_RUNTIME_ERROR_DETAILS,
    MODEL_GRADER_SERVER_ERROR: MODEL_GRADER_SERVER_ERROR_DETAILS,
}


class GraderValidationError(ValueError):
    """A grader definition is wrong. `param` is the field path, e.g. `graders.acc.operation`.

    `flag` says which error flag a grading attempt with this grader reports, so a bad grader
    sent straight to `run_grader` still answers in OpenAI's shape instead of crashing.
    """

    def __init__(self, message: str, param: str | None = None, *, flag: str = OTHER_ERROR):
        self.message = message
        self.param = param
        self.flag = flag
        super().__init__(f"{param}: {message}" if param else message)


class GradingError(Exception):
    """Raised inside a grader to end one grade with `flag` set and reward 0.

    `details` goes into the flag's companion field where OpenAI has one (python and
    model graders); the human `message` always reaches `GradeResult.error_message`.
    """

    def __init__(self, flag: str, message: str, details: str | None = None):
        self.flag = flag
        self.message = message
        self.details = details
        super().__init__(message)


@dataclass(slots=True)
class GradeResult:
    """What one grader said about one sample.

    `errors` holds only the flags that are set (plus their string companions);
    `error_message` is a human sentence for the rubric builder and logs;
    `scores` carries per-grader extras (the judge's raw reply, the extracted number...);
    `logs` what a python grader printed (truncated).
    """

    reward: float
    name: str = ""
    type: str = ""
    sub_rewards: dict[str, float] = field(default_factory=dict)
    errors: dict[str, bool | str] = field(default_factory=dict)
    execution_time: float = 0.0
    scores: dict[str, Any] = field(default_factory=dict)
    error_message: str | None = None
    token_usage: int | None = None
    token_usage_per_model: dict[str, dict[str, int]] = field(default_factory=dict)
    sampled_model_name: str | None = None
    logs: str | None = None
    # For a multi grader: each named sub-grader's own result (the rubric builder shows them).
    sub_results: dict[str, GradeResult] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when no error flag is set."""
        return not any(v is True for v in self.errors.values())

    def to_openai(self) -> dict[str, Any]:
        """The body of OpenAI's `POST /v1/fine_tuning/alpha/graders/run` response."""
        errors: dict[str, bool | str | None] = {flag: False for flag in BOOLEAN_FLAGS}
        for detail_field in DETAIL_FIELDS.values():
            errors[detail_field] = None
        errors.update(self.errors)
        metadata: dict[str, Any] = {
            "name": self.name,
            "type": self.type,
            "errors": errors,
            "execution_time": self.execution_time,
            "scores": _finite(self.scores),
            "token_usage": self.token_usage,
            "sampled_model_name": self.sampled_model_name,
        }
        if self.error_message:
            # Not in OpenAI's schema; the SDK keeps unknown keys, and people need the why.
            metadata["error_message"] = self.error_message
        return {
            "reward": self.reward,
            "sub_rewards": dict(self.sub_rewards),
            "metadata": metadata,
            "model_grader_token_usage_per_model": {
                k: dict(v) for k, v in self.token_usage_per_model.items()
            },
        }


def _finite(value: Any) -> Any:
    """`value` with NaN/inf replaced by None: the response must be strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def failed_result(
    error: GradingError | GraderValidationError, *, name: str, type_: str
) -> GradeResult:
    """A reward-0 result carrying `error`'s flag and message."""
    errors: dict[str, bool | str] = {error.flag: True}
    details = getattr(error, "details", None)
    detail_field = DETAIL_FIELDS.get(error.flag)
    if detail_field:
        errors[detail_field] = details if details is not None else error.message
    message = error.message if isinstance(error, GradingError) else str(error)
    return GradeResult(reward=0.0, name=name, type=type_, errors=errors, error_message=message)
