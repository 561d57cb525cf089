"""Evaluation screens: the list and “New evaluation” form, one evaluation's page (progress,
then every task's answer and scores), the comparison of two evaluations, and the run page's
before/after summary (a partial the run page includes; it refreshes itself while evaluating)."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from webapp.projects.access import ProjectAccess, project_view
from webapp.projects.models import Role
from webapp.runs import selectors as run_selectors

from . import ab, selectors, services
from .forms import EvaluationForm

ITEMS_PER_PAGE = 50
ORDERS = {"change": "largest change", "better": "most improved", "worse": "most worsened",
          "task": "task order", "a": "first model's score", "b": "second model's score"}


def _context(access: ProjectAccess, **extra) -> dict:
    return {"access": access, "project": access.project, "tab": "evals", **extra}


@require_GET
@project_view(Role.VIEWER)
def evaluation_list(request, access: ProjectAccess):
    evaluations = list(selectors.evaluation_list(project=access.project)[:200])
    reviews = list(access.project.ab_reviews.select_related("baseline", "candidate")[:50])
    return render(request, "evals/list.html", _context(access, evaluations=evaluations, reviews=reviews))


@require_http_methods(["GET", "POST"])
@project_view(Role.EDITOR)
def evaluation_new(request, access: ProjectAccess):
    initial = {k: request.GET[k] for k in ("model", "dataset", "grader", "split") if k in request.GET}
    form = EvaluationForm(request.POST or None, project=access.project, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            evaluation = services.evaluation_create(project=access.project, user=request.user,
                                                    **form.service_kwargs())
        except ValidationError as exc:
            for field, errors in exc.message_dict.items():
                target = {"model": "model", "dataset": "dataset", "split": "split", "grader": "grader",
                          "n_samples": "answers", "temperature": "variety",
                          "max_completion_tokens": "longest"}.get(field)
                form.add_error(target, errors)
        else:
            messages.success(request, "Evaluation queued: a worker answers and grades every task.")
            return redirect("evals:detail", slug=access.project.slug, pk=evaluation.pk)
    return render(request, "evals/new.html", _context(access, form=form),
                  status=400 if request.method == "POST" else 200)


@require_GET
@project_view(Role.VIEWER)
def evaluation_detail(request, access: ProjectAccess, pk: str):
    evaluation = selectors.evaluation_get(project=access.project, pk=pk)
    page = Paginator(selectors.evaluation_items(evaluation=evaluation), ITEMS_PER_PAGE).get_page(request.GET.get("page"))
    others = [e for e in selectors.evaluation_list(project=access.project).exclude(pk=evaluation.pk)
              .filter(dataset=evaluation.dataset, split=evaluation.split)[:50]]
    return render(request, "evals/detail.html", _context(access, evaluation=evaluation, page=page, others=others))


@require_GET
@project_view(Role.VIEWER)
def evaluation_items(request, access: ProjectAccess, pk: str):
    """The answers table (htmx polls it while the evaluation runs, so new answers stream in)."""
    evaluation = selectors.evaluation_get(project=access.project, pk=pk)
    page = Paginator(selectors.evaluation_items(evaluation=evaluation), ITEMS_PER_PAGE).get_page(request.GET.get("page"))
    return render(request, "evals/_items.html", _context(access, evaluation=evaluation, page=page))


@require_GET
@project_view(Role.VIEWER)
def evaluation_progress(request, access: ProjectAccess, pk: str):
    evaluation = selectors.evaluation_get(project=access.project, pk=pk)
    return render(request, "evals/_progress.html", _context(access, evaluation=evaluation))


@require_POST
@project_view(Role.EDITOR)
def evaluation_cancel(request, access: ProjectAccess, pk: str):
    evaluation = selectors.evaluation_get(project=access.project, pk=pk)
    try:
        services.evaluation_cancel(evaluation=evaluation)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, "Cancel requested; the worker stops after the tasks it is answering.")
    return redirect("evals:detail", slug=access.project.slug, pk=evaluation.pk)


@require_GET
@project_view(Role.VIEWER)
def evaluation_compare(request, access: ProjectAccess):
    a_pk, b_pk = request.GET.get("a", ""), request.GET.get("b", "")
    if not a_pk or not b_pk or a_pk == b_pk:
        messages.error(request, "Pick two different evaluations to compare.")
        return redirect("evals:list", slug=access.project.slug)
    a = selectors.evaluation_get(project=access.project, pk=a_pk)
    b = selectors.evaluation_get(project=access.project, pk=b_pk)
    order = request.GET.get("order", "change")
    order = order if order in ORDERS else "change"
    comparison = selectors.evaluation_compare(a=a, b=b, order=order)
    outcome = request.GET.get("outcome", "")
    rows = [r for r in comparison.rows if r["outcome"] == outcome] if outcome in ("better", "worse", "same") \
        else comparison.rows
    page = Paginator(rows, ITEMS_PER_PAGE).get_page(request.GET.get("page"))
    return render(request, "evals/compare.html", _context(
        access, c=comparison, page=page, order=order, orders=ORDERS, outcome=outcome,
        chart=_criteria_chart(comparison.criteria, b.grader_spec)))


def criterion_labels(spec: dict | None) -> dict[str, str]:
    """Criterion key (as in scores) -> the name the grader's author gave it."""
    subs = (spec or {}).get("graders")
    if not isinstance(subs, dict):
        return {}
    return {key: str(sub.get("name") or key) for key, sub in subs.items() if isinstance(sub, dict)}


