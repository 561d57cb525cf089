"""Run screens: the runs list and compare page, the live run page, the sample browser.

The run page draws its charts once from data passed with `json_script`; static/js/runs.js
then polls `metrics.json?after=<last step>` and extends the traces (no redraw, no flicker),
while htmx refreshes the progress, events and checkpoints partial. Both stop when the run
is no longer active.
"""

from __future__ import annotations

from pathlib import Path

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import Http404, JsonResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from webapp.projects.access import ProjectAccess, project_view
from webapp.projects.models import Role

from . import charts, review, selectors, services, settings_words, timing
from .models import Run, RunCheckpoint, RunStatus, SampleFeedback

SAMPLES_PER_PAGE = 20
EVENTS_SHOWN = 50
COMPARE_MAX = 8


def run_title(run: Run) -> str:
    """The run's name, or (without one) what it trained with and when: “Support rubric, 30 Nov 14:05”."""
    if run.suffix:
        return run.suffix
    grader = run.grader.name if run.grader_id else (run.grader_spec or {}).get("name") or "Run"
    return f"{grader}, {timezone.localtime(run.created_at):%-d %b %H:%M}"


def grader_label(run: Run) -> str:
    if run.grader_id:
        return f"{run.grader.name} v{run.grader.version}"
    return (run.grader_spec or {}).get("name") or (run.grader_spec or {}).get("type", "inline grader")


def allowed_actions(run: Run) -> list[str]:
    """Which control buttons make sense now (the services still have the last word)."""
    if run.status == RunStatus.RUNNING:
        return [] if run.requested_action else ["pause", "cancel"]
    if run.status in (RunStatus.QUEUED, RunStatus.VALIDATING_FILES):
        return ["pause", "cancel"]
    if run.status == RunStatus.PAUSED:
        return ["resume", "cancel"]
    if run.status == RunStatus.FAILED and (run.error or {}).get("code") == "worker_lost":
        return ["resume"]
    return []


def _live_context(access: ProjectAccess, run: Run) -> dict:
    events, pruned = selectors.run_timeline(run=run, limit=EVENTS_SHOWN)
    counts = selectors.run_feedback_counts(run=run)
    return {
        "access": access, "project": access.project, "run": run, "title": run_title(run),
        "actions": allowed_actions(run) if access.can_edit else [],
        "summary": charts.reward_summary(charts.run_reward_curve(run)),
        "events": events, "pruned_checkpoints": pruned, "checkpoints": run.checkpoints.order_by("-step"),
        "feedback_counts": sorted(counts.items()), "feedback_total": sum(counts.values()),
        "criterion_names": criterion_names(run),
        "lost": (run.error or {}).get("code") == "worker_lost",
        "time_left": timing.run_time_left(run=run),
    }


# --- runs list and compare -------------------------------------------------------------------


@require_GET
@project_view(Role.VIEWER)
def run_list(request, access: ProjectAccess):
    runs = list(selectors.run_list(project=access.project))
    curves = charts.reward_curves(runs, max_points=120)
    rows = []
    for run in runs:
        train = curves[run.pk]["train"]
        label = f"train reward of {run_title(run)}"
        rows.append({"run": run, "title": run_title(run), "grader": grader_label(run),
                     "summary": charts.reward_summary(curves[run.pk]),
                     "sparkline": mark_safe(charts.sparkline_svg(train["x"], train["y"], label=label))})  # noqa: S308 - built from numbers and escape()
    return render(request, "runs/list.html", {
        "access": access, "project": access.project, "rows": rows, "tab": "runs",
    })


@require_GET
@project_view(Role.VIEWER)
def run_compare(request, access: ProjectAccess):
    ids = list(dict.fromkeys(request.GET.getlist("run")))[:COMPARE_MAX]
    runs = [selectors.run_get(project=access.project, pk=pk) for pk in ids]
    if len(runs) < 2:
        messages.error(request, "Select two or more runs to compare.")
        return redirect("runs:list", slug=access.project.slug)
    curves = charts.reward_curves(runs)
    words, engineers = settings_words.settings_table(runs, [grader_label(r) for r in runs])
    chart = [{"name": run_title(r), "id": r.pk, **curves[r.pk]} for r in runs]
    return render(request, "runs/compare.html", {
        "access": access, "project": access.project, "runs": runs, "tab": "runs",
        "titles": [run_title(r) for r in runs], "settings": words, "engineers": engineers, "chart": chart,
        # only the differences unless asked for everything: a comparison is about what differs
        "show_all": request.GET.get("all") == "1", "differing": any(row["differs"] for row in words),
    })


# --- the run page ------------------------------------------------------------------------------


