"""Peak memory per process of one full-tuning step with and without FSDP (`TrainConfig.sharding`).

    .venv/bin/python bench/fsdp_memory.py                                   # built-in model, 2 processes
    .venv/bin/python bench/fsdp_memory.py --processes 4 --model /path/to/hf-model-folder

Runs `trainer.train` under torchrun twice (sharding none, then fsdp) with the same one-step
config and prints, per process, its peak memory: the peak GPU memory allocated on CUDA, the
peak resident set on CPU (where weights, gradients and AdamW state live in the same RAM). On
CPU process 0's figure also holds the gathered full checkpoint state (on a GPU machine that
goes to host RAM, not GPU memory); the other processes show the training peak alone. Both
runs must learn the same numbers: the loss and grad norm of the step are printed beside.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TASKS = [{"messages": [{"role": "user", "content": f"Write the number {i} in words."}]} for i in range(8)]


def reward(sample, item):
    return len(set(sample["output_text"])) / 20


def worker(args) -> None:
    import torch

    from trainer import Tasks, distributed, train
    from trainer.config import TrainConfig

    dist = distributed.init_from_env(args.device)
    config = TrainConfig(base_model=args.model, method="full", learning_rate=1e-5, batch_size=2 * dist.world,
                         group_size=4, max_completion_tokens=12, max_steps=1, eval_interval=1, samples_per_step=1,
                         mask_truncated_completions=False, num_threads=1, seed=5, device=args.device,
                         sharding=args.sharding, output_dir=args.out)
    if torch.cuda.is_available() and args.device != "cpu":
        torch.cuda.reset_peak_memory_stats()
    result = train(config, Tasks(train=TASKS), reward)
    if torch.cuda.is_available() and args.device != "cpu":
        peak = torch.cuda.max_memory_allocated() / 2**20
        kind = "GPU allocated"
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        kind = "resident set"
    line = {"sharding": args.sharding, "rank": dist.rank, "peak_MiB": round(peak), "kind": kind,
            "loss": result.metrics.get("train/loss"), "grad_norm": result.metrics.get("train/grad_norm")}
    Path(args.out, f"memory-{dist.rank}.json").write_text(json.dumps(line))
    distributed.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--sharding", default="none", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    for sharding in ("none", "fsdp"):
        with tempfile.TemporaryDirectory() as out:
            subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                            f"--nproc-per-node={args.processes}", __file__, "--worker", "--sharding", sharding,
                            "--out", out, "--model", args.model, "--device", args.device],
                           cwd=ROOT, env=env, check=True, capture_output=True)
            for rank in range(args.processes):
                print(Path(out, f"memory-{rank}.json").read_text())


if __name__ == "__main__":
    main()
