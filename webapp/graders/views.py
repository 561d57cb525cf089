"""Grader screens: the rubric builder, JSON import/edit, try-it, and the check against references."""

from __future__ import annotations

import json

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpResponse, HttpResponseBadRequest
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.html import format_html
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRedirect

from trainer.grading import GRADER_TYPES, run_grader
from webapp.datasets.importers import reference_fields
from webapp.datasets.models import Dataset
from webapp.projects.access import ProjectAccess, project_view
from webapp.projects.models import Role

from . import rubric as rb
from . import selectors, services
from .explain import criterion_reason, criterion_words
from .forms import GraderMetaForm, ImportForm, TryForm
from .judges import sync_judges
from .models import Grader

CHIP_SAMPLE_TASKS = 50
INLINE_CHECK_SECONDS = 5  # a reference check runs in the request for at most this long


def _dataset_from(project, value) -> Dataset | None:
    if value in (None, "") or not str(value).isdigit():
        return None
    return Dataset.objects.filter(project=project, pk=int(value)).first()


def _chips(dataset: Dataset | None) -> list[str]:
    """{{item.*}} chips: the reference fields seen in the dataset's first tasks."""
    keys: dict[str, None] = {}
    if dataset is not None:
        for data in dataset.tasks.order_by("position").values_list("data", flat=True)[:CHIP_SAMPLE_TASKS]:
            keys.update(dict.fromkeys(reference_fields(data) if isinstance(data, dict) else {}))
    return rb.item_chips(keys)


def _detail_url(grader: Grader) -> str:
    return reverse("graders:detail", args=[grader.project.slug, grader.pk])


# --- list, detail, delete -------------------------------------------------------------------


@require_GET
@project_view(Role.VIEWER)
def grader_list(request, access: ProjectAccess):
    graders = selectors.grader_list(project=access.project)
    return render(request, "graders/list.html", {
        "access": access, "project": access.project, "graders": graders, "types": GRADER_TYPES,
    })


def _criteria_rows(grader: Grader) -> list[dict]:
    """The criteria of a saved grader, for its page."""
    spec = grader.spec
    subs = spec.get("graders") if spec.get("type") == "multi" else None
    def label(type_) -> str:
        return GRADER_TYPES.get(type_, {}).get("label", type_)

    if not isinstance(subs, dict):
        return [{"key": spec.get("name", ""), "name": spec.get("name", ""), "type": spec.get("type", ""),
                 "label": label(spec.get("type")), "words": criterion_words(spec), "spec": spec}]
    meta = {c["key"]: c for c in (grader.rubric or {}).get("criteria", [])}
    return [{"key": key, "name": sub.get("name", key), "type": sub.get("type", ""), "label": label(sub.get("type")),
             "weight": meta.get(key, {}).get("weight"), "gate": meta.get(key, {}).get("gate", False),
             "words": criterion_words(sub), "spec": sub}
            for key, sub in subs.items() if isinstance(sub, dict)]


@require_GET
@project_view(Role.VIEWER)
def grader_detail(request, access: ProjectAccess, pk: str):
    grader = selectors.grader_get(project=access.project, pk=pk)
    return render(request, "graders/detail.html", {
        "access": access, "project": access.project, "grader": grader, "types": GRADER_TYPES,
        "criteria": _criteria_rows(grader), "spec_json": json.dumps(grader.spec, indent=2, ensure_ascii=False),
        "versions": selectors.grader_versions(grader=grader), "check": selectors.check_latest(grader=grader),
        "try_form": TryForm(tasks=selectors.try_tasks(dataset=grader.dataset)),
        "buildable": rb.rubric_from_grader(grader.spec, grader.rubric) is not None,
        # the weights are shown only where they make the total (not beside a formula of one's own)
        "weighted": bool(grader.rubric) and grader.rubric.get("combine") != rb.FORMULA,
    })


@require_POST
@project_view(Role.EDITOR)
def grader_delete(request, access: ProjectAccess, pk: str):
    grader = selectors.grader_get(project=access.project, pk=pk)
    try:
        services.grader_delete(grader=grader)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        return redirect(_detail_url(grader))
    messages.success(request, f"Deleted “{grader.name}” v{grader.version}.")
    return redirect("graders:list", slug=access.project.slug)


# --- the rubric builder ---------------------------------------------------------------------


def _builder_page(request, access, *, form, rubric, grader=None, dataset=None, status=200):
    rubric.assign_keys()
    context = {
        "access": access, "project": access.project, "form": form, "rubric": rubric, "grader": grader,
        "chips": _chips(dataset), "catalogue": rb.CATALOGUE, "keys": [c.key for c in rubric.criteria],
    }
    # ?criterion=<key>: the agreement report's "edit the criterion" link; that row is highlighted
    focus = request.GET.get("criterion", "")[:200] if request.method == "GET" else ""
    for c in rubric.criteria:
        c.rendered = c.widgets(context["chips"])  # type: ignore[attr-defined]
        c.focused = bool(focus) and c.key == focus  # type: ignore[attr-defined]
    context["focus_missing"] = focus if focus and not any(c.key == focus for c in rubric.criteria) else ""
    template = "graders/_builder.html" if request.htmx else "graders/builder.html"
    return render(request, template, context, status=200 if request.htmx else status)


