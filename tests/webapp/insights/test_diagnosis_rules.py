"""Each finding's rule on hand-built metric series: it fires on the pattern it names, stays
quiet on a healthy run, and says nothing when its metric is missing."""

import math

import pytest

from webapp.insights import diagnosis as d
from webapp.insights.diagnosis import RunView


def healthy(step: int, n: int = 30) -> dict:
    """A run that learns: reward and both criteria rise, answers differ, nothing breaks."""
    r = 0.2 + 0.6 * step / n
    return {
        "train/reward_mean": r, "train/reward_std": 0.2, "train/frac_zero_std_groups": 0.1,
        "train/completion_tokens_mean": 40 + (step % 3), "train/truncated_frac": 0.0,
        "train/grader_error_frac": 0.0, "train/grader/a_mean": r, "train/grader/b_mean": min(1, r + 0.1),
        "train/entropy": 1.2 - 0.2 * step / n, "train/kl": 0.002 + 0.0001 * step,
        **({"valid/reward_mean": r - 0.05, "valid/grader_error_frac": 0.0} if step % 5 == 0 else {}),
    }


def view(n: int = 30, change=None, **kw) -> RunView:
    steps = []
    for s in range(1, n + 1):
        data = healthy(s, n)
        if change:
            data.update(change(s, n))
        steps.append((s, data))
    return RunView(steps=steps, **kw)


def test_a_healthy_run_has_no_findings():
    assert d.diagnose(view()) == []


def test_empty_and_short_runs_say_nothing():
    assert d.diagnose(RunView(steps=[])) == []
    # Fewer than MIN_STEPS: no_signal waits for evidence.
    assert d.rule_no_signal(view(n=4, change=lambda s, n: {"train/frac_zero_std_groups": 1.0})) is None


@pytest.mark.parametrize("n", range(1, 13))
@pytest.mark.parametrize("value", [0.0, 1.0, 1e9])
def test_no_rule_fails_on_short_or_extreme_series(n, value):
    keys = ["train/reward_mean", "valid/reward_mean", "train/frac_zero_std_groups", "train/truncated_frac",
            "train/grader_error_frac", "valid/grader_error_frac", "train/completion_tokens_mean", "train/kl",
            "train/entropy", "train/grader/a_mean", "train/grader/b_mean"]
    d.diagnose(RunView(steps=[(s, dict.fromkeys(keys, value)) for s in range(1, n + 1)], max_completion_tokens=8))


def test_rules_skip_missing_metrics():
    bare = RunView(steps=[(s, {"train/reward_mean": 0.5}) for s in range(1, 40)])
    for code, rule in d.RULES.items():
        assert rule(bare) is None, code


# --- no_signal -------------------------------------------------------------------------------


def test_no_signal_fires_when_most_groups_score_the_same():
    f = d.rule_no_signal(view(change=lambda s, n: {"train/frac_zero_std_groups": 0.75 if s > 20 else 0.2}))
    assert f.code == "no_signal" and f.severity == "warning"
    assert f.evidence["groups_flat"] == 0.75 and f.evidence["steps"] == [25, 30]  # window 6 of 30 steps
    assert "75 %" in f.message


def test_no_signal_is_an_error_when_every_group_is_flat():
    f = d.rule_no_signal(view(change=lambda s, n: {"train/frac_zero_std_groups": 1.0}))
    assert f.severity == "error"


def test_no_signal_reads_kept_and_sampled_groups_when_the_fraction_is_absent():
    def change(s, n):
        return {"train/frac_zero_std_groups": None, "train/groups_kept": 1, "train/groups_sampled": 8}
    f = d.rule_no_signal(view(change=change))
    assert f is not None and f.evidence["groups_flat"] == pytest.approx(0.88, abs=0.01)


# --- validation_falling ----------------------------------------------------------------------


def test_validation_falling_fires_when_train_rises_and_valid_falls():
    def change(s, n):
        if s % 5:
            return {}
        return {"valid/reward_mean": {5: 0.3, 10: 0.5, 15: 0.42, 20: 0.38, 25: 0.35, 30: 0.3}[s]}
    f = d.rule_validation_falling(view(change=change))
    assert f.code == "validation_falling"
    assert f.evidence["best_step"] == 10 and f.evidence["best"] == 0.5 and f.evidence["latest"] == 0.3
    assert f.evidence["samples_query"]["min_step"] == "11"
    assert "step 10" in f.what_to_try[0]


