"""Agreement statistics between a grader and experts, and among experts. Pure functions.

The unit is a *pair*: one expert's score and the grader's score for one criterion of one
answer. Scores are 0..1; "pass" means a score of 0.5 or more.

- A criterion is **pass/fail** when every grader and expert score seen for it is exactly 0
  or 1; otherwise it is **graded**.
- **agreement**: the share of pairs that agree. For pass/fail, the same verdict; for graded,
  scores at most `GRADED_TOLERANCE` apart.
- **kappa** (pass/fail only): Cohen's kappa, agreement corrected for chance,
  (p_o - p_e) / (1 - p_e) with p_e = p_grader_pass * p_expert_pass + p_grader_fail * p_expert_fail.
  Undefined (None) when p_e = 1 (everyone always said the same thing).
- **mean_abs_diff**: the mean of |grader - expert|.
- **overall**: all pairs of all criteria together; kappa on the pass/fail verdicts.
- **inter_rater**: for answers that two or more experts scored on the same criterion, every
  pair of experts: agreement as above, and kappa with the chance term from the pooled pass
  rate p (p_e = p^2 + (1 - p)^2, Fleiss' kappa for pairs of raters).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import combinations
from typing import Any

GRADED_TOLERANCE = 0.2
LOW_AGREEMENT = 0.8  # below this, the launch page warns
MIN_REVIEWS = 10  # fewer reviewed answers than this: agreement is "not measured yet"


@dataclass(frozen=True)
class Pair:
    item: Any  # the answer's id
    criterion: str
    reviewer: Any
    grader: float
    expert: float


def passes(score: float) -> bool:
    return score >= 0.5


def is_pass_fail(scores: Iterable[float]) -> bool:
    return all(s in (0.0, 1.0) for s in scores)


def agrees(a: float, b: float, pass_fail: bool) -> bool:
    return passes(a) == passes(b) if pass_fail else abs(a - b) <= GRADED_TOLERANCE + 1e-9


def cohen_kappa(pairs: list[tuple[bool, bool]]) -> float | None:
    """Cohen's kappa of two raters' pass/fail verdicts, given as (rater_a, rater_b) pairs."""
    n = len(pairs)
    if not n:
        return None
    p_o = sum(a == b for a, b in pairs) / n
    pa = sum(a for a, _ in pairs) / n
    pb = sum(b for _, b in pairs) / n
    p_e = pa * pb + (1 - pa) * (1 - pb)
    if p_e >= 1 - 1e-12:
        return None
    return (p_o - p_e) / (1 - p_e)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def summarize(pairs: list[Pair], pass_fail: bool) -> dict[str, Any]:
    n = len(pairs)
    if not n:
        return {"n": 0, "agreement": None, "kappa": None, "mean_abs_diff": None}
    agree = sum(agrees(p.grader, p.expert, pass_fail) for p in pairs) / n
    kappa = cohen_kappa([(passes(p.grader), passes(p.expert)) for p in pairs]) if pass_fail else None
    mad = sum(abs(p.grader - p.expert) for p in pairs) / n
    return {"n": n, "agreement": _round(agree), "kappa": _round(kappa), "mean_abs_diff": _round(mad)}


def inter_rater(ratings: dict[tuple[Any, str], dict[Any, float]], kinds: dict[str, bool]) -> dict[str, Any]:
    """`ratings[(item, criterion)] = {reviewer: score}`; `kinds[criterion]` True = pass/fail."""
    pairs = []
    verdicts: list[bool] = []
    units = 0
    for (_, criterion), by_reviewer in ratings.items():
        scores = list(by_reviewer.values())
        if len(scores) < 2:
            continue
        units += 1
        verdicts += [passes(s) for s in scores]
        pass_fail = kinds.get(criterion, is_pass_fail(scores))
        pairs += [(agrees(a, b, pass_fail), passes(a) == passes(b)) for a, b in combinations(scores, 2)]
    if not pairs:
        return {"n_items": 0, "n_pairs": 0, "agreement": None, "kappa": None}
    p_o = sum(v for _, v in pairs) / len(pairs)
    p = sum(verdicts) / len(verdicts)
    p_e = p * p + (1 - p) * (1 - p)
    kappa = None if p_e >= 1 - 1e-12 else (p_o - p_e) / (1 - p_e)
    return {"n_items": units, "n_pairs": len(pairs), "agreement": _round(sum(a for a, _ in pairs) / len(pairs)),
            "kappa": _round(kappa)}


def agreement_report(pairs: list[Pair], *, expert_only: dict[tuple[Any, str], dict[Any, float]] | None = None,
                     ) -> dict[str, Any]:
    """The report: `overall`, `criteria` (by name) and `inter_rater`, plus the disagreeing pairs.

    `expert_only` adds expert ratings of answers the grader has not scored yet (they count
    between experts, not against the grader).
    """
    by_criterion: dict[str, list[Pair]] = defaultdict(list)
    for p in pairs:
        by_criterion[p.criterion].append(p)
    kinds = {c: is_pass_fail([s for p in ps for s in (p.grader, p.expert)]) for c, ps in by_criterion.items()}
    criteria = {c: {**summarize(ps, kinds[c]), "kind": "pass_fail" if kinds[c] else "graded"}
                for c, ps in sorted(by_criterion.items())}
    n = len(pairs)
    overall: dict[str, Any] = {"n": n, "agreement": None, "kappa": None, "mean_abs_diff": None}
    if n:
        overall["agreement"] = _round(sum(agrees(p.grader, p.expert, kinds[p.criterion]) for p in pairs) / n)
        overall["kappa"] = _round(cohen_kappa([(passes(p.grader), passes(p.expert)) for p in pairs]))
        overall["mean_abs_diff"] = _round(sum(abs(p.grader - p.expert) for p in pairs) / n)
    overall["items"] = len({p.item for p in pairs})
    ratings: dict[tuple[Any, str], dict[Any, float]] = defaultdict(dict)
    for key, by in (expert_only or {}).items():
        ratings[key].update(by)
    for p in pairs:
        ratings[(p.item, p.criterion)][p.reviewer] = p.expert
    disagreements = [p for p in pairs if not agrees(p.grader, p.expert, kinds[p.criterion])]
    return {"overall": overall, "criteria": criteria, "inter_rater": inter_rater(ratings, kinds),
            "disagreements": disagreements}


def verdict(report: dict[str, Any]) -> str:
    """'unmeasured', 'low' or 'ok': what the launch page says about a grader."""
    overall = report["overall"]
    if overall.get("items", 0) < MIN_REVIEWS or overall["agreement"] is None:
        return "unmeasured"
    return "low" if overall["agreement"] < LOW_AGREEMENT else "ok"
