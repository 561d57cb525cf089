"""How the weights of a several-process run are kept: a whole copy per process, or sharded (FSDP).

`TrainConfig.sharding`:

- `none` (the default): every process holds the whole model, its gradients and its AdamW
  state; gradients are summed with `Dist.all_reduce_grads` (see `trainer.distributed`).
- `fsdp`: PyTorch's FSDP2 (`torch.distributed.fsdp.fully_shard`) on each decoder layer and on
  the root (embeddings, final norm, output layer), in the ZeRO-3 profile: the float32 master
  weights, their gradients and the AdamW state (16 bytes a trained parameter) are split over
  the N processes, 16/N bytes each, and a decoder layer's whole weights exist only while it
  runs: FSDP all-gathers them before its forward (and again in its backward) and frees them
  after; each backward reduce-scatters the layer's gradients into the shards, where the
  micro-batches' gradients add up. The root unit is the exception: `gathered()` keeps it
  whole for a whole phase (sampling, validation, the update), because the log-prob pass reads
  the output layer's weight directly and calls the trunk without the root's forward
  (`trainer.objective.completion_logprobs`); its gradients are reduce-scattered at the end of
  each backward pass. So a GPU holds 16/N bytes per trained parameter, plus the root's
  weights (and its gradient in the update), plus one decoder layer (two while a backward
  prefetches the next), plus activations.

Lockstep. Every forward and backward of a sharded model is a collective, so every process
must make the same ones in the same order, although their work differs:
- sampling and validation (`trainer.rollout.generate` with `sync=decode_sync`): after each
  decoding step the processes all-reduce "do I still have rows?", and all keep stepping until
  none has; a process whose rows are done, or that has no task this round (fewer tasks than
  processes), makes a one-token dummy forward per step instead (its prefill too);
- the update (`trainer.loop._update`): each process pads its share of the kept groups to the
  largest share with one-token groups whose tokens are all masked out, so every process runs
  the same micro-batches, the same trunk calls per micro-batch (one for the prompts, one per
  `share_chunk_rows` completions), and a backward for each, even one that adds zeros
  (`chunked_logprobs` keeps an empty result in the graph); the same for the no-grad passes
  of the reference model and of the old log-probs.
None of this happens without sharding (`Replicated`): no dummy work, no extra collective.

The price: every decoding step all-gathers every decoder layer (and makes one small
all-reduce), so sharded sampling is bound by the interconnect where replicated sampling is
bound by compute; the slowest process's answers set how many steps all make. Use `fsdp`
when the model's training state does not fit one GPU, not for speed.

Not done yet: each process loads the whole model onto its device before `fully_shard`
splits it (`trainer.loop.train`), so the weights alone must fit one device at load time.

Checkpoints are the same files as without sharding: every process takes part in gathering
the full state dicts (`torch.distributed.checkpoint.state_dict`), process 0 writes them, and
the optimizer state is stored in the layout `optimizer.state_dict()` has, so a sharded run
resumes from a non-sharded checkpoint and the other way round.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import torch

from trainer.config import ConfigError
from trainer.distributed import Dist


class Replicated:
    """Every process holds the whole model (plain data parallelism, or one process).

    Its methods are the points where the loop asks the layout to act; `FullySharded`
    overrides each of them."""

    sharded = False

    def __init__(self, dist: Dist):
        self.dist = dist

    @property
    def decode_sync(self) -> Callable[[bool], bool] | None:
        """For `trainer.rollout.generate`: None, or the function that tells whether any process
        still decodes (sharded processes must keep making forwards until all are done)."""
        return None

    @contextlib.contextmanager
    def gathered(self, optimizer: torch.optim.Optimizer | None = None, *, reference: bool = False
                 ) -> Iterator[None]:
        """Around a phase of a step that runs the model (sampling, validation, the update)."""
        yield

    def reduce_grads(self, params: list[torch.nn.Parameter]) -> None:
        """After this process's backward passes of an update: the batch's gradient in `params`."""
        self.dist.all_reduce_grads(params)

    def loading(self):
        """Around loading a checkpoint's weights into the model."""
        return contextlib.nullcontext()

    def checkpoint_states(self, optimizer) -> tuple[dict | None, dict | None]:
        """The model's and the optimizer's state dicts to write, or None for their own."""
        return None, None

    def load_optimizer_state(self, optimizer, state: dict) -> None:
        optimizer.load_state_dict(state)


