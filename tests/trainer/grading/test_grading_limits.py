"""Graders come from anyone with an account: nothing in one may hang, bloat or crash a process.

The adversarial inputs below would take minutes to hours with a quadratic or exponential
scan (2,000 spaces after `{{` took 8 s with the old template regex); each test has a
pytest-timeout of a few seconds, far above what linear work needs, so a regression fails
instead of being measured.
"""

from __future__ import annotations

import math
import resource
from typing import Any

import pytest

from trainer.grading import GraderValidationError, engine, grade_batch, run_grader, validate_grader
from trainer.grading.cache import SizedLRU
from trainer.grading.formula import parse_formula
from trainer.grading.limits import (
    MAX_CRITERIA,
    MAX_GRADER_BYTES,
    MAX_PATTERN_SIZE,
    MAX_REPEAT,
    check_pattern,
)
from trainer.grading.templates import _scan, compile_template

ANSWER = "{{sample.output_text}}"


def regex_grader(pattern: str, **extra: Any) -> dict:
    return {"type": "regex_match", "name": "r", "input": ANSWER, "pattern": pattern, **extra}


def python_like(reward_formula: str) -> dict:
    """A multi grader whose formula gives any number we like (no sandbox needed)."""
    return {"type": "multi", "name": "m", "calculate_output": reward_formula,
            "graders": {"a": {"type": "string_check", "name": "a", "input": ANSWER,
                              "reference": "x", "operation": "eq"}}}


# --- linear scanners ---------------------------------------------------------------------


@pytest.mark.timeout(5)
@pytest.mark.parametrize(
    "source",
    [
        "{{" + " " * 200_000,  # the reported case, 100x longer
        "{{" + " " * 100_000 + "x" + " " * 100_000 + "}",
        "{{\nx" * 50_000 + "}}",  # many openings sharing one far-away closing
        "{{" * 100_000,
        "{{ item.a }}" * 8_000 + "{{" + " \n" * 50_000,
        "}}" * 100_000 + "{{",
    ],
)
def test_template_scan_is_linear(source: str) -> None:
    try:
        _scan(source)
    except GraderValidationError:
        pass  # a clear refusal is fine; what matters is that it comes at once


def test_template_scan_keeps_its_meaning() -> None:
    parts = _scan("Q: {{ item.q }}\n{{\nitem.a\n}} {{ a\nb }} {{sample.output_text}}")
    kinds = [p if isinstance(p, str) else p.text for p in parts]
    assert kinds == ["Q: ", "item.q", "\n", "item.a", " {{ a\nb }} ", "sample.output_text"]
    with pytest.raises(GraderValidationError):
        _scan("{{ not a variable }}")


def test_template_length_is_capped() -> None:
    with pytest.raises(GraderValidationError, match="limit for a template"):
        compile_template("x" * 100_001, "input")
    with pytest.raises(GraderValidationError) as info:
        validate_grader({**regex_grader("a"), "input": "{{sample.output_text}}" + "x" * 100_000})
    assert info.value.param == "input"


@pytest.mark.timeout(5)
@pytest.mark.parametrize(
    "source",
    ["a" + " " * 1_990, "a+" * 999 + "a", "-" * 1_999 + "a", "min(" * 40 + "a" + ")" * 40, "a " * 999],
)
def test_formula_tokenizer_and_parser_are_linear(source: str) -> None:
    try:
        formula = parse_formula(source)
    except GraderValidationError:
        return
    assert math.isfinite(formula.evaluate({"a": 0.5}))


def test_long_formula_chains_do_not_recurse() -> None:
    formula = parse_formula("+".join(["a"] * 999))  # one node per operator would overflow
    assert formula.evaluate({"a": 1.0}) == 999.0
    assert parse_formula("8 / 2 / 2 * 3 - 1 - 1").evaluate({}) == 4.0
    assert parse_formula("-2^2").evaluate({}) == -4.0 and parse_formula("2^-1").evaluate({}) == 0.5


def test_formula_limits_name_the_field() -> None:
    with pytest.raises(GraderValidationError) as info:
        validate_grader(python_like("a" + " " * 2_000))
    assert info.value.param == "calculate_output" and "limit" in info.value.message
    with pytest.raises(GraderValidationError, match="nests more than"):
        validate_grader(python_like("(" * 60 + "a" + ")" * 60))


# --- regular expressions -------------------------------------------------------------------


