"""The “New run” screen: choose, see the estimate and the pre-flight checks, launch.

The estimate and the launch go through the same `run_plan`, so what the estimate shows is
exactly what launching would freeze (or the same error launching would give).
"""

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from trainer.config import FIELD_INFO
from webapp.graders.selectors import grader_list_latest
from webapp.projects.access import ProjectAccess, project_view
from webapp.projects.models import Role

from . import selectors
from .forms import LaunchForm
from .plan import LaunchError, run_plan, training_device
from .preflight import preflight_create
from .services import run_create

# LaunchError's `param` is the API's field name; the page names the form's field instead.
PARAM_WORDS = {"method.reinforcement.grader": "Grader", "grader": "Grader", "model": "Base model",
               "training_file": "Dataset", "hyperparameters": "Settings", "suffix": "Name"}


def _form(access: ProjectAccess, data=None, initial=None) -> LaunchForm:
    from webapp.evals.selectors import trained_model_choices  # "continue training from here"

    return LaunchForm(data, project=access.project, graders=grader_list_latest(project=access.project),
                      base_models=selectors.base_model_choices() + trained_model_choices(project=access.project),
                      device=training_device(), initial=initial)


@require_http_methods(["GET", "POST"])
@project_view(Role.EDITOR)
def run_launch(request, access: ProjectAccess):
    initial = {k: request.GET[k] for k in ("base_model", "dataset", "grader") if request.GET.get(k)}
    form = _form(access, request.POST or None, initial=initial or None)
    if request.method == "POST" and form.is_valid():
        try:
            run = run_create(project=access.project, user=request.user, **form.plan_arguments())
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
        context["errors"] = {form[name].label if name in form.fields else "settings": errs
                             for name, errs in form.errors.items()}
        return render(request, "runs/_estimate.html", context)
    try:
        plan = run_plan(project=access.project, user=request.user, **form.plan_arguments())
    except LaunchError as exc:
        context["errors"] = {PARAM_WORDS.get(exc.param, "Settings"): exc.messages}
        return render(request, "runs/_estimate.html", context)
    context.update(estimate=selectors.run_estimate(plan=plan), config=plan.config, n_train=plan.n_train,
                   n_valid=plan.n_valid, method_label=dict(FIELD_INFO["method"].choices)[plan.config.method])
    if request.POST.get("check"):
        context["preflight"] = preflight_create(project=access.project, user=request.user, plan=plan)
    return render(request, "runs/_estimate.html", context)


@require_GET
@project_view(Role.EDITOR)
def preflight_status(request, access: ProjectAccess, pk: int):
    pre = selectors.preflight_get(project=access.project, pk=pk)
    return render(request, "runs/_preflight.html", {"project": access.project, "preflight": pre})