class FullySharded(Replicated):
    """FSDP2 over every process of the run: see the module docstring."""

    sharded = True

    def __init__(self, dist: Dist, model, ref_model=None):
        super().__init__(dist)
        from torch.distributed.fsdp import FSDPModule

        self.model = model
        self.units: list[FSDPModule] = _shard(model)
        self.reference_units: list[FSDPModule] = _shard(ref_model) if ref_model is not None else []

    @property
    def decode_sync(self) -> Callable[[bool], bool] | None:
        return self.any_active

    @contextlib.contextmanager
    def gathered(self, optimizer: torch.optim.Optimizer | None = None, *, reference: bool = False
                 ) -> Iterator[None]:
        """The root units (embeddings, final norm, output layer) whole for the phase inside, the
        reference model's too with `reference` (the update; sampling does not use it); the
        decoder layers are gathered by FSDP as each one runs and resharded after it.

        With `optimizer`, the root is resharded before each optimizer step (which changes the
        shards) and gathered again after it, so a second iteration sees the updated weights."""
        roots = [self.units[-1]] + ([self.reference_units[-1]] if reference and self.reference_units else [])
        handles = []
        try:
            _unshard(roots)
            if optimizer is not None:
                handles = [optimizer.register_step_pre_hook(lambda *_: self.units[-1].reshard()),
                           optimizer.register_step_post_hook(lambda *_: self.units[-1].unshard())]
            yield
        finally:
            for handle in handles:
                handle.remove()
            for unit in self.units + self.reference_units:
                unit.reshard()
            _forget_forward_order(self.units + self.reference_units)

    def reduce_grads(self, params: list[torch.nn.Parameter]) -> None:
        """Nothing left to do: FSDP reduce-scattered each unit's gradients into the shards
        during every backward pass (`lockstep` makes every process run the same ones)."""

    def any_active(self, active: bool) -> bool:
        """Whether any process still has rows to decode (one all-reduce)."""
        flag = torch.tensor([1.0 if active else 0.0], device=self.dist._device())
        torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
        return bool(flag.item())

    def loading(self):
        """Loading full tensors into the sharded parameters: each process keeps its slice."""
        from torch.distributed.tensor.experimental import implicit_replication

        return implicit_replication()

    def checkpoint_states(self, optimizer) -> tuple[dict | None, dict | None]:
        """The full model and optimizer state dicts, gathered on every process (a collective),
        returned on process 0; the optimizer's in `optimizer.state_dict()`'s layout."""
        from torch.distributed.checkpoint.state_dict import (
            StateDictOptions,
            get_model_state_dict,
            get_optimizer_state_dict,
        )

        options = StateDictOptions(full_state_dict=True, cpu_offload=True)
        weights = get_model_state_dict(self.model, options=options)
        if not optimizer.state:  # before the first update (a pause at step 0): nothing to gather
            return (weights, optimizer.state_dict()) if self.dist.main else ({}, {})
        optim = get_optimizer_state_dict(self.model, optimizer, options=options)
        if not self.dist.main:
            return {}, {}
        for names in _tied_names(self.model):  # one tensor under each tied name, as state_dict() gives
            for alias in names[1:]:
                if alias in weights and names[0] in weights:
                    weights[alias] = weights[names[0]]
        index = {name: i for i, name in enumerate(_trained_names(self.model))}
        # the hyperparameters (and ids 0..n-1 in the order of the names) exactly as the optimizer states them
        return weights, {"state": {index[name]: value for name, value in optim["state"].items()},
                         "param_groups": optimizer.state_dict()["param_groups"]}

    def load_optimizer_state(self, optimizer, state: dict) -> None:
        """Load a saved `optimizer.state_dict()` (every process reads the file) into the shards."""
        from torch.distributed.checkpoint.state_dict import (
            StateDictOptions,
            set_optimizer_state_dict,
        )

        if not state["state"]:
            # saved before the first update; set_optimizer_state_dict would fill the state in
            # with a zero-gradient step, and the run's first real step would count as its second
            optimizer.load_state_dict(state)
            return
        names = _trained_names(self.model)
        full = {"state": {names[int(i)]: value for i, value in state["state"].items()},
                "param_groups": [{**group, "params": [names[int(i)] for i in group["params"]]}
                                 for group in state["param_groups"]]}
        set_optimizer_state_dict(self.model, optimizer, full, options=StateDictOptions(full_state_dict=True))
        for group, saved in zip(optimizer.param_groups, state["param_groups"], strict=True):
            # the saved hyperparameters as saved (the call above turns the betas tuple into a list)
            group.update({key: value for key, value in saved.items() if key != "params"})


