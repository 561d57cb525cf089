"""Reads for evaluations: the project's models by name, evaluations, a run's before/after
summary and the comparison of two evaluations on the same tasks."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from django.db.models import QuerySet
from django.shortcuts import get_object_or_404

from webapp.datasets.models import Dataset, Split
from webapp.projects.models import Project
from webapp.runs.models import LocalBaseModel, Run, RunCheckpoint, RunStatus

from .models import EvalItem, EvalPurpose, EvalStatus, Evaluation

TIE_TOLERANCE = 1e-6  # rewards this close count as the same


# --- models by name --------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelRef:
    """A model the project can evaluate or chat with, by the name the API uses."""

    name: str
    base_model: str  # what the trainer loads (built-in name or a folder)
    base_name: str  # the base model's own name (for display and model cards)
    run: Run | None = None
    checkpoint: RunCheckpoint | None = None
    kind: str = "base"  # base | fine_tuned | checkpoint
    created: int = 0

    @property
    def label(self) -> str:
        if self.kind == "base":
            return f"{self.name} (base model)"
        title = self.run.suffix or self.run.pk
        if self.kind == "fine_tuned":
            return f"{title}: trained, best checkpoint (step {self.checkpoint.step})"
        return f"{title}: checkpoint at step {self.checkpoint.step}"


def base_model_path(name: str) -> str | None:
    """What the trainer loads for a base model name, or None if the name is unknown."""
    from trainer.model_registry import BUILTIN_MODELS

    if name in BUILTIN_MODELS:
        return name
    local = LocalBaseModel.objects.filter(name=name).first()
    return local.path if local else None


def fine_tuned_name(run: Run) -> str:
    suffix = f":{run.suffix}" if run.suffix else ""
    return run.fine_tuned_model or f"ft:{run.base_model}{suffix}:{run.pk}"


def checkpoint_name(run: Run, step: int) -> str:
    return f"{fine_tuned_name(run)}:ckpt-step-{step}"


def run_best_checkpoint(*, run: Run) -> RunCheckpoint | None:
    """The checkpoint with the best validation reward (ties: the later step), as the trainer ranks them."""
    ckpts = list(run.checkpoints.all())
    if not ckpts:
        return None
    return max(ckpts, key=lambda c: (c.valid_reward if c.valid_reward is not None else -math.inf, c.step))


def project_models(*, project: Project) -> list[ModelRef]:
    """Built-in and registered base models, then every succeeded run's trained model and its checkpoints."""
    from trainer.model_registry import BUILTIN_MODELS

    refs = [ModelRef(name=n, base_model=n, base_name=n) for n in BUILTIN_MODELS]
    refs += [ModelRef(name=m.name, base_model=m.path, base_name=m.name) for m in LocalBaseModel.objects.all()]
    runs = project.runs.filter(status=RunStatus.SUCCEEDED).prefetch_related("checkpoints").order_by("-created_at")
    for run in runs:
        base = base_model_path(run.base_model) or (run.config or {}).get("base_model") or run.base_model
        best = run_best_checkpoint(run=run)
        if best is None:
            continue
        created = int(run.finished_at.timestamp()) if run.finished_at else 0
        refs.append(ModelRef(name=fine_tuned_name(run), base_model=base, base_name=run.base_model, run=run,
                             checkpoint=best, kind="fine_tuned", created=created))
        for ckpt in sorted(run.checkpoints.all(), key=lambda c: -c.step):
            refs.append(ModelRef(name=checkpoint_name(run, ckpt.step), base_model=base, base_name=run.base_model,
                                 run=run, checkpoint=ckpt, kind="checkpoint", created=int(ckpt.created_at.timestamp())))
    return refs


