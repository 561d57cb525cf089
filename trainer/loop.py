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
  python). A grader error gives reward 0 and is counted in train/grader_error_frac.
- Validation uses greedy decoding (eval_temperature=0) so checkpoints are comparable.

Determinism: data order is a seeded permutation per epoch and every step reseeds torch from
(seed, step), so resuming from a checkpoint reproduces an uninterrupted run.
"""

from __future__ import annotations

import math
import time
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from trainer import checkpoints as ckpt
from trainer.config import TrainConfig
from trainer.hooks import Hooks
from trainer.models import load_model, resolve_device, resolve_dtype
from trainer.objective import LossStats, completion_logprobs, group_advantages, policy_loss
from trainer.rollout import encode_prompt, generate


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
    """
    hooks = hooks or Hooks()
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
    dtype = resolve_dtype(config.dtype, device)
    hooks.on_event("info", f"Loading base model {config.base_model}", {"device": str(device)})
    model, tokenizer = load_model(config.base_model, device=device, dtype=dtype,
                                  progress=lambda msg: hooks.on_event("info", msg, {}))
    torch.manual_seed(config.seed)  # LoRA initialisation
    model, ref_model = _prepare_policy(model, config)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=config.weight_decay,
                                  betas=(config.adam_beta1, config.adam_beta2))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, _lr_lambda(config, total_steps * config.num_iterations))
    eos_ids = stop_token_ids(model, tokenizer)
    order = DataOrder(config.seed, n_train, config.batch_size)

    start_step, trained_tokens = 0, 0
    if resume_from:
        state = ckpt.load_trainer_state(resume_from)
        if state.get("data_order") != order.state():
            raise TaskError(f"cannot resume from {resume_from}: the training tasks or batch size changed "
                            f"({state.get('data_order')} != {order.state()})")
        ckpt.load_weights(model, resume_from)
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        ckpt.restore_rng(state)
        start_step, trained_tokens = state["step"], state.get("trained_tokens", 0)
        hooks.on_event("info", f"Resumed from {resume_from} at step {start_step}", {"step": start_step})

    n_params = sum(p.numel() for p in params)
    hooks.on_event("info", f"Training {total_steps} steps: {config.batch_size} prompts x "
                   f"{config.group_size} samples per step, {config.method} ({n_params:,} trainable "
                   f"parameters) on {device}", {"total_steps": total_steps, "trainable_params": n_params})

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
    run_start = time.time()
    status, step, metrics, last_valid = "succeeded", start_step, {}, {}
    last_checkpoint: Path | None = None
    try:
        for step in range(start_step + 1, total_steps + 1):
            stop = hooks.should_stop()
            if stop:
                status = "cancelled" if stop == "cancel" else "paused"
                step -= 1
                break
            t_step = time.time()
            _seed_step(config.seed, step)
            generator = torch.Generator(device=device).manual_seed(_step_seed(config.seed, step) + 1)

            # --- 1. rollout: B prompts x G completions, graded as each one finishes --------------
            batch_idx = order.batch(step)  # (B,) task indices
            items = [tasks.train[i] for i in batch_idx]
            prompts = [prompt_ids("train", tasks.train, i) for i in batch_idx]
            G = config.group_size
            futures: dict[int, Future] = {}

            def submit(row: int, ids: list[int], truncated: bool, items=items, futures=futures, G=G):
                futures[row] = pool.submit(grade_completion, grade, tokenizer, ids, items[row // G])

            model.eval()
            t0 = time.time()
            rollout = generate(model, prompts, group_size=G, max_new_tokens=config.max_completion_tokens,
                               eos_ids=eos_ids, pad_id=tokenizer.pad_token_id,
                               temperature=config.temperature, top_p=config.top_p,
                               generator=generator, on_finished=submit)
            t_sampling = time.time() - t0

            # --- 2. rewards -> group-relative advantages ---------------------------------------
            t0 = time.time()
            graded = [futures[row].result() for row in range(len(futures))]  # (S,)
            texts = [g[0] for g in graded]
            results: list[Graded] = [g[1] for g in graded]
            t_grading = time.time() - t0
            rewards = torch.tensor([r.reward for r in results], dtype=torch.float32)  # (S,)
            advantages, zero_std = group_advantages(rewards, G, config.reward_scaling)  # (S,), (B,)
            advantages = advantages.to(device)

            # --- 3. policy update(s) -----------------------------------------------------------
            t0 = time.time()
            update = _update(model, ref_model, optimizer, scheduler, rollout, advantages, config)
            t_training = time.time() - t0

            # --- 4. metrics and samples ----------------------------------------------------------
            lengths = rollout.completion_lengths.float().cpu()  # (S,)
            trained_tokens += int(lengths.sum()) + int(rollout.prompt_mask.sum())
            metrics = {
                "step": step,
                "total_steps": total_steps,
                "epoch": step * config.batch_size / n_train,
                "trained_tokens": trained_tokens,
                "train/reward_mean": rewards.mean().item(),
                "train/reward_std": rewards.std().item() if rewards.numel() > 1 else 0.0,
                **_sub_reward_means("train", results, grader_name),
                "train/grader_error_frac": sum(r.has_error for r in results) / len(results),
                "train/frac_zero_std_groups": zero_std.float().mean().item(),
                "train/completion_tokens_mean": lengths.mean().item(),
                "train/completion_tokens_max": lengths.max().item(),
                "train/truncated_frac": rollout.truncated.float().mean().item(),
                **update,
                "time/sampling": t_sampling,
                "time/grading": t_grading,
                "time/training": t_training,
            }
            samples = _pick_samples(config, step, "train", items, G, texts, results, rollout,
                                    advantages, messages=[it["messages"] for it in items])

            # --- 5. validation and checkpoint every eval_interval steps and at the end ----------
            stop = hooks.should_stop()
            last = step == total_steps
            if step % config.eval_interval == 0 or last or stop == "pause":
                if stop != "cancel":
                    t0 = time.time()
                    last_valid, valid_samples = _evaluate(model, tokenizer, tasks.valid, config, grade,
                                                          grader_name, prompt_ids, eos_ids, pool, step)
                    metrics.update(last_valid)
                    samples += valid_samples
                    metrics["time/eval"] = time.time() - t0
            metrics["time/step"] = time.time() - t_step
            metrics["throughput/tokens_per_s"] = lengths.sum().item() / max(metrics["time/step"], 1e-9)
            elapsed = time.time() - run_start
            metrics["elapsed_s"] = elapsed
            metrics["eta_s"] = elapsed / (step - start_step) * (total_steps - step)
            hooks.on_step(step, metrics, samples)
            if step % config.eval_interval == 0 or last or stop == "pause":
                if stop != "cancel":  # on_checkpoint always follows its step's on_step
                    last_checkpoint = _save(model, tokenizer, optimizer, scheduler, step, config,
                                            metrics, order, trained_tokens, hooks)

            if stop:
                status = "cancelled" if stop == "cancel" else "paused"
                break
    finally:
        pool.shutdown(wait=False, cancel_futures=True)

    if status == "paused" and (last_checkpoint is None or not last_checkpoint.name.endswith(f"{step:06d}")):
        # paused before any step of this session ran: the checkpoint still records where we are
        if step > start_step or not resume_from:
            last_checkpoint = _save(model, tokenizer, optimizer, scheduler, step, config, metrics,
                                    order, trained_tokens, hooks)
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
# the update
# ---------------------------------------------------------------------------------------------


def _update(model, ref_model, optimizer, scheduler, r, advantages, config: TrainConfig) -> dict:
    """num_iterations optimizer steps on one rollout; returns the update's metrics."""
    S, B, G = r.completion_ids.shape[0], r.prompt_ids.shape[0], r.group_size
    mb = config.micro_batch_size or B  # prompts per micro-batch
    chunks = [(b0, min(b0 + mb, B)) for b0 in range(0, B, mb)]
    num_tokens = r.completion_mask.sum().item()
    share = not config.gradient_checkpointing
    kw = dict(temperature=config.temperature, chunk_tokens=config.logprob_chunk_tokens)

    def logps(m, b0, b1, **extra):
        s0, s1 = b0 * G, b1 * G
        return completion_logprobs(m, r.prompt_ids[b0:b1], r.prompt_mask[b0:b1], r.completion_ids[s0:s1],
                                   r.completion_mask[s0:s1], share_prompt=share, **kw, **extra)

    # pi_old (only needed when the batch is reused) and the reference, both without grad
    old_logp = ref_logp = None
    with torch.no_grad():
        if config.num_iterations > 1:
            old_logp = torch.cat([logps(model, *c, with_entropy=False)[0] for c in chunks])  # (S, T)
        if config.beta > 0:
            if ref_model is None:  # LoRA: the base model is the adapters switched off
                with model.disable_adapter():
                    ref_logp = torch.cat([logps(model, *c, with_entropy=False)[0] for c in chunks])
            else:
                ref_logp = torch.cat([logps(ref_model, *c, with_entropy=False)[0] for c in chunks])

    model.train()
    stats, losses, entropy_sum, grad_norms = LossStats(), [], 0.0, []
    for it in range(config.num_iterations):
        optimizer.zero_grad(set_to_none=True)
        total = 0.0
        for b0, b1 in chunks:
            s0, s1 = b0 * G, b1 * G
            logp, entropy = logps(model, b0, b1, with_entropy=(it == 0))  # (s, T)
            mask = r.completion_mask[s0:s1]
            loss, st = policy_loss(
                logp, logp.detach() if old_logp is None else old_logp[s0:s1], advantages[s0:s1], mask,
                loss_type=config.loss_type, epsilon_low=config.epsilon_low,
                epsilon_high=config.epsilon_upper, max_completion_tokens=config.max_completion_tokens,
                beta=config.beta, ref_logp=None if ref_logp is None else ref_logp[s0:s1],
                num_sequences=S, num_tokens=num_tokens)
            loss.backward()
            total += loss.item()
            stats.add(st)
            if entropy is not None:
                entropy_sum += (entropy * mask).sum().item()
        if config.max_grad_norm > 0:
            norm = torch.nn.utils.clip_grad_norm_(
                [p for p in model.parameters() if p.requires_grad], config.max_grad_norm)
            grad_norms.append(float(norm))
        optimizer.step()
        scheduler.step()
        losses.append(total)
    model.eval()
    tokens = max(stats.tokens, 1.0)
    out = {
        "train/loss": float(np.mean(losses)),
        "train/entropy": entropy_sum / max(num_tokens, 1.0),
        "train/clip_ratio": stats.clip_region_sum / tokens,
        "train/clip_ratio_low": stats.clip_low_sum / tokens,
        "train/clip_ratio_high": stats.clip_high_sum / tokens,
        "train/learning_rate": scheduler.get_last_lr()[0],
    }
    if grad_norms:
        out["train/grad_norm"] = float(np.mean(grad_norms))
    if config.beta > 0:
        out["train/kl"] = stats.kl_sum / tokens
    return out


# ---------------------------------------------------------------------------------------------
# evaluation and checkpoints
# ---------------------------------------------------------------------------------------------


def _evaluate(model, tokenizer, valid, config, grade, grader_name, prompt_ids, eos_ids, pool, step):
    """Grade one completion per validation task (the first `eval_samples` tasks)."""
    if not valid:
        return {}, []
    n = min(len(valid), config.eval_samples or len(valid))
    width = config.batch_size * config.group_size  # rows per generation call, as in training
    generator = torch.Generator(device=next(model.parameters()).device).manual_seed(config.seed)
    texts, results, lengths, truncs = [], [], [], []
    for c0 in range(0, n, width):
        chunk = list(range(c0, min(c0 + width, n)))
        futures: dict[int, Future] = {}

        def submit(row, ids, truncated, chunk=chunk, futures=futures):
            futures[row] = pool.submit(grade_completion, grade, tokenizer, ids, valid[chunk[row]])

        r = generate(model, [prompt_ids("valid", valid, i) for i in chunk], group_size=1,
                     max_new_tokens=config.max_completion_tokens, eos_ids=eos_ids,
                     pad_id=tokenizer.pad_token_id, temperature=config.eval_temperature,
                     top_p=config.top_p, generator=generator, on_finished=submit)
        for row in range(len(chunk)):
            text, res = futures[row].result()
            texts.append(text)
            results.append(res)
        lengths += r.completion_lengths.tolist()
        truncs += r.truncated.tolist()
    rewards = [r.reward for r in results]
    metrics = {
        "valid/reward_mean": float(np.mean(rewards)),
        "valid/reward_std": float(np.std(rewards, ddof=1)) if n > 1 else 0.0,
        **_sub_reward_means("valid", results, grader_name),
        "valid/grader_error_frac": sum(r.has_error for r in results) / n,
        "valid/completion_tokens_mean": float(np.mean(lengths)),
        "valid/truncated_frac": float(np.mean(truncs)),
        "valid/n_samples": n,
    }
    k = min(config.samples_per_step, n)
    samples = [_sample(step, "valid", valid[i], texts[i], results[i], lengths[i], truncs[i])
               for i in range(k)]
    return metrics, samples


def _save(model, tokenizer, optimizer, scheduler, step, config, metrics, order, trained_tokens, hooks):
    path = ckpt.save_checkpoint(
        ckpt.checkpoint_dir(config.output_dir, step), model=model, tokenizer=tokenizer,
        optimizer=optimizer, scheduler=scheduler, step=step, config_dict=config.to_dict(),
        metrics=metrics, extra_state={"data_order": order.state(), "trained_tokens": trained_tokens})
    hooks.on_checkpoint(step, str(path), metrics)
    for removed in ckpt.prune_checkpoints(config.output_dir, config.keep_checkpoints):
        hooks.on_checkpoint_removed(str(removed))
        hooks.on_event("info", f"Removed checkpoint {removed.name} (not among the "
                       f"{config.keep_checkpoints} best)", {"path": str(removed)})
    return path


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


def _pick_samples(config, step, split, items, G, texts, results, rollout, advantages, messages):
    S = len(results)
    k = min(config.samples_per_step, S)
    rows = sorted({(i * S) // k for i in range(k)}) if k else []  # spread over the groups
    lengths = rollout.completion_lengths.tolist()
    out = []
    for row in rows:
        sample = _sample(step, split, items[row // G], texts[row], results[row], lengths[row],
                         bool(rollout.truncated[row]))
        sample.update(group=row // G, advantage=float(advantages[row]))
        out.append(sample)
    return out


def _sample(step, split, item, text, res: Graded, n_tokens, truncated) -> dict:
    return {
        "step": step,
        "split": split,
        "prompt": item["messages"],
        "output_text": text,
        "item": {k: v for k, v in item.items() if k != "messages"},
        "reward": res.reward,
        "sub_rewards": res.sub_rewards,
        "errors": res.errors,
        "completion_tokens": int(n_tokens),
        "truncated": bool(truncated),
    }