def _max_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@pytest.mark.timeout(5)
@pytest.mark.parametrize(
    "pattern",
    ["x{1000000}", "(a{1000}){1000}", "((ab){100}){100}", "(?:x{999}){6}", "[ab]{1001}",
     "(a{70}|b{70}){70}", "a{,5000}", "a{2000,}"],
)
def test_regex_compile_bombs_are_refused_quickly_without_growing_the_process(pattern: str) -> None:
    before = _max_rss_mb()
    for grader, param in ((regex_grader(pattern), "pattern"),
                          ({"type": "multi", "name": "m", "calculate_output": "c",
                            "graders": {"c": regex_grader(pattern)}}, "graders.c.pattern")):
        with pytest.raises(GraderValidationError) as info:
            validate_grader(grader)
        assert info.value.param == param
        assert "limit" in info.value.message or "simplify" in info.value.message
    assert _max_rss_mb() - before < 50  # compiling x{1000000} alone takes ~300 MB


@pytest.mark.parametrize(
    "pattern",
    [r"^\d{4}-\d{2}-\d{2}$", r"(\d{1,3},){0,10}\d{1,3}", r"\p{L}{2,40}", r"\N{EM DASH}{3}", r"[{]{3}",
     r"a\{1000000\}", r"(?:foo){e<=1}", f"x{{{MAX_REPEAT}}}", r"[a-z]{1000}"],
)
def test_ordinary_patterns_pass(pattern: str) -> None:
    assert validate_grader(regex_grader(pattern))["pattern"] == pattern


def test_pattern_size_accounts_for_nesting() -> None:
    assert check_pattern("(ab{10}){10}", "p") == 110
    assert check_pattern(r"\d{4}-\d{2}", "p") == 7
    with pytest.raises(GraderValidationError):
        check_pattern(f"(a{{100}}){{{MAX_PATTERN_SIZE // 100 + 1}}}", "p")
    with pytest.raises(GraderValidationError, match="limit for a pattern"):
        check_pattern("a" * 2_001, "p")


def test_json_schema_patterns_are_bounded_and_timed() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "string", "pattern": "(a{1000}){1000}"}}}
    with pytest.raises(GraderValidationError) as info:
        validate_grader({"type": "json_schema", "name": "s", "schema": schema})
    assert info.value.param.startswith("schema")
    ok = {"type": "json_schema", "name": "s", "schema": {
        "type": "object", "patternProperties": {"^x": {"type": "integer"}}, "additionalProperties": False,
        "properties": {"id": {"type": "string", "pattern": r"^\d{3}$"}}}}
    rewards = [run_grader(ok, doc, {}).reward for doc in
               ('{"x1": 1, "id": "123"}', '{"x1": "no"}', '{"y": 1}', '{"id": "12"}')]
    assert rewards == [1.0, 0.0, 0.0, 0.0]


def test_json_schema_never_fetches_remote_references() -> None:
    for ref in ("http://127.0.0.1:9/secret", "file:///etc/passwd", "https://example.com/s.json"):
        with pytest.raises(GraderValidationError, match="only references inside the schema"):
            validate_grader({"type": "json_schema", "name": "s", "schema": {"$ref": ref}})
    local = {"type": "json_schema", "name": "s",
             "schema": {"$defs": {"n": {"type": "integer"}}, "$ref": "#/$defs/n"}}
    assert run_grader(local, "3", {}).reward == 1.0


# --- size caps -----------------------------------------------------------------------------


def test_grader_size_depth_and_criteria_caps() -> None:
    huge = {"type": "multi", "name": "m", "calculate_output": "a",
            "graders": {"a": {"type": "keywords", "name": "k", "keywords": ["w" * 900] * 700}}}
    with pytest.raises(GraderValidationError, match="kB as JSON"):
        validate_grader(huge)
    assert MAX_GRADER_BYTES == 512 * 1024
    deep: dict = {"type": "json_schema", "name": "s", "schema": {}}
    node = deep["schema"]
    for _ in range(100_000):  # built iteratively; json.dumps would hit the recursion limit
        node["items"] = {}
        node = node["items"]
    with pytest.raises(GraderValidationError, match="nested more than"):
        validate_grader(deep)
    many = {"type": "multi", "name": "m", "calculate_output": "c0",
            "graders": {f"c{i}": regex_grader("a") for i in range(MAX_CRITERIA + 1)}}
    with pytest.raises(GraderValidationError) as info:
        validate_grader(many)
    assert info.value.param == "graders" and "limit" in info.value.message
    with pytest.raises(GraderValidationError) as info:
        validate_grader({"type": "keywords", "name": "k", "keywords": ["a"] * 1_001})
    assert info.value.param == "keywords"
    for bad in (float("nan"), float("inf")):
        with pytest.raises(GraderValidationError, match="no NaN or infinity"):
            validate_grader({"type": "score_model", "name": "s", "model": "smollm2-135m-instruct",
                             "input": "x", "range": [0, bad]})


