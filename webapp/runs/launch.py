"""The “New run” screen: choose, see the estimate and the pre-flight checks, launch.

The estimate and the launch go through the same `run_plan`, so what the estimate shows is
exactly what launching would freeze (or the same error launching would give).
"""

import re

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

# LaunchError's `param` is the API's field name; the page shows the error under the form's field.
PARAM_FIELDS = {"method.reinforcement.grader": "grader", "grader": "grader", "model": "base_model",
                "training_file": "dataset", "validation_file": "dataset", "suffix": "suffix"}
# TrainConfig names a settings error may mention, and the form field that sets each.
CONFIG_FIELDS = {"learning_rate_multiplier": "learning_rate_multiplier", "learning_rate": "learning_rate_multiplier",
                 "n_epochs": "n_epochs", "batch_size": "batch_size",
                 "group_size": "group_size", "max_completion_tokens": "max_completion_tokens",
                 "eval_interval": "eval_interval", "temperature": "temperature", "beta": "beta",
                 "seed": "seed", "max_steps": "max_steps", "method": "method"}


def launch_error_field(exc: LaunchError) -> tuple[str | None, str]:
    """(form field or None for the whole form, message in the form's words) for a LaunchError."""
    message = " ".join(exc.messages).removeprefix("invalid training config: ")
    field = PARAM_FIELDS.get(exc.param or "")
    if exc.param == "hyperparameters":
        named = [(message.find(name), name) for name in CONFIG_FIELDS if re.search(rf"\b{name}\b", message)]
        if named:
            field = CONFIG_FIELDS[min(named)[1]]
        for name, form_field in CONFIG_FIELDS.items():  # the expert never sees `group_size`
            message = re.sub(rf"(hyperparameter )?\b{name}\b", f"“{FIELD_INFO[form_field].label}”", message)
    return field, message


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
        except LaunchError as exc:
            form.add_error(*launch_error_field(exc))
        except ValidationError as exc:
            form.add_error(None, exc.messages)
        else:
            messages.success(request, f"Run launched: {run.total_steps} steps.")
            return redirect("runs:detail", slug=access.project.slug, pk=run.pk)
    return render(request, "runs/launch.html", {
        "access": access, "project": access.project, "form": form,
        "no_grader": not form.graders, "no_dataset": not form.datasets,
    }, status=400 if request.method == "POST" else 200)


def _auto_values(form: LaunchForm, plan) -> dict[str, str]:
    """What each setting left on “auto” came to, in its unit (shown beside the box)."""
    config = plan.config
    values = {"n_epochs": config.n_epochs, "batch_size": config.batch_size, "group_size": config.group_size,
              "max_completion_tokens": config.max_completion_tokens, "eval_interval": config.eval_interval,
              "learning_rate_multiplier": 1}
    return {name: f"= {value:g}" for name, value in values.items() if form.cleaned_data.get(name) == "auto"}


@require_POST
@project_view(Role.EDITOR)
def run_estimate(request, access: ProjectAccess):
    """The estimate for the form as it stands (htmx, on every change), with each problem shown
    under its field; `check=1` starts the pre-flight checks on a worker instead and answers
    their panel, which polls itself until the worker is done."""
    form = _form(access, request.POST)
    checking = bool(request.POST.get("check"))
    context = {"project": access.project, "form": form, "checking": checking}
    if not form.datasets or not form.graders:  # nothing to choose yet: no errors, the page says what is missing
        context["missing"] = True
        return render(request, "runs/_estimate.html", context)
    plan = None
    if form.is_valid():
        try:
            plan = run_plan(project=access.project, user=request.user, **form.plan_arguments())
        except LaunchError as exc:
            field, message = launch_error_field(exc)
            form.add_error(field, message)
    if plan is not None:
        context.update(estimate=selectors.run_estimate(plan=plan), config=plan.config, n_train=plan.n_train,
                       n_valid=plan.n_valid, auto_values=_auto_values(form, plan),
                       method_label=dict(FIELD_INFO["method"].choices)[plan.config.method],
                       grader=plan.run.grader, dataset=plan.run.dataset)
        if checking:
            context["preflight"] = preflight_create(project=access.project, user=request.user, plan=plan)
    return render(request, "runs/_preflight_start.html" if checking else "runs/_estimate.html", context)


@require_GET
@project_view(Role.EDITOR)
def preflight_status(request, access: ProjectAccess, pk: int):
    pre = selectors.preflight_get(project=access.project, pk=pk)
    return render(request, "runs/_preflight.html", {"project": access.project, "preflight": pre})
