"""The GRPO training loop: `train(config, tasks, grader, hooks) -> TrainResult`.

Algorithm (GRPO, Shao et al. 2024, "DeepSeekMath", with the normalisations TRL offers):

    for step = 1 .. total_steps:
        draw batch_size tasks (a fixed shuffled order per epoch)
        sample group_size completions per task from the current policy       (rollout.py)
        grade every completion -> reward r_i (and per-criterion sub-rewards)
        A_i = (r_i - mean(group)) / (std(group) + 1e-4)                        (objective.py)
        repeat num_iterations times:
            ratio_t = pi(y_t) / pi_old(y_t)
            loss = normalise( -min(ratio_t A, clip(ratio_t, 1-eps, 1+eps_high) A) + beta KL_t )
            AdamW step (global grad-norm clipping, LR schedule)
        every eval_interval steps and at the end: grade greedy completions on the validation
        split, save a checkpoint, keep the best keep_checkpoints by validation reward + latest

Deviations from the paper, each on purpose:
- Outcome rewards only; one scalar advantage per completion, broadcast to its tokens (the
  paper's "outcome supervision" variant; no process supervision).
- Loss normalisation is selectable (`loss_type`): `grpo` is the paper's per-sequence mean;
  `dr_grpo` (Liu et al. 2025) and `dapo` (Yu et al. 2025, the default, as in TRL) remove the
  length bias. `reward_scaling="none"` is Dr. GRPO's unscaled advantage.
- `epsilon_high` allows DAPO's asymmetric "clip-higher".
- KL: the k3 estimator exp(ref-logp) - (ref-logp) - 1 added to the per-token loss, like the
  paper; with `beta=0` (default, as TRL and DAPO) there is no reference model at all. With
  LoRA the reference is the base model with adapters switched off: no second copy.
- With num_iterations=1, pi_old == pi, so the ratio is exp(logp - logp.detach()) = 1 with
  the right gradient; no extra forward pass for pi_old (same shortcut as TRL).
- No reward model is trained; rewards come from the grader (string checks, rubric judges,
  python). A completion the grader failed on is left out of its group's mean/std and of
  the loss (advantage 0) and counted in train/grader_error_frac: a flaky judge is not signal.
- Dynamic sampling (DAPO, `dynamic_sampling`, on by default): groups whose graded answers all
  scored the same are dropped and replaced by fresh tasks for up to
  `dynamic_sampling_max_rounds` rounds; train/groups_sampled and train/groups_kept say how
  many. A step with no group left ("no signal") does not touch the weights and says so in an
  event. train/reward_mean is over the first round (the step's regular batch), so the curve
  is not biased by the selection.
- Cut-off answers (`mask_truncated_completions`, on by default for short answer limits) are
  left out of the loss, as TRL's option of that name; their rewards still count in the group.
- Precision (see `trainer.models.Precision`): float32 master weights and optimizer state,
  forward passes under autocast (bf16 on CUDA), log-softmax in float32 through the model's
  own logit post-processing (`trainer.objective.logit_postprocess`, checked at load time by
  `verify_logits`); dropout is off in the policy, as in TRL.
- Several processes (`torchrun`, see `trainer.distributed`): each rank samples and grades a
  share of the tasks, gradients are summed; every completion is sampled from its own seed,
  so the number of processes does not change the rollouts. `sharding="fsdp"` splits the
  weights' training state between them (`trainer.sharding`); it learns the same numbers.
- Validation uses greedy decoding (eval_temperature=0) so checkpoints are comparable.

Determinism: data order is a seeded permutation per epoch, every completion samples from a
seed of (seed, step, round, task slot, answer), and every step reseeds torch from (seed,
step), so resuming from a checkpoint reproduces an uninterrupted run. Resume refuses a
checkpoint whose tasks or learning settings differ (`run_fingerprint`). On a CPU two runs of
one config repeat bit for bit with the same number of threads (the log-prob pass avoids
backward kernels that add in thread order, see `completion_logprobs`); GPU kernels
(cuBLAS, attention) are not all bitwise deterministic, so there runs agree only closely.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
import uuid
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from trainer import checkpoints as ckpt
from trainer import distributed, sharding
from trainer.config import ConfigError, TrainConfig
from trainer.hooks import Hooks
from trainer.models import (
    Precision,
    disable_dropout,
    load_model,
    master_weights_fp32,
    resolve_device,
)
from trainer.objective import (
    LossStats,
    completion_logprobs,
    group_advantages,
    policy_loss,
    verify_logits,
)
from trainer.rollout import encode_prompt, generate, pack_rollout


class TaskError(ValueError):
    """Training or validation rows that cannot be used."""


@dataclass
class Tasks:
    """OpenAI RFT rows: each has `messages` (the last from the user), maybe `tools`, and any
    reference keys the grader reads as {{item.<key>}}."""

    train: list[dict]
    valid: list[dict] = field(default_factory=list)


@dataclass
class TrainResult:
    status: str  # succeeded | cancelled | paused
    step: int
    total_steps: int
    best_checkpoint: str | None
    last_checkpoint: str | None
    metrics: dict[str, Any]
    valid_metrics: dict[str, Any] = field(default_factory=dict)


@dataclass
class Graded:
    reward: float
    sub_rewards: dict[str, float]
    errors: Any
    has_error: bool


# ---------------------------------------------------------------------------------------------


def train(config: TrainConfig, tasks: Tasks, grader, hooks: Hooks | None = None, *,
          resume_from: str | Path | None = None) -> TrainResult:
    """Run GRPO on `tasks` with rewards from `grader` and report through `hooks`.

    `grader`: an OpenAI-style grader dict (graded by `trainer.grading.run_grader`) or any
    callable `(sample: {"output_text": str}, item: dict) -> reward` where the result is a
    number, a dict, or an object with `.reward` and optionally `.sub_rewards` and `.errors`.
    The base model is loaded (and every problem with it raised) before the first step.
    `resume_from`: a checkpoint folder of this run to continue from (where this attempt
    starts; the config itself says what the run is).
    Launched by `torchrun` (the process group already initialised, see
    `trainer.distributed`), every process calls this with the same arguments; only rank 0
    reports through `hooks` and writes checkpoints.
    """
    dist = distributed.current()
    hooks = (hooks or Hooks()) if dist.main else Hooks()
    sharding.check(config.sharding, dist)
    check_tasks(tasks)
    # python graders of this run get sandbox workers no other run (or project) shares
    grade, grader_name = make_grade_fn(grader, scope=f"run:{uuid.uuid4().hex}")
    out_dir = Path(config.output_dir)
    n_train = len(tasks.train)
    total_steps = config.total_steps(n_train)

    # --- setup: model, optimizer, schedule -----------------------------------------------------
    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    device = resolve_device(config.device)
    if device.type == "cuda" and dist.active:
        device = torch.device("cuda", dist.local_rank)
    precision = Precision.for_run(config.method, config.dtype, device)
    hooks.on_event("info", f"Loading base model {config.base_model}", {"device": str(device)})
    model, tokenizer = load_model(config.base_model, device=device, dtype=precision.load,
                                  progress=lambda msg: hooks.on_event("info", msg, {}))
    verify_logits(model)
    disable_dropout(model)
    torch.manual_seed(config.seed)  # LoRA initialisation
    model, ref_model = _prepare_policy(model, config)
    model.eval()  # new LoRA modules start in train mode: sampling would use lora_dropout
    params = [p for p in model.parameters() if p.requires_grad]
    master_weights_fp32(params)
    dist.broadcast_params(params)
    shards = sharding.for_run(config.sharding, dist, model, ref_model)  # fsdp: shards them in place
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = make_optimizer(params, config)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, _lr_lambda(config, total_steps * config.num_iterations))
    scaler = precision.grad_scaler()
    eos_ids = stop_token_ids(model, tokenizer)
    order = DataOrder(config.seed, n_train, config.batch_size)
    fingerprint = run_fingerprint(config, tasks)

    start_step, trained_tokens = 0, 0
    window = spread_window(config)
    if resume_from:
        state = ckpt.load_trainer_state(resume_from)
        check_resume(state, resume_from, order, fingerprint)
        with shards.loading():
            ckpt.load_weights(model, resume_from)
        shards.load_optimizer_state(optimizer, state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        if scaler is not None and state.get("grad_scaler"):
            scaler.load_state_dict(state["grad_scaler"])
        ckpt.restore_rng(state)
        start_step, trained_tokens = state["step"], state.get("trained_tokens", 0)
        window = spread_window(config, state.get("spread_window"))
        hooks.on_event("info", f"Resumed from {resume_from} at step {start_step}", {"step": start_step})

    n_params = sum(p.numel() for p in params)
    where = f"{dist.world} processes ({device.type}{', FSDP' if shards.sharded else ''})" if dist.active else str(device)
    hooks.on_event("info", f"Training {total_steps} steps: {config.batch_size} prompts x "
                   f"{config.group_size} samples per step, {config.method} ({n_params:,} trainable "
                   f"parameters) on {where}", {"total_steps": total_steps, "trainable_params": n_params,
                                               "processes": dist.world})

    prompt_cache: dict[tuple[str, int], list[int]] = {}

    def prompt_ids(split: str, rows: list[dict], i: int) -> list[int]:
        if (split, i) not in prompt_cache:
            ids, cut = encode_prompt(tokenizer, rows[i]["messages"], tools=rows[i].get("tools"),
                                     max_tokens=config.max_prompt_tokens)
            if cut:
                hooks.on_event("warning", f"{split} task {i} is longer than max_prompt_tokens="
                               f"{config.max_prompt_tokens}; its start was cut", {"row": i})
            prompt_cache[(split, i)] = ids
        return prompt_cache[(split, i)]

    pool = ThreadPoolExecutor(max_workers=config.grading_threads, thread_name_prefix="grade")
    ctx = _StepContext(config=config, model=model, tokenizer=tokenizer, grade=grade, pool=pool,
                       eos_ids=eos_ids, prompt_ids=prompt_ids, dist=dist, precision=precision, shards=shards)
    run_start = time.time()
    status, step, metrics, last_valid = "succeeded", start_step, {}, {}
    last_checkpoint: Path | None = None
    said: dict[str, int] = {}  # how often each kind of step event happened
    try:
        for step in range(start_step + 1, total_steps + 1):
            stop = dist.broadcast(hooks.should_stop())
            if stop:
                status = "cancelled" if stop == "cancel" else "paused"
                step -= 1
                break
            t_step = time.time()
            _seed_step(config.seed, step)

            # --- 1+2. rollouts, graded as each one finishes; dynamic sampling rounds -----------
            t0 = time.time()
            with shards.gathered():
                rounds = _sample_step(ctx, tasks.train, order, step, window)
            t_rollout = time.time() - t0
            t_sampling = sum(r.t_sampling for r in rounds)
            first = rounds[0]
            kept = _kept_groups(rounds, config)  # [(round, slot)]
            kept_records = [rec for rnd, slot in kept for rec in rounds[rnd].group(slot)]
            kept_rewards = torch.tensor([r.graded.reward for r in kept_records], dtype=torch.float32)
            kept_valid = torch.tensor([not r.graded.has_error for r in kept_records], dtype=torch.bool)
            advantages = group_advantages(kept_rewards, config.group_size, config.reward_scaling,
                                          valid=kept_valid)[0] if kept else torch.zeros(0)  # (K*G,)

            # --- 3. policy update(s) on this rank's share of the kept groups --------------------
            t0 = time.time()
            loss_rows = [_trains_on(rec, config) for rec in kept_records]  # (K*G,) bool
            totals = {"sequences": sum(loss_rows),
                      "tokens": sum(rec.length for rec, on in zip(kept_records, loss_rows, strict=True) if on)}
            signal = bool(totals["tokens"]) and (bool(advantages.abs().sum() > 0) or config.beta > 0)
            if signal:
                with shards.gathered(optimizer, reference=True):
                    update = _update(ctx, ref_model, optimizer, scheduler, scaler, rounds, kept, advantages,
                                     loss_rows, totals)
            else:
                update = {"train/loss": 0.0, "train/learning_rate": scheduler.get_last_lr()[0]}
            t_training = time.time() - t0

            # --- 4. metrics and samples ----------------------------------------------------------
            every = [rec for r in rounds for rec in r.records]
            trained_tokens += sum(rec.length for rec in every) + sum(r.prompt_tokens for r in rounds)
            graded_first = [rec for rec in first.records if not rec.graded.has_error]
            rewards = torch.tensor([rec.graded.reward for rec in graded_first], dtype=torch.float32)
            lengths = torch.tensor([rec.length for rec in first.records], dtype=torch.float32)
            n_errors = sum(rec.graded.has_error for rec in every)
            n_truncated = sum(rec.truncated for rec in every)
            metrics = {
                "step": step,
                "total_steps": total_steps,
                "epoch": step * config.batch_size / n_train,
                "trained_tokens": trained_tokens,
                "train/reward_mean": rewards.mean().item() if rewards.numel() else float("nan"),
                "train/reward_std": rewards.std().item() if rewards.numel() > 1 else 0.0,
                **_sub_reward_means("train", [rec.graded for rec in graded_first], grader_name),
                "train/grader_error_frac": n_errors / len(every),
                "train/frac_zero_std_groups": first.zero_std.float().mean().item(),
                "train/groups_sampled": sum(r.n_groups for r in rounds),
                "train/groups_kept": len(kept) if signal else 0,
                "train/sampling_rounds": len(rounds),
                "train/retries_paused": float(config.dynamic_sampling and len(kept) < config.batch_size
                                              and len(rounds) < config.dynamic_sampling_max_rounds),
                "train/no_signal": 0.0 if signal else 1.0,
                "train/completion_tokens_mean": lengths.mean().item(),
                "train/completion_tokens_max": lengths.max().item(),
                "train/truncated_frac": n_truncated / len(every),
                **update,
                "time/sampling": t_sampling,
                "time/grading": max(t_rollout - t_sampling, 0.0),
                "time/training": t_training,
            }
            _step_events(hooks, step, config, metrics, every, len(rounds), signal, said)
            final_adv = {key: float(a) for key, a in zip(
                [(rnd, slot, g) for rnd, slot in kept for g in range(config.group_size)], advantages.tolist(),
                strict=True)}
            samples = _pick_samples(config, step, first, final_adv)

            # --- 5. validation and checkpoint every eval_interval steps and at the end ----------
            stop = dist.broadcast(hooks.should_stop())
            last = step == total_steps
            if step % config.eval_interval == 0 or last or stop == "pause":
                if stop != "cancel":
                    t0 = time.time()
                    with shards.gathered():
                        last_valid, valid_samples = _evaluate(ctx, tasks.valid, grader_name, step)
                    metrics.update(last_valid)
                    samples += valid_samples
                    metrics["time/eval"] = time.time() - t0
            metrics["time/step"] = time.time() - t_step
            metrics["throughput/tokens_per_s"] = sum(rec.length for rec in every) / max(metrics["time/step"], 1e-9)
            elapsed = time.time() - run_start
            metrics["elapsed_s"] = elapsed
            metrics["eta_s"] = elapsed / (step - start_step) * (total_steps - step)
            hooks.on_step(step, metrics, samples)
            if step % config.eval_interval == 0 or last or stop == "pause":
                if stop != "cancel":  # on_checkpoint always follows its step's on_step
                    last_checkpoint = _save(ctx, optimizer, scheduler, scaler, step, metrics, order,
                                            trained_tokens, fingerprint, hooks, window)

            if stop:
                status = "cancelled" if stop == "cancel" else "paused"
                break
    finally:
        pool.shutdown(wait=False, cancel_futures=True)

    if status == "paused" and (
            last_checkpoint is None or not last_checkpoint.name.endswith(f"{step:06d}")):
        # paused before any step of this session ran: the checkpoint still records where we are
        if step > start_step or not resume_from:
            last_checkpoint = _save(ctx, optimizer, scheduler, scaler, step, metrics, order, trained_tokens,
                                    fingerprint, hooks, window)
    dist.barrier()  # every rank returns after rank 0's last checkpoint is on disk
    hooks.on_event("info" if status == "succeeded" else "warning",
                   {"succeeded": f"Training finished after {step} steps",
                    "cancelled": f"Training cancelled after step {step}",
                    "paused": f"Training paused after step {step}"}[status], {"step": step})
    best = ckpt.best_checkpoint(out_dir)
    return TrainResult(status=status, step=step, total_steps=total_steps,
                       best_checkpoint=str(best) if best else None,
                       last_checkpoint=str(last_checkpoint) if last_checkpoint else None,
                       metrics=metrics, valid_metrics=last_valid)


# ---------------------------------------------------------------------------------------------
# rollouts: sampling rounds, each rank its share, every rank all the grades
# ---------------------------------------------------------------------------------------------


@dataclass
class _StepContext:
    config: TrainConfig
    model: Any
    tokenizer: Any
    grade: Any
    pool: ThreadPoolExecutor
    eos_ids: set[int]
    prompt_ids: Any
    dist: distributed.Dist
    precision: Precision
    shards: sharding.Replicated


@dataclass
class _Record:
    """One graded completion, as every rank sees it after the all-gather."""

    text: str
    graded: Graded
    length: int
    truncated: bool


@dataclass
class _Round:
    """One sampling round: its tasks, every rank's graded completions, this rank's tokens."""

    task_idx: list[int]  # (n,) global
    items: list[dict]  # (n,) the tasks
    records: list[_Record]  # (n*G,) global, group by group
    zero_std: torch.Tensor  # (n,) groups without reward spread
    local: dict[int, tuple[list[int], list[list[int]]]]  # slot -> (prompt ids, G completion ids) on this rank
    prompt_tokens: int
    t_sampling: float
    group_size: int

    @property
    def n_groups(self) -> int:
        return len(self.task_idx)

    def item(self, slot: int) -> dict:
        return self.items[slot]

    def group(self, slot: int) -> list[_Record]:
        return self.records[slot * self.group_size:(slot + 1) * self.group_size]


#: Batches' worth of groups `SpreadWindow` looks back over.
SPREAD_WINDOW_BATCHES = 4


class SpreadWindow:
    """Whether the most recently sampled groups had any reward spread (every rank sees the same).

    Dynamic sampling pays a whole sampling round for each retry. When none of the last
    `size` groups tried had any spread (the model answers every task the same way: a
    collapsed policy, or tasks far too hard or too easy), a retry almost surely finds none
    either, so retries pause; every step's first round keeps adding evidence, and retries
    resume as soon as one group shows spread again. Until the window is full, retries run.
    """

    def __init__(self, size: int, recent: list[bool] | None = None):
        self.recent: deque[bool] = deque(recent or [], maxlen=size)

    def add(self, rnd: _Round) -> None:
        self.recent.extend(not z for z in rnd.zero_std.tolist())

    def retries_pay(self) -> bool:
        return len(self.recent) < (self.recent.maxlen or 0) or any(self.recent)

    def state(self) -> list[bool]:
        return list(self.recent)


def spread_window(config: TrainConfig, state: list[bool] | None = None) -> SpreadWindow:
    return SpreadWindow(SPREAD_WINDOW_BATCHES * config.batch_size, state)


def _sample_step(ctx: _StepContext, rows: list[dict], order: DataOrder, step: int,
                 window: SpreadWindow) -> list[_Round]:
    """The step's sampling rounds: the batch, then (dynamic sampling) replacements for the groups
    without reward spread until the batch is full, the rounds run out, or recent rounds say a
    retry would find no spread either (`SpreadWindow`)."""
    config = ctx.config
    rounds = [_sample_round(ctx, rows, order.batch(step), step, 0)]
    window.add(rounds[0])
    while config.dynamic_sampling and len(rounds) < config.dynamic_sampling_max_rounds:
        missing = config.batch_size - len(_kept_groups(rounds, config))
        if missing <= 0 or not window.retries_pay():
            break
        used = {i for r in rounds for i in r.task_idx}
        rounds.append(_sample_round(ctx, rows, order.extra(step, len(rounds), missing, used), step, len(rounds)))
        window.add(rounds[-1])
    return rounds


def _sample_round(ctx: _StepContext, rows: list[dict], task_idx: list[int], step: int, rnd: int) -> _Round:
    config, dist, G = ctx.config, ctx.dist, ctx.config.group_size
    mine = dist.share(len(task_idx))  # slots this rank samples
    prompts = [ctx.prompt_ids("train", rows, task_idx[slot]) for slot in mine]
    futures: dict[int, Future] = {}
    tokens: dict[int, list[int]] = {}

    def submit(row: int, ids: list[int], truncated: bool):
        tokens[row] = ids
        futures[row] = ctx.pool.submit(grade_completion, ctx.grade, ctx.tokenizer, ids,
                                       rows[task_idx[mine[row // G]]])

    t0 = time.time()
    local_records: list[_Record] = []
    if mine or ctx.shards.sharded:  # a sharded model's processes all take part in every forward
        seeds = [_row_seed(config.seed, step, rnd, slot, g) for slot in mine for g in range(G)]
        with ctx.precision.autocast():
            rollout = generate(ctx.model, prompts, group_size=G, max_new_tokens=config.max_completion_tokens,
                               eos_ids=ctx.eos_ids, pad_id=ctx.tokenizer.pad_token_id,
                               temperature=config.temperature, top_p=config.top_p, seeds=seeds,
                               on_finished=submit, sync=ctx.shards.decode_sync)
        t_sampling = time.time() - t0 if mine else 0.0
        lengths, truncated = rollout.completion_lengths.tolist(), rollout.truncated.tolist()
        for row in range(len(mine) * G):
            text, graded = futures[row].result()
            local_records.append(_Record(text, graded, int(lengths[row]), bool(truncated[row])))
    else:
        t_sampling = 0.0
    records = dist.gather(local_records)
    valid = torch.tensor([not r.graded.has_error for r in records], dtype=torch.bool)
    rewards = torch.tensor([r.graded.reward for r in records], dtype=torch.float32)
    _, zero_std = group_advantages(rewards, G, "none", valid=valid)
    local = {slot: (prompts[k], [tokens[k * G + g] for g in range(G)]) for k, slot in enumerate(mine)}
    prompt_tokens = int(sum(dist.sum([float(sum(len(p) for p in prompts))])))
    return _Round(task_idx=list(task_idx), items=[rows[i] for i in task_idx], records=records, zero_std=zero_std, local=local,
                  prompt_tokens=prompt_tokens, t_sampling=t_sampling, group_size=G)


def _kept_groups(rounds: list[_Round], config: TrainConfig) -> list[tuple[int, int]]:
    """(round, slot) of the groups to train on, at most batch_size of them, earliest first."""
    if not config.dynamic_sampling:
        return [(0, slot) for slot in range(rounds[0].n_groups)]
    kept = [(rnd, slot) for rnd, r in enumerate(rounds) for slot in range(r.n_groups) if not r.zero_std[slot]]
    return kept[:config.batch_size]


def _trains_on(rec: _Record, config: TrainConfig) -> bool:
    """Whether a completion's tokens enter the loss: graded, and not cut off when those are masked."""
    return not rec.graded.has_error and not (rec.truncated and config.masks_truncated) and rec.length > 0


