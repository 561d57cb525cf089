"""Plain-language diagnosis of a run: one pure rule per finding over its metric series.

Each rule takes a `RunView` (the run's per-step metrics dicts, as the trainer reported them,
plus a few facts about the run) and returns a `Finding` or None. Rules never touch the
database, so they are unit-tested with hand-built series and run the same on a live run (the
hooks call `diagnose` while it trains, see `services.run_findings_record`), on a finished one
and in the API.

A rule uses a metric when the trainer reports it and says nothing when it does not (older
runs, CLI runs, metrics another trainer version adds). The metrics read, by rule:

=====================  =====================================================================
rule                   metrics
=====================  =====================================================================
no_signal              train/frac_zero_std_groups (else train/groups_kept / groups_sampled)
validation_falling     train/reward_mean, valid/reward_mean
length_drift           train/completion_tokens_mean
high_truncation        train/truncated_frac
criterion_stuck        train/grader/<criterion>_mean (two or more criteria)
grader_errors          train/grader_error_frac, valid/grader_error_frac
reward_collapse        train/reward_mean, train/kl
entropy_collapse       train/entropy, train/grader/<criterion>_mean or train/reward_mean
=====================  =====================================================================
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

SEVERITY_ORDER = {"error": 0, "warning": 1, "info": 2}

# Steps a rule needs before it speaks: a few noisy steps say little.
MIN_STEPS = 5
# The "recent" window: the last fifth of the run, at least 3 and at most 20 steps.
WINDOW_FRACTION, WINDOW_MIN, WINDOW_MAX = 0.2, 3, 20

NO_SIGNAL_WARN, NO_SIGNAL_ERROR = 0.7, 0.95  # share of groups whose answers all scored the same
VALID_DROP = 0.05  # validation reward this far below its best, over 2+ later checks
TRAIN_RISE = 0.03  # ... while the training reward kept rising this much
LENGTH_CHANGE = 0.5  # answers 50 % longer or shorter than at the start
LENGTH_TREND = 0.6  # and steadily so (rank correlation with the step)
TRUNCATION_WARN, TRUNCATION_ERROR = 0.2, 0.5
STUCK_CHANGE = 0.03  # a criterion that moved less than this ...
OTHER_RISE = 0.1  # ... while another rose at least this much
STUCK_CEILING = 0.9  # a criterion already near full marks is done, not stuck
GRADER_ERRORS_WARN, GRADER_ERRORS_ERROR = 0.05, 0.5
COLLAPSE_DROP, COLLAPSE_FRACTION = 0.15, 0.3  # reward fell 0.15 and 30 % below its best
KL_SPIKE, KL_FLOOR = 10.0, 0.05  # recent KL 10x its earlier median, and above 0.05
ENTROPY_FRACTION = 0.3  # entropy fell below 30 % of where it started
FLAT_CHANGE = 0.05  # ... while the main criterion moved less than this


@dataclass
class RunView:
    """What the rules see: one metrics dict per step, in step order."""

    steps: list[tuple[int, dict[str, Any]]]
    max_completion_tokens: int | None = None
    main_criterion: str | None = None  # the criterion with the largest weight, if known

    def series(self, key: str) -> tuple[list[int], list[float]]:
        xs, ys = [], []
        for step, data in self.steps:
            value = (data or {}).get(key)
            if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
                xs.append(step)
                ys.append(float(value))
        return xs, ys

    def criteria(self, split: str = "train") -> list[str]:
        prefix, suffix = f"{split}/grader/", "_mean"
        names = {k[len(prefix):-len(suffix)] for _, d in self.steps for k, v in (d or {}).items()
                 if k.startswith(prefix) and k.endswith(suffix) and isinstance(v, int | float)}
        return sorted(names)


@dataclass
class Finding:
    code: str
    severity: str  # "error" | "warning" | "info"
    title: str
    message: str
    what_to_try: list[str]
    evidence: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# --- small statistics ----------------------------------------------------------------------


def window(n: int) -> int:
    """How many of the last `n` points count as recent (never more than there are)."""
    return max(1, min(n, max(WINDOW_MIN, min(WINDOW_MAX, round(n * WINDOW_FRACTION)))))


def mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else float("nan")


def median(values: Sequence[float]) -> float:
    s = sorted(values)
    n = len(s)
    if not n:
        return float("nan")
    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2


def start_end(ys: Sequence[float]) -> tuple[float, float]:
    """Mean of the first and of the last window of a series."""
    w = window(len(ys))
    return mean(ys[:w]), mean(ys[-w:])


def rank_correlation(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Spearman's rank correlation (ties get their mean rank); 0 for fewer than 3 points."""
    if len(xs) < 3:
        return 0.0

    def ranks(values):
        order = sorted(range(len(values)), key=lambda i: values[i])
        out = [0.0] * len(values)
        i = 0
        while i < len(order):
            j = i
            while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
                j += 1
            for k in range(i, j + 1):
                out[order[k]] = (i + j) / 2
            i = j + 1
        return out

    rx, ry = ranks(xs), ranks(ys)
    mx, my = mean(rx), mean(ry)
    cov = sum((a - mx) * (b - my) for a, b in zip(rx, ry, strict=True))
    vx = sum((a - mx) ** 2 for a in rx)
    vy = sum((b - my) ** 2 for b in ry)
    return cov / math.sqrt(vx * vy) if vx and vy else 0.0


