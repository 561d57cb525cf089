"""Dataset screens: upload (JSONL or mapped CSV), browse and search tasks, edit tasks inline."""

import json

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRedirect

from webapp.projects.access import ProjectAccess, project_view
from webapp.projects.models import Role

from . import importers, selectors, services
from .forms import CsvMappingForm, TaskForm, UploadForm
from .importers import ImportProblems
from .services import Upload

TASKS_PER_PAGE = 25


def _redirect(request, url: str):
    return HttpResponseClientRedirect(url) if request.htmx else redirect(url)


def _upload_page(request, access, form, problems=None, status=200):
    template = "datasets/_upload_form.html" if request.htmx else "datasets/upload.html"
    if request.htmx and status != 200:
        status = 200  # htmx swaps only successful responses; the errors are in the body
    return render(request, template, {
        "access": access, "project": access.project, "form": form, "problems": problems,
        "max_upload_mb": settings.STUDIO_MAX_UPLOAD_BYTES // (1024 * 1024),
    }, status=status)


@require_http_methods(["GET", "POST"])
@project_view(Role.EDITOR)
def dataset_upload(request, access: ProjectAccess):
    form = UploadForm(request.POST or None, request.FILES or None)
    if request.method != "POST":
        return _upload_page(request, access, form)
    if not form.is_valid():
        return _upload_page(request, access, form, status=400)
    data = form.cleaned_data
    train = Upload.from_django(data["train_file"])
    valid = Upload.from_django(data["valid_file"]) if data["valid_file"] else None
    try:
        if form.format() == "csv":
            token = services.csv_stage(
                project=access.project, user=request.user, name=data["name"], train=train, valid=valid,
                holdout_percent=data["holdout_percent"], seed=data["seed"])
            return _redirect(request, reverse("datasets:csv_map", args=[access.project.slug, token]))
        dataset = services.dataset_import_jsonl(
            project=access.project, name=data["name"], user=request.user, train=train, valid=valid,
            holdout_percent=data["holdout_percent"], seed=data["seed"],
        )
    except ImportProblems as exc:
        return _upload_page(request, access, form, problems=exc, status=400)
    except ValidationError as exc:
        form.add_error(None, exc.messages)
        return _upload_page(request, access, form, status=400)
    messages.success(request, f"Imported {dataset.tasks.count()} tasks into “{dataset.name}”.")
    return _redirect(request, reverse("datasets:detail", args=[access.project.slug, dataset.pk]))


@require_http_methods(["GET", "POST"])
@project_view(Role.EDITOR)
def dataset_csv_map(request, access: ProjectAccess, token: str):
    staged = selectors.staged_csv_get(project=access.project, user=request.user, token=token)
    table = importers.read_csv(staged.texts["train"], source=staged.train)
    form = CsvMappingForm(request.POST or None, header=table.header)
    problems = None
    if request.method == "POST" and form.is_valid():
        mapping = importers.CsvMapping(
            prompt_column=form.cleaned_data["prompt_column"],
            reference_column=form.cleaned_data["reference_column"],
            extra_columns=tuple(form.cleaned_data["extra_columns"]),
            system_prompt=form.cleaned_data["system_prompt"],
        )
        try:
            dataset = services.dataset_import_staged_csv(staged=staged, mapping=mapping, user=request.user)
        except ImportProblems as exc:
            problems = exc
        else:
            messages.success(request, f"Imported {dataset.tasks.count()} tasks into “{dataset.name}”.")
            return redirect("datasets:detail", slug=access.project.slug, pk=dataset.pk)
    return render(request, "datasets/csv_map.html", {
        "access": access, "project": access.project, "form": form, "staged": staged, "header": table.header,
        "preview": table.rows[:5], "row_count": len(table.rows), "problems": problems,
    }, status=400 if problems else 200)


@require_GET
@project_view(Role.VIEWER)
def dataset_detail(request, access: ProjectAccess, pk: int):
    dataset = selectors.dataset_get(project=access.project, pk=pk)
    query, split = request.GET.get("q", "").strip(), request.GET.get("split", "")
    tasks = selectors.task_search(dataset=dataset, query=query, split=split)
    page = Paginator(tasks, TASKS_PER_PAGE).get_page(request.GET.get("page"))
    context = {
        "access": access, "project": access.project, "dataset": dataset, "page": page,
        "query": query, "split": split, "counts": selectors.dataset_split_counts(dataset=dataset),
        "can_edit": access.can_edit and not dataset.is_locked, "task_form": TaskForm(),
    }
    if request.htmx and request.htmx.target == "task-table":
        return render(request, "datasets/_task_table.html", context)
    return render(request, "datasets/detail.html", context)


@require_GET
@project_view(Role.VIEWER)
def dataset_download(request, access: ProjectAccess, pk: int):
    dataset = selectors.dataset_get(project=access.project, pk=pk)
    split = request.GET.get("split", "")
    tasks = selectors.task_search(dataset=dataset, split=split)
    lines = (json.dumps(t.data, ensure_ascii=False) + "\n" for t in tasks.iterator(chunk_size=2000))
    response = StreamingHttpResponse(lines, content_type="application/jsonl; charset=utf-8")
    suffix = f"-{split}" if split else ""
    filename = f"{dataset.name}-v{dataset.version}{suffix}.jsonl".replace('"', "")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


