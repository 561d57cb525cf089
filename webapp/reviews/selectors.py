"""Reads for grader calibration: the review queue and the agreement report.

The report for a grader version pairs every expert score with that version's score of the
same criterion of the same answer. Expert scores come from reviews and from “grader was
wrong” flags on run samples (a flag on a criterion the grader passed counts as an expert
"fail", and the other way round). The grader's scores come from `ItemGrade` rows of that
version's spec, or, for answers a run graded with exactly that spec, from the run's sample.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from django.db.models import QuerySet
from django.shortcuts import get_object_or_404

from webapp.graders.models import Grader
from webapp.projects.models import Project
from webapp.runs.models import RunSample, SampleFeedback

from . import stats
from .models import GraderSpecSeen, ReviewItem

# Checks whose verdict is pass or fail; every other criterion is scored from 0 to 1.
PASS_FAIL_TYPES = frozenset({"string_check", "regex_match", "choice_match", "json_schema", "json_field_equals",
                             "length_bounds", "label_model"})
TOTAL = ""  # the criterion key of "the total"
DISAGREEMENTS_LISTED = 200


def spec_hash(spec: dict) -> str:
    return hashlib.sha256(json.dumps(spec, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def item_hash(output_text: str, item: dict) -> str:
    blob = json.dumps([output_text, item], sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()


def grader_criteria(spec: dict) -> list[dict[str, Any]]:
    """What experts score: each criterion of a rubric, or the total of a single check."""
    subs = spec.get("graders") if spec.get("type") == "multi" else None
    if isinstance(subs, dict) and subs and not isinstance(subs.get("type"), str):
        return [{"key": key, "name": sub.get("name") or key, "type": sub.get("type"),
                 "pass_fail": sub.get("type") in PASS_FAIL_TYPES} for key, sub in subs.items()]
    return [{"key": TOTAL, "name": spec.get("name") or "Overall", "type": spec.get("type"),
             "pass_fail": spec.get("type") in PASS_FAIL_TYPES}]


def criterion_label(key: str) -> str:
    return key or "total"


# --- what is reviewed ------------------------------------------------------------------------


def grader_get(*, project: Project, pk: str) -> Grader:
    return get_object_or_404(Grader, project=project, pk=pk)


def grader_latest(*, grader: Grader) -> Grader:
    return grader.project.graders.filter(name=grader.name).order_by("-version").first() or grader


def review_items(*, project: Project, grader_name: str) -> QuerySet[ReviewItem]:
    return ReviewItem.objects.filter(project=project, grader_name=grader_name)


def review_item_get(*, project: Project, pk: int) -> ReviewItem:
    return get_object_or_404(ReviewItem, project=project, pk=pk)


def review_next(*, project: Project, grader_name: str, user) -> ReviewItem | None:
    """The first answer this expert has not scored yet."""
    return (review_items(project=project, grader_name=grader_name).exclude(reviews__user=user)
            .exclude(sample__feedback__user=user).order_by("pk").first())


def review_progress(*, project: Project, grader_name: str, user) -> dict[str, int]:
    items = review_items(project=project, grader_name=grader_name)
    mine = items.filter(reviews__user=user).distinct().count()
    total = items.count()
    return {"total": total, "mine": mine, "left": total - mine}


def family_flags(*, project: Project, grader_name: str) -> QuerySet[SampleFeedback]:
    """“Grader was wrong” flags on samples of runs graded by any version of this grader."""
    return (SampleFeedback.objects.filter(sample__run__project=project, sample__run__grader__name=grader_name,
                                          user__isnull=False)
            .select_related("sample__run"))


def flag_expert_score(sample: RunSample, criterion: str) -> float | None:
    """A flag says the grader's verdict was wrong: the expert's verdict is the other one."""
    original = (sample.sub_rewards or {}).get(criterion) if criterion else sample.reward
    if not isinstance(original, int | float):
        return None
    return 0.0 if stats.passes(float(original)) else 1.0


# --- the agreement report ----------------------------------------------------------------------


@dataclass
class Unit:
    """One reviewed answer: a review item, or a flagged sample not (yet) made into one."""

    key: str
    item: ReviewItem | None
    sample: RunSample | None
    prompt: Any
    reference: Any
    output_text: str
    grade: dict[str, Any] | None  # {"reward", "sub_rewards"} of the spec, or None: not scored by it
    expert: dict[tuple[str, Any], float]  # (criterion, reviewer) -> score


def _user_label(user) -> str:
    return getattr(user, "username", None) or str(user)


def report_units(*, project: Project, grader_name: str, spec: dict) -> list[Unit]:
    h = spec_hash(spec)
    items = (review_items(project=project, grader_name=grader_name)
             .select_related("sample__run", "task").prefetch_related("reviews__user", "grades"))
    flags_by_sample: dict[int, list[SampleFeedback]] = defaultdict(list)
    for flag in family_flags(project=project, grader_name=grader_name).select_related("user"):
        flags_by_sample[flag.sample_id].append(flag)
    units = []
    seen_samples = set()
    run_hashes: dict[str, str] = {}  # a run's grader spec, hashed once (not once per answer)

    def graded_by_spec(run) -> bool:
        if run.pk not in run_hashes:
            run_hashes[run.pk] = spec_hash(run.grader_spec)
        return run_hashes[run.pk] == h
    for it in items:
        fields = current_fields(it)
        current = item_hash(it.output_text, fields)
        grade = next(({"reward": g.reward, "sub_rewards": g.sub_rewards} for g in it.grades.all()
                      if g.spec_hash == h and g.item_hash == current), None)
        expert = {(r.criterion, _user_label(r.user)): r.score for r in it.reviews.all()}
        if it.sample_id:
            seen_samples.add(it.sample_id)
            for flag in flags_by_sample.get(it.sample_id, []):
                score = flag_expert_score(it.sample, flag.criterion)
                if score is not None:
                    expert.setdefault((flag.criterion, _user_label(flag.user)), score)
            if grade is None and graded_by_spec(it.sample.run):
                grade = {"reward": it.sample.reward, "sub_rewards": it.sample.sub_rewards}
        units.append(Unit(f"item-{it.pk}", it, it.sample, it.prompt, fields, it.output_text, grade, expert))
    for sample_id, flags in flags_by_sample.items():
        if sample_id in seen_samples:
            continue
        sample = flags[0].sample
        expert = {}
        for flag in flags:
            score = flag_expert_score(sample, flag.criterion)
            if score is not None:
                expert.setdefault((flag.criterion, _user_label(flag.user)), score)
        grade = ({"reward": sample.reward, "sub_rewards": sample.sub_rewards}
                 if graded_by_spec(sample.run) else None)
        if expert:
            units.append(Unit(f"sample-{sample.pk}", None, sample, sample.prompt, sample.item, sample.output_text,
                              grade, expert))
    return units


def current_fields(item: ReviewItem) -> dict:
    """The reference fields an answer is graded against: its task's as they are now (an expert
    may have fixed the reference), else those stored with it. Flags keep what the run saw."""
    if item.task_id and item.source != "flag" and item.task is not None:
        return {k: v for k, v in (item.task.data or {}).items() if k != "messages"}
    return item.item


def _grader_score(grade: dict[str, Any], criterion: str) -> float | None:
    value = grade["reward"] if criterion == TOTAL else (grade.get("sub_rewards") or {}).get(criterion)
    return float(value) if isinstance(value, int | float) else None


def agreement_for_spec(*, project: Project, grader_name: str, spec: dict) -> dict[str, Any]:
    """The report for one grader spec: `stats.agreement_report` plus what the page lists."""
    units = report_units(project=project, grader_name=grader_name, spec=spec)
    names = {c["key"]: c["name"] for c in grader_criteria(spec)}
    pairs: list[stats.Pair] = []
    expert_only: dict[tuple[Any, str], dict[Any, float]] = defaultdict(dict)
    unscored = 0
    by_key = {u.key: u for u in units}
    for u in units:
        if u.grade is None:
            unscored += 1
        for (criterion, reviewer), score in u.expert.items():
            g = _grader_score(u.grade, criterion) if u.grade is not None else None
            if g is None:
                expert_only[(u.key, criterion)][reviewer] = score
            else:
                pairs.append(stats.Pair(item=u.key, criterion=criterion, reviewer=reviewer, grader=g, expert=score))
    report = stats.agreement_report(pairs, expert_only=expert_only)
    report["criteria"] = {criterion_label(k): {**v, "key": k, "label": names.get(k, "the total" if k == TOTAL else k)}
                          for k, v in report["criteria"].items()}
    report["unscored"] = unscored
    report["reviewed"] = len(units)
    report["verdict"] = stats.verdict(report)
    report["disagreements"] = [
        {"unit": by_key[p.item], "criterion": p.criterion, "criterion_label": names.get(p.criterion, p.criterion or "the total"),
         "grader": p.grader, "expert": p.expert, "reviewer": p.reviewer}
        for p in report["disagreements"][:DISAGREEMENTS_LISTED]]
    return report


def grader_agreement(*, grader: Grader) -> dict[str, Any]:
    return agreement_for_spec(project=grader.project, grader_name=grader.name, spec=grader.spec)


def previous_spec(*, grader: Grader) -> GraderSpecSeen | None:
    """The spec this grader's reviewed answers were scored with before its current one."""
    return (GraderSpecSeen.objects.filter(project=grader.project, grader_name=grader.name)
            .exclude(spec_hash=spec_hash(grader.spec)).order_by("-created_at", "-pk").first())


def agreement_api_object(report: dict[str, Any], *, grader: Grader) -> dict[str, Any]:
    """`GET /v1/graders/{id}/agreement`: the page's numbers, without its page-only parts."""
    overall = report["overall"]
    return {
        "object": "grader.agreement", "grader_id": grader.pk, "grader_name": grader.name, "version": grader.version,
        "overall": {"agreement": overall["agreement"], "kappa": overall["kappa"], "n": overall["n"],
                    "mean_abs_diff": overall["mean_abs_diff"], "items": overall["items"]},
        "criteria": {name: {k: c[k] for k in ("agreement", "kappa", "mean_abs_diff", "n", "kind", "key", "label")}
                     for name, c in report["criteria"].items()},
        "inter_rater": report["inter_rater"],
        "reviewed_items": report["reviewed"], "unscored_items": report["unscored"], "verdict": report["verdict"],
        "disagreements": [{"item": d["unit"].key, "criterion": d["criterion"] or "total", "grader_score": d["grader"],
                           "expert_score": d["expert"], "reviewer": d["reviewer"],
                           "output_text": d["unit"].output_text[:2000]} for d in report["disagreements"]],
    }