def test_validation_falling_ignores_a_single_dip_that_recovers():
    def change(s, n):
        return {"valid/reward_mean": {5: 0.3, 10: 0.5, 15: 0.42, 20: 0.49, 25: 0.5, 30: 0.44}[s]} if s % 5 == 0 else {}
    assert d.rule_validation_falling(view(change=change)) is None


def test_validation_falling_needs_the_training_reward_to_rise():
    def change(s, n):
        out = {"train/reward_mean": 0.5}
        if s % 5 == 0:
            out["valid/reward_mean"] = {5: 0.3, 10: 0.5, 15: 0.42, 20: 0.38, 25: 0.35, 30: 0.3}[s]
        return out
    assert d.rule_validation_falling(view(change=change)) is None


# --- length_drift ----------------------------------------------------------------------------


def test_length_drift_growing_near_the_limit_is_a_warning():
    f = d.rule_length_drift(view(change=lambda s, n: {"train/completion_tokens_mean": 20 + 1.5 * s},
                                 max_completion_tokens=64))
    assert f.code == "length_drift" and f.severity == "warning" and "longer" in f.title
    # means of steps 1-6 (20 + 1.5 * 3.5) and 25-30 (20 + 1.5 * 27.5)
    assert f.evidence["start"] == pytest.approx(25.25, abs=0.06) and f.evidence["end"] == pytest.approx(61.25, abs=0.06)
    assert "64 tokens" in f.message


def test_length_drift_shrinking():
    f = d.rule_length_drift(view(change=lambda s, n: {"train/completion_tokens_mean": 60 - 1.8 * s}))
    assert f.severity == "warning" and "shorter" in f.title and f.evidence["change"] < -0.5


def test_length_drift_ignores_noise_without_a_trend():
    lengths = [40, 90] * 15
    assert d.rule_length_drift(view(change=lambda s, n: {"train/completion_tokens_mean": lengths[s - 1]})) is None


# --- high_truncation -------------------------------------------------------------------------


@pytest.mark.parametrize("frac,severity", [(0.1, None), (0.3, "warning"), (0.6, "error")])
def test_high_truncation(frac, severity):
    f = d.rule_high_truncation(view(change=lambda s, n: {"train/truncated_frac": frac}, max_completion_tokens=64))
    assert (f.severity if f else None) == severity
    if f:
        assert "64 tokens" in f.message and f.evidence["value"] == frac


# --- criterion_stuck -------------------------------------------------------------------------


def test_criterion_stuck_names_the_flat_criterion_and_the_rising_one():
    f = d.rule_criterion_stuck(view(change=lambda s, n: {"train/grader/b_mean": 0.25 + (0.01 if s % 2 else 0)}))
    assert f.code == "criterion_stuck" and f.evidence["criterion"] == "b" and f.evidence["rising"] == "a"
    assert f.evidence["samples_query"] == {"criterion": "b", "max_score": "0.5", "order": "-step"}
    assert "“b”" in f.title


def test_a_criterion_at_full_marks_is_done_not_stuck():
    assert d.rule_criterion_stuck(view(change=lambda s, n: {"train/grader/b_mean": 1.0})) is None


def test_criterion_stuck_needs_two_criteria():
    v = view(change=lambda s, n: {"train/grader/b_mean": None})
    assert d.rule_criterion_stuck(v) is None


# --- grader_errors ---------------------------------------------------------------------------


def test_grader_errors_every_answer_failing_is_an_error():
    f = d.rule_grader_errors(view(change=lambda s, n: {"train/grader_error_frac": 1.0}))
    assert f.code == "grader_errors" and f.severity == "error" and "100 %" in f.message
    assert f.evidence["samples_query"] == {"errors": "1"}


def test_grader_errors_on_validation_only():
    f = d.rule_grader_errors(view(change=lambda s, n: {"valid/grader_error_frac": 0.2} if s % 5 == 0 else {}))
    assert f.severity == "warning" and f.evidence["metric"] == "valid/grader_error_frac"
    assert "(validation)" in f.message


