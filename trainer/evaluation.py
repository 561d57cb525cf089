"""Evaluations: sample a model (a base model, or a checkpoint of a run) on a set of tasks and
grade every answer, with the training loop's own sampler, prompt encoding, stop tokens and
grading. `evaluate(...)` is the one function the web app calls; `load_for_inference` loads
a base model or a checkpoint ready to generate (also used by the chat engine and exports).

Validation during training is greedy (`eval_temperature=0`); an evaluation with the run's
settings therefore reproduces the trainer's own validation numbers for the same model.
With `n_samples` > 1 every task gets that many answers (one prefill per task, like a GRPO
group): the item's reward is their mean and `pass@k` says whether any reached the threshold.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainer.loop import grade_completion, make_grade_fn, stop_token_ids


@dataclass(frozen=True)
class SamplingSettings:
    """How answers are drawn. Greedy by default, like the trainer's validation."""

    temperature: float = 0.0
    top_p: float = 1.0
    max_completion_tokens: int = 128
    max_prompt_tokens: int = 512
    n_samples: int = 1
    seed: int = 0
    batch_rows: int = 16  # answers generated per call (memory bound)

    def __post_init__(self):
        if not 0 <= self.temperature <= 2:
            raise ValueError(f"temperature must be from 0 to 2 (got {self.temperature!r})")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be above 0 and at most 1 (got {self.top_p!r})")
        if not 1 <= self.max_completion_tokens <= 8192:
            raise ValueError(f"max_completion_tokens must be from 1 to 8192 (got {self.max_completion_tokens!r})")
        if not 1 <= self.n_samples <= 64:
            raise ValueError(f"n_samples must be from 1 to 64 (got {self.n_samples!r})")
        if self.temperature == 0 and self.n_samples > 1:
            raise ValueError("several answers per task need a temperature above 0 (greedy answers are identical)")


@dataclass
class ItemResult:
    """One task's graded answers (`samples` in order) and their summary."""

    index: int
    samples: list[dict[str, Any]] = field(default_factory=list)
    prompt_tokens: int = 0

    @property
    def reward(self) -> float:
        return statistics.fmean(s["reward"] for s in self.samples)

    @property
    def sub_rewards(self) -> dict[str, float]:
        names = sorted({k for s in self.samples for k in s["sub_rewards"]})
        return {k: statistics.fmean(s["sub_rewards"].get(k, 0.0) for s in self.samples) for k in names}


def load_for_inference(base_model: str, checkpoint: str | Path | None = None, *, device: str = "auto",
                       dtype: str = "auto", merge: bool = True, progress: Callable[[str], None] | None = None):
    """(model, tokenizer) for a base model, or for a run's checkpoint on top of its base model.

    A LoRA checkpoint (`adapter_model.safetensors`) is applied to the base model and, with
    `merge`, folded into its weights (plain model, faster decoding); a full fine-tuning
    checkpoint is a complete model folder and loads on its own.
    """
    from trainer.models import load_model, resolve_device

    dev = resolve_device(device)
    ckpt = Path(checkpoint) if checkpoint else None
    if ckpt is not None and not ckpt.is_dir():
        raise FileNotFoundError(f"checkpoint folder {ckpt} is gone (pruned or deleted)")
    if ckpt is not None and (ckpt / "model.safetensors").is_file() and (ckpt / "config.json").is_file():
        return load_model(str(ckpt), device=dev, dtype=dtype, progress=progress)
    model, tokenizer = load_model(base_model, device=dev, dtype=dtype, progress=progress)
    if ckpt is None:
        return model, tokenizer
    if not (ckpt / "adapter_model.safetensors").is_file():
        raise FileNotFoundError(f"{ckpt} has no adapter_model.safetensors or model.safetensors")
    from peft import PeftModel

    model = PeftModel.from_pretrained(model, str(ckpt), is_trainable=False)
    if merge:
        model = model.merge_and_unload()
    model.eval()
    return model, tokenizer


def evaluate(
    model_and_tokenizer,
    rows: list[dict],
    grader,
    settings: SamplingSettings | None = None,
    *,
    scope: str | None = None,
    grading_threads: int = 8,
    on_item: Callable[[ItemResult], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> list[ItemResult]:
    """Answer and grade every row; `on_item` gets each task's result as soon as it is graded
    (tasks complete in order, a generation batch at a time). Returns the results in row order
    (fewer when `should_stop` said so between batches).

    `grader` is a grader dict (run by `trainer.grading.run_grader` in `scope`) or a reward
    callable, as for `trainer.train`.
    """
    import torch

    from trainer.rollout import encode_prompt, generate

    settings = settings or SamplingSettings()
    model, tokenizer = model_and_tokenizer
    grade, _ = make_grade_fn(grader, scope=scope)
    eos_ids = stop_token_ids(model, tokenizer)
    device = next(model.parameters()).device
    generator = torch.Generator(device=device).manual_seed(settings.seed)
    K = settings.n_samples
    per_call = max(1, settings.batch_rows // K)  # tasks per generate call
    out: list[ItemResult] = []
    with ThreadPoolExecutor(max_workers=grading_threads, thread_name_prefix="eval-grade") as pool:
        for c0 in range(0, len(rows), per_call):
            if should_stop is not None and should_stop():
                break
            chunk = list(range(c0, min(c0 + per_call, len(rows))))
            prompts = [encode_prompt(tokenizer, rows[i]["messages"], tools=rows[i].get("tools"),
                                     max_tokens=settings.max_prompt_tokens)[0] for i in chunk]
            futures: dict[int, Future] = {}
            finished: dict[int, tuple[int, bool]] = {}

            def submit(row: int, ids: list[int], truncated: bool, chunk=chunk, futures=futures,
                       finished=finished) -> None:
                finished[row] = (len(ids), truncated)
                futures[row] = pool.submit(grade_completion, grade, tokenizer, ids, rows[chunk[row // K]])

            generate(model, prompts, group_size=K, max_new_tokens=settings.max_completion_tokens,
                     eos_ids=eos_ids, pad_id=tokenizer.pad_token_id, temperature=settings.temperature,
                     top_p=settings.top_p, generator=generator, on_finished=submit)
            for j, i in enumerate(chunk):
                result = ItemResult(index=i, prompt_tokens=len(prompts[j]))
                for r in range(j * K, (j + 1) * K):
                    text, graded = futures[r].result()
                    n_tokens, truncated = finished[r]
                    result.samples.append({
                        "output_text": text, "reward": graded.reward, "sub_rewards": graded.sub_rewards,
                        "errors": graded.errors, "has_error": graded.has_error,
                        "completion_tokens": n_tokens, "truncated": truncated,
                        "finish_reason": "length" if truncated else "stop",
                    })
                out.append(result)
                if on_item is not None:
                    on_item(result)
    return out