def model_resolve(*, project: Project, name: str) -> ModelRef | None:
    """A project model by its name; `ft:` names of a run are matched on the job id (with or
    without the suffix), so the checkpoints API's names resolve too."""
    if not isinstance(name, str) or not name:
        return None
    if not name.startswith("ft:"):
        path = base_model_path(name)
        return ModelRef(name=name, base_model=path, base_name=name) if path else None
    parts = name.split(":")
    job = next((p for p in reversed(parts) if p.startswith("ftjob-")), None)  # a continued run names two
    if job is None:
        return None
    run = project.runs.filter(pk=job).first()
    if run is None:
        return None
    base = base_model_path(run.base_model) or (run.config or {}).get("base_model") or run.base_model
    tail = parts[-1]
    if tail.startswith("ckpt-step-"):
        try:
            step = int(tail.removeprefix("ckpt-step-"))
        except ValueError:
            return None
        ckpt = run.checkpoints.filter(step=step).first()
        if ckpt is None:
            return None
        return ModelRef(name=checkpoint_name(run, step), base_model=base, base_name=run.base_model, run=run,
                        checkpoint=ckpt, kind="checkpoint", created=int(ckpt.created_at.timestamp()))
    if run.status != RunStatus.SUCCEEDED or tail != job:
        return None
    best = run_best_checkpoint(run=run)
    if best is None:
        return None
    return ModelRef(name=fine_tuned_name(run), base_model=base, base_name=run.base_model, run=run, checkpoint=best,
                    kind="fine_tuned", created=int(run.finished_at.timestamp()) if run.finished_at else 0)


# --- tasks -----------------------------------------------------------------------------------


def evaluation_task_rows(*, dataset: Dataset, split: str) -> list[tuple[int, dict]]:
    """(task id, row) of a dataset's split (`train`, `valid`) or of all its tasks (`all`: train then valid)."""
    qs = dataset.tasks.all()
    if split in (Split.TRAIN, Split.VALID):
        return list(qs.filter(split=split).order_by("position").values_list("pk", "data"))
    return (list(qs.filter(split=Split.TRAIN).order_by("position").values_list("pk", "data"))
            + list(qs.filter(split=Split.VALID).order_by("position").values_list("pk", "data")))


# --- evaluations -----------------------------------------------------------------------------


def evaluation_list(*, project: Project) -> QuerySet[Evaluation]:
    return project.evaluations.select_related("run", "dataset", "grader")


def evaluation_get(*, project: Project, pk: str) -> Evaluation:
    return get_object_or_404(Evaluation.objects.select_related("run", "dataset", "grader"), project=project, pk=pk)


def run_evaluations(*, run: Run) -> tuple[Evaluation | None, Evaluation | None]:
    """The newest (base model, best checkpoint) evaluations made when the run finished."""
    evals = run.evaluations.filter(purpose__in=(EvalPurpose.RUN_BASE, EvalPurpose.RUN_TRAINED)).order_by("-created_at")
    base = next((e for e in evals if e.purpose == EvalPurpose.RUN_BASE), None)
    trained = next((e for e in evals if e.purpose == EvalPurpose.RUN_TRAINED), None)
    return base, trained


def _outcome(delta: float) -> str:
    return "same" if abs(delta) <= TIE_TOLERANCE else ("better" if delta > 0 else "worse")


@dataclass
class Comparison:
    a: Evaluation
    b: Evaluation
    rows: list[dict]
    criteria: list[dict]
    counts: dict[str, int]
    only_a: int
    only_b: int


