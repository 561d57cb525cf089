"""A torchrun worker for test_trainer_fsdp.py that watches what FSDP holds whole, per process.

    python -m torch.distributed.run --nproc-per-node 2 fsdp_probe.py train OUT -- <trainer CLI args>
    python -m torch.distributed.run --nproc-per-node 2 fsdp_probe.py generate OUT MODEL

`train` runs the trainer's CLI with a forward pre-hook on every decoder layer of the sharded
model that records how many *other* decoder layers hold their whole (unsharded) weights at
that moment, and an optimizer pre-step hook that records whether the gradients are shards.
`generate` samples on a sharded model with uneven work per process (one process's answers all
end at their first token while the other's run to the limit; then one process with no prompt
at all) and writes the completions. Each process writes OUT/probe-<rank>.json.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from torch.distributed.tensor import DTensor
from torch.optim.optimizer import register_optimizer_step_pre_hook


def _whole(module: torch.nn.Module) -> bool:
    return not isinstance(next(module.parameters()), DTensor)


def train(out: Path, argv: list[str]) -> None:
    from trainer import distributed, sharding
    from trainer.cli import main

    seen = {"update": 0, "no_grad": 0}  # most other layers whole while a layer starts its forward
    counts = {"layer_forwards": 0}
    steps: list[dict] = []
    policy: list = []
    root: list = []
    original = sharding._shard

    def watched(model):
        units = original(model)
        layers = units[:-1]
        for layer in layers:
            def pre_hook(module, args, layer=layer):
                others = sum(_whole(other) for other in layers if other is not layer)
                key = "update" if torch.is_grad_enabled() else "no_grad"
                seen[key] = max(seen[key], others)
                counts["layer_forwards"] += 1
            layer.register_forward_pre_hook(pre_hook)
        if not policy:  # the policy is sharded first, then the reference model (not optimised)
            policy.extend(layers)
            root.append(units[-1])

            def step_hook(optimizer, args, kwargs):
                grads = [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
                steps.append({"grads": len(grads), "sharded_grads": sum(isinstance(g, DTensor) for g in grads),
                              "whole_layers": sum(_whole(layer) for layer in policy)})
            register_optimizer_step_pre_hook(step_hook)
        return units

    sharding._shard = watched
    dist = distributed.init_from_env("cpu")
    code = main(argv)
    # FSDP's record of forwards for backward prefetching, left after the last phase (validation)
    left = len(root[0]._get_fsdp_state()._comm_ctx.post_forward_order)
    result = {"code": code, "max_other_layers_whole": seen, **counts, "steps": steps, "forward_order_left": left}
    out.joinpath(f"probe-{dist.rank}.json").write_text(json.dumps(result))


def generate_uneven(out: Path, model_path: str) -> None:
    from trainer import distributed, sharding
    from trainer.models import load_model
    from trainer.rollout import generate

    dist = distributed.init_from_env("cpu")
    model, tokenizer = load_model(model_path, device=torch.device("cpu"), dtype=torch.float32)
    model.eval()
    layers = sharding._decoder_layers(model)
    forwards = [0]
    layers[0].register_forward_pre_hook(lambda *_: forwards.__setitem__(0, forwards[0] + 1))
    shards = sharding.FullySharded(dist, model)
    vocab = model.config.vocab_size
    prompts = [tokenizer("<|im_start|>user\nhi there<|im_end|>\n")["input_ids"],
               tokenizer("<|im_start|>user\n2+2?<|im_end|>\n")["input_ids"]]
    calls = {
        # process 0: every token ends an answer; process 1: no token does (all run to the limit)
        "uneven_ends": dict(prompts=prompts, eos_ids=set(range(vocab)) if dist.rank == 0 else {vocab + 7}),
        # process 1 has no task at all this round
        "no_tasks": dict(prompts=prompts if dist.rank == 0 else [], eos_ids={vocab + 7}),
    }
    result = {}
    for name, call in calls.items():
        forwards[0] = 0
        seeds = [1000 * dist.rank + i for i in range(2 * len(call["prompts"]))]
        with shards.gathered(), torch.no_grad():
            r = generate(model, call["prompts"], group_size=2, max_new_tokens=9, eos_ids=call["eos_ids"],
                         pad_id=tokenizer.pad_token_id, temperature=1.0, seeds=seeds, sync=shards.decode_sync)
        result[name] = {"completions": [[int(t) for t, m in zip(ids, mask, strict=True) if m]
                                        for ids, mask in zip(r.completion_ids.tolist(), r.completion_mask.tolist(),
                                                             strict=True)],
                        "prompts": call["prompts"], "eos_ids": sorted(call["eos_ids"]), "seeds": seeds,
                        "forwards": forwards[0]}
    out.joinpath(f"probe-{dist.rank}.json").write_text(json.dumps(result))
    distributed.shutdown()


if __name__ == "__main__":
    mode, out = sys.argv[1], Path(sys.argv[2])
    if mode == "train":
        train(out, sys.argv[sys.argv.index("--") + 1:])
    else:
        generate_uneven(out, sys.argv[3])
