"""Data parallelism over `torch.distributed`, and nothing when a run has one process.

A run on several GPUs is launched with `torchrun` (the CLI and the web app's training task
both do; see the README): every process runs `trainer.train` with the same config, tasks and
grader. Each rank samples and grades its share of the step's tasks; the rewards are
all-gathered so every rank computes the same advantages and the same dynamic-sampling
choices; gradients are summed with `all_reduce` after each rank's backward (every loss is
normalised by batch-wide totals, so the sum is the one-process gradient); rank 0 validates
its share, writes checkpoints and talks to the hooks.

With `TrainConfig.sharding="fsdp"` the processes also split the model's training state
between them (FSDP2, see `trainer.sharding`); FSDP then reduces the gradients instead of
`all_reduce_grads`.

Sampling is seeded per completion (see `trainer.rollout.row_uniforms`), so which rank
samples a task does not change what it samples: 1 process and N processes with the same
global batch give the same rollouts, rewards and loss (to float rounding).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch

#: Long enough for rank 0's slowest lone work (a checkpoint of a large model) between collectives.
TIMEOUT = timedelta(hours=2)


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def active(self) -> bool:
        return self.world > 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    def share(self, n: int) -> list[int]:
        """Indices 0..n-1 this rank handles: contiguous blocks, earlier ranks one more when uneven."""
        base, extra = divmod(n, self.world)
        start = self.rank * base + min(self.rank, extra)
        return list(range(start, start + base + (1 if self.rank < extra else 0)))

    def gather(self, items: list[Any]) -> list[Any]:
        """Concatenate every rank's list, in rank order (so `share` blocks come back in order)."""
        if not self.active:
            return list(items)
        out: list[Any] = [None] * self.world
        torch.distributed.all_gather_object(out, items)
        return [x for part in out for x in part]

    def broadcast(self, value: Any) -> Any:
        """Rank 0's value on every rank."""
        if not self.active:
            return value
        box = [value]
        torch.distributed.broadcast_object_list(box, src=0)
        return box[0]

    def sum(self, values: list[float]) -> list[float]:
        if not self.active:
            return list(values)
        t = torch.tensor(values, dtype=torch.float64, device=self._device())
        torch.distributed.all_reduce(t)
        return t.tolist()

    def all_reduce_grads(self, params: list[torch.nn.Parameter], bucket_bytes: int = 64 << 20) -> None:
        """Sum gradients over ranks, a flat bucket at a time (a rank without work sends zeros)."""
        if not self.active:
            return
        for p in params:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        bucket: list[torch.Tensor] = []
        size = 0
        for p in params:
            bucket.append(p.grad)
            size += p.grad.numel() * p.grad.element_size()
            if size >= bucket_bytes:
                _reduce_bucket(bucket)
                bucket, size = [], 0
        if bucket:
            _reduce_bucket(bucket)

    def broadcast_params(self, params: list[torch.Tensor]) -> None:
        """Rank 0's weights everywhere (LoRA initialisation is seeded, this makes sure)."""
        if self.active:
            for p in params:
                torch.distributed.broadcast(p.data, src=0)

    def barrier(self) -> None:
        if self.active:
            torch.distributed.barrier()

    def _device(self) -> torch.device:
        backend = torch.distributed.get_backend()
        return torch.device("cuda", torch.cuda.current_device()) if backend == "nccl" else torch.device("cpu")


def _reduce_bucket(grads: list[torch.Tensor]) -> None:
    flat = torch.cat([g.reshape(-1) for g in grads])
    torch.distributed.all_reduce(flat)
    offset = 0
    for g in grads:
        g.copy_(flat[offset:offset + g.numel()].view_as(g))
        offset += g.numel()


def current() -> Dist:
    """The process group this process belongs to (started by `init_from_env`), or one process."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return Dist(rank=torch.distributed.get_rank(), world=torch.distributed.get_world_size(),
                    local_rank=int(os.environ.get("LOCAL_RANK", 0)))
    return Dist()


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init_from_env(device: str = "auto") -> Dist:
    """Join the process group `torchrun` describes in the environment (NCCL on CUDA, gloo on
    CPU); one process when not launched by torchrun."""
    if not launched_by_torchrun():
        return Dist()
    if not torch.distributed.is_initialized():
        use_cuda = device in ("auto", "cuda") and torch.cuda.is_available()
        if use_cuda:
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
        torch.distributed.init_process_group(backend="nccl" if use_cuda else "gloo", timeout=TIMEOUT)
    return current()


def shutdown() -> None:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
