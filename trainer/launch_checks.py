"""Pre-flight checks: before a run spends compute, what would make it pointless.

(The module is not called `preflight` so that `trainer.preflight` stays the function.)

`preflight(config, tasks, grader) -> dict` answers three questions, each a key of the result:

- ``references``: does the grader give the tasks' reference answers full marks? (else it
  punishes correct answers). The grading engine's one rule, `trainer.grading.check_references`.
- ``prompts``: do the prompts fit in `max_prompt_tokens`? (longer ones lose their beginning).
- ``rollouts``: do the base model's first answers score differently? Identical rewards within
  every group mean zero advantages: GRPO has nothing to learn from. The answers are sampled
  and graded the way the first training step does it (`trainer.loop`'s prompt encoding and
  cut, stop tokens, answer length, temperature, top_p, group size and grading), so what this
  reports is what training would see.

The model is loaded on whatever this machine has (CUDA when present, else CPU): pre-flight
runs on any worker, not necessarily one like the run's.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from trainer.config import TrainConfig
from trainer.loop import Tasks, check_tasks, grade_completion, make_grade_fn, stop_token_ids

REFERENCE_CHECK_TASKS = 200
REFERENCE_EXAMPLES = 5
ROLLOUT_PROMPTS = 4
ROLLOUT_EXAMPLES = 4

Progress = Callable[[str, dict[str, Any]], None]


def preflight(config: TrainConfig, tasks: Tasks, grader, *, on_progress: Progress | None = None,
              scope: str | None = None) -> dict[str, Any]:
    """Run the three checks on the training split; returns the JSON-able results.

    `grader` is a grader dict or a reward callable, as for `trainer.train`.
    `on_progress(message, results_so_far)` is called before each phase (the reference check is
    instant, loading the model takes seconds, sampling the longest).
    `scope` names who runs the checks, for the python-grader sandbox (as in `run_grader`).
    Raises `TaskError` for unusable tasks and `ModelLoadError` for a base model that cannot load.
    """
    check_tasks(tasks)
    report = on_progress or (lambda message, results: None)
    results: dict[str, Any] = {}
    report("Grading the reference answers…", results)
    results["references"] = _reference_summary(grader, tasks.train, scope)

    report("Loading the base model…", results)
    model, tokenizer = _load(config)
    results["prompts"] = _prompt_lengths(tokenizer, tasks.train, config.max_prompt_tokens)

    report("Sampling the base model's first answers…", results)
    results["rollouts"] = _first_answers(model, tokenizer, tasks.train, grader, config, scope)
    return results


def _reference_summary(grader, rows: list[dict], scope: str | None) -> dict[str, Any]:
    from trainer.grading.reference import check_references, has_reference

    if not isinstance(grader, dict):
        return {"checked": 0, "note": "A reward function has no reference check; only grader JSON does."}
    rows = [r for r in rows if has_reference(r)][:REFERENCE_CHECK_TASKS]
    if not rows:
        return {"checked": 0, "note": "No task has a reference_answer field to check against."}
    grades = check_references(grader, rows, scope=scope)
    failing = [{"prompt": last_user_text(row)[:200], "reward": g.reward,
                "criteria": sorted(c["name"] for c in g.criteria)}
               for row, g in zip(rows, grades, strict=True) if not g.passed]
    return {"checked": len(rows), "failing": len(failing), "examples": failing[:REFERENCE_EXAMPLES]}


def _load(config: TrainConfig):
    from trainer.models import load_model, resolve_device, resolve_dtype

    device = resolve_device("auto")
    model, tokenizer = load_model(config.base_model, device=device, dtype=resolve_dtype(config.dtype, device))
    return model.eval(), tokenizer


def _prompt_lengths(tokenizer, rows: list[dict], limit: int) -> dict[str, int]:
    from trainer.rollout import encode_prompt

    lengths = [len(encode_prompt(tokenizer, r["messages"], tools=r.get("tools"), max_tokens=10**9)[0])
               for r in rows]
    return {"max": max(lengths), "limit": limit, "too_long": sum(n > limit for n in lengths)}


def _first_answers(model, tokenizer, rows: list[dict], grader, config: TrainConfig,
                   scope: str | None) -> dict[str, Any]:
    import torch

    from trainer.rollout import encode_prompt, generate

    grade, _ = make_grade_fn(grader, scope=scope)
    picked = rows[:: max(1, len(rows) // ROLLOUT_PROMPTS)][:ROLLOUT_PROMPTS]  # spread over the tasks
    G = config.group_size
    prompts = [encode_prompt(tokenizer, r["messages"], tools=r.get("tools"), max_tokens=config.max_prompt_tokens)[0]
               for r in picked]
    generator = torch.Generator(device=next(model.parameters()).device).manual_seed(config.seed)
    futures: dict[int, Future] = {}
    with ThreadPoolExecutor(max_workers=config.grading_threads, thread_name_prefix="preflight-grade") as pool:

        def submit(row: int, ids: list[int], truncated: bool) -> None:
            futures[row] = pool.submit(grade_completion, grade, tokenizer, ids, picked[row // G])

        generate(model, prompts, group_size=G, max_new_tokens=config.max_completion_tokens,
                 eos_ids=stop_token_ids(model, tokenizer), pad_id=tokenizer.pad_token_id,
                 temperature=config.temperature, top_p=config.top_p, generator=generator, on_finished=submit)
        graded = [futures[row].result() for row in range(len(futures))]  # (B*G,) in group order
    texts = [text for text, _ in graded]
    rewards = [g.reward for _, g in graded]
    groups = [rewards[i:i + G] for i in range(0, len(rewards), G)]
    return {
        "prompts": len(groups), "group_size": G, "mean_reward": statistics.mean(rewards),
        "zero_variance_groups": sum(len(set(g)) == 1 for g in groups), "all_same": len(set(rewards)) == 1,
        "examples": [{"output": t[:200], "reward": r} for t, r in list(zip(texts, rewards, strict=True))[:ROLLOUT_EXAMPLES]],
    }


def last_user_text(row: dict) -> str:
    """The last user message's text (content parts joined), to name a task in a report."""
    for message in reversed(row.get("messages") or []):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, list):
                return "".join(p.get("text", "") for p in content if isinstance(p, dict))
            return "" if content is None else str(content)
    return ""