def _r(value: float, digits: int = 2) -> float:
    return round(value, digits)


def _pct(value: float) -> str:
    return f"{value * 100:.0f} %"


def _steps(xs: Sequence[int]) -> list[int]:
    return [xs[0], xs[-1]] if xs else []


# --- the rules -----------------------------------------------------------------------------


def rule_no_signal(view: RunView) -> Finding | None:
    xs, ys = view.series("train/frac_zero_std_groups")
    if len(ys) < MIN_STEPS:
        kx, kept = view.series("train/groups_kept")
        _, sampled = view.series("train/groups_sampled")
        if len(kept) < MIN_STEPS or len(kept) != len(sampled):
            return None
        xs, ys = kx, [1 - k / s if s else 0.0 for k, s in zip(kept, sampled, strict=True)]
    w = window(len(ys))
    recent = mean(ys[-w:])
    if recent < NO_SIGNAL_WARN:
        return None
    severity = "error" if recent >= NO_SIGNAL_ERROR else "warning"
    return Finding(
        code="no_signal", severity=severity, title="Little to learn from",
        message=(f"In {_pct(recent)} of the recent task groups every answer got the same score, so the "
                 "model cannot tell better answers from worse ones and learns almost nothing."),
        what_to_try=[
            "If the answers all score 0, the tasks are too hard for this model (or the grader is too strict): "
            "add easier tasks or give partial credit.",
            "If they all score full marks, the tasks are too easy: drop the tasks that are always solved.",
            "Give more answers per task or more answer variety, so the answers differ.",
            "Use a graded criterion (a score from 0 to 1) instead of only pass/fail.",
        ],
        evidence={"metric": "train/frac_zero_std_groups", "steps": [xs[-w], xs[-1]], "groups_flat": _r(recent),
                  "samples_query": {"order": "-step"}},
    )


def rule_validation_falling(view: RunView) -> Finding | None:
    vx, vy = view.series("valid/reward_mean")
    tx, ty = view.series("train/reward_mean")
    if len(vy) < 3 or len(ty) < MIN_STEPS:
        return None
    best = max(range(len(vy)), key=lambda i: vy[i])
    after = vy[best + 1:]
    if len(after) < 2 or vy[best] - vy[-1] < VALID_DROP or any(v >= vy[best] - VALID_DROP / 2 for v in after[1:]):
        return None
    # The training reward still rose after validation peaked.
    train_before = [y for x, y in zip(tx, ty, strict=True) if x <= vx[best]]
    train_after = [y for x, y in zip(tx, ty, strict=True) if x > vx[best]]
    if not train_before or not train_after:
        return None
    w = window(len(ty))
    rise = mean(train_after[-w:]) - mean(train_before[-w:])
    if rise < TRAIN_RISE:
        return None
    return Finding(
        code="validation_falling", severity="warning", title="Training score rises, validation falls",
        message=(f"The score on training tasks kept rising (+{rise:.2f}) after step {vx[best]}, but on the "
                 f"validation tasks it fell from {vy[best]:.2f} to {vy[-1]:.2f}. The model is learning the "
                 "training tasks by heart, or learning to please the grader without getting better."),
        what_to_try=[
            f"Use the checkpoint from step {vx[best]} (the best on validation), not the last one.",
            "Read late validation answers that scored low, and late training answers that scored high: "
            "if they look wrong, the grader is being gamed; tighten the criterion.",
            "Add more training tasks, or train for fewer passes.",
        ],
        evidence={"metric": "valid/reward_mean", "best_step": vx[best], "best": _r(vy[best]),
                  "latest_step": vx[-1], "latest": _r(vy[-1]), "train_rise": _r(rise),
                  "samples_query": {"split": "valid", "min_step": str(vx[best] + 1), "order": "worst"}},
    )


