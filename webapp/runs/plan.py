"""What a launch would run: one plan, validated once, for the estimate and for `run_create`.

`run_plan` checks everything a launch checks (the datasets and the grader belong to the
project, the grader is valid, the training split has tasks, the settings make a valid
`TrainConfig`) and returns the unsaved run with its frozen config. It only reads: the New
run page calls it for the estimate on every change of the form, `run_create` calls it and
then writes. So the estimate never shows a run that launching would refuse.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError

from trainer.config import ConfigError, TrainConfig, config_from_openai_hyperparameters
from trainer.grading import GraderValidationError, validate_grader
from webapp.datasets.models import Dataset
from webapp.graders.judges import sync_judges
from webapp.graders.models import Grader
from webapp.projects.models import Project

from .models import LocalBaseModel, Run, RunStatus
from .selectors import base_model_choices, run_task_counts

DEFAULT_SEED = 42
MAX_SUFFIX = 64


class LaunchError(ValidationError):
    """A run that cannot start; `param` names the request field (OpenAI's error `param`)."""

    def __init__(self, message: str, param: str | None = None):
        super().__init__(message)
        self.param = param


@dataclass
class RunPlan:
    run: Run  # not saved
    config: TrainConfig
    n_train: int
    n_valid: int


# Without one of these, no GPU driver is loaded and torch cannot see a GPU (NVIDIA; AMD ROCm).
GPU_DRIVER_NODES = ("/dev/nvidiactl", "/proc/driver/nvidia", "/dev/kfd")


@functools.cache
def _this_machine_device() -> str:
    # Importing torch takes seconds; on a machine without a GPU driver the answer is known
    # without it (this made the first New run page of every web process take 3 s).
    if not any(Path(node).exists() for node in GPU_DRIVER_NODES):
        return "cpu"
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def training_device() -> str:
    """Where the training workers train (`cpu` or `cuda`): `STUDIO_TRAINING_DEVICE`, where
    `auto` means like this machine (right for `make run`, where the workers run beside it)."""
    setting = settings.STUDIO_TRAINING_DEVICE
    return _this_machine_device() if setting == "auto" else setting


def base_model_resolve(name: str, project: Project | None = None) -> str:
    """What the trainer loads for `name`: a built-in name, a registered folder's path, or (a
    project's trained model, "continue training from here") its complete-model folder."""
    from trainer.model_registry import BUILTIN_MODELS

    if project is not None and name.startswith("ft:"):
        from webapp.evals.selectors import trained_base_folder

        folder, problem = trained_base_folder(project=project, name=name)
        if folder is None:
            raise LaunchError(problem, param="model")
        return folder
    if name in BUILTIN_MODELS:
        return name
    local = LocalBaseModel.objects.filter(name=name).first()
    if local is not None:
        return local.path
    available = ", ".join(v for v, _ in base_model_choices())
    raise LaunchError(f"Model {name!r} is not available here. Available: {available}.", param="model")


def run_output_dir(run: Run) -> Path:
    return settings.STUDIO_DATA_DIR / "runs" / run.pk


def run_plan(
    *, project: Project, user, dataset: Dataset, grader_spec: dict | None = None, grader: Grader | None = None,
    base_model: str, hyperparameters: dict | None = None, valid_dataset: Dataset | None = None,
    suffix: str = "", seed: int | None = None, metadata: dict | None = None, overrides: dict | None = None,
    training_file: str = "", validation_file: str = "", device: str | None = None,
) -> RunPlan:
    """Validate a launch and resolve its config; raises LaunchError naming the field.

    `hyperparameters` use OpenAI's names ("auto" or numbers), `overrides` set `TrainConfig`
    fields directly, `device` is where it will train (default `training_device()`), which
    sizes the "auto" values.
    """
    for ds, param in ((dataset, "training_file"), (valid_dataset, "validation_file")):
        if ds is not None and ds.project_id != project.pk:
            raise LaunchError("That dataset belongs to another project.", param=param)
    if grader is not None:
        if grader.project_id != project.pk:
            raise LaunchError("That grader belongs to another project.", param="grader")
        grader_spec = grader.spec
    if grader_spec is None:
        raise LaunchError("A run needs a grader.", param="grader")
    sync_judges()  # judge names are checked against the admin's endpoints
    try:
        validate_grader(grader_spec)
    except GraderValidationError as exc:
        raise LaunchError(f"Invalid grader: {exc}", param="method.reinforcement.grader") from None
    if len(suffix) > MAX_SUFFIX:
        raise LaunchError(f"suffix can be at most {MAX_SUFFIX} characters.", param="suffix")

    run = Run(
        project=project, created_by=user, dataset=dataset, valid_dataset=valid_dataset, grader=grader,
        grader_spec=grader_spec, base_model=base_model, hyperparameters=dict(hyperparameters or {}),
        suffix=suffix, seed=seed if seed is not None else DEFAULT_SEED, metadata=metadata or {},
        training_file=training_file, validation_file=validation_file, status=RunStatus.VALIDATING_FILES,
    )
    n_train, n_valid = run_task_counts(run=run)
    if not n_train:
        raise LaunchError(f"The training dataset “{dataset.name}” has no training tasks.", param="training_file")
    try:
        config = config_from_openai_hyperparameters(
            run.hyperparameters, base_model=base_model_resolve(run.base_model, project), n_train_tasks=n_train,
            n_valid_tasks=n_valid, device=device or training_device(), seed=run.seed,
            output_dir=str(run_output_dir(run)), **(overrides or {}),
        )
    except ConfigError as exc:
        raise LaunchError(str(exc), param="hyperparameters") from None
    except TypeError as exc:  # an unknown advanced setting
        raise LaunchError(f"Unknown setting: {exc}", param="hyperparameters") from None
    run.config = config.to_dict()
    run.total_steps = config.total_steps(n_train)
    return RunPlan(run=run, config=config, n_train=n_train, n_valid=n_valid)
