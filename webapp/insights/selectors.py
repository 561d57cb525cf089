"""Reads for insights: a run's findings, computed from its stored metrics by the pure rules."""

from __future__ import annotations

from webapp.runs.models import Run

from .diagnosis import Finding, RunView, diagnose, main_criterion

# A run's metrics are read whole; a very long run is judged on its latest steps.
MAX_STEPS_READ = 5000


def run_view(*, run: Run) -> RunView:
    rows = getattr(run, "_metric_rows", None)  # already read by the run page's charts
    if rows is not None:
        rows = rows[-MAX_STEPS_READ:]
    else:
        rows = list(run.metrics.order_by("-step").values_list("step", "data")[:MAX_STEPS_READ])
        rows.reverse()
    return RunView(steps=rows, max_completion_tokens=(run.config or {}).get("max_completion_tokens"),
                   main_criterion=main_criterion(run.grader_spec))


def run_findings(*, run: Run) -> list[Finding]:
    """The findings that apply to the run now (what the panel and the API show)."""
    return diagnose(run_view(run=run))


def finding_object(finding: Finding, *, run: Run) -> dict:
    """The API's shape: `{code, severity, message, evidence, title, what_to_try}`; evidence
    links the samples that show it (`samples_url`, the sample browser's filters)."""
    from urllib.parse import urlencode

    evidence = dict(finding.evidence)
    query = evidence.pop("samples_query", None)
    if query is not None:
        evidence["samples_url"] = f"/v1/fine_tuning/jobs/{run.pk}/samples?{urlencode(query)}"
    return {"code": finding.code, "severity": finding.severity, "title": finding.title,
            "message": finding.message, "evidence": evidence, "what_to_try": finding.what_to_try}


# --- difficulty ------------------------------------------------------------------------------


def difficulty_latest(*, dataset, done_only: bool = False):
    from .models import DifficultyProfile, JobStatus

    profiles = DifficultyProfile.objects.filter(dataset=dataset)
    if done_only:
        profiles = profiles.filter(status=JobStatus.DONE)
    return profiles.select_related("grader").order_by("-created_at", "-pk").first()


def difficulty_get(*, project, pk: int):
    from django.shortcuts import get_object_or_404

    from .models import DifficultyProfile

    return get_object_or_404(DifficultyProfile.objects.select_related("dataset", "grader"), project=project, pk=pk)


def difficulty_estimate(*, dataset, base_model: str, k: int, max_tasks: int) -> dict:
    """How much sampling a profile costs, before it starts (the launch estimate's rates)."""
    import statistics

    from trainer.config import config_from_openai_hyperparameters
    from webapp.runs.models import RunMetric
    from webapp.runs.plan import training_device
    from webapp.runs.timing import TYPICAL_SECONDS_PER_TOKEN

    n = min(dataset.tasks.filter(split="train").count(), max_tasks)
    device = training_device()
    config = config_from_openai_hyperparameters({}, base_model=base_model or "x", n_train_tasks=max(n, 1),
                                                device=device)
    rates = [m.data.get("throughput/tokens_per_s") for m in RunMetric.objects.filter(
        run__base_model=base_model, data__has_key="throughput/tokens_per_s").order_by("-id")[:200]]
    rates = [r for r in rates if isinstance(r, int | float) and r > 0]
    tokens_per_s = statistics.median(rates) if rates else 1 / TYPICAL_SECONDS_PER_TOKEN["cuda" if device == "cuda" else "cpu"]
    answers = n * k
    tokens = answers * config.max_completion_tokens * 0.5
    return {"tasks": n, "k": k, "answers": answers, "max_tokens": config.max_completion_tokens,
            "seconds": int(tokens / tokens_per_s * 1.3) + 10, "tokens_per_s": round(tokens_per_s, 1)}


def difficulty_api_object(profile) -> dict:
    results = profile.results or {}
    return {
        "object": "dataset.difficulty", "id": profile.pk, "dataset_id": profile.dataset_id,
        "grader_id": profile.grader_id, "base_model": profile.base_model, "k": profile.k,
        "status": profile.status, "progress": profile.progress or None, "error": profile.error or None,
        "created_at": int(profile.created_at.timestamp()),
        "tasks_profiled": results.get("tasks_profiled"), "tasks_total": results.get("tasks_total"),
        "pass_threshold": results.get("pass_threshold"), "bands": results.get("bands"),
        "histogram": results.get("histogram"),
        "tasks": [{"task_id": t["id"], "pass_rate": t["pass_rate"], "band": t["band"], "rewards": t["rewards"]}
                  for t in results.get("tasks", [])],
    }


BAND_LABELS = {"never": "never solved", "between": "sometimes solved", "always": "always solved"}


def run_band_progress(*, run: Run) -> dict | None:
    """How the pass rate of each difficulty band moved during a run: the first and the last
    third of its steps, over its training answers. Tasks are matched by their messages, so a
    profile of an earlier version of the dataset counts too. None without a finished profile."""
    from webapp.datasets.models import Task
    from webapp.runs.hooks import task_key

    dataset = run.dataset
    profile = None
    while dataset is not None and profile is None:
        profile = difficulty_latest(dataset=dataset, done_only=True)
        dataset = dataset.parent
    if profile is None:
        return None
    threshold = profile.results.get("pass_threshold", 0.5)
    ids = {t["id"]: t["band"] for t in profile.results.get("tasks", []) if t.get("id") is not None}
    band_of_key = {task_key(data.get("messages") or []): ids[pk]
                   for pk, data in Task.objects.filter(pk__in=ids).values_list("pk", "data")}
    steps = list(run.samples.filter(split="train").values_list("step", flat=True).distinct().order_by("step"))
    if len(steps) < 3:
        return {"profile": profile, "rows": [], "threshold": threshold}
    third = len(steps) // 3
    early_end, late_start = steps[third - 1], steps[-third]
    counts: dict[str, dict[str, list[int]]] = {b: {"early": [0, 0], "late": [0, 0]} for b in BAND_LABELS}
    for key, step, reward in run.samples.filter(split="train").values_list("task_key", "step", "reward"):
        band = band_of_key.get(key)
        if band is None:
            continue
        phase = "early" if step <= early_end else "late" if step >= late_start else None
        if phase:
            c = counts[band][phase]
            c[0] += reward >= threshold
            c[1] += 1
    bands = profile.results.get("bands", {})
    rows = [{"band": b, "label": label, "tasks": bands.get(b, 0),
             "early": counts[b]["early"][0] / counts[b]["early"][1] if counts[b]["early"][1] else None,
             "late": counts[b]["late"][0] / counts[b]["late"][1] if counts[b]["late"][1] else None,
             "n_early": counts[b]["early"][1], "n_late": counts[b]["late"][1]}
            for b, label in BAND_LABELS.items()]
    return {"profile": profile, "rows": rows, "threshold": threshold,
            "early_steps": (steps[0], early_end), "late_steps": (late_start, steps[-1])}