def test_grader_caches_are_bounded_by_memory() -> None:
    cache: SizedLRU[str] = SizedLRU(max_entries=100, max_cost=1_000)
    for i in range(50):
        cache.put(i, "x", 100)
    assert len(cache) == 10 and cache.cost <= 1_000 and cache.get(49) == "x" and cache.get(0) is None
    cache.put("too big", "x", 5_000)  # bigger than the whole budget: not kept, nothing evicted
    assert len(cache) == 10 and cache.get("too big") is None
    # The engine's own caches: many distinct large graders never exceed the byte budget.
    big_template = "{{sample.output_text}}" + "y" * 90_000
    for i in range(40):
        validate_grader({**regex_grader("a"), "name": f"r{i}", "input": big_template})
    assert engine._by_json.cost <= engine._CACHE_BYTES and engine._by_id.cost <= engine._CACHE_BYTES


# --- rewards are finite numbers from 0 to 1 ------------------------------------------------


@pytest.mark.parametrize("formula,reward", [("a + 1.5", None), ("a - 1", None), ("a + 1e308 * 10", None),
                                            ("a + 0.25", 0.25), ("a + 1 + 1e-12", 1.0)])
def test_out_of_range_or_non_finite_rewards_are_errors(formula: str, reward: float | None) -> None:
    result = run_grader(python_like(formula), "no", {})
    if reward is None:
        assert result.reward == 0.0 and result.errors.get("other_error") is True
        assert any(word in result.error_message for word in ("0 to 1", "finite", "inf"))
    else:
        assert result.ok and result.reward == reward


def test_score_model_range_is_kept_inside_multi_and_rescaled_at_the_top() -> None:
    from trainer.grading import JudgeConfig, JudgeRegistry
    from trainer.grading.judges import JudgeReply

    class FixedJudge:
        name, max_batch = "fixed", 8

        def complete(self, conversations, params):
            return [JudgeReply(text="7", model="fixed") for _ in conversations]

    registry = JudgeRegistry([JudgeConfig("fixed", base_url="http://127.0.0.1:9/v1")])
    registry._judges["fixed"] = FixedJudge()
    judge = {"type": "score_model", "name": "j", "model": "fixed", "input": "Rate {{sample.output_text}}",
             "range": [0, 10]}
    alone = run_grader(judge, "x", {}, judges=registry)
    assert alone.ok and alone.reward == 0.7 and alone.scores["score"] == 7.0
    imported = {"type": "multi", "name": "m", "graders": {"judge": judge}, "calculate_output": "judge / 10"}
    combined = run_grader(imported, "x", {}, judges=registry)
    assert combined.ok and combined.reward == 0.7 and combined.sub_rewards == {"judge": 7.0}
    raw = {**imported, "calculate_output": "judge"}  # 7 is not a reward from 0 to 1
    assert run_grader(raw, "x", {}, judges=registry).errors.get("other_error") is True
    batch = grade_batch(judge, ["a", "b"], [{}, {}], judges=registry)
    assert [r.reward for r in batch] == [0.7, 0.7]


def test_time_budget_stops_starting_criteria() -> None:
    import time

    slow = regex_grader(r"(a|aa)+$")  # backtracks for ever on a long answer ending in "!"
    many = {"type": "multi", "name": "m", "calculate_output": "+".join(f"c{i}" for i in range(20)) + " / 20",
            "graders": {f"c{i}": slow for i in range(20)}}
    answer = "a" * 40 + "!"
    start = time.monotonic()
    result = run_grader(many, answer, {}, time_budget=0.5)
    assert time.monotonic() - start < 3  # 20 criteria x 1 s of regex timeout without a budget
    assert result.reward == 0.0 and not result.ok
    flags = {flag for sub in result.sub_results.values() for flag, on in sub.errors.items() if on is True}
    assert "unresponsive_reward_error" in flags or "other_error" in flags
