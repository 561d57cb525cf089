"""Insight screens: the run page's findings panel (a partial the page polls while live), the
task difficulty profile, re-grading a finished run."""

from __future__ import annotations

from urllib.parse import urlencode

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from webapp.projects.access import ProjectAccess, project_view
from webapp.projects.models import Role
from webapp.runs import selectors as run_selectors

from .panels import findings_context


@require_GET
@project_view(Role.VIEWER)
def run_findings(request, access: ProjectAccess, pk: str):
    run = run_selectors.run_get(project=access.project, pk=pk)
    return render(request, "insights/_findings_panel.html",
                  findings_context(run=run, project=access.project, access=access))


# --- difficulty profile ------------------------------------------------------------------------

DEFAULT_K, DEFAULT_TASKS = 8, 50


def _int(value, default: int) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def _difficulty_context(access: ProjectAccess, dataset, params) -> dict:
    from webapp.graders.selectors import grader_list_latest
    from webapp.runs.selectors import base_model_choices

    from . import selectors, services

    graders = list(grader_list_latest(project=access.project))
    models = base_model_choices()
    k = min(max(_int(params.get("k"), DEFAULT_K), 1), services.MAX_K)
    max_tasks = min(max(_int(params.get("max_tasks"), DEFAULT_TASKS), 1), services.MAX_TASKS)
    base_model = params.get("base_model") or (models[0][0] if models else "")
    grader_pk = params.get("grader") or (dataset_grader.pk if (dataset_grader := next(
        (g for g in graders if g.dataset_id == dataset.pk), None)) else (graders[0].pk if graders else ""))
    profile = selectors.difficulty_latest(dataset=dataset)
    return {"access": access, "project": access.project, "dataset": dataset, "graders": graders, "models": models,
            "k": k, "max_tasks": max_tasks, "base_model": base_model, "grader_pk": grader_pk, "profile": profile,
            "estimate": selectors.difficulty_estimate(dataset=dataset, base_model=base_model, k=k,
                                                      max_tasks=max_tasks),
            "tab": "datasets"}


@require_GET
@project_view(Role.VIEWER)
def difficulty(request, access: ProjectAccess, pk: int):
    from webapp.datasets.models import Dataset

    dataset = get_object_or_404(Dataset, project=access.project, pk=pk)
    return render(request, "insights/difficulty.html", _difficulty_context(access, dataset, request.GET))


@require_POST
@project_view(Role.EDITOR)
def difficulty_start(request, access: ProjectAccess, pk: int):
    from webapp.datasets.models import Dataset
    from webapp.graders.models import Grader

    from . import services

    dataset = get_object_or_404(Dataset, project=access.project, pk=pk)
    grader = Grader.objects.filter(project=access.project, pk=request.POST.get("grader", "")).first()
    if grader is None:
        messages.error(request, "Choose a grader of this project: it scores the base model's answers.")
        return redirect("insights:difficulty", slug=access.project.slug, pk=dataset.pk)
    try:
        services.difficulty_start(project=access.project, dataset=dataset, grader=grader,
                                  base_model=request.POST.get("base_model", ""),
                                  k=_int(request.POST.get("k"), 0), max_tasks=_int(request.POST.get("max_tasks"), 0),
                                  user=request.user)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, "Sampling started on a worker; this page shows its progress.")
    keep = {k: request.POST[k] for k in ("grader", "base_model", "k", "max_tasks") if request.POST.get(k)}
    return redirect(reverse("insights:difficulty", args=[access.project.slug, dataset.pk]) + "?" + urlencode(keep))


@require_GET
@project_view(Role.VIEWER)
def difficulty_status(request, access: ProjectAccess, profile_pk: int):
    from . import selectors

    profile = selectors.difficulty_get(project=access.project, pk=profile_pk)
    return render(request, "insights/_difficulty_profile.html",
                  {"access": access, "project": access.project, "profile": profile, "dataset": profile.dataset})


@require_POST
@project_view(Role.EDITOR)
def difficulty_apply(request, access: ProjectAccess, profile_pk: int):
    from . import selectors, services

    profile = selectors.difficulty_get(project=access.project, pk=profile_pk)
    try:
        copy = services.difficulty_apply(profile=profile, action=request.POST.get("action", ""),
                                         bands=request.POST.getlist("bands"), user=request.user)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        return redirect("insights:difficulty", slug=access.project.slug, pk=profile.dataset_id)
    messages.success(request, f"Saved {copy.name} v{copy.version}: {copy.source}. Launch runs on this version.")
    return redirect("datasets:detail", slug=access.project.slug, pk=copy.pk)


@require_POST
@project_view(Role.EDITOR)
def difficulty_review(request, access: ProjectAccess, profile_pk: int):
    """Send the profile's base-model answers to the grader's review queue."""
    from webapp.reviews.services import review_items_add_from_profile

    from . import selectors

    profile = selectors.difficulty_get(project=access.project, pk=profile_pk)
    if profile.grader is None:
        messages.error(request, "The grader of this profile was deleted.")
        return redirect("insights:difficulty", slug=access.project.slug, pk=profile.dataset_id)
    try:
        added = review_items_add_from_profile(grader=profile.grader, profile=profile,
                                              count=_int(request.POST.get("count"), 10), user=request.user)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        return redirect("insights:difficulty", slug=access.project.slug, pk=profile.dataset_id)
    messages.success(request, f"Added {len(added)} base-model answers to review.")
    return redirect("reviews:grader", slug=access.project.slug, pk=profile.grader.pk)


# --- re-grade a finished run -------------------------------------------------------------------


@require_POST
@project_view(Role.EDITOR)
def regrade_start(request, access: ProjectAccess, pk: str):
    from webapp.graders.models import Grader

    from . import services

    run = run_selectors.run_get(project=access.project, pk=pk)
    grader = Grader.objects.filter(project=access.project, pk=request.POST.get("grader", "")).first()
    if grader is None:
        messages.error(request, "Choose a grader of this project to re-grade the run with.")
        return redirect(reverse("runs:detail", args=[access.project.slug, run.pk]) + "#run-findings")
    try:
        services.regrade_start(run=run, grader=grader, user=request.user)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, f"Re-grading the run's answers with {grader.name} v{grader.version} on a worker.")
    return redirect(reverse("runs:detail", args=[access.project.slug, run.pk]) + "#run-findings")
