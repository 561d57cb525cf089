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
    """`auto` (bfloat16 on CUDA, float32 elsewhere), `float32`, `bfloat16`, `float16`."""
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
        for name in ("n_epochs", "batch_size", "num_iterations", "max_completion_tokens",
                     "max_prompt_tokens", "eval_interval", "lora_rank", "lora_alpha",
                     "logprob_chunk_tokens", "grading_threads"):
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
BASE_GROUP_SIZE = 8


def config_from_openai_hyperparameters(
    hyperparameters: dict[str, Any] | None,
    *,
    base_model: str,
    n_train_tasks: int,
    n_valid_tasks: int = 0,
    seed: int | None = None,
    output_dir: str = "runs/latest",
    **overrides: Any,
) -> TrainConfig:
    """Map OpenAI RFT hyperparameters onto a `TrainConfig`.

    Each OpenAI value is a number or ``"auto"`` (a missing key means ``"auto"``):

    - ``n_epochs`` (1-50) -> `n_epochs`; auto: enough passes for about 50 steps, between 1 and 10.
    - ``batch_size`` (1-256, prompts per step) -> `batch_size`; auto: min(8, n_train_tasks).
    - ``learning_rate_multiplier`` -> `learning_rate` = multiplier * 5e-5 (LoRA) or 5e-6 (full).
    - ``compute_multiplier`` -> `group_size` = round(8 * multiplier) clamped to 2..64; auto: 8.
    - ``eval_interval`` -> `eval_interval`; auto: about 10 evaluations per run.
    - ``eval_samples`` -> `eval_samples` (validation tasks per evaluation); auto: all, up to 64.
    - ``reasoning_effort`` (minimal/low/medium/high) -> `max_completion_tokens`
      (64/128/256/512); auto: 128.

    `overrides` set any other `TrainConfig` field directly (e.g. ``method="full"``).
    Raises ConfigError naming the hyperparameter when a value is out of range.
    """
    hp = dict(hyperparameters or {})
    unknown = sorted(set(hp) - {"n_epochs", "batch_size", "learning_rate_multiplier",
                                "compute_multiplier", "eval_interval", "eval_samples",
                                "reasoning_effort"})
    if unknown:
        raise ConfigError(f"unknown hyperparameter(s): {', '.join(unknown)}")
    if n_train_tasks < 1:
        raise ConfigError("the training file has no tasks")

    def get(name: str, kind: type, lo: float | None = None, hi: float | None = None):
        value = hp.get(name, "auto")
        if value is None or value == "auto":
            return None
        if kind is int and isinstance(value, float) and value.is_integer():
            value = int(value)
        if not _num(value) or (kind is int and not isinstance(value, int)):
            raise ConfigError(f"hyperparameter {name} must be {'an integer' if kind is int else 'a number'} "
                              f"or \"auto\" (got {value!r})")
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise ConfigError(f"hyperparameter {name} must be between {lo} and {hi} (got {value!r})")
        return value

    method = overrides.get("method", "lora")
    batch_size = get("batch_size", int, 1, 256) or min(8, n_train_tasks)
    n_epochs = get("n_epochs", int, 1, 50)
    if n_epochs is None:
        n_epochs = min(10, max(1, math.ceil(50 * batch_size / n_train_tasks)))
    lr_mult = get("learning_rate_multiplier", float, 1e-3, 100)
    compute = get("compute_multiplier", float, 1e-3, 100)
    group_size = BASE_GROUP_SIZE if compute is None else min(64, max(2, round(BASE_GROUP_SIZE * compute)))
    total = max(1, (n_epochs * n_train_tasks) // batch_size)
    eval_interval = get("eval_interval", int, 1, None) or max(1, total // 10)
    eval_samples = get("eval_samples", int, 1, None)
    if eval_samples is None and n_valid_tasks:
        eval_samples = min(64, n_valid_tasks)
    effort = hp.get("reasoning_effort", "auto")
    if effort in (None, "auto"):
        max_completion = 128
    elif effort in REASONING_EFFORT_TOKENS:
        max_completion = REASONING_EFFORT_TOKENS[effort]
    else:
        raise ConfigError(f"hyperparameter reasoning_effort must be one of "
                          f"{', '.join(REASONING_EFFORT_TOKENS)} or \"auto\" (got {effort!r})")

    fields: dict[str, Any] = dict(
        base_model=base_model,
        method=method,
        n_epochs=n_epochs,
        batch_size=batch_size,
        group_size=group_size,
        learning_rate=BASE_LEARNING_RATE.get(method, 5e-5) * (lr_mult or 1.0),
        eval_interval=eval_interval,
        eval_samples=eval_samples,
        max_completion_tokens=max_completion,
        output_dir=output_dir,
    )
    if seed is not None:
        fields["seed"] = seed
    fields.update(overrides)
    return TrainConfig(**fields)


__all__ = ["TrainConfig", "ConfigError", "config_from_openai_hyperparameters"]
