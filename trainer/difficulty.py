"""Task difficulty profile: how often the base model already solves each task.

`difficulty_profile(config, rows, grader, k=8, max_tasks=50)` samples `k` answers per task
from the base model exactly as the first training step would (the loop's prompt encoding,
stop tokens, answer length, temperature, top_p and grading), and returns each task's pass
rate. GRPO learns only from tasks whose answers score differently:

- **always** solved (every answer passes): nothing left to learn;
- **never** solved (no answer passes): no signal, the group's rewards are usually all equal;
- **in between**: where learning happens.

An answer *passes* when its reward is at least `pass_threshold` (0.5 by default).
The answers themselves are returned (shortened) so they can be reviewed by experts.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from trainer.config import TrainConfig
from trainer.loop import grade_completion, make_grade_fn, stop_token_ids

MAX_K = 16
MAX_TASKS = 500
ANSWER_CHARS = 2000
BATCH_TASKS = 8  # prompts sampled together (each with its k answers)

Progress = Callable[[str, int, int], None]


def band_of(pass_rate: float) -> str:
    return "always" if pass_rate >= 1.0 else "never" if pass_rate <= 0.0 else "between"


def spread(n: int, limit: int) -> list[int]:
    """`limit` indexes spread evenly over `n` tasks (all of them when there are fewer)."""
    return list(range(n)) if n <= limit else [i * n // limit for i in range(limit)]


def difficulty_profile(config: TrainConfig, rows: list[dict], grader, *, k: int = 8, max_tasks: int = 50,
                       pass_threshold: float = 0.5, on_progress: Progress | None = None,
                       scope: str | None = None) -> dict[str, Any]:
    """Sample, grade and band; returns the JSON-able profile (see the module docstring).

    `rows` are task rows (`messages` + reference fields); a row may carry `_id`, returned as
    each task's `id`. `on_progress(message, done_tasks, total_tasks)` reports as it goes.
    """
    import torch

    from trainer.launch_checks import _load
    from trainer.rollout import encode_prompt, generate

    if not 1 <= k <= MAX_K:
        raise ValueError(f"k (answers per task) must be from 1 to {MAX_K}.")
    if not 1 <= max_tasks <= MAX_TASKS:
        raise ValueError(f"max_tasks must be from 1 to {MAX_TASKS}.")
    if not rows:
        raise ValueError("There are no tasks to profile.")
    report = on_progress or (lambda message, done, total: None)
    picked = [rows[i] for i in spread(len(rows), max_tasks)]
    report("Loading the base model…", 0, len(picked))
    model, tokenizer = _load(config)
    grade, _ = make_grade_fn(grader, scope=scope)
    eos = stop_token_ids(model, tokenizer)
    generator = torch.Generator(device=next(model.parameters()).device).manual_seed(config.seed)
    tasks: list[dict[str, Any]] = []
    with ThreadPoolExecutor(max_workers=config.grading_threads, thread_name_prefix="difficulty-grade") as pool:
        for start in range(0, len(picked), BATCH_TASKS):
            chunk = picked[start:start + BATCH_TASKS]
            report(f"Sampling {k} answers for tasks {start + 1}–{start + len(chunk)} of {len(picked)}…",
                   start, len(picked))
            prompts = [encode_prompt(tokenizer, r["messages"], tools=r.get("tools"),
                                     max_tokens=config.max_prompt_tokens)[0] for r in chunk]
            futures: dict[int, Future] = {}
            truncated: dict[int, bool] = {}

            def submit(row: int, ids: list[int], cut: bool, chunk=chunk, futures=futures, truncated=truncated) -> None:
                truncated[row] = bool(cut)
                futures[row] = pool.submit(grade_completion, grade, tokenizer, ids, _item(chunk[row // k]))

            generate(model, prompts, group_size=k, max_new_tokens=config.max_completion_tokens, eos_ids=eos,
                     pad_id=tokenizer.pad_token_id, temperature=config.temperature, top_p=config.top_p,
                     generator=generator, on_finished=submit)
            for t, row in enumerate(chunk):
                graded = [futures[t * k + j].result() for j in range(k)]  # (k,) in sample order
                rewards = [round(float(g.reward), 4) for _, g in graded]
                passed = sum(r >= pass_threshold for r in rewards)
                tasks.append({
                    "id": row.get("_id"), "rewards": rewards, "pass_rate": passed / k, "band": band_of(passed / k),
                    "same_score": len(set(rewards)) == 1,
                    "truncated": sum(truncated.get(t * k + j, False) for j in range(k)),
                    "answers": [text[:ANSWER_CHARS] for text, _ in graded],
                })
    report("Done.", len(picked), len(picked))
    bands = {b: sum(t["band"] == b for t in tasks) for b in ("never", "between", "always")}
    return {"k": k, "tasks_profiled": len(tasks), "tasks_total": len(rows), "pass_threshold": pass_threshold,
            "bands": bands, "same_score": sum(t["same_score"] for t in tasks),
            "histogram": _histogram([t["pass_rate"] for t in tasks], k), "tasks": tasks}


def _item(row: dict) -> dict:
    return {key: value for key, value in row.items() if key != "_id"}


def _histogram(rates: list[float], k: int) -> list[dict[str, Any]]:
    """How many tasks had 0, 1, …, k of their k answers pass."""
    counts = [0] * (k + 1)
    for r in rates:
        counts[round(r * k)] += 1
    return [{"passed": i, "of": k, "tasks": n} for i, n in enumerate(counts)]
