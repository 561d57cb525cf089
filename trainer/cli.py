"""Command line: train from files, with a progress bar and JSONL logs.

    python -m trainer run --config run.json --tasks tasks.jsonl [--valid valid.jsonl] \\
        --grader grader.json --out runs/demo [--resume runs/demo/checkpoints/step-000010]

`run.json` holds `TrainConfig` fields, or OpenAI style `{"base_model": ..., "hyperparameters":
{...}}` plus any `TrainConfig` fields. `--grader` is an OpenAI grader JSON file, or
`file.py:function` naming a Python reward function `(sample, item) -> float`.
Writes metrics.jsonl, samples.jsonl, events.jsonl, checkpoints.jsonl and result.json in --out;
checkpoints go to --out/checkpoints. Ctrl-C (or a file --out/STOP containing "pause")
pauses with a checkpoint; a second Ctrl-C or "cancel" in STOP cancels.

Several GPUs (data parallel, see `trainer.distributed`): launch the same command with torchrun,

    torchrun --standalone --nproc-per-node 4 -m trainer run --config run.json ...

Every process trains its share of each step; process 0 writes the logs and checkpoints.
With `--sharding fsdp` (or `"sharding": "fsdp"` in run.json) the processes also split the
model's training state between them (FSDP, see `trainer.sharding`).
`batch_size` stays the global number of tasks per step, so the run learns the same as on one.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import signal
import sys
from pathlib import Path

from trainer.config import SHARDINGS, ConfigError, TrainConfig, config_from_openai_hyperparameters
from trainer.hooks import JsonlHooks


def read_jsonl(path: str | Path) -> list[dict]:
    rows = []
    with open(path, encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except ValueError as exc:
                    raise SystemExit(f"{path}:{n}: not valid JSON: {exc}") from exc
    return rows


def load_config(path: str | Path, *, out: str, n_train: int, n_valid: int) -> TrainConfig:
    data = json.loads(Path(path).read_text())
    data.setdefault("output_dir", str(Path(out)))
    if "hyperparameters" in data:
        hp = data.pop("hyperparameters")
        base = data.pop("base_model", data.pop("model", "smollm2-135m-instruct"))
        return config_from_openai_hyperparameters(hp, base_model=base, n_train_tasks=n_train,
                                                  n_valid_tasks=n_valid, **data)
    return TrainConfig.from_dict(data)


def load_grader(spec: str):
    if ":" in spec and spec.split(":", 1)[0].endswith(".py"):
        file, func = spec.split(":", 1)
        module_spec = importlib.util.spec_from_file_location("user_reward", file)
        module = importlib.util.module_from_spec(module_spec)
        module_spec.loader.exec_module(module)
        return getattr(module, func)
    return json.loads(Path(spec).read_text())


class CliHooks(JsonlHooks):
    def __init__(self, out_dir, total: int, initial: int):
        from tqdm import tqdm

        super().__init__(out_dir, echo=lambda msg: tqdm.write(msg, file=sys.stderr))
        self.bar = tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True, file=sys.stderr)
        self.interrupts = 0

    def on_step(self, step, metrics, samples):
        super().on_step(step, metrics, samples)
        post = {"reward": f"{metrics.get('train/reward_mean', 0):.3f}"}
        if "valid/reward_mean" in metrics:
            post["valid"] = f"{metrics['valid/reward_mean']:.3f}"
        self.bar.set_postfix(post, refresh=False)
        self.bar.update(step - self.bar.n)

    def should_stop(self):
        if self.interrupts >= 2:
            return "cancel"
        if self.interrupts == 1:
            return "pause"
        return super().should_stop()

    def interrupt(self, *_):
        self.interrupts += 1
        self.bar.write("Stopping: pausing after this step (Ctrl-C again to cancel)" if self.interrupts == 1
                       else "Cancelling", file=sys.stderr)
        if self.interrupts > 2:
            raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m trainer", description="GRPO reinforcement fine-tuning")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="train a model on a task file with a grader")
    run.add_argument("--config", required=True, help="run.json (TrainConfig fields or OpenAI hyperparameters)")
    run.add_argument("--tasks", required=True, help="training tasks, JSONL (OpenAI RFT format)")
    run.add_argument("--valid", help="validation tasks, JSONL")
    run.add_argument("--grader", required=True, help="grader JSON file, or reward.py:function")
    run.add_argument("--out", required=True, help="folder for logs and checkpoints")
    run.add_argument("--resume", help="checkpoint folder to continue from")
    run.add_argument("--sharding", choices=SHARDINGS,
                     help="override the config's sharding: fsdp splits the model over the torchrun processes")
    args = parser.parse_args(argv)

    from trainer import distributed
    from trainer.grading import default_judges
    from trainer.loop import TaskError, Tasks, train

    default_judges.allow_local_paths = True  # the machine's owner may name a model folder
    from trainer.models import ModelLoadError

    tasks = Tasks(train=read_jsonl(args.tasks), valid=read_jsonl(args.valid) if args.valid else [])
    try:
        config = load_config(args.config, out=args.out, n_train=len(tasks.train), n_valid=len(tasks.valid))
        if args.out and config.output_dir != args.out:
            config = config.replace(output_dir=args.out)
        if args.sharding:
            config = config.replace(sharding=args.sharding)
        grader = load_grader(args.grader)
    except (ConfigError, OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    dist = distributed.init_from_env(config.device)  # launched by torchrun: join its process group
    if not dist.main:  # the other processes train their share quietly; process 0 decides on Ctrl-C
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            train(config, tasks, grader, None, resume_from=args.resume)
        except (ConfigError, TaskError, ModelLoadError) as exc:
            print(f"error (process {dist.rank}): {exc}", file=sys.stderr)
            return 2
        finally:
            distributed.shutdown()
        return 0
    initial = 0
    if args.resume:
        from trainer.checkpoints import load_trainer_state

        initial = load_trainer_state(args.resume)["step"]
    hooks = CliHooks(args.out, total=config.total_steps(len(tasks.train)), initial=initial)
    previous = signal.signal(signal.SIGINT, hooks.interrupt)
    try:
        result = train(config, tasks, grader, hooks, resume_from=args.resume)
    except (ConfigError, TaskError, ModelLoadError) as exc:
        hooks.on_event("error", str(exc), {})
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        signal.signal(signal.SIGINT, previous)
        hooks.bar.close()
        distributed.shutdown()
    summary = dataclasses.asdict(result)
    (Path(args.out) / "result.json").write_text(json.dumps(summary, indent=2, default=str))
    print(json.dumps({k: summary[k] for k in ("status", "step", "best_checkpoint", "last_checkpoint")}))
    return 0 if result.status in ("succeeded", "paused") else 1