VALID_ROUND = 2**31  # the "round" of validation completions' seeds: never a training round


def _row_seed(seed: int, step: int, rnd: int, slot: int, g: int) -> int:
    """The sampling seed of one completion: the same whichever process samples it."""
    return int(np.random.default_rng([seed, step, rnd, slot, g]).integers(2**62))


def _step_events(hooks, step, config, metrics, every, n_rounds, signal, said: dict[str, int]) -> None:
    """What a person should know about this step, in plain words."""
    n = len(every)
    errors = [rec for rec in every if rec.graded.has_error]
    if errors and ("errors" not in said or len(errors) >= n / 2):
        said["errors"] = said.get("errors", 0) + 1
        detail = errors[0].graded.errors
        detail = detail.get("details") if isinstance(detail, dict) and detail.get("details") else detail
        hooks.on_event("warning", f"Step {step}: {len(errors)} of {n} answers could not be graded (grader "
                       f"error: {str(detail)[:200]}). They are left out of learning.",
                       {"kind": "grader_errors", "step": step, "count": len(errors), "of": n})
    truncated = sum(rec.truncated for rec in every)
    if config.masks_truncated and truncated >= n / 2 and "truncated" not in said:
        said["truncated"] = 1
        hooks.on_event("warning", f"Step {step}: {truncated} of {n} answers were cut off at the longest-answer "
                       f"limit of {config.max_completion_tokens} tokens. Cut-off answers are left out of "
                       "learning; raise the longest answer if good answers need more room.",
                       {"kind": "truncated", "step": step, "count": truncated, "of": n})
    if not signal:
        # said the first time and then every 10th time, so a run without signal does not bury
        # the other events; train/no_signal marks every such step on the charts
        count = said["no_signal"] = said.get("no_signal", 0) + 1
        if count != 1 and count % 10:
            return
        tried = metrics["train/groups_sampled"]
        if not any(_trains_on(rec, config) for rec in every):
            why = "no answer could be learned from (all were cut off or could not be graded)"
        else:
            why = "every answer to each task got the same score"
        so_far = f" This is the {count}th step without signal." if count > 1 else ""
        paused = (" Retrying other tasks is paused while every recent task gets the same score for all its "
                  "answers; it resumes when one does not." if metrics.get("train/retries_paused") else "")
        hooks.on_event("info", f"Step {step} taught nothing: {why} ({tried} task{'s' if tried != 1 else ''} "
                       f"tried in {n_rounds} round{'s' if n_rounds != 1 else ''}). The model was left unchanged."
                       f"{so_far}{paused}", {"kind": "no_signal", "step": step, "groups_sampled": tried, "count": count})