@require_GET
@project_view(Role.VIEWER)
def run_detail(request, access: ProjectAccess, pk: str):
    run = selectors.run_get(project=access.project, pk=pk)
    series, last = charts.run_series(run)
    context = _live_context(access, run)
    context.update({
        "tab": "runs", "grader": grader_label(run),
        # no empty chart for a run that does not measure drift (no KL penalty: no reference model)
        "show_kl": bool((run.config or {}).get("beta")) or "train/kl" in series,
        "chart_data": {"series": series, "last_step": last, "status": run.status, "active": run.is_active,
                       "criteria": criterion_names(run),
                       "metrics_url": reverse("runs:metrics", args=[access.project.slug, run.pk])},
    })
    return render(request, "runs/detail.html", context)


@require_GET
@project_view(Role.VIEWER)
def run_live(request, access: ProjectAccess, pk: str):
    """The part of the run page that changes: progress, buttons, events, checkpoints."""
    run = selectors.run_get(project=access.project, pk=pk)
    return render(request, "runs/_live_response.html", _live_context(access, run))


@require_GET
@project_view(Role.VIEWER)
def run_metrics(request, access: ProjectAccess, pk: str):
    """New chart points since `after` (all, downsampled, without it) plus the run's status.

    `reset: true` tells the page to redraw from scratch: the run was resumed from an
    earlier checkpoint and the steps it had drawn were trained again.
    """
    run = selectors.run_get(project=access.project, pk=pk)
    try:
        after = int(request.GET["after"]) if request.GET.get("after") not in (None, "") else None
    except ValueError:
        return JsonResponse({"error": "after must be a step number"}, status=400)
    reset = after is not None and after > run.current_step and run.metrics.filter(step__gte=after).count() == 0
    series, last = charts.run_series(run, after=None if reset else after)
    return JsonResponse({
        "status": run.status, "active": run.is_active, "reset": reset,
        "last_step": last or (after if after is not None and not reset else 0),
        "current_step": run.current_step, "total_steps": run.total_steps,
        "progress_percent": run.progress_percent,
        "estimated_finish": run.estimated_finish.isoformat() if run.estimated_finish else None,
        "series": series,
    })


def _control(request, access: ProjectAccess, pk: str, action: str):
    run = selectors.run_get(project=access.project, pk=pk)
    service = {"cancel": services.run_cancel, "pause": services.run_pause, "resume": services.run_resume}[action]
    try:
        service(run=run)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    # Success needs no message: the run page's status says what happened (a message would
    # stay on screen, stale, after the run has stopped).
    return redirect("runs:detail", slug=access.project.slug, pk=run.pk)


@require_POST
@project_view(Role.EDITOR)
def run_cancel(request, access: ProjectAccess, pk: str):
    return _control(request, access, pk, "cancel")


@require_POST
@project_view(Role.EDITOR)
def run_pause(request, access: ProjectAccess, pk: str):
    return _control(request, access, pk, "pause")


@require_POST
@project_view(Role.EDITOR)
def run_resume(request, access: ProjectAccess, pk: str):
    return _control(request, access, pk, "resume")


@require_GET
@project_view(Role.VIEWER)
def checkpoint_download(request, access: ProjectAccess, pk: str, ckpt: str):
    """The checkpoint as a streamed zip: `?format=adapter` (default for LoRA runs: the PEFT
    adapter) or `merged` (a complete model); with a model card, never the optimizer state."""
    from webapp.evals import exports

    run = selectors.run_get(project=access.project, pk=pk)
    checkpoint = get_object_or_404(RunCheckpoint, run=run, pk=ckpt)
    fmt = request.GET.get("format") or ("adapter" if exports.is_adapter_checkpoint(checkpoint.path) else "merged")
    if not Path(checkpoint.path).is_dir():
        raise Http404("This checkpoint's files are gone (pruned or deleted).")
    if fmt == "merged" and not exports.export_merged_request(checkpoint=checkpoint):
        return render(request, "evals/export_pending.html", {
            "access": access, "project": access.project, "run": run, "title": run_title(run),
            "checkpoint": checkpoint, "failed": exports.merged_failed(checkpoint)}, status=202)
    try:
        name, entries = exports.download_entries(checkpoint=checkpoint, fmt=fmt)
    except FileNotFoundError as exc:
        raise Http404(str(exc)) from None
    except ValueError as exc:
        messages.error(request, str(exc))
        return redirect("runs:detail", slug=access.project.slug, pk=run.pk)
    response = StreamingHttpResponse(exports.zip_stream(entries), content_type="application/zip")
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


# --- samples ---------------------------------------------------------------------------------


def criterion_names(run: Run) -> dict[str, str]:
    """Criterion key (as in scores) -> the name the grader's author gave it."""
    subs = (run.grader_spec or {}).get("graders")
    if not isinstance(subs, dict):
        return {}
    return {key: str(sub.get("name") or key) for key, sub in subs.items() if isinstance(sub, dict)}