def rule_length_drift(view: RunView) -> Finding | None:
    xs, ys = view.series("train/completion_tokens_mean")
    if len(ys) < 2 * MIN_STEPS:
        return None
    start, end = start_end(ys)
    if start <= 0:
        return None
    change = (end - start) / start
    trend = rank_correlation(xs, ys)
    if abs(change) < LENGTH_CHANGE or abs(trend) < LENGTH_TREND or (change > 0) != (trend > 0):
        return None
    growing = change > 0
    limit = view.max_completion_tokens
    near_limit = growing and limit and end >= 0.8 * limit
    return Finding(
        code="length_drift", severity="warning" if near_limit or not growing else "info",
        title="Answers keep getting longer" if growing else "Answers keep getting shorter",
        message=(f"Answers went from about {start:.0f} to {end:.0f} tokens on average "
                 f"({'+' if growing else ''}{change * 100:.0f} %), steadily over the run."
                 + (f" They are close to the longest answer allowed ({limit} tokens)." if near_limit else "")),
        what_to_try=([
            "Read some late answers: padding or repetition that the grader rewards is a sign of gaming.",
            "Add a length criterion to the rubric, or ask for brief answers in the prompt.",
            "If long answers are right for these tasks, raise the longest answer allowed.",
        ] if growing else [
            "Read some late answers: check they still say everything a correct answer needs.",
            "If the grader rewards short answers without checking content (e.g. a format check alone), "
            "add or weight up a criterion that checks the content.",
        ]),
        evidence={"metric": "train/completion_tokens_mean", "steps": _steps(xs), "start": _r(start, 1),
                  "end": _r(end, 1), "change": _r(change), "trend": _r(trend),
                  "samples_query": {"order": "-step"}},
    )


def rule_high_truncation(view: RunView) -> Finding | None:
    xs, ys = view.series("train/truncated_frac")
    if len(ys) < MIN_STEPS:
        return None
    w = window(len(ys))
    recent = mean(ys[-w:])
    if recent < TRUNCATION_WARN:
        return None
    limit = f" ({view.max_completion_tokens} tokens)" if view.max_completion_tokens else ""
    return Finding(
        code="high_truncation", severity="error" if recent >= TRUNCATION_ERROR else "warning",
        title="Many answers are cut off",
        message=(f"{_pct(recent)} of the recent answers hit the longest answer allowed{limit} and were cut "
                 "off before they finished; a cut-off answer usually scores low whatever it said."),
        what_to_try=[
            "Raise the longest answer allowed (under Advanced on the launch page).",
            "Ask for shorter answers in the prompt, or add a length criterion.",
        ],
        evidence={"metric": "train/truncated_frac", "steps": [xs[-w], xs[-1]], "value": _r(recent),
                  "samples_query": {"order": "-step"}},
    )