def for_run(sharding: str, dist: Dist, model, ref_model=None) -> Replicated:
    """The run's weight layout; `fsdp` shards `model` (and the reference model) in place."""
    check(sharding, dist)
    return FullySharded(dist, model, ref_model) if sharding == "fsdp" else Replicated(dist)


def check(sharding: str, dist: Dist) -> None:
    """Refuse a sharding this launch cannot do (before the model is loaded)."""
    if sharding not in ("none", "fsdp"):
        raise ConfigError(f"sharding must be none or fsdp (got {sharding!r})")
    if sharding == "fsdp" and not dist.active:
        raise ConfigError(
            "sharding='fsdp' splits the model over the processes of a torchrun launch, and this run has one "
            "process: launch it with torchrun --nproc-per-node N (N > 1; in the web app, STUDIO_GPUS_PER_RUN=N), "
            "or set sharding to none")


# ---------------------------------------------------------------------------------------------


def _shard(model) -> list:
    """fully_shard each decoder layer, then the root (embeddings, final norm, output layer and
    whatever else is left, so tied input/output embeddings stay in one unit); returns the
    FSDP units, root last."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import FSDPModule, fully_shard

    device = next(model.parameters()).device
    # the mesh of the model's device type (FSDP's default is the accelerator's, even for a CPU run)
    mesh = init_device_mesh(device.type, (torch.distributed.get_world_size(),))
    layers = _decoder_layers(model)
    for layer in layers:
        fully_shard(layer, mesh=mesh)
    fully_shard(model, mesh=mesh)
    # FSDP initialises lazily on the first forward and requires that one to be the root's;
    # the log-prob pass calls the trunk directly, so run the root once now (every process).
    with torch.no_grad():
        model(input_ids=torch.zeros((1, 1), dtype=torch.long, device=device), use_cache=False)
    units: list[FSDPModule] = [*layers, model]
    for unit in units:
        unit.reshard()
        # losses are normalised by batch-wide totals: gradients add up over processes (FSDP's
        # default is their mean); summing without a pre-scaled reduction (gloo has none)
        unit.set_gradient_divide_factor(1.0)
        unit.set_force_sum_reduction_for_comms(True)
    # the decoder layers are gathered as each runs and resharded after its forward and its
    # backward (FSDP's default); the root stays whole from `gathered()` to the end of the phase
    # (the log-prob pass reads the output layer's weight directly, and calls the trunk without
    # the root's forward): its gradients are reduce-scattered at the end of each backward pass
    units[-1].set_reshard_after_forward(False, recurse=False)
    units[-1].set_reshard_after_backward(False, recurse=False)
    return units


def _forget_forward_order(units: list) -> None:
    """Drop FSDP's record of the order of the phase's forwards (kept for prefetching in the
    backward that follows; only a backward clears it): a phase without backward (sampling,
    validation: one forward per layer per token) would otherwise grow it step after step.
    Private attributes of torch's FSDP2, so each is looked up with a fallback."""
    for unit in units:
        state = unit._get_fsdp_state() if hasattr(unit, "_get_fsdp_state") else None
        order = getattr(getattr(state, "_comm_ctx", None), "post_forward_order", None)
        if isinstance(order, list):
            order.clear()
        for group in getattr(state, "_fsdp_param_groups", None) or []:
            indices = getattr(group, "_post_forward_indices", None)
            if isinstance(indices, list):
                indices.clear()


def _unshard(units: list) -> None:
    for unit in units:  # the same order on every process
        unit.unshard()


def _decoder_layers(model) -> list[torch.nn.Module]:
    """The repeated blocks of a causal LM: the `ModuleList` the HF config's layer count names."""
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    n = getattr(getattr(inner.config, "text_config", None) or inner.config, "num_hidden_layers", None)
    for module in inner.modules():
        if isinstance(module, torch.nn.ModuleList) and len(module) == n and n:
            return list(module)
    raise ConfigError(f"sharding='fsdp' cannot find the decoder layers of {type(inner).__name__} "
                      f"(no module list of its {n} hidden layers); set sharding to none")


def _trained_names(model) -> list[str]:
    """Names of the trained parameters, in the order the optimizer holds them."""
    return [name for name, p in model.named_parameters() if p.requires_grad]


def _tied_names(model) -> list[list[str]]:
    """Groups of names that are one parameter (tied input and output embeddings)."""
    seen: dict[int, list[str]] = {}
    for name, p in model.named_parameters(remove_duplicate=False):
        seen.setdefault(id(p), []).append(name)
    return [names for names in seen.values() if len(names) > 1]