@require_POST
@project_view(Role.EDITOR)
def dataset_duplicate(request, access: ProjectAccess, pk: int):
    dataset = selectors.dataset_get(project=access.project, pk=pk)
    copy = services.dataset_duplicate(dataset=dataset, user=request.user)
    messages.success(request, f"Created “{copy.name}” v{copy.version}, an editable copy.")
    return redirect("datasets:detail", slug=access.project.slug, pk=copy.pk)


@require_POST
@project_view(Role.EDITOR)
def dataset_delete(request, access: ProjectAccess, pk: int):
    dataset = selectors.dataset_get(project=access.project, pk=pk)
    try:
        services.dataset_delete(dataset=dataset)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        return redirect("datasets:detail", slug=access.project.slug, pk=pk)
    messages.success(request, f"Deleted “{dataset.name}” v{dataset.version}.")
    return redirect("projects:detail", slug=access.project.slug)


# --- tasks ----------------------------------------------------------------------------------


def _row_from_form(form: TaskForm, base: dict | None = None) -> dict:
    d = form.cleaned_data
    return services.task_row_from_form(
        system=d["system"], prompt=d["prompt"], reference_answer=d["reference_answer"],
        extra=d["extra"], base=base,
    )


def _task_context(access, dataset, task=None, form=None):
    return {"access": access, "project": access.project, "dataset": dataset, "task": task, "form": form,
            "can_edit": access.can_edit and not dataset.is_locked}


@require_http_methods(["GET", "POST"])
@project_view(Role.EDITOR)
def task_new(request, access: ProjectAccess, pk: int):
    dataset = selectors.dataset_get(project=access.project, pk=pk)
    form = TaskForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            task = services.task_create(dataset=dataset, row=_row_from_form(form), split=form.cleaned_data["split"])
        except ValidationError as exc:
            form.add_error(None, exc.messages)
        else:
            if request.htmx:
                context = _task_context(access, dataset, task)
                context["form"], context["created"] = TaskForm(initial={"split": task.split}), task
                return render(request, "datasets/_task_new.html", context)
            return redirect("datasets:task_detail", slug=access.project.slug, pk=pk, task_pk=task.pk)
    template = "datasets/_task_new.html" if request.htmx else "datasets/task_new.html"
    return render(request, template, _task_context(access, dataset, form=form))


@require_POST
@project_view(Role.VIEWER)
def task_preview(request, access: ProjectAccess, pk: int):
    """Live preview of how a task's prompt and reference fields will look (no saving)."""
    dataset = selectors.dataset_get(project=access.project, pk=pk)
    form = TaskForm(request.POST)
    row, error = None, None
    if form.is_valid():
        row = _row_from_form(form)
    else:
        error = "; ".join(f"{k}: {' '.join(v)}" for k, v in form.errors.items())
    return render(request, "datasets/_task_preview.html", {
        "dataset": dataset, "row": row, "error": error,
        "fields": importers.reference_fields(row) if row else {},
    })


@require_GET
@project_view(Role.VIEWER)
def task_detail(request, access: ProjectAccess, pk: int, task_pk: int):
    dataset = selectors.dataset_get(project=access.project, pk=pk)
    task = selectors.task_get(dataset=dataset, pk=task_pk)
    context = _task_context(access, dataset, task)
    context["fields"] = importers.reference_fields(task.data)
    context["row_json"] = json.dumps(task.data, indent=2, ensure_ascii=False)
    return render(request, "datasets/task_detail.html", context)


@require_GET
@project_view(Role.VIEWER)
def task_row(request, access: ProjectAccess, pk: int, task_pk: int):
    dataset = selectors.dataset_get(project=access.project, pk=pk)
    task = selectors.task_get(dataset=dataset, pk=task_pk)
    return render(request, "datasets/_task_row.html", _task_context(access, dataset, task))


@require_http_methods(["GET", "POST"])
@project_view(Role.EDITOR)
def task_edit(request, access: ProjectAccess, pk: int, task_pk: int):
    dataset = selectors.dataset_get(project=access.project, pk=pk)
    task = selectors.task_get(dataset=dataset, pk=task_pk)
    if dataset.is_locked:
        return HttpResponse(f"This dataset can no longer be edited: {dataset.locked_reason}.", status=409)
    if request.method == "POST":
        form = TaskForm(request.POST)
        if form.is_valid():
            try:
                services.task_update(task=task, row=_row_from_form(form, base=task.data),
                                     split=form.cleaned_data["split"])
            except ValidationError as exc:
                form.add_error(None, exc.messages)
            else:
                if request.htmx:
                    return render(request, "datasets/_task_row.html", _task_context(access, dataset, task))
                return redirect("datasets:task_detail", slug=access.project.slug, pk=pk, task_pk=task.pk)
    else:
        form = TaskForm(initial=TaskForm.initial_from_row(task.data, task.split))
    template = "datasets/_task_edit_row.html" if request.htmx else "datasets/task_edit.html"
    return render(request, template, _task_context(access, dataset, task, form))


@require_POST
@project_view(Role.EDITOR)
def task_delete(request, access: ProjectAccess, pk: int, task_pk: int):
    dataset = selectors.dataset_get(project=access.project, pk=pk)
    task = selectors.task_get(dataset=dataset, pk=task_pk)
    try:
        services.task_delete(task=task)
    except ValidationError as exc:
        return HttpResponse(" ".join(exc.messages), status=409)
    if request.htmx:
        return HttpResponse("")  # the row disappears
    messages.success(request, "Task deleted.")
    return redirect("datasets:detail", slug=access.project.slug, pk=pk)
