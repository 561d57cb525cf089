"""One frozen dataclass that holds a whole training run, validated once.

`TrainConfig` is what the web app stores as a run's frozen config (``to_dict``/``from_dict``
round-trip through JSON) and what the CLI reads from ``run.json``.
`config_from_openai_hyperparameters` maps OpenAI's RFT hyperparameter names onto it.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

LOSS_TYPES = ("grpo", "dr_grpo", "dapo")
REWARD_SCALINGS = ("group", "batch", "none")
METHODS = ("lora", "full")
LR_SCHEDULES = ("constant", "linear", "cosine")
DEVICES = ("auto", "cpu", "cuda", "mps")
DTYPES = ("auto", "float32", "bfloat16", "float16")
SHARDINGS = ("none", "fsdp")
#: `mask_truncated_completions=None` masks cut-off answers when the answer limit is at most this.
SHORT_ANSWER_TOKENS = 256
DEFAULT_TARGET_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


class ConfigError(ValueError):
    """A run configuration that cannot work; the message says which field and why."""


@dataclass(frozen=True)
class TrainConfig:
    """Everything one GRPO run needs. Units are stated per field; "step" means one rollout batch."""

    # --- model -------------------------------------------------------------------------------
    base_model: str = "smollm2-135m-instruct"
    """Built-in name (see `trainer.models.BUILTIN_MODELS`), a local Hugging Face folder, or a hub id."""
    method: str = "lora"
    """`lora`: train low-rank adapters (the base stays frozen and doubles as the KL reference);
    `full`: train every weight."""
    lora_rank: int = 16
    """LoRA rank r."""
    lora_alpha: int = 32
    """LoRA scaling numerator; the update is scaled by alpha / r."""
    lora_dropout: float = 0.0
    """Dropout on the LoRA input. 0 keeps sampling and training on exactly the same policy."""
    lora_target_modules: tuple[str, ...] = DEFAULT_TARGET_MODULES
    """Names of the linear layers that get adapters ("all-linear" as a single entry is allowed)."""

    # --- data and batch ------------------------------------------------------------------------
    n_epochs: int = 1
    """Passes over the training tasks. Total steps = floor(n_epochs * n_train / batch_size), >= 1."""
    batch_size: int = 4
    """Prompts (tasks) per step."""
    group_size: int = 8
    """Completions sampled per prompt; advantages are relative within this group."""
    micro_batch_size: int = 0
    """Prompts per forward/backward chunk inside a step (gradients are accumulated); 0 = all."""
    max_steps: int | None = None
    """Stop after this many steps even if epochs remain (None: run all epochs)."""

    # --- optimisation --------------------------------------------------------------------------
    learning_rate: float = 5e-5
    """Peak AdamW learning rate."""
    lr_schedule: str = "constant"
    """After warmup: `constant`, `linear` decay to 0, or `cosine` decay to 0."""
    warmup_steps: int = 0
    """Optimizer steps of linear warmup from 0 to `learning_rate`."""
    weight_decay: float = 0.0
    """AdamW decoupled weight decay."""
    adam_beta1: float = 0.9
    """AdamW beta1."""
    adam_beta2: float = 0.99
    """AdamW beta2."""
    max_grad_norm: float = 1.0
    """Clip the global gradient norm to this (0 disables clipping)."""
    num_iterations: int = 1
    """Optimizer updates per rollout batch (mu in the GRPO paper). >1 makes the ratio/clipping matter."""

    # --- sampling ------------------------------------------------------------------------------
    max_prompt_tokens: int = 512
    """Prompts longer than this are cut from the left (the end of the conversation is kept)."""
    max_completion_tokens: int = 128
    """Completions stop at EOS or after this many tokens (then they count as truncated)."""
    temperature: float = 1.0
    """Sampling temperature for training rollouts (log-probs use the same temperature)."""
    top_p: float = 1.0
    """Nucleus sampling threshold for training rollouts (1 disables it)."""

    # --- objective -----------------------------------------------------------------------------
    loss_type: str = "dapo"
    """Token-loss normalisation: `grpo` (mean per sequence, then over sequences),
    `dr_grpo` (sum / (sequences * max_completion_tokens)), `dapo` (sum / tokens in the batch)."""
    beta: float = 0.0
    """Weight of the k3 KL estimate to the reference model. 0 loads no reference model at all."""
    epsilon: float = 0.2
    """Lower clipping range: ratios below 1 - epsilon get no gradient for negative advantages."""
    epsilon_high: float | None = None
    """Upper clipping range (None = `epsilon`); DAPO's clip-higher uses e.g. 0.28."""
    reward_scaling: str = "group"
    """Divide advantages by the reward std of the `group`, of the whole `batch`, or `none` (Dr. GRPO)."""
    dynamic_sampling: bool = True
    """DAPO's dynamic sampling: a task whose answers all scored the same teaches nothing, so its
    group is dropped and replaced by a fresh task, for up to `dynamic_sampling_max_rounds`
    sampling rounds per step; the step then trains on the groups it kept (maybe fewer than
    `batch_size`, none at all makes a "no-signal" step that leaves the weights as they are).
    Retries pause while none of the last 4 x `batch_size` groups sampled had any spread (a
    retry would almost surely find none either, at the cost of a whole round) and resume as
    soon as one does (`trainer.loop.SpreadWindow`)."""
    dynamic_sampling_max_rounds: int = 2
    """Sampling rounds per step at most with `dynamic_sampling` (the first one included)."""
    mask_truncated_completions: bool | None = None
    """Leave answers cut off at `max_completion_tokens` out of the loss (their rewards still
    count in the group statistics), as TRL's option of the same name. None: on when the answer
    limit is short (<= SHORT_ANSWER_TOKENS), where a cut answer is usually a good answer
    that ran out of room rather than a rambling one."""

    # --- evaluation, logging, checkpoints ------------------------------------------------------
    eval_interval: int = 10
    """Validate and checkpoint every this many steps (and always at the end)."""
    eval_samples: int | None = None
    """Validation tasks graded per evaluation (None = all of the validation split)."""
    eval_temperature: float = 0.0
    """Temperature for validation completions; 0 is greedy, which makes checkpoints comparable."""
    samples_per_step: int = 8
    """Graded training samples passed to `on_step` per step (for the sample browser)."""
    keep_checkpoints: int = 3
    """Keep this many best checkpoints by validation reward, plus always the latest."""
    output_dir: str = "runs/latest"
    """Folder for checkpoints (one sub-folder per step)."""

    # --- hardware ------------------------------------------------------------------------------
    seed: int = 0
    """Seeds data order, sampling and initialisation."""
    device: str = "auto"
    """`auto` (CUDA when present, else CPU), `cpu`, `cuda`, `mps`."""
    dtype: str = "auto"
    """Compute precision: `auto` (bfloat16 on CUDA, float32 elsewhere), `float32`, `bfloat16`,
    `float16`. Trained weights and the optimizer state stay float32 (master weights) and the
    forward passes run under autocast in this dtype; with LoRA the frozen base is stored in it.
    float16 adds dynamic loss scaling (GradScaler)."""
    num_threads: int = 0
    """CPU threads for torch (0 = torch's default, one per core). On a CPU shared with other
    busy processes, 1 can be many times faster: OpenMP threads wait on each other whenever one
    of them is descheduled (measured 25x slower small matmuls with 2 threads on 2 busy cores)."""
    gradient_checkpointing: bool = False
    """Recompute activations in backward to save memory (disables the shared-prompt training pass)."""
    logprob_chunk_tokens: int = 1024
    """Completion tokens per chunk when computing log-probs, so the (tokens, vocab) logits
    never exist for the whole batch at once."""
    grading_threads: int = 8
    """Threads that grade completions while generation continues."""
    sharding: str = "none"
    """How a run on several processes (torchrun) keeps the model: `none`, a whole copy per
    process; `fsdp`, FSDP2 splits the float32 master weights, gradients and AdamW state over the
    processes (`trainer.sharding`), for models whose training state does not fit one GPU. Needs
    more than one process; float16 is not supported with it (use bfloat16). Learns the same
    numbers as `none`, and checkpoints are the same files (a run may resume with the other)."""

    def __post_init__(self) -> None:
        # JSON has no tuples; accept lists and normalise so the frozen object stays hashable.
        if isinstance(self.lora_target_modules, list | str):
            mods = self.lora_target_modules
            object.__setattr__(
                self, "lora_target_modules", (mods,) if isinstance(mods, str) else tuple(mods)
            )
        self.validate()

    # ------------------------------------------------------------------------------------------
    def validate(self) -> None:
        """Raise ConfigError with one clear message listing every problem found."""
        problems: list[str] = []

        def need(cond: bool, msg: str) -> None:
            if not cond:
                problems.append(msg)

        def choice(name: str, options: tuple[str, ...]) -> None:
            value = getattr(self, name)
            need(value in options, f"{name} must be one of {', '.join(options)} (got {value!r})")

        need(bool(self.base_model) and isinstance(self.base_model, str), "base_model is empty")
        choice("method", METHODS)
        choice("loss_type", LOSS_TYPES)
        choice("reward_scaling", REWARD_SCALINGS)
        choice("lr_schedule", LR_SCHEDULES)
        choice("device", DEVICES)
        choice("dtype", DTYPES)
        choice("sharding", SHARDINGS)
        if self.sharding == "fsdp":
            need(self.dtype != "float16", "sharding='fsdp' does not support dtype float16: its loss scaling "
                 "checks for overflow on each process's own gradient shard; use bfloat16 (or float32)")
            need(self.device != "mps", "sharding='fsdp' needs CUDA (NCCL) or CPU (gloo) processes, not mps")
        for name in ("n_epochs", "batch_size", "num_iterations", "max_completion_tokens",
                     "max_prompt_tokens", "eval_interval", "lora_rank", "lora_alpha",
                     "logprob_chunk_tokens", "grading_threads", "dynamic_sampling_max_rounds"):
            value = getattr(self, name)
            need(isinstance(value, int) and value >= 1, f"{name} must be a positive integer (got {value!r})")
        need(isinstance(self.group_size, int) and self.group_size >= 2,
             f"group_size must be at least 2 (got {self.group_size!r}): advantages compare "
             "completions of the same prompt, a group of one has nothing to compare with")
        for name in ("micro_batch_size", "num_threads", "warmup_steps", "samples_per_step", "keep_checkpoints"):
            value = getattr(self, name)
            need(isinstance(value, int) and value >= 0, f"{name} must be an integer >= 0 (got {value!r})")
        if self.micro_batch_size and isinstance(self.batch_size, int):
            need(self.batch_size % self.micro_batch_size == 0,
                 f"batch_size {self.batch_size} is not a multiple of micro_batch_size {self.micro_batch_size}")
        need(self.max_steps is None or (isinstance(self.max_steps, int) and self.max_steps >= 1),
             f"max_steps must be None or a positive integer (got {self.max_steps!r})")
        need(self.eval_samples is None or (isinstance(self.eval_samples, int) and self.eval_samples >= 1),
             f"eval_samples must be None or a positive integer (got {self.eval_samples!r})")
        need(_num(self.learning_rate) and 0 < self.learning_rate < 1,
             f"learning_rate must be in (0, 1) (got {self.learning_rate!r})")
        need(_num(self.temperature) and self.temperature > 0,
             f"temperature must be > 0 for training rollouts (got {self.temperature!r})")
        need(_num(self.eval_temperature) and self.eval_temperature >= 0,
             f"eval_temperature must be >= 0 (got {self.eval_temperature!r})")
        need(_num(self.top_p) and 0 < self.top_p <= 1, f"top_p must be in (0, 1] (got {self.top_p!r})")
        need(_num(self.beta) and self.beta >= 0, f"beta must be >= 0 (got {self.beta!r})")
        need(_num(self.epsilon) and 0 < self.epsilon < 1, f"epsilon must be in (0, 1) (got {self.epsilon!r})")
        need(self.epsilon_high is None or (_num(self.epsilon_high) and self.epsilon_high > 0),
             f"epsilon_high must be None or > 0 (got {self.epsilon_high!r})")
        need(_num(self.weight_decay) and self.weight_decay >= 0,
             f"weight_decay must be >= 0 (got {self.weight_decay!r})")
        need(_num(self.max_grad_norm) and self.max_grad_norm >= 0,
             f"max_grad_norm must be >= 0 (got {self.max_grad_norm!r})")
        need(_num(self.lora_dropout) and 0 <= self.lora_dropout < 1,
             f"lora_dropout must be in [0, 1) (got {self.lora_dropout!r})")
        need(len(self.lora_target_modules) > 0, "lora_target_modules is empty")
        need(isinstance(self.dynamic_sampling, bool), f"dynamic_sampling must be true or false (got {self.dynamic_sampling!r})")
        need(self.mask_truncated_completions is None or isinstance(self.mask_truncated_completions, bool),
             f"mask_truncated_completions must be true, false or null (got {self.mask_truncated_completions!r})")
        need(bool(self.output_dir), "output_dir is empty")
        if problems:
            raise ConfigError("invalid training config: " + "; ".join(problems))

    # ------------------------------------------------------------------------------------------
    @property
    def epsilon_low(self) -> float:
        return self.epsilon

    @property
    def epsilon_upper(self) -> float:
        return self.epsilon if self.epsilon_high is None else self.epsilon_high

    @property
    def masks_truncated(self) -> bool:
        """Whether cut-off answers are left out of the loss (resolves the `None` default)."""
        if self.mask_truncated_completions is None:
            return self.max_completion_tokens <= SHORT_ANSWER_TOKENS
        return self.mask_truncated_completions

    def total_steps(self, n_train: int) -> int:
        """Rollout steps for a training split of `n_train` tasks (capped by `max_steps`)."""
        steps = max(1, (self.n_epochs * n_train) // self.batch_size)
        return min(steps, self.max_steps) if self.max_steps else steps

    def replace(self, **changes: Any) -> TrainConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["lora_target_modules"] = list(self.lora_target_modules)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"invalid training config: unknown field(s) {', '.join(unknown)}")
        return cls(**data)


