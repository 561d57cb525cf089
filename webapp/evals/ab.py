"""Blind A/B review: experts compare two evaluations' answers task by task without knowing
which model wrote which. Each task's side is fixed by the review's seed (a hash), so an
expert who reloads sees the same order, and the order differs from task to task.

Results: the experts' win rate of the candidate (ties count half) with a 95% Wilson
interval, beside the grader's verdict on the same pairs, and the pairs where experts and
the grader disagree — grader bugs or reference bugs, linked for editing.
"""

from __future__ import annotations

import hashlib
import math
import random
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db import transaction
from django.shortcuts import get_object_or_404

from webapp.projects.models import Project

from .models import AbChoice, AbPick, AbReview, EvalStatus, Evaluation
from .selectors import TIE_TOLERANCE

MAX_NOTE = 5000


def left_side(review: AbReview, task_key: str) -> str:
    """'baseline' or 'candidate': which answer is shown first for this task."""
    digest = hashlib.sha256(f"{review.seed}:{task_key}".encode()).digest()
    return "candidate" if digest[0] % 2 else "baseline"


def shared_tasks(review: AbReview) -> list[str]:
    """Task keys both evaluations answered, in the review's own shuffled order."""
    a = set(review.baseline.items.values_list("task_key", flat=True))
    keys = [k for k in review.candidate.items.order_by("index").values_list("task_key", flat=True) if k in a]
    random.Random(review.seed).shuffle(keys)
    return keys


@transaction.atomic
def ab_review_create(*, project: Project, user, baseline: Evaluation, candidate: Evaluation, name: str = "") -> AbReview:
    for ev in (baseline, candidate):
        if ev.project_id != project.pk:
            raise ValidationError("Both evaluations must belong to this project.")
        if ev.status != EvalStatus.COMPLETED:
            raise ValidationError(f"{ev.label} is not completed yet.")
    if baseline.pk == candidate.pk:
        raise ValidationError("Pick two different evaluations.")
    review = AbReview.objects.create(project=project, baseline=baseline, candidate=candidate, created_by=user,
                                     seed=random.SystemRandom().randrange(2**31),
                                     name=name.strip()[:200] or f"{candidate.label} vs {baseline.label}")
    if not shared_tasks(review):
        raise ValidationError("These two evaluations have no task in common.")
    return review


def ab_review_get(*, project: Project, pk: int) -> AbReview:
    return get_object_or_404(AbReview.objects.select_related("baseline", "candidate"), project=project, pk=pk)


def ab_next_task(*, review: AbReview, user) -> tuple[str | None, int, int]:
    """(next task key for this expert or None, how many they judged, how many there are)."""
    keys = shared_tasks(review)
    done = set(review.picks.filter(user=user).values_list("task_key", flat=True))
    nxt = next((k for k in keys if k not in done), None)
    return nxt, len(done & set(keys)), len(keys)


def ab_pair(*, review: AbReview, task_key: str) -> dict:
    """What the expert sees for one task: prompt, reference and the two answers, labels hidden."""
    base = get_object_or_404(review.baseline.items, task_key=task_key)
    cand = get_object_or_404(review.candidate.items, task_key=task_key)
    left = left_side(review, task_key)
    first, second = (cand, base) if left == "candidate" else (base, cand)
    return {"task_key": task_key, "prompt": cand.prompt, "reference": cand.item.get("reference_answer"),
            "answers": [first.output_text, second.output_text], "left": left}


@transaction.atomic
def ab_pick_record(*, review: AbReview, user, task_key: str, pick: str, note: str = "") -> AbPick:
    """`pick` is what the expert clicked: 'first', 'second' or 'tie'; stored as which model won."""
    if pick not in ("first", "second", "tie"):
        raise ValidationError("Pick the first answer, the second, or a tie.")
    if task_key not in shared_tasks(review):
        raise ValidationError("This task is not part of the review.")
    left = left_side(review, task_key)
    right = "baseline" if left == "candidate" else "candidate"
    choice = {"first": left, "second": right, "tie": AbChoice.TIE}[pick]
    obj, _ = AbPick.objects.update_or_create(review=review, task_key=task_key, user=user,
                                             defaults={"choice": choice, "shown_left": left,
                                                       "note": note.strip()[:MAX_NOTE]})
    return obj


