"""Grader calibration screens: the agreement report, the blind review form, adding answers.

Experts score an answer before they see what the grader gave it (the grader's scores appear
only after they saved theirs), so the report measures their own judgement.
"""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from webapp.datasets.models import Task
from webapp.evals.models import EvalStatus, Evaluation
from webapp.graders.selectors import grader_list_latest
from webapp.projects.access import ProjectAccess, project_view
from webapp.projects.models import Role
from webapp.runs.models import Run

from . import selectors, services, stats

PASTE_TASKS_OFFERED = 300


def _report_context(access: ProjectAccess, grader) -> dict:
    report = selectors.grader_agreement(grader=grader)
    before = selectors.previous_spec(grader=grader)
    before_report = (selectors.agreement_for_spec(project=grader.project, grader_name=grader.name, spec=before.spec)
                     if before else None)
    rescore = grader.rescores.order_by("-created_at", "-pk").first()
    same_spec = rescore is not None and rescore.spec_hash == selectors.spec_hash(grader.spec)
    unscored = report["unscored"] > 0 and access.can_edit and not (same_spec and rescore.status in ("queued", "running"))
    return {"access": access, "project": access.project, "grader": grader, "report": report,
            "before": before, "before_report": before_report, "rescore": rescore,
            "low": stats.LOW_AGREEMENT, "min_reviews": stats.MIN_REVIEWS,
            # Scored automatically the first time this spec is shown; after that, on request.
            "needs_rescore": unscored, "auto_rescore": unscored and not same_spec}


@require_GET
@project_view(Role.VIEWER)
def review_index(request, access: ProjectAccess):
    rows = []
    for grader in grader_list_latest(project=access.project):
        report = selectors.grader_agreement(grader=grader)
        rows.append({"grader": grader, "report": report})
    return render(request, "reviews/index.html", {"access": access, "project": access.project, "rows": rows,
                                                  "tab": "reviews"})


@require_GET
@project_view(Role.VIEWER)
def grader_reviews(request, access: ProjectAccess, pk: str):
    grader = selectors.grader_get(project=access.project, pk=pk)
    context = _report_context(access, grader)
    latest = selectors.grader_latest(grader=grader)
    runs = Run.objects.filter(project=access.project).select_related("grader").order_by("-created_at")[:50]
    tasks = list(grader.dataset.tasks.order_by("position")[:PASTE_TASKS_OFFERED]) if grader.dataset else []
    context.update({
        "tab": "reviews", "latest": latest if latest.pk != grader.pk else None,
        "progress": selectors.review_progress(project=access.project, grader_name=grader.name, user=request.user),
        "runs": [r for r in runs if r.grader is None or r.grader.name == grader.name],
        "tasks": tasks, "criteria": selectors.grader_criteria(grader.spec),
        "evaluations": Evaluation.objects.filter(project=access.project, status=EvalStatus.COMPLETED,
                                                 total_items__gt=0).order_by("-created_at")[:50],
    })
    return render(request, "reviews/grader.html", context)


@require_GET
@project_view(Role.VIEWER)
def grader_report(request, access: ProjectAccess, pk: str):
    """The report partial (htmx polls it while a worker re-scores)."""
    grader = selectors.grader_get(project=access.project, pk=pk)
    return render(request, "reviews/_report.html", _report_context(access, grader))


@require_POST
@project_view(Role.EDITOR)
def grader_rescore(request, access: ProjectAccess, pk: str):
    grader = selectors.grader_get(project=access.project, pk=pk)
    services.rescore_start(grader=grader, user=request.user)
    if request.htmx:
        return render(request, "reviews/_report.html", _report_context(access, grader))
    return redirect("reviews:grader", slug=access.project.slug, pk=grader.pk)


def _count(params) -> int:
    """The form's "how many answers" (the services check the range)."""
    try:
        return int(params.get("count", "10"))
    except ValueError:
        raise ValidationError({"count": "How many answers: a whole number."}) from None


