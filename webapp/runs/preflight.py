"""Before launch: the numbers a user needs (steps, tokens, time) and the checks that would
make a run pointless. The estimate is instant; the checks need the model, so a worker runs
them (`preflight_execute`) while the launch page polls.

Checks:
1. The grader gives reference answers full marks (else it will punish correct answers).
2. Prompts fit in `max_prompt_tokens` (longer ones lose their beginning).
3. The base model's first rollouts do not all get the same reward (zero variance in every
   group means zero advantages: GRPO has nothing to learn from).
"""

from __future__ import annotations

import statistics

from django.db import transaction

from webapp.datasets.importers import prompt_text
from webapp.datasets.models import Dataset, Split
from webapp.graders.judges import sync_judges
from webapp.graders.services import grading_scope

from .models import RunMetric, RunPreflight

REFERENCE_CHECK_TASKS = 200
ROLLOUT_PROMPTS = 4
ROLLOUT_GROUP = 4
ROLLOUT_MAX_TOKENS = 48
# Completion tokens per second when no earlier run of the model says better (measured with
# bench/grpo_vs_trl.py on the built-in 135M model; see README).
DEFAULT_TOKENS_PER_S = {"cpu": 150.0, "gpu": 3000.0}


def estimate(*, config, n_train: int, prompts: list[str], device: str, base_model: str) -> dict:
    """Steps, tokens and time of a run (a `TrainConfig`), before it starts. `prompts` is a
    sample of the training prompts' text, enough for the average length."""
    steps = config.total_steps(n_train)
    prompt_tokens = statistics.mean(len(p) / 4 + 20 for p in prompts) if prompts else 0
    completion_tokens = config.max_completion_tokens * 0.5  # completions usually stop early
    per_step = config.batch_size * config.group_size
    history = (RunMetric.objects.filter(run__base_model=base_model, data__has_key="throughput/tokens_per_s")
               .order_by("-id")[:200])
    rates = [m.data.get("throughput/tokens_per_s") for m in history if m.data.get("throughput/tokens_per_s")]
    tokens_per_s = statistics.median(rates) if rates else DEFAULT_TOKENS_PER_S[device]
    seconds = steps * per_step * completion_tokens / tokens_per_s * 1.6  # + training and grading
    return {
        "steps": steps, "samples": steps * per_step,
        "tokens": int(steps * per_step * (prompt_tokens + completion_tokens)),
        "seconds": int(seconds), "tokens_per_s": round(tokens_per_s, 1),
        "rate_source": "earlier runs of this model" if rates else f"a typical {device.upper()} worker",
    }


def prompt_sample(dataset: Dataset, limit: int = 200) -> list[str]:
    """The prompt text of up to `limit` training tasks, for length estimates."""
    tasks = dataset.tasks.filter(split=Split.TRAIN).order_by("position").values_list("data", flat=True)[:limit]
    return [prompt_text(row) for row in tasks]


def _set(pre: RunPreflight, **fields) -> None:
    for k, v in fields.items():
        setattr(pre, k, v)
    with transaction.atomic():
        pre.save(update_fields=list(fields))


def preflight_execute(*, preflight_id: int) -> None:
    from trainer.config import TrainConfig
    from trainer.grading import grade_batch as grade_all

    pre = RunPreflight.objects.select_related("dataset").get(pk=preflight_id)
    scope = grading_scope(project_id=pre.project_id)

    def grade_batch(spec, samples, items):
        return grade_all(spec, samples, items, scope=scope)

    sync_judges()
    _set(pre, status="running", progress="Grading the reference answers…")
    results: dict = {}
    try:
        rows = _rows(pre.dataset)
        results["references"] = _reference_check(grade_batch, pre.grader_spec, rows)
        _set(pre, results=results, progress="Loading the base model…")
        config = TrainConfig.from_dict(pre.config)
        model, tokenizer = _load(config)
        results["prompts"] = _prompt_lengths(tokenizer, rows, config.max_prompt_tokens)
        _set(pre, results=results, progress="Sampling the base model's first answers…")
        results["rollouts"] = _rollout_variance(model, tokenizer, rows, pre.grader_spec, config, grade_batch)
        _set(pre, results=results, status="done", progress="")
    except Exception as exc:  # shown on the launch page; launching stays possible
        _set(pre, results=results, status="failed", progress="", error=f"{type(exc).__name__}: {exc}")


def _rows(dataset: Dataset) -> list[dict]:
    return [t.data for t in dataset.tasks.filter(split=Split.TRAIN).order_by("position")]


def _reference_check(grade_batch, spec: dict, rows: list[dict]) -> dict:
    rows = [r for r in rows if "reference_answer" in r][:REFERENCE_CHECK_TASKS]
    if not rows:
        return {"checked": 0, "note": "No task has a reference_answer field to check against."}
    samples = [{"output_text": str(r["reference_answer"])} for r in rows]
    graded = grade_batch(spec, samples, rows)
    failing = [
        {"prompt": prompt_text(r)[:200], "reward": g.reward,
         "criteria": sorted(k for k, v in g.sub_rewards.items() if v < 1)}
        for r, g in zip(rows, graded, strict=True) if g.reward < 1
    ]
    return {"checked": len(rows), "failing": len(failing), "examples": failing[:5]}


def _load(config):
    from trainer.models import load_model

    return load_model(config.base_model, device="cpu", dtype="float32")


def _prompt_lengths(tokenizer, rows: list[dict], limit: int) -> dict:
    from trainer.rollout import encode_prompt

    lengths = [len(encode_prompt(tokenizer, r["messages"], tools=r.get("tools"), max_tokens=10**9)[0]) for r in rows]
    return {"max": max(lengths), "limit": limit, "too_long": sum(n > limit for n in lengths)}


def _rollout_variance(model, tokenizer, rows, spec, config, grade_batch) -> dict:
    import torch

    from trainer.rollout import encode_prompt, generate

    picked = rows[:: max(1, len(rows) // ROLLOUT_PROMPTS)][:ROLLOUT_PROMPTS]
    prompts = [encode_prompt(tokenizer, r["messages"], tools=r.get("tools"), max_tokens=config.max_prompt_tokens)[0]
               for r in picked]
    generator = torch.Generator().manual_seed(config.seed)
    with torch.no_grad():
        rollout = generate(model, prompts, group_size=ROLLOUT_GROUP,
                           max_new_tokens=min(ROLLOUT_MAX_TOKENS, config.max_completion_tokens),
                           eos_ids={tokenizer.eos_token_id}, pad_id=tokenizer.pad_token_id,
                           temperature=config.temperature, top_p=config.top_p, generator=generator)
    texts = tokenizer.batch_decode(rollout.completion_ids, skip_special_tokens=True)
    items = [picked[i // ROLLOUT_GROUP] for i in range(len(texts))]
    rewards = [g.reward for g in grade_batch(spec, [{"output_text": t} for t in texts], items)]
    groups = [rewards[i:i + ROLLOUT_GROUP] for i in range(0, len(rewards), ROLLOUT_GROUP)]
    zero_var = sum(len(set(g)) == 1 for g in groups)
    return {"prompts": len(groups), "group_size": ROLLOUT_GROUP, "mean_reward": statistics.mean(rewards),
            "zero_variance_groups": zero_var, "all_same": len(set(rewards)) == 1,
            "examples": [{"output": t[:200], "reward": r} for t, r in list(zip(texts, rewards, strict=True))[:4]]}
