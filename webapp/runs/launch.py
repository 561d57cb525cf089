"""The “New run” screen: choose, see the estimate and the pre-flight checks, launch."""

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db import transaction
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from webapp.graders.selectors import grader_list
from webapp.projects.access import ProjectAccess, project_view
from webapp.projects.models import Role

from . import preflight as pf
from .forms import LaunchForm
from .models import Run, RunPreflight
from .services import LaunchError, base_model_choices, build_config, run_create, run_task_counts
from .tasks import preflight_task


def _latest_graders(project):
    latest = {}
    for g in grader_list(project=project):  # ordered by name, newest version first
        latest.setdefault(g.name, g)
    return list(latest.values())


def _form(access: ProjectAccess, data=None) -> LaunchForm:
    return LaunchForm(data, project=access.project, graders=_latest_graders(access.project),
                      base_models=base_model_choices())


def _draft(form: LaunchForm, access: ProjectAccess, user) -> tuple[Run, dict]:
    """An unsaved Run from the form plus its resolved trainer config (raises LaunchError)."""
    d = form.cleaned_data
    run = Run(project=access.project, dataset=form.datasets[d["dataset"]], grader=form.graders[d["grader"]],
              base_model=d["base_model"], hyperparameters=form.hyperparameters(), seed=d["seed"],
              suffix=d["suffix"], created_by=user)
    run.grader_spec = run.grader.spec
    n_train, n_valid = run_task_counts(run)
    config = build_config(run=run, n_train=n_train, n_valid=n_valid, overrides=form.overrides())
    return run, {"config": config, "n_train": n_train, "n_valid": n_valid}


@require_http_methods(["GET", "POST"])
@project_view(Role.EDITOR)
def run_launch(request, access: ProjectAccess):
    form = _form(access, request.POST or None)
    if request.method == "POST" and form.is_valid():
        d = form.cleaned_data
        try:
            run = run_create(
                project=access.project, user=request.user, dataset=form.datasets[d["dataset"]],
                grader=form.graders[d["grader"]], base_model=d["base_model"],
                hyperparameters=form.hyperparameters(), suffix=d["suffix"], seed=d["seed"],
                overrides=form.overrides(),
            )
        except ValidationError as exc:  # LaunchError included
            form.add_error(None, exc.messages)
        else:
            messages.success(request, f"Run {run.pk} launched: {run.total_steps} steps.")
            return redirect("runs:detail", slug=access.project.slug, pk=run.pk)
    return render(request, "runs/launch.html", {
        "access": access, "project": access.project, "form": form,
        "no_grader": not form.graders, "no_dataset": not form.datasets,
    }, status=400 if request.method == "POST" else 200)


@require_POST
@project_view(Role.EDITOR)
def run_estimate(request, access: ProjectAccess):
    """The estimate for the form as it stands (htmx, on every change); `check=1` also starts
    the pre-flight checks on a worker."""
    form = _form(access, request.POST)
    context = {"project": access.project}
    if not form.is_valid():
        context["errors"] = form.errors
        return render(request, "runs/_estimate.html", context)
    try:
        run, draft = _draft(form, access, request.user)
    except LaunchError as exc:
        context["errors"] = {exc.param or "settings": exc.messages}
        return render(request, "runs/_estimate.html", context)
    config = draft["config"]
    context.update(
        estimate=pf.estimate(config=config, n_train=draft["n_train"], prompts=pf.prompt_sample(run.dataset),
                             device=form.cleaned_data["worker_type"], base_model=run.base_model),
        config=config, n_train=draft["n_train"], n_valid=draft["n_valid"],
    )
    if request.POST.get("check"):
        with transaction.atomic():
            pre = RunPreflight.objects.create(project=access.project, created_by=request.user, dataset=run.dataset,
                                              grader_spec=run.grader_spec, config=config.to_dict())
            transaction.on_commit(lambda: preflight_task.delay(pre.pk))
        context["preflight"] = pre
    return render(request, "runs/_estimate.html", context)


@require_GET
@project_view(Role.EDITOR)
def preflight_status(request, access: ProjectAccess, pk: int):
    pre = get_object_or_404(RunPreflight, project=access.project, pk=pk)
    return render(request, "runs/_preflight.html", {"project": access.project, "preflight": pre})