def rule_criterion_stuck(view: RunView) -> Finding | None:
    names = view.criteria()
    if len(names) < 2:
        return None
    moves: dict[str, tuple[float, float, list[int]]] = {}
    for name in names:
        xs, ys = view.series(f"train/grader/{name}_mean")
        if len(ys) >= 2 * MIN_STEPS:
            start, end = start_end(ys)
            moves[name] = (start, end, _steps(xs))
    risers = [n for n, (s, e, _) in moves.items() if e - s >= OTHER_RISE]
    stuck = [n for n, (s, e, _) in moves.items() if abs(e - s) < STUCK_CHANGE and e < STUCK_CEILING]
    if not risers or not stuck:
        return None
    name = min(stuck, key=lambda n: moves[n][1])
    start, end, steps = moves[name]
    riser = max(risers, key=lambda n: moves[n][1] - moves[n][0])
    return Finding(
        code="criterion_stuck", severity="warning", title=f"“{name}” is not improving",
        message=(f"The criterion “{name}” stayed at about {end:.2f} (from {start:.2f}) while “{riser}” rose "
                 f"from {moves[riser][0]:.2f} to {moves[riser][1]:.2f}. The model is learning what is easy to "
                 f"score, not what “{name}” asks for."),
        what_to_try=[
            f"Check “{name}” with the grader's Try it on a correct and a wrong answer: does it tell them apart?",
            f"Review answers for “{name}” (grader calibration): if experts disagree with it, fix the criterion.",
            f"Give “{name}” more weight, or make it a gate, so the easy criterion alone cannot earn the reward.",
            "If no answer ever passes it, the tasks may be too hard for this model: see the difficulty profile.",
        ],
        evidence={"metric": f"train/grader/{name}_mean", "criterion": name, "steps": steps, "start": _r(start),
                  "end": _r(end), "rising": riser, "rising_start": _r(moves[riser][0]),
                  "rising_end": _r(moves[riser][1]),
                  "samples_query": {"criterion": name, "max_score": "0.5", "order": "-step"}},
    )


def rule_grader_errors(view: RunView) -> Finding | None:
    best = None
    for key in ("train/grader_error_frac", "valid/grader_error_frac"):
        xs, ys = view.series(key)
        if not ys or (key.startswith("train") and len(ys) < 3):
            continue
        w = window(len(ys))
        recent = mean(ys[-w:])
        if recent >= GRADER_ERRORS_WARN and (best is None or recent > best[1]):
            best = (key, recent, [xs[-w], xs[-1]])
    if best is None:
        return None
    key, recent, steps = best
    return Finding(
        code="grader_errors", severity="error" if recent >= GRADER_ERRORS_ERROR else "warning",
        title="The grader fails on many answers",
        message=(f"The grader reported an error on {_pct(recent)} of the recent answers"
                 f"{' (validation)' if key.startswith('valid') else ''}; those answers score 0 whatever they "
                 "said, so the model is trained on the grader's bug, not on the task."),
        what_to_try=[
            "Open the samples with grader errors and read the error messages.",
            "Fix the criterion (a missing reference field, a template that names a field the tasks lack, "
            "a python check that crashes, an AI judge that cannot be reached), try it on a few answers, "
            "then launch again.",
        ],
        evidence={"metric": key, "steps": steps, "value": _r(recent), "samples_query": {"errors": "1"}},
    )


def rule_reward_collapse(view: RunView) -> Finding | None:
    xs, ys = view.series("train/reward_mean")
    if len(ys) < 2 * MIN_STEPS:
        return None
    w = window(len(ys))
    smooth = [mean(ys[max(0, i - w + 1):i + 1]) for i in range(len(ys))]
    peak_i = max(range(len(smooth)), key=lambda i: smooth[i])
    peak, now = smooth[peak_i], smooth[-1]
    collapsed = peak_i < len(ys) - w and peak - now >= COLLAPSE_DROP and peak - now >= COLLAPSE_FRACTION * peak
    kx, ky = view.series("train/kl")
    spike = None
    if len(ky) >= 2 * MIN_STEPS:
        wk = window(len(ky))
        before, recent = median(ky[:-wk]), max(ky[-wk:])
        if recent >= KL_FLOOR and recent >= KL_SPIKE * max(before, 1e-9):
            spike = (kx[-wk + ky[-wk:].index(recent)] if wk else kx[-1], recent, before)
    if not collapsed and not (spike and peak - now >= COLLAPSE_DROP / 2):
        return None
    parts = []
    if collapsed or peak - now > 0:
        parts.append(f"The training score peaked at {peak:.2f} around step {xs[peak_i]} and has fallen to {now:.2f}.")
    if spike:
        parts.append(f"The distance from the base model (KL) jumped to {spike[1]:.3f} at step {spike[0]}, "
                     f"from a typical {spike[2]:.3f}.")
    parts.append("Updates this large usually mean the learning speed is too high: the model is breaking "
                 "what it had learned.")
    return Finding(
        code="reward_collapse", severity="error", title="The score collapsed",
        message=" ".join(parts),
        what_to_try=[
            "Launch again with a lower learning speed (half or a quarter).",
            f"Start from the checkpoint near step {xs[peak_i]}, before the collapse.",
            "Keep the model closer to the base model (a KL penalty under Advanced).",
        ],
        evidence={"metric": "train/reward_mean", "peak_step": xs[peak_i], "peak": _r(peak), "latest": _r(now),
                  "latest_step": xs[-1], **({"kl_step": spike[0], "kl": _r(spike[1], 4)} if spike else {}),
                  "samples_query": {"min_step": str(xs[peak_i]), "order": "worst"}},
    )