# ---------------------------------------------------------------------------------------------
# the update
# ---------------------------------------------------------------------------------------------


def _update(ctx: _StepContext, ref_model, optimizer, scheduler, scaler, rounds, kept, advantages,
            loss_rows, totals) -> dict:
    """num_iterations optimizer steps on this rank's kept groups; returns the update's metrics.

    Every loss is normalised by the totals over all ranks' kept groups, and the gradients
    are summed over ranks, so the update is the one a single process would make."""
    config, dist, model, G = ctx.config, ctx.dist, ctx.model, ctx.config.group_size
    device = next(model.parameters()).device
    # this rank's kept groups, with their advantages and loss masks
    mine = [k for k, (rnd, slot) in enumerate(kept) if slot in rounds[rnd].local]
    prompts, completions, truncated, adv, on = [], [], [], [], []
    for k in mine:
        rnd, slot = kept[k]
        prompt, comps = rounds[rnd].local[slot]
        prompts.append(prompt)
        completions += comps
        truncated += [rec.truncated for rec in rounds[rnd].group(slot)]
        adv += advantages[k * G:(k + 1) * G].tolist()
        on += loss_rows[k * G:(k + 1) * G]
    if ctx.shards.sharded:
        # FSDP gathers each layer as it runs and reduce-scatters its gradients in backward:
        # every process must make the same forwards and backwards, so each pads its share to
        # the largest one with masked one-token groups (advantage 0, no token in the loss)
        most = max(sum(slot in replace(dist, rank=rank).share(rounds[rnd].n_groups) for rnd, slot in kept)
                   for rank in range(dist.world))
        for _ in range(most - len(mine)):
            prompts.append([ctx.tokenizer.pad_token_id])
            completions += [[ctx.tokenizer.pad_token_id]] * G
            truncated += [False] * G
            adv += [0.0] * G
            on += [False] * G
    params = [p for group in optimizer.param_groups for p in group["params"]]  # FSDP: the shards
    # loss and entropy sums stay on the device until the end: no host sync per micro-batch
    stats, losses, grad_norms = LossStats(), [], []
    entropy_sum = torch.zeros((), dtype=torch.float32, device=device)
    r = None
    if prompts:
        r = pack_rollout(prompts, completions, truncated, group_size=G, pad_id=ctx.tokenizer.pad_token_id,
                         device=device)
        r.completion_mask = r.completion_mask * torch.tensor(on, dtype=torch.long, device=device)[:, None]
        adv_t = torch.tensor(adv, dtype=torch.float32, device=device)  # (s,)
        B = len(prompts)
        mb = config.micro_batch_size or B  # prompts per micro-batch
        chunks = [(b0, min(b0 + mb, B)) for b0 in range(0, B, mb)]
        share = not config.gradient_checkpointing
        kw = dict(temperature=config.temperature, chunk_tokens=config.logprob_chunk_tokens)

        def logps(m, b0, b1, **extra):
            s0, s1 = b0 * G, b1 * G
            with ctx.precision.autocast():
                return completion_logprobs(m, r.prompt_ids[b0:b1], r.prompt_mask[b0:b1], r.completion_ids[s0:s1],
                                           r.completion_mask[s0:s1], share_prompt=share, **kw, **extra)

        # pi_old (only needed when the batch is reused) and the reference, both without grad
        old_logp = ref_logp = None
        with torch.no_grad():
            if config.num_iterations > 1:
                old_logp = torch.cat([logps(model, *c, with_entropy=False)[0] for c in chunks])  # (s, T)
            if config.beta > 0:
                if ref_model is None:  # LoRA: the base model is the adapters switched off
                    with model.disable_adapter():
                        ref_logp = torch.cat([logps(model, *c, with_entropy=False)[0] for c in chunks])
                else:
                    ref_logp = torch.cat([logps(ref_model, *c, with_entropy=False)[0] for c in chunks])

    model.train()
    for it in range(config.num_iterations):
        optimizer.zero_grad(set_to_none=True)
        total = torch.zeros((), dtype=torch.float32, device=device)
        for b0, b1 in (chunks if r is not None else []):
            s0, s1 = b0 * G, b1 * G
            logp, entropy = logps(model, b0, b1, with_entropy=(it == 0))  # (s, T)
            mask = r.completion_mask[s0:s1]
            loss, st = policy_loss(
                logp, logp.detach() if old_logp is None else old_logp[s0:s1], adv_t[s0:s1], mask,
                loss_type=config.loss_type, epsilon_low=config.epsilon_low,
                epsilon_high=config.epsilon_upper, max_completion_tokens=config.max_completion_tokens,
                beta=config.beta, ref_logp=None if ref_logp is None else ref_logp[s0:s1],
                num_sequences=totals["sequences"], num_tokens=totals["tokens"])
            # a micro-batch whose answers are all masked out adds nothing: skipped, except that
            # sharded processes must all run the same backwards (it reduces zeros then)
            if ctx.shards.sharded or any(on[s0:s1]):
                (scaler.scale(loss) if scaler is not None else loss).backward()
            total += loss.detach().float()
            stats.add(st)
            if entropy is not None:
                entropy_sum += (entropy * mask).sum().float()
        ctx.shards.reduce_grads(params)
        if scaler is not None:
            scaler.unscale_(optimizer)
        if config.max_grad_norm > 0:
            grad_norms.append(float(torch.nn.utils.clip_grad_norm_(params, config.max_grad_norm, foreach=True)))
        if scaler is not None:
            scaler.step(optimizer)  # skipped (and the scale lowered) when a gradient overflowed
            scaler.update()
        else:
            optimizer.step()
        scheduler.step()
        losses.append(total)
    model.eval()
    # sums over ranks: loss, entropy and clipping statistics of the whole batch
    summed = dist.sum([torch.stack(losses).mean().item(), entropy_sum.item(), *stats.floats()])
    loss_mean, entropy_sum, tokens, kl_sum, low, high, region = summed
    tokens = max(tokens, 1.0)
    out = {
        "train/loss": loss_mean,
        "train/entropy": entropy_sum / max(totals["tokens"], 1.0),
        "train/clip_ratio": region / tokens,
        "train/clip_ratio_low": low / tokens,
        "train/clip_ratio_high": high / tokens,
        "train/learning_rate": scheduler.get_last_lr()[0],
    }
    if grad_norms:
        out["train/grad_norm"] = float(np.mean(grad_norms))
    if scaler is not None:
        out["train/loss_scale"] = float(scaler.get_scale())
    if config.beta > 0:
        out["train/kl"] = kl_sum / tokens
    return out