def _criteria_chart(criteria: list[dict], spec: dict | None = None) -> list[dict]:
    """Bars for the before/after chart (plain HTML: widths in percent of a 0..1 score), each
    criterion with its author's name (`label`) beside its key (`name`)."""
    labels = criterion_labels(spec)
    return [{**c, "label": labels.get(c["name"], c["name"]), "a_pct": round(100 * max(0.0, min(1.0, c["a"])), 1),
             "b_pct": round(100 * max(0.0, min(1.0, c["b"])), 1)} for c in criteria]


@require_GET
@project_view(Role.VIEWER)
def run_summary(request, access: ProjectAccess, run_pk: str):
    """The run page's before/after block on its own (it polls this while evaluating)."""
    run = run_selectors.run_get(project=access.project, pk=run_pk)
    return render(request, "evals/_run_summary.html", {"access": access, "project": access.project, "run": run})


@require_POST
@project_view(Role.EDITOR)
def run_evaluate(request, access: ProjectAccess, run_pk: str):
    """Evaluate a succeeded run's base model and best checkpoint now (runs that finished before
    evaluations existed, or again after a failed evaluation)."""
    run = run_selectors.run_get(project=access.project, pk=run_pk)
    if run.status != "succeeded":
        messages.error(request, "Only a run that finished can be evaluated before and after.")
    else:
        try:
            evaluations = services.run_evaluations_create(run=run)
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
        else:
            if evaluations:
                messages.success(request, "Evaluating the base model and the trained model on the validation tasks.")
            else:
                messages.error(request, "Nothing to evaluate: the run has no validation tasks or no checkpoint.")
    return redirect("runs:detail", slug=access.project.slug, pk=run.pk)


# --- blind A/B review ------------------------------------------------------------------------


@require_POST
@project_view(Role.EDITOR)
def ab_new(request, access: ProjectAccess):
    """Start a blind review of two evaluations (a = baseline, b = candidate)."""
    evals = selectors.evaluation_list(project=access.project)
    baseline = evals.filter(pk=request.POST.get("a", "")).first()
    candidate = evals.filter(pk=request.POST.get("b", "")).first()
    if baseline is None or candidate is None:
        messages.error(request, "Pick two evaluations of this project to review.")
        return redirect("evals:list", slug=access.project.slug)
    try:
        review = ab.ab_review_create(project=access.project, user=request.user, baseline=baseline,
                                     candidate=candidate)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        return redirect(f"{reverse('evals:compare', args=[access.project.slug])}?a={baseline.pk}&b={candidate.pk}")
    messages.success(request, "Blind review started: share this page with the experts of the project.")
    return redirect("evals:ab_review", slug=access.project.slug, pk=review.pk)


@require_http_methods(["GET", "POST"])
@project_view(Role.VIEWER)
def ab_review(request, access: ProjectAccess, pk: int):
    """One task at a time: two answers in a hidden, per-task random order; pick one or a tie."""
    review = ab.ab_review_get(project=access.project, pk=pk)
    error = ""
    if request.method == "POST":
        try:
            ab.ab_pick_record(review=review, user=request.user, task_key=request.POST.get("task_key", ""),
                              pick=request.POST.get("pick", ""), note=request.POST.get("note", ""))
        except ValidationError as exc:
            error = " ".join(exc.messages)
        else:
            return redirect("evals:ab_review", slug=access.project.slug, pk=review.pk)
    task_key, done, total = ab.ab_next_task(review=review, user=request.user)
    pair = ab.ab_pair(review=review, task_key=task_key) if task_key else None
    return render(request, "evals/ab_review.html", _context(
        access, review=review, pair=pair, done=done, total=total, error=error), status=400 if error else 200)


@require_GET
@project_view(Role.VIEWER)
def ab_results(request, access: ProjectAccess, pk: int):
    review = ab.ab_review_get(project=access.project, pk=pk)
    return render(request, "evals/ab_results.html", _context(access, review=review, r=ab.ab_results(review=review),
                                                             grader=ab.ab_grader(review)))


@require_POST
@project_view(Role.EDITOR)
def ab_calibrate(request, access: ProjectAccess, pk: int):
    """Send one disagreement's two answers to the grader's expert review queue."""
    review = ab.ab_review_get(project=access.project, pk=pk)
    try:
        grader, items = ab.ab_disagreement_to_calibration(review=review, task_key=request.POST.get("task_key", ""),
                                                          user=request.user)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        return redirect("evals:ab_results", slug=access.project.slug, pk=review.pk)
    messages.success(request, f"Both answers are in “{grader.name}”'s review queue: score them criterion by "
                              "criterion to see where the grader goes wrong.")
    return redirect("reviews:item", slug=access.project.slug, pk=grader.pk, item_pk=items[0].pk)