def evaluation_compare(*, a: Evaluation, b: Evaluation, order: str = "change",
                       with_samples: bool = True) -> Comparison:
    """Task by task, b against a (b better = a win for b), matched on the task itself.
    `with_samples=False` leaves every answer but the first unread (the run page's summary)."""
    a_qs, b_qs = a.items.all(), b.items.all()
    if not with_samples:
        a_qs, b_qs = a_qs.defer("samples"), b_qs.defer("samples")
    a_items = {i.task_key: i for i in a_qs}
    rows = []
    matched = set()
    for item in b_qs:
        other = a_items.get(item.task_key)
        if other is None:
            continue
        matched.add(item.task_key)
        delta = item.reward - other.reward
        crit = {k: item.sub_rewards.get(k, 0.0) - other.sub_rewards.get(k, 0.0)
                for k in sorted(set(item.sub_rewards) | set(other.sub_rewards))}
        rows.append({"task_key": item.task_key, "index": other.index, "a": other, "b": item, "delta": delta,
                     "outcome": _outcome(delta), "criteria_delta": crit, "prompt": item.prompt,
                     "reference": item.item.get("reference_answer")})
    sorters = {
        "change": lambda r: (-abs(r["delta"]), r["index"]),
        "better": lambda r: (-r["delta"], r["index"]),
        "worse": lambda r: (r["delta"], r["index"]),
        "task": lambda r: r["index"],
        "a": lambda r: (-r["a"].reward, r["index"]),
        "b": lambda r: (-r["b"].reward, r["index"]),
    }
    rows.sort(key=sorters.get(order, sorters["change"]))
    names = sorted({k for r in rows for k in r["criteria_delta"]})
    criteria = []
    for name in names:
        before = [r["a"].sub_rewards.get(name, 0.0) for r in rows]
        after = [r["b"].sub_rewards.get(name, 0.0) for r in rows]
        mean_a = sum(before) / len(before) if before else 0.0
        mean_b = sum(after) / len(after) if after else 0.0
        criteria.append({"name": name, "a": mean_a, "b": mean_b, "delta": mean_b - mean_a,
                         "better": sum(y - x > TIE_TOLERANCE for x, y in zip(before, after, strict=True)),
                         "worse": sum(x - y > TIE_TOLERANCE for x, y in zip(before, after, strict=True))})
    counts = {k: sum(r["outcome"] == k for r in rows) for k in ("better", "worse", "same")}
    return Comparison(a=a, b=b, rows=rows, criteria=criteria, counts=counts,
                      only_a=len(set(a_items) - matched), only_b=b.items.count() - len(matched))


def run_eval_summary(*, run: Run, top: int = 5) -> dict | None:
    """What the run page leads with: validation reward before → after, tasks better/worse/same,
    each criterion before/after, and the tasks that changed most. None when there is nothing."""
    base, trained = run_evaluations(run=run)
    if base is None and trained is None:
        return None
    summary = {"base": base, "trained": trained, "ready": False}
    if base and trained and base.status == EvalStatus.COMPLETED and trained.status == EvalStatus.COMPLETED:
        comparison = evaluation_compare(a=base, b=trained, with_samples=False)
        summary.update({
            "ready": True, "counts": comparison.counts, "criteria": comparison.criteria,
            "changed": [r for r in comparison.rows if r["outcome"] != "same"][:top],
            "n_tasks": len(comparison.rows),
            "chart": {"names": [c["name"] for c in comparison.criteria],
                      "before": [round(c["a"], 4) for c in comparison.criteria],
                      "after": [round(c["b"], 4) for c in comparison.criteria]},
        })
    summary["active"] = any(e is not None and e.is_active for e in (base, trained))
    summary["failed"] = [e for e in (base, trained) if e is not None and e.status == EvalStatus.FAILED]
    return summary


def evaluation_items(*, evaluation: Evaluation) -> QuerySet[EvalItem]:
    return evaluation.items.order_by("index")


# --- continue training from here -------------------------------------------------------------


def trained_model_choices(*, project: Project) -> list[tuple[str, str]]:
    """(name, label) of the project's trained models and checkpoints, for the launch form."""
    return [(m.name, f"{m.label} — continue training from here") for m in project_models(project=project)
            if m.kind != "base"]


def trained_base_folder(*, project: Project, name: str) -> tuple[str | None, str]:
    """(folder, "") a new run loads as its base model for a trained model of this project:
    the checkpoint itself for full fine-tuning, its merged export for LoRA (prepared by a
    worker; asked for here when missing). (None, why) when it cannot be used (yet)."""
    from trainer.export import is_adapter_checkpoint

    from .exports import export_dir, export_merged_request, merged_failed

    ref = model_resolve(project=project, name=name)
    if ref is None or ref.checkpoint is None:
        return None, f"No trained model {name!r} in this project."
    ckpt = ref.checkpoint
    if not is_adapter_checkpoint(ckpt.path):
        return (ckpt.path, "") if (Path(ckpt.path) / "config.json").is_file() else (None, f"The files of {name} are gone.")
    if export_merged_request(checkpoint=ckpt):
        return str(export_dir(ckpt, "merged")), ""
    failed = merged_failed(ckpt)
    return None, (f"Preparing {name} as a base model failed: {failed}" if failed else
                  f"{name} is being prepared as a base model (its adapter is merged in once by a worker); "
                  "launch again in a minute.")