def _builder(request, access: ProjectAccess, grader: Grader | None):
    project = access.project
    if request.method == "GET":
        if grader is None:
            dataset = _dataset_from(project, request.GET.get("dataset")) or project.datasets.order_by("-created_at").first()
            form = GraderMetaForm(project=project, initial={"dataset": dataset})
            rubric = rb.Rubric(criteria=[rb.new_criterion("numeric_match", chips=_chips(dataset))])
        else:
            dataset = grader.dataset
            rubric = rb.rubric_from_grader(grader.spec, grader.rubric)
            if rubric is None:  # e.g. nested multis: only the JSON editor can show it
                return redirect("graders:edit_json", slug=project.slug, pk=grader.pk)
            form = GraderMetaForm(project=project, initial={
                "name": grader.name, "description": grader.description, "dataset": dataset})
        return _builder_page(request, access, form=form, rubric=rubric, grader=grader, dataset=dataset)

    form = GraderMetaForm(request.POST, project=project)
    rubric = rb.rubric_from_post(request.POST)
    dataset = _dataset_from(project, request.POST.get("dataset"))
    action = request.POST.get("action", "save")
    if action == "add" and len(rubric.criteria) < rb.MAX_CRITERIA:
        rubric.criteria.append(rb.new_criterion(chips=_chips(dataset)))
    elif action.startswith("remove-"):
        rubric.criteria = [c for c in rubric.criteria if c.row != action.removeprefix("remove-")]
    if action != "save":  # add, remove, or a new dataset's chips: show the form again, unsaved
        return _builder_page(request, access, form=form, rubric=rubric, grader=grader, dataset=dataset)

    valid = form.is_valid()
    sync_judges()  # the rubric's AI-judge rows may name judges an admin configured
    spec = rb.compile_rubric(rubric, name=request.POST.get("name", ""))
    if not valid or spec is None:
        return _builder_page(request, access, form=form, rubric=rubric, grader=grader, dataset=dataset, status=400)
    data = form.cleaned_data
    try:
        if grader is None:
            saved = services.grader_create(
                project=project, name=data["name"], spec=spec, rubric=rubric.state(), user=request.user,
                description=data["description"], dataset=data["dataset"])
        else:
            saved = services.grader_update(  # no dataset chosen clears it
                grader=grader, user=request.user, spec=spec, rubric=rubric.state(), name=data["name"],
                description=data["description"], dataset=data["dataset"])
    except ValidationError as exc:
        form.add_error(None, exc.messages)
        return _builder_page(request, access, form=form, rubric=rubric, grader=grader, dataset=dataset, status=400)
    _saved_message(request, grader, saved)
    return HttpResponseClientRedirect(_detail_url(saved)) if request.htmx else redirect(_detail_url(saved))


def _saved_message(request, old: Grader | None, saved: Grader) -> None:
    if old is not None and saved.pk != old.pk:
        messages.success(request, f"“{old.name}” v{old.version} is used by a run, so your changes were saved "
                                  f"as a new version, v{saved.version}.")
    else:
        messages.success(request, f"Saved “{saved.name}” v{saved.version}.")


@require_http_methods(["GET", "POST"])
@project_view(Role.EDITOR)
def grader_new(request, access: ProjectAccess):
    return _builder(request, access, None)


@require_http_methods(["GET", "POST"])
@project_view(Role.EDITOR)
def grader_edit(request, access: ProjectAccess, pk: str):
    return _builder(request, access, selectors.grader_get(project=access.project, pk=pk))


@require_GET
@project_view(Role.EDITOR)
def builder_criterion(request, access: ProjectAccess):
    """A new criterion row (htmx appends it to the list)."""
    chips = _chips(_dataset_from(access.project, request.GET.get("dataset")))
    criterion = rb.new_criterion(request.GET.get("type", rb.DEFAULT_TYPE), chips=chips)
    criterion.rendered = criterion.widgets(chips)  # type: ignore[attr-defined]
    return render(request, "graders/_criterion.html", {"c": criterion, "catalogue": rb.CATALOGUE, "project": access.project})


@require_GET
@project_view(Role.EDITOR)
def builder_fields(request, access: ProjectAccess):
    """The fields of the type just chosen for one row (htmx swaps them in)."""
    row = request.GET.get("row", "")
    if not rb.is_row_id(row):
        return HttpResponseBadRequest("Which row? Send row=<id>.")
    chips = _chips(_dataset_from(access.project, request.GET.get("dataset")))
    criterion = rb.new_criterion(request.GET.get(f"c-{row}-type", ""), row=row, chips=chips)
    return render(request, "graders/_criterion_fields.html", {"c": criterion, "widgets": criterion.widgets(chips)})


@require_POST
@project_view(Role.EDITOR)
def builder_formula(request, access: ProjectAccess):
    """Inline syntax check of a custom formula against the rows' current names."""
    rubric = rb.rubric_from_post(request.POST)
    rubric.assign_keys()
    keys = [c.key for c in rubric.criteria]
    return render(request, "graders/_formula_status.html", {
        "error": rb.formula_error(rubric.formula, keys), "keys": keys, "formula": rubric.formula})