def _num(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


# ---------------------------------------------------------------------------------------------
# OpenAI hyperparameters -> TrainConfig
# ---------------------------------------------------------------------------------------------

#: Completion budget per `reasoning_effort`; a small CPU model cannot use OpenAI's budgets.
REASONING_EFFORT_TOKENS = {"minimal": 64, "low": 128, "medium": 256, "high": 512}
BASE_LEARNING_RATE = {"lora": 5e-5, "full": 5e-6}
BASE_GROUP_SIZE = 8  # answers per task at compute_multiplier 1


@dataclass(frozen=True)
class AutoSizes:
    """What "auto" means for the step size on one kind of device."""

    batch_size: int
    group_size: int
    max_completion_tokens: int


#: OpenAI-sized steps on a GPU. On a CPU those (8 tasks x 8 answers of 128 tokens) take
#: minutes per step even for a 135M model, so "auto" picks a quarter of the answers there.
AUTO_SIZES = {"cuda": AutoSizes(batch_size=8, group_size=8, max_completion_tokens=128),
              "cpu": AutoSizes(batch_size=4, group_size=4, max_completion_tokens=64)}


# ---------------------------------------------------------------------------------------------
# Launch settings in the expert's words, and the ranges the form and the API both accept
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FieldInfo:
    """How a person sets one launch setting: the expert's words, the unit and the range.

    The launch form is built from these, and `config_from_openai_hyperparameters` checks the
    same ranges, so the browser and the API accept the same values. (The docstrings in
    `TrainConfig` are for engineers; these words are for the domain expert.)
    """

    label: str
    help: str
    unit: str = ""
    minimum: float | None = None
    maximum: float | None = None
    auto: str = ""
    """What "auto" picks, in words; empty when the setting has no "auto"."""
    choices: tuple[tuple[str, str], ...] = ()
    """(value, words) when the setting is a choice."""

    def check(self, name: str, value: float) -> None:
        """ConfigError naming `name` when `value` is outside the range."""
        if (self.minimum is not None and value < self.minimum) or (self.maximum is not None and value > self.maximum):
            high = "" if self.maximum is None else f" and {_plain(self.maximum)}"
            raise ConfigError(f"{name} must be {'between' if high else 'at least'} {_plain(self.minimum)}{high} "
                              f"(got {value!r})")


def _plain(number: float | None) -> str:
    return "" if number is None else f"{number:g}"


def _auto_words(field: str) -> str:
    cpu, gpu = getattr(AUTO_SIZES["cpu"], field), getattr(AUTO_SIZES["cuda"], field)
    return f"{cpu} on a CPU worker, {gpu} on a GPU worker"


#: Keyed by `TrainConfig` field, except `learning_rate_multiplier`: the learning rate as a
#: multiple of the method's usual one (`BASE_LEARNING_RATE`), which is how people think of it.
FIELD_INFO: dict[str, FieldInfo] = {
    "n_epochs": FieldInfo(
        "Passes over the tasks", "How many times training goes through all the training tasks. "
        "More passes: more learning, more time.", "passes", 1, 50,
        auto="enough passes for about 50 steps, at most 10"),
    "batch_size": FieldInfo(
        "Tasks per step", "How many tasks the model practises on before each update.", "tasks", 1, 256,
        auto=_auto_words("batch_size")),
    "group_size": FieldInfo(
        "Answers per task", "How many answers the model writes to each task per step. It learns from "
        "how their scores differ, so more answers give a clearer signal and take longer.", "answers", 2, 64,
        auto=_auto_words("group_size")),
    "learning_rate_multiplier": FieldInfo(
        "Learning speed", "How big each update is, compared with the usual speed for the training "
        "method. Higher learns faster but can become unstable.", "× the usual", 0.001, 100, auto="1× the usual"),
    "max_completion_tokens": FieldInfo(
        "Longest answer", "Answers are cut off after this many tokens (a token is about ¾ of a word).",
        "tokens", 1, 8192, auto=_auto_words("max_completion_tokens")),
    "eval_interval": FieldInfo(
        "Check progress every", "Every this many steps the model answers the validation tasks and a "
        "checkpoint is saved.", "steps", 1, None, auto="about 10 checks per run"),
    "eval_samples": FieldInfo(
        "Validation tasks per check", "How many validation tasks each progress check grades.", "tasks", 1, None,
        auto="all of them, at most 64"),
    "method": FieldInfo(
        "What to train", "Adapters train a small add-on to the base model (fast, small files); "
        "all weights changes the whole model (slower, files as big as the model).",
        choices=(("lora", "Small adapters (LoRA)"), ("full", "All weights"))),
    "temperature": FieldInfo(
        "Answer variety", "How different the practice answers to one task are from each other: 1 samples "
        "as the model itself would, lower repeats its favourite answer, higher tries more unusual ones.",
        "", 0.05, 2.0),
    "beta": FieldInfo(
        "Stay close to the base model", "How strongly training is held back from drifting away from "
        "how the base model writes; 0 does not hold it back.", "", 0.0, 10.0),
    "max_steps": FieldInfo(
        "Stop after", "End training after this many steps even if passes remain; empty for no limit.",
        "steps", 1, None),
    "seed": FieldInfo(
        "Random seed", "The same seed with the same settings and tasks gives the same run.", "", 0, None),
}


def config_from_openai_hyperparameters(
    hyperparameters: dict[str, Any] | None,
    *,
    base_model: str,
    n_train_tasks: int,
    device: str = "auto",
    n_valid_tasks: int = 0,
    seed: int | None = None,
    output_dir: str = "runs/latest",
    **overrides: Any,
) -> TrainConfig:
    """Map OpenAI RFT hyperparameters onto a `TrainConfig`, sizing "auto" for `device`.

    `device` is where the run trains (`TrainConfig.device`: `auto`, `cpu`, `cuda`, `mps`), and
    "auto" step sizes follow `AUTO_SIZES` for it: a CPU (or mps) gets a quarter of a GPU's
    answers per step. `auto` is resolved on this machine (CUDA when present), which is right
    for the CLI; the web app passes the device of its training workers.

    Each OpenAI value is a number or ``"auto"`` (a missing key means ``"auto"``):

    - ``n_epochs`` (1-50) -> `n_epochs`; auto: enough passes for about 50 steps, between 1 and 10.
    - ``batch_size`` (1-256, prompts per step) -> `batch_size`; auto: `AUTO_SIZES` (at most n_train_tasks).
    - ``learning_rate_multiplier`` -> `learning_rate` = multiplier * 5e-5 (LoRA) or 5e-6 (full).
    - ``compute_multiplier`` -> `group_size` = round(8 * multiplier) clamped to 2..64; auto: `AUTO_SIZES`.
    - ``eval_interval`` -> `eval_interval`; auto: about 10 evaluations per run.
    - ``eval_samples`` -> `eval_samples` (validation tasks per evaluation); auto: all, up to 64.
    - ``reasoning_effort`` (minimal/low/medium/high) -> `max_completion_tokens`
      (64/128/256/512); auto: `AUTO_SIZES`.

    `overrides` set `TrainConfig` fields directly (e.g. ``method="full"``, ``group_size=2``);
    they win over the hyperparameter of the same meaning, and the "auto" values that depend
    on them (passes and evaluation interval) are computed from them.
    Raises ConfigError naming the hyperparameter when a value is out of range (the ranges
    are `FIELD_INFO`'s, the same the launch form offers).
    """
    hp = dict(hyperparameters or {})
    unknown = sorted(set(hp) - {"n_epochs", "batch_size", "learning_rate_multiplier",
                                "compute_multiplier", "eval_interval", "eval_samples",
                                "reasoning_effort"})
    if unknown:
        raise ConfigError(f"unknown hyperparameter(s): {', '.join(unknown)}")
    if n_train_tasks < 1:
        raise ConfigError("the training file has no tasks")
    if device not in DEVICES:
        raise ConfigError(f"device must be one of {', '.join(DEVICES)} (got {device!r})")
    auto = AUTO_SIZES["cuda" if _sizing_device(device) == "cuda" else "cpu"]

    def get(name: str, kind: type, info: FieldInfo | None = None):
        value = hp.get(name, "auto")
        if value is None or value == "auto":
            return None
        if kind is int and isinstance(value, float) and value.is_integer():
            value = int(value)
        if not _num(value) or (kind is int and not isinstance(value, int)):
            raise ConfigError(f"hyperparameter {name} must be {'an integer' if kind is int else 'a number'} "
                              f"or \"auto\" (got {value!r})")
        if info is not None:
            info.check(f"hyperparameter {name}", value)
        return value

    def pick(field: str, from_hyperparameter):
        """An override wins over the hyperparameter; None means "auto"."""
        value = overrides.get(field)
        return from_hyperparameter if value is None else value

    method = overrides.get("method", "lora")
    batch_size = pick("batch_size", get("batch_size", int, FIELD_INFO["batch_size"])) \
        or min(auto.batch_size, n_train_tasks)
    n_epochs = pick("n_epochs", get("n_epochs", int, FIELD_INFO["n_epochs"]))
    if n_epochs is None:
        n_epochs = min(10, max(1, math.ceil(50 * batch_size / n_train_tasks)))
    lr_mult = get("learning_rate_multiplier", float, FIELD_INFO["learning_rate_multiplier"])
    compute = get("compute_multiplier", float)
    if compute is not None and compute <= 0:
        raise ConfigError(f"hyperparameter compute_multiplier must be > 0 (got {compute!r})")
    groups = FIELD_INFO["group_size"]
    from_compute = None if compute is None else int(min(groups.maximum, max(groups.minimum,
                                                                              round(BASE_GROUP_SIZE * compute))))
    group_size = pick("group_size", from_compute) or auto.group_size
    effort = hp.get("reasoning_effort", "auto")
    if effort not in (None, "auto") and effort not in REASONING_EFFORT_TOKENS:
        raise ConfigError(f"hyperparameter reasoning_effort must be one of "
                          f"{', '.join(REASONING_EFFORT_TOKENS)} or \"auto\" (got {effort!r})")
    max_completion = pick("max_completion_tokens", REASONING_EFFORT_TOKENS.get(effort)) \
        or auto.max_completion_tokens
    total = max(1, (n_epochs * n_train_tasks) // batch_size)
    if overrides.get("max_steps"):
        total = min(total, overrides["max_steps"])
    eval_interval = pick("eval_interval", get("eval_interval", int, FIELD_INFO["eval_interval"])) \
        or max(1, total // 10)
    eval_samples = pick("eval_samples", get("eval_samples", int, FIELD_INFO["eval_samples"]))
    if eval_samples is None and n_valid_tasks:
        eval_samples = min(64, n_valid_tasks)

    fields: dict[str, Any] = dict(overrides)
    fields.update(
        base_model=base_model,
        device=device,
        method=method,
        n_epochs=n_epochs,
        batch_size=batch_size,
        group_size=group_size,
        learning_rate=overrides.get("learning_rate") or BASE_LEARNING_RATE.get(method, 5e-5) * (lr_mult or 1.0),
        eval_interval=eval_interval,
        eval_samples=eval_samples,
        max_completion_tokens=max_completion,
        output_dir=output_dir,
    )
    if seed is not None:
        fields["seed"] = seed
    return TrainConfig(**fields)


def _sizing_device(device: str) -> str:
    if device != "auto":
        return device
    from trainer.models import resolve_device  # torch loads only when a caller leaves it to us

    return resolve_device("auto").type


__all__ = ["AUTO_SIZES", "FIELD_INFO", "ConfigError", "FieldInfo", "TrainConfig", "config_from_openai_hyperparameters"]