def rule_entropy_collapse(view: RunView) -> Finding | None:
    ex, ey = view.series("train/entropy")
    if len(ey) < 2 * MIN_STEPS:
        return None
    e_start, e_end = start_end(ey)
    if e_start <= 0 or e_end >= ENTROPY_FRACTION * e_start:
        return None
    names = view.criteria()
    main = view.main_criterion if view.main_criterion in names else None
    candidates = [main] if main else names
    flat = []
    for name in candidates:
        _, ys = view.series(f"train/grader/{name}_mean")
        if len(ys) >= 2 * MIN_STEPS:
            s, e = start_end(ys)
            if abs(e - s) < FLAT_CHANGE and e < STUCK_CEILING:
                flat.append((name, s, e))
    if not names:
        _, ys = view.series("train/reward_mean")
        if len(ys) >= 2 * MIN_STEPS:
            s, e = start_end(ys)
            if abs(e - s) < FLAT_CHANGE and e < STUCK_CEILING:
                flat.append(("the score", s, e))
    if not flat:
        return None
    name, s, e = flat[0]
    label = name if name == "the score" else f"“{name}”"
    return Finding(
        code="entropy_collapse", severity="warning", title="Answers became all alike, without getting better",
        message=(f"The variety of the model's answers (entropy) fell from {e_start:.2f} to {e_end:.2f}, "
                 f"but {label} stayed at about {e:.2f} (from {s:.2f}). The model settled on one kind of answer "
                 "(often very short) that satisfies the easy parts of the grader; it stopped exploring before "
                 "it learned the main part."),
        what_to_try=[
            f"Make {label} count more (a larger weight, or a gate), so an answer that fails it earns nothing.",
            "Raise answer variety (temperature) or lower the learning speed so exploration lasts longer.",
            "Check that the tasks are solvable by this model at all (difficulty profile).",
        ],
        evidence={"metric": "train/entropy", "steps": _steps(ex), "start": _r(e_start), "end": _r(e_end),
                  "criterion": None if name == "the score" else name, "criterion_start": _r(s),
                  "criterion_end": _r(e), "samples_query": {"order": "-step"}},
    )


RULES: dict[str, Callable[[RunView], Finding | None]] = {
    "grader_errors": rule_grader_errors,
    "reward_collapse": rule_reward_collapse,
    "no_signal": rule_no_signal,
    "high_truncation": rule_high_truncation,
    "validation_falling": rule_validation_falling,
    "entropy_collapse": rule_entropy_collapse,
    "criterion_stuck": rule_criterion_stuck,
    "length_drift": rule_length_drift,
}
CODES = tuple(RULES)


def diagnose(view: RunView) -> list[Finding]:
    """Every finding that applies, most severe first (stable order within a severity)."""
    found = [f for rule in RULES.values() if (f := rule(view)) is not None]
    return sorted(found, key=lambda f: (SEVERITY_ORDER[f.severity], CODES.index(f.code)))


def main_criterion(grader_spec: dict | None) -> str | None:
    """The criterion with the largest weight in a rubric's weighted-mean formula, if it reads as one."""
    import re

    spec = grader_spec or {}
    subs = spec.get("graders") if spec.get("type") == "multi" else None
    if not isinstance(subs, dict) or len(subs) < 2:
        return None
    formula = str(spec.get("calculate_output") or "")
    weights = {}
    for key in subs:
        m = re.search(rf"([0-9.]+)\s*\*\s*{re.escape(key)}\b", formula)
        weights[key] = float(m.group(1)) if m else (1.0 if re.search(rf"\b{re.escape(key)}\b", formula) else 0.0)
    best = max(weights.values())
    top = [k for k, v in weights.items() if v == best]
    return top[0] if len(top) == 1 else None