@transaction.atomic
def ab_disagreement_to_calibration(*, review: AbReview, task_key: str, user):
    """Both answers of one pair into the grader's review queue (grader calibration), where
    experts score them criterion by criterion and the agreement report counts them.
    Returns (grader, the review items)."""
    from webapp.reviews.services import review_item_from_eval_item

    grader = ab_grader(review)
    if grader is None:
        raise ValidationError("These evaluations were not graded with a saved grader of this project, so there is "
                              "no grader to check with experts.")
    if task_key not in shared_tasks(review):
        raise ValidationError("This task is not part of the review.")
    items = [get_object_or_404(ev.items, task_key=task_key) for ev in (review.candidate, review.baseline)]
    return grader, [review_item_from_eval_item(grader=grader, eval_item=it, user=user) for it in items]


def wilson(successes: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of a proportion (successes may be fractional: ties count half)."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def ab_grader(review: AbReview):
    """The saved grader the two evaluations were graded with, for "open the grader" and for
    sending a disagreement to its calibration queue: the candidate's, else its run's, else the
    baseline's (an Evals API run has none). None when no saved grader of the project is known."""
    from webapp.graders.models import Grader

    for ev in (review.candidate, review.baseline):
        pk = ev.grader_id or (ev.run.grader_id if ev.run_id else None)
        if pk:
            grader = Grader.objects.filter(pk=pk, project_id=review.project_id).first()
            if grader is not None:
                return grader
    return None


def _task_links(review: AbReview, pairs: list[tuple]) -> dict[str, tuple[int, int]]:
    """task_key -> (dataset pk, task pk) of the dataset task each pair answered, only while that
    task still exists in the project (either evaluation's item may carry it)."""
    from webapp.datasets.models import Task

    wanted = {key: [i.task_id for i in items if i is not None and i.task_id] for key, items in pairs}
    ids = {t for ts in wanted.values() for t in ts}
    found = dict(Task.objects.filter(pk__in=ids, dataset__project_id=review.project_id)
                 .values_list("pk", "dataset_id")) if ids else {}
    out = {}
    for key, ts in wanted.items():
        t = next((t for t in ts if t in found), None)
        if t is not None:
            out[key] = (found[t], t)
    return out


@dataclass
class AbResults:
    n: int
    wins: int
    losses: int
    ties: int
    win_rate: float | None
    ci: tuple[float, float]
    grader: dict
    disagreements: list[dict]
    experts: int


def _grader_choice(delta: float) -> str:
    return AbChoice.TIE if abs(delta) <= TIE_TOLERANCE else (AbChoice.CANDIDATE if delta > 0 else AbChoice.BASELINE)


def ab_results(*, review: AbReview) -> AbResults:
    picks = list(review.picks.select_related("user"))
    base = {i.task_key: i for i in review.baseline.items.all()}
    cand = {i.task_key: i for i in review.candidate.items.all()}
    wins = sum(p.choice == AbChoice.CANDIDATE for p in picks)
    losses = sum(p.choice == AbChoice.BASELINE for p in picks)
    ties = len(picks) - wins - losses
    n = len(picks)
    g = {"wins": 0, "losses": 0, "ties": 0}
    disagreements = []
    for p in picks:
        b, c = base.get(p.task_key), cand.get(p.task_key)
        if b is None or c is None:
            continue
        verdict = _grader_choice(c.reward - b.reward)
        g[{"candidate": "wins", "baseline": "losses", "tie": "ties"}[verdict]] += 1
        if verdict != p.choice:
            disagreements.append({"pick": p, "grader": verdict, "baseline": b, "candidate": c,
                                  "prompt": c.prompt, "reference": c.item.get("reference_answer"),
                                  "task_id": c.task_id, "dataset_id": None})
    links = _task_links(review, [(d["pick"].task_key, (d["candidate"], d["baseline"])) for d in disagreements])
    for d in disagreements:
        d["dataset_id"], d["task_id"] = links.get(d["pick"].task_key, (None, None))
    g_rate = (g["wins"] + g["ties"] / 2) / n if n else None
    return AbResults(n=n, wins=wins, losses=losses, ties=ties,
                     win_rate=(wins + ties / 2) / n if n else None, ci=wilson(wins + ties / 2, n),
                     grader={**g, "win_rate": g_rate, "agreement": (n - len(disagreements)) / n if n else None},
                     disagreements=disagreements, experts=len({p.user_id for p in picks}))