# ---------------------------------------------------------------------------------------------
# evaluation and checkpoints
# ---------------------------------------------------------------------------------------------


def _evaluate(ctx: _StepContext, valid: list[dict], grader_name: str, step: int):
    """Grade one completion per validation task (the first `eval_samples` tasks), each rank its share."""
    if not valid:
        return {}, []
    config, dist = ctx.config, ctx.dist
    n = min(len(valid), config.eval_samples or len(valid))
    width = config.batch_size * config.group_size  # rows per generation call, as in training
    mine = dist.share(n)
    # sharded: every process makes as many generation calls as process 0 (the largest share)
    calls = -(-n // dist.world) if ctx.shards.sharded else len(mine)
    records: list[_Record] = []
    for c0 in range(0, calls, width):
        chunk = mine[c0:c0 + width]
        futures: dict[int, Future] = {}

        def submit(row, ids, truncated, chunk=chunk, futures=futures):
            futures[row] = ctx.pool.submit(grade_completion, ctx.grade, ctx.tokenizer, ids, valid[chunk[row]])

        with ctx.precision.autocast():
            r = generate(ctx.model, [ctx.prompt_ids("valid", valid, i) for i in chunk], group_size=1,
                         max_new_tokens=config.max_completion_tokens, eos_ids=ctx.eos_ids,
                         pad_id=ctx.tokenizer.pad_token_id, temperature=config.eval_temperature,
                         top_p=config.top_p, seeds=[_row_seed(config.seed, 0, VALID_ROUND, i, 0) for i in chunk],
                         on_finished=submit, sync=ctx.shards.decode_sync)
        lengths, truncs = r.completion_lengths.tolist(), r.truncated.tolist()
        for row in range(len(chunk)):
            text, res = futures[row].result()
            records.append(_Record(text, res, int(lengths[row]), bool(truncs[row])))
    records = dist.gather(records)
    graded = [rec for rec in records if not rec.graded.has_error]
    rewards = [rec.graded.reward for rec in graded]
    metrics = {
        "valid/reward_mean": float(np.mean(rewards)) if rewards else float("nan"),
        "valid/reward_std": float(np.std(rewards, ddof=1)) if len(rewards) > 1 else 0.0,
        **_sub_reward_means("valid", [rec.graded for rec in graded], grader_name),
        "valid/grader_error_frac": (n - len(graded)) / n,
        "valid/completion_tokens_mean": float(np.mean([rec.length for rec in records])),
        "valid/truncated_frac": float(np.mean([rec.truncated for rec in records])),
        "valid/n_samples": n,
    }
    k = min(config.samples_per_step, n)
    samples = [_sample(step, "valid", valid[i], records[i]) for i in range(k)]
    return metrics, samples


def _save(ctx: _StepContext, optimizer, scheduler, scaler, step, metrics, order, trained_tokens, fingerprint,
          hooks, window) -> Path:
    """Every process calls this (a sharded model's state is gathered from all); process 0 writes."""
    config = ctx.config
    weights, optimizer_state = ctx.shards.checkpoint_states(optimizer)
    if not ctx.dist.main:
        return ckpt.checkpoint_dir(config.output_dir, step)
    path = ckpt.save_checkpoint(
        ckpt.checkpoint_dir(config.output_dir, step), model=ctx.model, tokenizer=ctx.tokenizer,
        optimizer=optimizer, scheduler=scheduler, step=step, config_dict=config.to_dict(),
        model_state=weights, optimizer_state=optimizer_state,
        metrics=metrics, extra_state={"data_order": order.state(), "trained_tokens": trained_tokens,
                                      "fingerprint": fingerprint, "spread_window": window.state(),
                                      "grad_scaler": scaler.state_dict() if scaler is not None else None})
    hooks.on_checkpoint(step, str(path), metrics)
    for removed in ckpt.prune_checkpoints(config.output_dir, config.keep_checkpoints):
        hooks.on_checkpoint_removed(str(removed))
        hooks.on_event("info", f"Removed checkpoint {removed.name} (not among the "
                       f"{config.keep_checkpoints} best)", {"path": str(removed)})
    return path


# ---------------------------------------------------------------------------------------------
# resume: the same run or nothing
# ---------------------------------------------------------------------------------------------

#: Settings that say where and how fast a run computes, not what it learns: they may differ
#: between the attempt that wrote a checkpoint and the one that resumes it.
RESUMABLE_CHANGES = frozenset({"output_dir", "device", "num_threads", "grading_threads", "logprob_chunk_tokens",
                               "micro_batch_size", "gradient_checkpointing", "samples_per_step",
                               "keep_checkpoints", "sharding"})


def run_fingerprint(config: TrainConfig, tasks: Tasks) -> dict:
    """What a checkpoint must match to be resumed: a hash of the tasks and the learning settings."""
    blob = json.dumps({"train": tasks.train, "valid": tasks.valid}, sort_keys=True, default=str)
    settings = {k: v for k, v in config.to_dict().items() if k not in RESUMABLE_CHANGES}
    return {"tasks_sha256": hashlib.sha256(blob.encode()).hexdigest(), "n_train": len(tasks.train),
            "n_valid": len(tasks.valid), "config": settings}


def check_resume(state: dict, path, order: DataOrder, fingerprint: dict) -> None:
    """Refuse a checkpoint written for other tasks or other settings, saying what differs."""
    saved = state.get("fingerprint")
    if saved is None:  # a checkpoint from before fingerprints: the data order is all we know
        if state.get("data_order") != order.state():
            raise TaskError(f"cannot resume from {path}: the training tasks or batch size changed "
                            f"({state.get('data_order')} != {order.state()})")
        return
    old, new = saved.get("config", {}), fingerprint["config"]
    changed = [f"{k} {old.get(k)!r} -> {new.get(k)!r}" for k in sorted(set(old) | set(new))
               if k not in RESUMABLE_CHANGES and old.get(k) != new.get(k)]
    if changed:
        raise ConfigError(f"cannot resume from {path}: the run's settings differ from the checkpoint's "
                          f"({'; '.join(changed)}). Resume with the settings it was saved with, or start a new run.")
    if saved.get("tasks_sha256") != fingerprint["tasks_sha256"]:
        raise TaskError(
            f"cannot resume from {path}: the tasks differ from the ones it was trained on ({saved.get('n_train')} "
            f"training and {saved.get('n_valid')} validation tasks then, {fingerprint['n_train']} and "
            f"{fingerprint['n_valid']} now, or the same number with edits). Start a new run for new tasks.")


# ---------------------------------------------------------------------------------------------
# small helpers
# ---------------------------------------------------------------------------------------------


class DataOrder:
    """Batches as consecutive slices of a stream of per-epoch seeded permutations."""

    def __init__(self, seed: int, n: int, batch_size: int):
        self.seed, self.n, self.batch_size = seed, n, batch_size
        self._perms: dict[int, np.ndarray] = {}

    def batch(self, step: int) -> list[int]:  # step is 1-based
        start = (step - 1) * self.batch_size
        return [int(self._perm(pos // self.n)[pos % self.n]) for pos in range(start, start + self.batch_size)]

    def extra(self, step: int, rnd: int, count: int, used: set[int]) -> list[int]:
        """`count` replacement tasks for a dynamic-sampling round, seeded by (step, round):
        tasks not yet tried this step first, repeats only when the split is that small."""
        perm = np.random.default_rng([self.seed, step, rnd, 17]).permutation(self.n).tolist()
        fresh = [i for i in perm if i not in used]
        return [int(x) for x in (fresh + perm * (1 + count // max(self.n, 1)))[:count]]

    def _perm(self, epoch: int) -> np.ndarray:
        if epoch not in self._perms:
            self._perms[epoch] = np.random.default_rng([self.seed, epoch]).permutation(self.n)
        return self._perms[epoch]

    def state(self) -> dict:
        return {"seed": self.seed, "n_train": self.n, "batch_size": self.batch_size}


def _step_seed(seed: int, step: int) -> int:
    return (seed * 1_000_003 + step * 7919) % (2**63 - 1)


def _seed_step(seed: int, step: int) -> None:
    torch.manual_seed(_step_seed(seed, step))


def _lr_lambda(config: TrainConfig, total_updates: int):
    warm = config.warmup_steps

    def factor(update: int) -> float:
        if warm and update < warm:
            return (update + 1) / warm
        if config.lr_schedule == "constant":
            return 1.0
        progress = min(1.0, (update - warm) / max(1, total_updates - warm))
        if config.lr_schedule == "linear":
            return 1.0 - progress
        return 0.5 * (1.0 + math.cos(math.pi * progress))

    return factor


def make_optimizer(params, config: TrainConfig) -> torch.optim.AdamW:
    """AdamW, fused (one kernel over all parameters) where torch has it for the device: on CPU
    the per-parameter loop took 1.2 s a step for a 135M model, the fused one 0.2 s."""
    kw = dict(lr=config.learning_rate, weight_decay=config.weight_decay, betas=(config.adam_beta1, config.adam_beta2))
    try:
        return torch.optim.AdamW(params, fused=True, **kw)
    except (RuntimeError, ValueError):  # a device or dtype without the fused kernel
        return torch.optim.AdamW(params, **kw)


def _prepare_policy(model, config: TrainConfig):
    """Wrap the model for LoRA or unfreeze it for full training; the reference model if any."""
    ref_model = None
    if config.method == "lora":
        from peft import LoraConfig, get_peft_model

        targets = config.lora_target_modules
        lora = LoraConfig(r=config.lora_rank, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
                          target_modules="all-linear" if targets == ("all-linear",) else list(targets),
                          task_type="CAUSAL_LM")
        try:
            model = get_peft_model(model, lora)
        except ValueError as exc:
            from trainer.config import ConfigError

            raise ConfigError(f"lora_target_modules {list(targets)} do not fit {config.base_model}: {exc}") from exc
    else:
        if config.beta > 0:
            import copy

            ref_model = copy.deepcopy(model).eval().requires_grad_(False)
        model.requires_grad_(True)
    if config.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.config.use_cache = True
    return model, ref_model


def stop_token_ids(model, tokenizer) -> set[int]:
    """The token ids that end a completion (shared with `trainer.preflight`)."""
    ids = {tokenizer.eos_token_id}
    gen = getattr(model, "generation_config", None)
    extra = getattr(gen, "eos_token_id", None) if gen is not None else None
    if isinstance(extra, int):
        ids.add(extra)
    elif isinstance(extra, list):
        ids.update(extra)
    return {i for i in ids if i is not None}


def check_tasks(tasks: Tasks) -> None:
    if not tasks.train:
        raise TaskError("the training split has no tasks")
    for split, rows in (("train", tasks.train), ("valid", tasks.valid)):
        for i, row in enumerate(rows):
            msgs = row.get("messages") if isinstance(row, dict) else None
            if not isinstance(msgs, list) or not msgs:
                raise TaskError(f"{split} task {i} has no `messages` list")
            if not all(isinstance(m, dict) and "role" in m for m in msgs):
                raise TaskError(f"{split} task {i}: every message needs a `role`")


def make_grade_fn(grader, scope: str | None = None):
    """A function (sample, item) -> Graded, never raising, and the grader's display name."""
    if isinstance(grader, dict):
        from trainer.grading import run_grader  # imported lazily: a separate component

        name = str(grader.get("name") or grader.get("type") or "grader")

        def call(sample, item):
            return run_grader(grader, sample, item, scope=scope)
    elif callable(grader):
        name = getattr(grader, "__name__", None) or type(grader).__name__
        call = grader
    else:
        raise TypeError(f"grader must be a grader dict or a callable, not {type(grader).__name__}")

    def grade(sample: dict, item: dict) -> Graded:
        try:
            res = call(sample, item)
        except Exception as exc:  # noqa: BLE001 - a grader bug must not kill the run
            return Graded(0.0, {}, {"other_error": True, "details": f"{type(exc).__name__}: {exc}"}, True)
        if isinstance(res, dict):
            reward, subs, errors = res.get("reward"), res.get("sub_rewards"), res.get("errors")
        elif isinstance(res, int | float):
            reward, subs, errors = res, None, None
        else:
            reward = getattr(res, "reward", None)
            subs, errors = getattr(res, "sub_rewards", None), getattr(res, "errors", None)
        try:
            reward = float(reward)
        except (TypeError, ValueError):
            reward = float("nan")
        if not math.isfinite(reward):
            return Graded(0.0, dict(subs or {}), {"other_error": True, "details": f"reward {reward!r}"}, True)
        has_error = any(bool(v) for v in errors.values()) if isinstance(errors, dict) else bool(errors)
        subs = {str(k): float(v) for k, v in (subs or {}).items() if isinstance(v, int | float)}
        return Graded(reward, subs, errors or {}, has_error)

    return grade, name


def grade_completion(grade, tokenizer, ids: list[int], item: dict):
    text = tokenizer.decode(ids, skip_special_tokens=True)
    return text, grade({"output_text": text}, item)


def _sub_reward_means(split: str, results: list[Graded], grader_name: str) -> dict[str, float]:
    names = sorted({k for r in results for k in r.sub_rewards})
    if not names:
        return {f"{split}/grader/{grader_name}_mean": float(np.mean([r.reward for r in results]))}
    return {f"{split}/grader/{k}_mean": float(np.mean([r.sub_rewards.get(k, 0.0) for r in results]))
            for k in names}


def _pick_samples(config, step, first: _Round, advantages: dict) -> list[dict]:
    """Up to samples_per_step samples of the step's first round, spread over its groups, with the
    advantage each was trained with (0 for groups dropped or without spread)."""
    S, G = len(first.records), first.group_size
    k = min(config.samples_per_step, S)
    rows = sorted({(i * S) // k for i in range(k)}) if k else []
    out = []
    for row in rows:
        slot = row // G
        sample = _sample(step, "train", first.item(slot), first.records[row])
        sample.update(group=slot, advantage=advantages.get((0, slot, row % G), 0.0))
        out.append(sample)
    return out


def _sample(step, split, item, rec: _Record) -> dict:
    res = rec.graded
    return {
        "step": step,
        "split": split,
        "prompt": item["messages"],
        "output_text": rec.text,
        "item": {k: v for k, v in item.items() if k != "messages"},
        "reward": res.reward,
        "sub_rewards": res.sub_rewards,
        "errors": res.errors,
        "completion_tokens": int(rec.length),
        "truncated": bool(rec.truncated),
    }