@require_POST
@project_view(Role.EDITOR)
def grader_add(request, access: ProjectAccess, pk: str):
    """Add answers to review: a run's answers, or one pasted answer to a task."""
    grader = selectors.grader_get(project=access.project, pk=pk)
    try:
        if request.POST.get("source") == "run":
            run = get_object_or_404(Run, project=access.project, pk=request.POST.get("run", ""))
            count = _count(request.POST)
            added = services.review_items_add_from_run(grader=grader, run=run, count=count, user=request.user,
                                                       split=request.POST.get("split", "") if
                                                       request.POST.get("split") in ("train", "valid") else "")
            messages.success(request, f"Added {len(added)} answer{'s' if len(added) != 1 else ''} of run "
                                      f"{run.suffix or run.pk} to review.")
        elif request.POST.get("source") == "evaluation":
            evaluation = get_object_or_404(Evaluation, project=access.project, pk=request.POST.get("evaluation", ""))
            count = _count(request.POST)
            added = services.review_items_add_from_evaluation(grader=grader, evaluation=evaluation, count=count,
                                                              user=request.user)
            messages.success(request, f"Added {len(added)} answer{'s' if len(added) != 1 else ''} of evaluation "
                                      f"“{evaluation.name or evaluation.model_name}” to review.")
        else:
            task = None
            if request.POST.get("task"):
                task = get_object_or_404(Task, pk=request.POST["task"] if request.POST["task"].isdigit() else 0,
                                         dataset__project=access.project)
            services.review_item_add_answer(grader=grader, task=task, output_text=request.POST.get("output_text", ""),
                                            user=request.user)
            messages.success(request, "Added the answer to review.")
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    return redirect("reviews:grader", slug=access.project.slug, pk=grader.pk)


@require_GET
@project_view(Role.VIEWER)
def review_next(request, access: ProjectAccess, pk: str):
    grader = selectors.grader_get(project=access.project, pk=pk)
    item = selectors.review_next(project=access.project, grader_name=grader.name, user=request.user)
    if item is None:
        messages.success(request, "You have scored every answer in the queue. Here is how the grader compares.")
        return redirect(reverse("reviews:grader", args=[access.project.slug, grader.pk]) + "#agreement")
    return redirect("reviews:item", slug=access.project.slug, pk=grader.pk, item_pk=item.pk)


def _review_form_rows(criteria, mine: dict[str, float]) -> list[dict]:
    return [{**c, "field": f"score-{c['key'] or 'total'}", "value": mine.get(c["key"])} for c in criteria]


@require_http_methods(["GET", "POST"])
@project_view(Role.VIEWER)
def review_item(request, access: ProjectAccess, pk: str, item_pk: int):
    """Score one answer, criterion by criterion; the grader's scores show only afterwards."""
    grader = selectors.grader_get(project=access.project, pk=pk)
    item = selectors.review_item_get(project=access.project, pk=item_pk)
    if item.grader_name != grader.name:
        return redirect("reviews:grader", slug=access.project.slug, pk=grader.pk)
    criteria = selectors.grader_criteria(grader.spec)
    error = None
    if request.method == "POST":
        scores = {}
        for c in criteria:
            raw = request.POST.get(f"score-{c['key'] or 'total'}", "")
            if raw != "":
                scores[c["key"]] = raw
        try:
            services.review_save(item=item, user=request.user, scores=scores, note=request.POST.get("note", ""),
                                 spec=grader.spec)
        except ValidationError as exc:
            error = " ".join(exc.messages)
        else:
            if request.POST.get("next") == "1":
                return redirect("reviews:next", slug=access.project.slug, pk=grader.pk)
            return redirect("reviews:item", slug=access.project.slug, pk=grader.pk, item_pk=item.pk)
    mine = {r.criterion: r.score for r in item.reviews.filter(user=request.user)}
    grade = None
    if mine:  # only after the expert's own verdict
        grade = item.grades.filter(spec_hash=selectors.spec_hash(grader.spec)).first()
    progress = selectors.review_progress(project=access.project, grader_name=grader.name, user=request.user)
    return render(request, "reviews/item.html", {
        "access": access, "project": access.project, "grader": grader, "item": item, "tab": "reviews",
        "rows": _review_form_rows(criteria, mine), "mine": mine, "grade": grade, "error": error,
        "progress": progress, "reference_fields": sorted(item.item.items()),
        "others": item.reviews.exclude(user=request.user).count(),
    }, status=400 if error else 200)
