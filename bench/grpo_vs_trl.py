"""Our GRPO trainer vs TRL's GRPOTrainer, side by side on the built-in SmolLM2-135M.

    .venv/bin/python bench/grpo_vs_trl.py                 # default: ~10 minutes on 2 CPU cores
    .venv/bin/python bench/grpo_vs_trl.py --steps 12 --group-size 8 --max-completion-tokens 96

Both run the same dataset (short arithmetic questions), the same reward (correct number +
brevity), batch size, group size, completion length, learning rate, LoRA settings, loss
(dapo, beta=0, one update per batch) and seed, one after the other, each in its own
process so peak memory is measured separately. TRL lives only in the benchmark's
environment `bench/.venv-trl` (never a project dependency); create it with:

    python3 -m venv bench/.venv-trl
    bench/.venv-trl/bin/pip install torch==2.13.0 && bench/.venv-trl/bin/pip install trl peft gguf

or, without a second torch, on top of the project's venv (what the README's figures used):

    .venv/bin/python -m venv bench/.venv-trl
    echo $PWD/.venv/lib/python3.11/site-packages > bench/.venv-trl/lib/python3.11/site-packages/main.pth
    .venv/bin/python -m pip --python bench/.venv-trl/bin/python install trl datasets

The acceptance shape (full tuning, 2 prompts x 4 answers of 16 tokens, lr 1e-5, beta 0):

    .venv/bin/python bench/grpo_vs_trl.py --method full --batch-size 2 --group-size 4 \
        --max-completion-tokens 16 --learning-rate 1e-5 --steps 10 --last 5

Prints seconds per step (the first step, a warm-up, is left out), completion tokens per
second, peak resident memory, mean reward over the last steps, and our/TRL ratios.
`--profile ours|trl` instead runs one side under the torch profiler and prints where the
time goes.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUR_PYTHON = ROOT / ".venv" / "bin" / "python" if (ROOT / ".venv").exists() else Path(sys.executable)
TRL_PYTHON = ROOT / "bench" / ".venv-trl" / "bin" / "python"


# --- the shared task and reward --------------------------------------------------------------


def make_tasks(n: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    tasks = []
    for _ in range(n):
        a, b = rng.randint(1, 20), rng.randint(1, 20)
        tasks.append({"messages": [{"role": "user", "content": f"What is {a} + {b}? Reply with just the number."}],
                      "answer": str(a + b)})
    return tasks


def reward_fn(text: str, answer: str) -> float:
    """0.7 if the first number in the reply is right, plus 0.3 for replies under 12 words."""
    numbers = re.findall(r"-?\d+", text)
    correct = 0.7 if numbers and numbers[0] == answer else 0.0
    brief = 0.3 if len(text.split()) <= 12 else 0.0
    return correct + brief


# --- workers ----------------------------------------------------------------------------------


def run_ours(args) -> dict:
    sys.path.insert(0, str(ROOT))
    import torch

    from trainer import Hooks, Tasks, TrainConfig, train

    torch.set_num_threads(args.threads)
    steps = []

    class Record(Hooks):
        def on_step(self, step, metrics, samples):
            steps.append(metrics)
            print(f"[ours] step {step}: {metrics['time/step']:.2f}s reward {metrics['train/reward_mean']:.3f} "
                  f"(sampling {metrics['time/sampling']:.2f}s, training {metrics['time/training']:.2f}s)",
                  file=sys.stderr, flush=True)

    config = TrainConfig(
        base_model="smollm2-135m-instruct", method=args.method, lora_rank=args.lora_rank, lora_alpha=2 * args.lora_rank,
        batch_size=args.batch_size, group_size=args.group_size, max_completion_tokens=args.max_completion_tokens,
        learning_rate=args.learning_rate, max_steps=args.steps, n_epochs=100, eval_interval=10**6,
        loss_type="dapo", beta=0.0, temperature=1.0, seed=args.seed, samples_per_step=0,
        keep_checkpoints=0, output_dir=str(Path(args.tmp) / "ours"), dynamic_sampling=args.dynamic_sampling == "on")
    tasks = make_tasks(args.n_tasks, args.seed)
    start = time.time()
    profiler = _profiler(args)
    with profiler:
        train(config, Tasks(train=tasks), lambda s, item: reward_fn(s["output_text"], item["answer"]), Record())
    _print_profile(profiler, args)
    return {
        "step_times": [m["time/step"] for m in steps],
        "completion_tokens": [m["train/completion_tokens_mean"] * args.batch_size * args.group_size for m in steps],
        "rewards": [m["train/reward_mean"] for m in steps],
        "sampling": [m["time/sampling"] for m in steps],
        "training": [m["time/training"] for m in steps],
        "wall": time.time() - start,
    }


def run_trl(args) -> dict:
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoTokenizer, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    torch.set_num_threads(args.threads)
    model_dir = _builtin_folder()
    tasks = make_tasks(args.n_tasks, args.seed)
    dataset = Dataset.from_list([{"prompt": t["messages"], "answer": t["answer"]} for t in tasks])

    def reward(prompts, completions, answer, **kwargs):
        return [reward_fn(c[0]["content"], a) for c, a in zip(completions, answer, strict=True)]

    step_times, rewards, tokens = [], [], []

    class Timer(TrainerCallback):
        def on_step_begin(self, *a, **k):
            self.t = time.time()

        def on_step_end(self, *a, **k):
            step_times.append(time.time() - self.t)

        def on_log(self, _args, state, control, logs=None, **k):
            if logs and "reward" in logs:
                rewards.append(logs["reward"])
                tokens.append(logs.get("completions/mean_length", 0) * args.batch_size * args.group_size)
                print(f"[trl] step {state.global_step}: {step_times[-1] if step_times else 0:.2f}s "
                      f"reward {logs['reward']:.3f}", file=sys.stderr, flush=True)

    config = GRPOConfig(
        output_dir=str(Path(args.tmp) / "trl"), per_device_train_batch_size=args.batch_size * args.group_size,
        num_generations=args.group_size, gradient_accumulation_steps=1, max_completion_length=args.max_completion_tokens,
        learning_rate=args.learning_rate, lr_scheduler_type="constant", warmup_steps=0, weight_decay=0.0,
        adam_beta2=0.99, max_grad_norm=1.0, beta=0.0, loss_type="dapo", scale_rewards="group", num_iterations=1,
        temperature=1.0, top_p=1.0, max_steps=args.steps, logging_steps=1, save_strategy="no", report_to="none",
        seed=args.seed, use_cpu=True, bf16=False, disable_tqdm=True, dataloader_num_workers=0)
    lora = LoraConfig(r=args.lora_rank, lora_alpha=2 * args.lora_rank, lora_dropout=0.0, task_type="CAUSAL_LM",
                      target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])
    tokenizer = AutoTokenizer.from_pretrained(model_dir, padding_side="left")
    trainer = GRPOTrainer(model=str(model_dir), reward_funcs=[reward], args=config, train_dataset=dataset,
                          processing_class=tokenizer, peft_config=lora if args.method == "lora" else None,
                          callbacks=[Timer()])
    start = time.time()
    profiler = _profiler(args)
    with profiler:
        trainer.train()
    _print_profile(profiler, args)
    return {"step_times": step_times, "completion_tokens": tokens, "rewards": rewards, "wall": time.time() - start}


def _builtin_folder() -> Path:
    # the converted SmolLM2 folder that our trainer made (the TRL env cannot import trainer's deps)
    out = subprocess.run([str(OUR_PYTHON), "-c", "from trainer.models import resolve_model; "
                          "print(resolve_model('smollm2-135m-instruct'))"], cwd=ROOT, capture_output=True,
                         text=True, check=True)
    return Path(out.stdout.strip().splitlines()[-1])


class _Null:
    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False


def _profiler(args):
    if not args.profile:
        return _Null()
    from torch.profiler import ProfilerActivity, profile

    return profile(activities=[ProfilerActivity.CPU], record_shapes=False)


def _print_profile(profiler, args):
    if args.profile:
        print(profiler.key_averages().table(sort_by="self_cpu_time_total", row_limit=25), file=sys.stderr)


# --- driver -----------------------------------------------------------------------------------


def summarise(name: str, res: dict, last: int) -> dict:
    times = res["step_times"][1:] or res["step_times"]  # step 1 is warm-up
    tok = res["completion_tokens"][1:] or res["completion_tokens"]
    return {
        "name": name,
        "s_per_step": statistics.mean(times),
        "tokens_per_s": sum(tok) / sum(times),
        "peak_rss_mb": res["peak_rss_mb"],
        "reward_last": statistics.mean(res["rewards"][-last:]),
        "reward_first": res["rewards"][0],
        "steps": len(res["step_times"]),
        "wall_s": res["wall"],
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--batch-size", type=int, default=4, help="prompts per step")
    p.add_argument("--group-size", type=int, default=8, help="completions per prompt")
    p.add_argument("--max-completion-tokens", type=int, default=64)
    p.add_argument("--learning-rate", type=float, default=5e-5)
    p.add_argument("--lora-rank", type=int, default=16)
    p.add_argument("--method", choices=["lora", "full"], default="lora", help="LoRA adapters or every weight")
    p.add_argument("--dynamic-sampling", choices=["on", "off"], default="on",
                   help="ours: replace groups without reward spread (TRL has no such option)")
    p.add_argument("--n-tasks", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--last", type=int, default=2, help="mean reward over this many final steps")
    p.add_argument("--threads", type=int, default=1, help="torch threads for both sides (see the docstring)")
    p.add_argument("--only", choices=["ours", "trl"], help="run one side only")
    p.add_argument("--profile", choices=["ours", "trl"], help="profile one side with torch.profiler")
    p.add_argument("--worker", choices=["ours", "trl"], help=argparse.SUPPRESS)
    p.add_argument("--tmp", default=str(ROOT / "data" / "bench"))
    p.add_argument("--json", help="also write the summary here")
    args = p.parse_args()

    if args.worker:
        res = run_ours(args) if args.worker == "ours" else run_trl(args)
        res["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print("RESULT " + json.dumps(res), flush=True)
        return 0

    sides = [args.profile] if args.profile else ([args.only] if args.only else ["ours", "trl"])
    summaries = {}
    for side in sides:
        python = OUR_PYTHON if side == "ours" else TRL_PYTHON
        if not python.exists():
            print(f"{python} is missing; see this script's docstring", file=sys.stderr)
            return 2
        cmd = [str(python), __file__, "--worker", side, *_strip(sys.argv[1:])]
        print(f"== {side}: {' '.join(cmd)}", file=sys.stderr, flush=True)
        proc = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True)
        lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
        if proc.returncode or not lines:
            print(f"{side} failed (exit {proc.returncode})", file=sys.stderr)
            return 1
        summaries[side] = summarise(side, json.loads(lines[-1][7:]), args.last)

    what = f"LoRA r={args.lora_rank}" if args.method == "lora" else "full tuning"
    print(f"\nSmolLM2-135M {what}, {args.batch_size} prompts x {args.group_size} completions, "
          f"<= {args.max_completion_tokens} new tokens, lr {args.learning_rate}, {args.steps} steps, "
          f"{args.threads} threads, seed {args.seed}")
    print(f"{'':8}{'s/step':>10}{'tok/s':>10}{'peak MB':>10}{'reward first':>14}{'reward last':>13}")
    for s in summaries.values():
        print(f"{s['name']:8}{s['s_per_step']:10.2f}{s['tokens_per_s']:10.1f}{s['peak_rss_mb']:10.0f}"
              f"{s['reward_first']:14.3f}{s['reward_last']:13.3f}")
    if len(summaries) == 2:
        o, t = summaries["ours"], summaries["trl"]
        print(f"ratio   steps/s {t['s_per_step'] / o['s_per_step']:.2f}x   tokens/s "
              f"{o['tokens_per_s'] / t['tokens_per_s']:.2f}x   peak memory {o['peak_rss_mb'] / t['peak_rss_mb']:.2f}x   "
              f"reward (last {args.last}) {o['reward_last']:.3f} vs {t['reward_last']:.3f}")
    if args.json:
        Path(args.json).write_text(json.dumps(summaries, indent=2))
    return 0


def _strip(argv: list[str]) -> list[str]:
    """Drop the driver-only flags before passing the rest to a worker."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
            continue
        if a in ("--only", "--json"):
            skip = True
            continue
        if a.startswith(("--only=", "--json=")):
            continue
        out.append(a)
    return out


if __name__ == "__main__":
    sys.exit(main())