def _sample_cards(samples, access, run: Run) -> list[dict]:
    names = criterion_names(run)
    cards = []
    for s in samples:
        item = s.item if isinstance(s.item, dict) else {}
        cards.append({
            "s": s, "flags": review.error_flags(s.errors), "feedback": list(s.feedback.all()),
            "criteria": [{"key": k, "name": names.get(k, k), "value": v} for k, v in (s.sub_rewards or {}).items()],
            "reference": item.get("reference_answer"), "names": names,
            "other_fields": [(k, v) for k, v in item.items() if k != "reference_answer"],
            # reviewers are the experts, whatever their role: every member may flag and take
            # back their own flag; editors may also remove others' (they curate the reviews)
            "can_moderate": access.can_edit,
        })
    return cards


@require_GET
@project_view(Role.VIEWER)
def sample_list(request, access: ProjectAccess, pk: str):
    run = selectors.run_get(project=access.project, pk=pk)
    samples, filters = review.sample_search(run=run, params=request.GET)
    page = Paginator(samples.prefetch_related("feedback"), SAMPLES_PER_PAGE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    context = {
        "access": access, "project": access.project, "run": run, "title": run_title(run), "tab": "runs",
        "page": page, "cards": _sample_cards(page.object_list, access, run), "filters": filters,
        "criteria": review.sample_criteria(run=run), "orders": review.ORDER_LABELS,
        "stats": review.sample_stats(run=run),
        "query": query.urlencode(), "criterion_names": criterion_names(run),
    }
    if request.htmx and request.htmx.target == "sample-results":
        return render(request, "runs/_sample_results.html", context)
    return render(request, "runs/samples.html", context)


@require_GET
@project_view(Role.VIEWER)
def sample_task(request, access: ProjectAccess, pk: str, task_key: str):
    """Compare early vs late: one task's outputs at its first and its last sampled step."""
    run = selectors.run_get(project=access.project, pk=pk)
    early, late = review.task_early_late(run=run, task_key=task_key)
    return render(request, "runs/sample_task.html", {
        "access": access, "project": access.project, "run": run, "title": run_title(run), "tab": "runs",
        "early": _sample_cards(early, access, run), "late": _sample_cards(late, access, run),
        "prompt": early[0].prompt, "item": early[0].item,
    })


def _feedback_context(access: ProjectAccess, run: Run, sample) -> dict:
    names = criterion_names(run)
    return {"access": access, "project": access.project, "run": run, "title": run_title(run), "sample": sample,
            "criteria": [(key, names.get(key, key)) for key in sorted((sample.sub_rewards or {}).keys())],
            "names": names, "can_moderate": access.can_edit, "error": None,
            "feedback": list(sample.feedback.select_related("user"))}


@require_http_methods(["GET", "POST"])
@project_view(Role.VIEWER)
def sample_feedback(request, access: ProjectAccess, pk: str, sample_pk: int):
    """“Grader was wrong”: GET gives the small form (or, with `summary=1`, the sample's flags
    again), POST records the disagreement. Any member may: reviewers are the experts."""
    run = selectors.run_get(project=access.project, pk=pk)
    sample = review.sample_get(run=run, pk=sample_pk)
    context = _feedback_context(access, run, sample)
    if request.method == "POST":
        try:
            services.sample_feedback_create(sample=sample, user=request.user,
                                            criterion=request.POST.get("criterion", ""),
                                            comment=request.POST.get("comment", ""))
        except ValidationError as exc:
            context["error"] = " ".join(exc.messages)
            template = "runs/_feedback_form.html" if request.htmx else "runs/feedback.html"
            return render(request, template, context, status=200 if request.htmx else 400)
        if request.htmx:
            context["feedback"] = list(sample.feedback.select_related("user"))
            return render(request, "runs/_feedback_done.html", context)
        messages.success(request, "Thanks: the disagreement is counted on the run page.")
        return redirect("runs:samples", slug=access.project.slug, pk=run.pk)
    if request.htmx and request.GET.get("summary"):
        return render(request, "runs/_feedback_summary.html", context)
    template = "runs/_feedback_form.html" if request.htmx else "runs/feedback.html"
    return render(request, template, context)


@require_POST
@project_view(Role.VIEWER)
def sample_feedback_delete(request, access: ProjectAccess, pk: str, sample_pk: int, feedback_pk: int):
    """Take back a “grader was wrong” flag: its author may, and editors may remove anyone's."""
    run = selectors.run_get(project=access.project, pk=pk)
    sample = review.sample_get(run=run, pk=sample_pk)
    feedback = get_object_or_404(SampleFeedback, pk=feedback_pk, sample=sample)
    services.sample_feedback_delete(feedback=feedback, user=request.user, may_remove_others=access.can_edit)
    if request.htmx:
        return render(request, "runs/_feedback_summary.html", _feedback_context(access, run, sample))
    return redirect("runs:samples", slug=access.project.slug, pk=run.pk)
