"""Peak memory per process of one full-tuning step with and without FSDP (`TrainConfig.sharding`).

    .venv/bin/python bench/fsdp_memory.py                                   # built-in model, 2 processes
    .venv/bin/python bench/fsdp_memory.py --processes 4 --model /path/to/hf-model-folder

Runs `trainer.train` under torchrun twice (sharding none, then fsdp) with the same one-step
config and prints, per process: `start_MiB`, the memory in use when the step starts (the
model loaded and laid out, sharded or not; no gradient or AdamW state yet); `step_peak_MiB`,
the peak from then to the end of the step's optimizer step (sampling, the log-prob passes,
backward and the AdamW step, not loading nor the checkpoint): peak GPU memory allocated on CUDA, the peak resident set on CPU (Linux: VmHWM,
reset through /proc/self/clear_refs), where weights, gradients and AdamW state share the RAM.
`process_peak_MiB`: the whole process's peak (on CPU including loading the model, the
Python runtime and, on process 0, the gathered full checkpoint state). Both runs must learn
the same numbers: the loss and grad norm of the step are printed beside.
"""

from __future__ import annotations

import argparse
import ctypes
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
    from torch.optim.optimizer import register_optimizer_step_post_hook

    from trainer import Tasks, distributed, loop, train
    from trainer.config import TrainConfig

    dist = distributed.init_from_env(args.device)
    config = TrainConfig(base_model=args.model, method="full", learning_rate=1e-5, batch_size=2 * dist.world,
                         group_size=4, max_completion_tokens=12, max_steps=1, eval_interval=1, samples_per_step=1,
                         mask_truncated_completions=False, num_threads=1, seed=5, device=args.device,
                         sharding=args.sharding, output_dir=args.out)
    cuda = torch.cuda.is_available() and args.device != "cpu"
    step_peak: list[float] = []
    start: list[float] = []
    seed_step = loop._seed_step

    def step_starts(*a, **kw):  # the model is loaded and laid out (sharded or not): start measuring
        if not start:
            _reset_peak(cuda)
            start.append(torch.cuda.memory_allocated() / 2**20 if cuda else _status_mib("VmRSS"))
        return seed_step(*a, **kw)

    loop._seed_step = step_starts
    state: list[float] = []

    def after_step(optimizer, *_):
        if not step_peak:
            step_peak.append(_peak(cuda))
            state.append(_state_mib(optimizer))

    handle = register_optimizer_step_post_hook(after_step)
    result = train(config, Tasks(train=TASKS), reward)
    handle.remove()
    if cuda:
        peak, kind = torch.cuda.max_memory_allocated() / 2**20, "GPU allocated"
    else:
        peak, kind = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "resident set"
    line = {"sharding": args.sharding, "rank": dist.rank, "start_MiB": round(start[0]), "step_peak_MiB": round(step_peak[0]),
            "state_MiB": round(state[0]),
            "process_peak_MiB": round(peak), "kind": kind,
            "loss": result.metrics.get("train/loss"), "grad_norm": result.metrics.get("train/grad_norm")}
    Path(args.out, f"memory-{dist.rank}.json").write_text(json.dumps(line))
    distributed.shutdown()


def _reset_peak(cuda: bool) -> None:
    import torch

    if cuda:
        torch.cuda.reset_peak_memory_stats()
    else:
        # hand the memory freed since loading (the whole weights, when sharded) back to the
        # system first: glibc keeps freed blocks in its heap, which the resident set counts
        ctypes.CDLL("libc.so.6").malloc_trim(0)
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current resident set


def _peak(cuda: bool) -> float:
    """MiB: peak GPU memory allocated, or the peak resident set, since `_reset_peak`."""
    import torch

    if cuda:
        return torch.cuda.max_memory_allocated() / 2**20
    return _status_mib("VmHWM")


def _state_mib(optimizer) -> float:
    """MiB this process holds of the trained weights, their gradients and the AdamW state
    (its shards when sharded)."""
    import torch
    from torch.distributed.tensor import DTensor

    def local(t) -> int:
        if not isinstance(t, torch.Tensor):
            return 0
        t = t.to_local() if isinstance(t, DTensor) else t
        return t.numel() * t.element_size()

    params = [p for group in optimizer.param_groups for p in group["params"]]
    total = sum(local(p) + local(p.grad) for p in params)
    total += sum(local(v) for p in params for v in optimizer.state.get(p, {}).values())
    return total / 2**20


def _status_mib(key: str) -> float:
    line = next(x for x in Path("/proc/self/status").read_text().splitlines() if x.startswith(key + ":"))
    return int(line.split()[1]) / 1024


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
    # glibc: large blocks through mmap, so a freed buffer leaves the resident set at once
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", MALLOC_MMAP_THRESHOLD_="65536")
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