# --- JSON import and edit -------------------------------------------------------------------


def _json_page(request, access, form, grader=None, status=200):
    return render(request, "graders/import.html", {
        "access": access, "project": access.project, "form": form, "grader": grader}, status=status)


@require_http_methods(["GET", "POST"])
@project_view(Role.EDITOR)
def grader_import(request, access: ProjectAccess):
    form = ImportForm(request.POST or None, project=access.project)
    if request.method != "POST":
        return _json_page(request, access, form)
    if not form.is_valid():
        return _json_page(request, access, form, status=400)
    data = form.cleaned_data
    try:
        grader = services.grader_create(
            project=access.project, name=data["name"], spec=data["grader_json"], user=request.user,
            description=data["description"], dataset=data["dataset"])
    except ValidationError as exc:
        form.add_error(None, exc.messages)
        return _json_page(request, access, form, status=400)
    messages.success(request, f"Imported “{grader.name}”.")
    return redirect(_detail_url(grader))


@require_http_methods(["GET", "POST"])
@project_view(Role.EDITOR)
def grader_edit_json(request, access: ProjectAccess, pk: str):
    grader = selectors.grader_get(project=access.project, pk=pk)
    initial = {"name": grader.name, "description": grader.description, "dataset": grader.dataset,
               "grader_json": json.dumps(grader.spec, indent=2, ensure_ascii=False)}
    form = ImportForm(request.POST or None, project=access.project, initial=initial)
    if request.method != "POST":
        return _json_page(request, access, form, grader)
    if not form.is_valid():
        return _json_page(request, access, form, grader, status=400)
    data = form.cleaned_data
    try:
        saved = services.grader_update(
            grader=grader, user=request.user, spec=data["grader_json"], rubric=None, name=data["name"],
            description=data["description"], dataset=data["dataset"])
    except ValidationError as exc:
        form.add_error(None, exc.messages)
        return _json_page(request, access, form, grader, status=400)
    _saved_message(request, grader, saved)
    return redirect(_detail_url(saved))


# --- try it, check against references -------------------------------------------------------


@require_POST
@project_view(Role.VIEWER)
def grader_try(request, access: ProjectAccess, pk: str):
    """Grade one answer now. Bounded: python graders run in the sandbox pool under its
    per-grade timeout, judges under their endpoint timeout."""
    grader = selectors.grader_get(project=access.project, pk=pk)
    form = TryForm(request.POST, tasks=selectors.try_tasks(dataset=grader.dataset))
    result, rows = None, []
    if form.is_valid():
        sync_judges()
        result = run_grader(grader.spec, form.cleaned_data["sample"], form.item(),
                            time_budget=settings.STUDIO_GRADE_REQUEST_SECONDS,
                            scope=services.grading_scope(project_id=access.project.pk))
        criteria = {r["key"]: r for r in _criteria_rows(grader)}
        subs = result.sub_results or {result.name: result}
        answer, item = form.cleaned_data["sample"], form.item()
        rows = [{"key": key, "name": criteria.get(key, {}).get("name", sub.name or key), "reward": sub.reward,
                 "error": sub.error_message or "", "flags": [f for f, v in sub.errors.items() if v is True],
                 "reason": criterion_reason(criteria.get(key, {}).get("spec") or {}, sub, answer, item)}
                for key, sub in subs.items()]
    template = "graders/_try_result.html" if request.htmx else "graders/try_page.html"
    return render(request, template, {
        "access": access, "project": access.project, "grader": grader, "form": form, "result": result,
        "rows": rows, "flags": [f for f, v in (result.errors if result else {}).items() if v is True],
    }, status=200 if form.is_valid() or request.htmx else 400)


@require_POST
@project_view(Role.EDITOR)
def grader_check(request, access: ProjectAccess, pk: str):
    grader = selectors.grader_get(project=access.project, pk=pk)
    try:
        check = services.grader_check_start(grader=grader, user=request.user)
    except ValidationError as exc:
        if request.htmx:
            return HttpResponse(format_html('<p class="error">{}</p>', " ".join(exc.messages)))
        messages.error(request, " ".join(exc.messages))
        return redirect(_detail_url(grader))
    if not services.grader_needs_worker(grader.spec):
        # Deterministic graders usually finish 50k tasks in seconds; what does not is handed
        # to a worker when the budget runs out.
        check = services.grader_check_run(check=check, time_budget=INLINE_CHECK_SECONDS)
    if request.htmx:
        return render(request, "graders/_check.html", {"check": check, "grader": grader, "project": access.project})
    return redirect(_detail_url(grader) + "#check")


@require_GET
@project_view(Role.VIEWER)
def grader_check_status(request, access: ProjectAccess, pk: str, check_pk: int):
    grader = selectors.grader_get(project=access.project, pk=pk)
    check = selectors.check_get(grader=grader, pk=check_pk)
    if not request.htmx:
        return redirect(_detail_url(grader) + "#check")
    return render(request, "graders/_check.html", {"check": check, "grader": grader, "project": access.project})