def test_a_rare_grader_error_is_not_a_finding():
    assert d.rule_grader_errors(view(change=lambda s, n: {"train/grader_error_frac": 0.01})) is None


# --- reward_collapse -------------------------------------------------------------------------


def test_reward_collapse_after_a_peak():
    f = d.rule_reward_collapse(view(change=lambda s, n: {"train/reward_mean": 0.2 + 0.04 * s if s <= 15
                                                         else max(0.0, 0.8 - 0.08 * (s - 15))}))
    assert f.code == "reward_collapse" and f.severity == "error"
    assert f.evidence["peak_step"] in range(14, 20) and f.evidence["latest"] < 0.3


def test_reward_collapse_reports_a_kl_spike():
    def change(s, n):
        return {"train/reward_mean": 0.6 if s <= 20 else 0.45, "train/kl": 0.002 if s <= 26 else 0.5}
    f = d.rule_reward_collapse(view(change=change))
    assert f is not None and f.evidence["kl"] == 0.5 and f.evidence["kl_step"] == 27
    assert "KL" in f.message


def test_a_plateau_is_not_a_collapse():
    assert d.rule_reward_collapse(view(change=lambda s, n: {"train/reward_mean": 0.6 + 0.02 * math.sin(s)})) is None


# --- entropy_collapse ------------------------------------------------------------------------


def demo_like(s, n):
    """The demo run: answers shrink to one word (format criterion rises), category at chance."""
    return {"train/entropy": 2.0 * 0.88 ** s, "train/grader/correct_category_mean": 0.25 + 0.01 * (s % 2),
            "train/grader/one_word_mean": min(1.0, 0.1 + 0.05 * s)}


def test_entropy_collapse_with_the_main_criterion_flat():
    f = d.rule_entropy_collapse(view(change=demo_like, main_criterion="correct_category"))
    assert f.code == "entropy_collapse" and f.evidence["criterion"] == "correct_category"
    assert f.evidence["end"] < 0.3 * f.evidence["start"]
    assert "“correct_category”" in f.message


def test_entropy_collapse_is_quiet_when_the_main_criterion_rises():
    def change(s, n):
        return {**demo_like(s, n), "train/grader/correct_category_mean": 0.25 + 0.02 * s}
    assert d.rule_entropy_collapse(view(change=change, main_criterion="correct_category")) is None


def test_entropy_collapse_without_criteria_uses_the_reward():
    def change(s, n):
        return {"train/entropy": 2.0 * 0.85 ** s, "train/reward_mean": 0.3, "train/grader/a_mean": None,
                "train/grader/b_mean": None}
    f = d.rule_entropy_collapse(view(change=change))
    assert f is not None and f.evidence["criterion"] is None and "the score" in f.message


# --- all together ----------------------------------------------------------------------------


def test_diagnose_orders_by_severity_and_every_code_is_stable():
    def change(s, n):
        return {**demo_like(s, n), "train/grader_error_frac": 0.6, "train/truncated_frac": 0.3}
    codes = [f.code for f in d.diagnose(view(change=change, main_criterion="correct_category"))]
    assert codes[0] == "grader_errors" and "entropy_collapse" in codes and "high_truncation" in codes
    assert set(d.CODES) == {"no_signal", "validation_falling", "length_drift", "high_truncation",
                            "criterion_stuck", "grader_errors", "reward_collapse", "entropy_collapse"}


def test_main_criterion_reads_the_rubric_weights():
    from trainer.grading import weighted_mean_formula

    spec = {"type": "multi", "graders": {"correct_category": {}, "one_word": {}},
            "calculate_output": weighted_mean_formula({"correct_category": 3, "one_word": 1})}
    assert d.main_criterion(spec) == "correct_category"
    assert d.main_criterion({**spec, "calculate_output": "(1 * correct_category + 1 * one_word) / 2"}) is None
    assert d.main_criterion({"type": "string_check"}) is None


def test_rank_correlation_hand_worked():
    assert d.rank_correlation([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert d.rank_correlation([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    # ranks x 1..4, y = [1, 3, 2, 4] -> d^2 = 0+1+1+0 = 2 -> 1 - 6*2/(4*15) = 0.8
    assert d.rank_correlation([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(0.8)
