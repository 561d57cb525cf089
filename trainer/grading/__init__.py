"""The grading engine: OpenAI-compatible graders, our no-code graders, and a python sandbox.

Pure Python (never imports Django). Entry points:

- `run_grader(grader, sample, item) -> GradeResult`: one grade; never raises.
- `grade_batch(grader, samples, items, max_workers=None) -> list[GradeResult]`.
- `validate_grader(grader) -> dict`: the normalised grader, or `GraderValidationError`.
- `check_references(grader, items) -> list[ReferenceGrade]`: does each task's own
  reference answer get full marks (the one rule for the grader page and pre-flight).
- `get_compiled_grader(grader)`: validate once, then `.grade(sample, item)` many times.
- `GRADER_TYPES`: the catalogue the rubric builder renders as forms.
- `JudgeConfig`, `JudgeRegistry`, `register_judge`: endpoints for model graders.
- `SandboxPool`, `SandboxLimits`: the python sandbox (a default pool is made on demand).
"""

from . import model_types, multi, python_type, similarity, structured_types, text_types  # noqa: F401 - register types
from .base import CompiledGrader, GradingEnv
from .catalogue import build_catalogue
from .engine import get_compiled_grader, grade_batch, run_grader, validate_grader
from .formula import parse_formula, weighted_mean_formula
from .judges import JudgeConfig, JudgeRegistry, default_judges, register_judge
from .reference import ReferenceGrade, check_references, reference_sample
from .result import BOOLEAN_FLAGS, GradeResult, GraderValidationError, GradingError
from .sandbox import SandboxLimits, SandboxPool, default_pool, set_default_pool

GRADER_TYPES = build_catalogue()

__all__ = [
    "BOOLEAN_FLAGS",
    "GRADER_TYPES",
    "CompiledGrader",
    "GradeResult",
    "GraderValidationError",
    "GradingEnv",
    "GradingError",
    "JudgeConfig",
    "JudgeRegistry",
    "ReferenceGrade",
    "SandboxLimits",
    "SandboxPool",
    "check_references",
    "default_judges",
    "default_pool",
    "get_compiled_grader",
    "grade_batch",
    "parse_formula",
    "reference_sample",
    "register_judge",
    "run_grader",
    "set_default_pool",
    "validate_grader",
    "weighted_mean_formula",
]
