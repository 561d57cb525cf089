"""The GRPO objective: group-relative advantages, token log-probs, and the clipped loss.

Shapes: B prompts, G completions per prompt, S = B*G sequences, T completion positions
(right-padded), N = valid completion tokens in the batch, H hidden size, V vocabulary.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from trainer.models import ModelLoadError

STD_EPS = 1e-4  # as in TRL: a group with all-equal rewards gets advantage 0, not a division by 0


# ---------------------------------------------------------------------------------------------
# advantages
# ---------------------------------------------------------------------------------------------


def group_advantages(rewards: torch.Tensor, group_size: int, scaling: str = "group",
                     valid: torch.Tensor | None = None):
    """Advantages relative to the group mean, optionally divided by a std.

    rewards: (S,) ordered group by group. scaling: `group` divides by each group's std
    (GRPO), `batch` by the std of the whole batch, `none` not at all (Dr. GRPO).
    valid: (S,) bool, False for completions the grader could not grade: they take no part in
    the means and stds and get advantage 0 (a flaky judge must not become a training signal).
    Returns (advantages (S,), zero_std (B,) bool: groups with no spread between their graded
    completions, including groups with fewer than two graded ones).
    Stds are unbiased (Bessel-corrected), like TRL.
    """
    if valid is None:
        valid = torch.ones_like(rewards, dtype=torch.bool)
    w = valid.view(-1, group_size).to(rewards.dtype)  # (B, G)
    grouped = rewards.view(-1, group_size) * w  # (B, G)
    n = w.sum(dim=1, keepdim=True)  # (B, 1)
    mean = grouped.sum(dim=1, keepdim=True) / n.clamp(min=1)  # (B, 1)
    var = (((grouped - mean) * w) ** 2).sum(dim=1, keepdim=True) / (n - 1).clamp(min=1)
    std = var.sqrt()  # (B, 1)
    advantages = (grouped - mean) * w
    if scaling == "group":
        advantages = advantages / (std + STD_EPS)
    elif scaling == "batch":
        flat = rewards[valid]
        advantages = advantages / ((flat.std() if flat.numel() > 1 else flat.new_zeros(())) + STD_EPS)
    elif scaling != "none":
        raise ValueError(f"unknown reward scaling {scaling!r}")
    zero_std = torch.isclose(std.squeeze(1), torch.zeros_like(std.squeeze(1))) | (n.squeeze(1) < 2)
    advantages = advantages.masked_fill(zero_std[:, None], 0.0)
    return advantages.reshape(-1), zero_std


# ---------------------------------------------------------------------------------------------
# log-probabilities, chunked over tokens
# ---------------------------------------------------------------------------------------------


def chunked_logprobs(
    hidden: torch.Tensor,
    targets: torch.Tensor,
    lm_head: torch.nn.Module,
    *,
    temperature: float = 1.0,
    chunk_tokens: int = 512,
    with_entropy: bool = True,
    logit_fn: Callable[[torch.Tensor], torch.Tensor] | None = None,
):
    """log p(target) and the entropy of the next-token distribution, `chunk_tokens` rows at a time.

    hidden: (N, H) final hidden states that predict `targets`: (N,). The (N, V) logits never
    exist at once: each chunk's logits are built, reduced and dropped; under autograd each
    chunk is checkpointed when there are several, so backward rebuilds them one chunk at a
    time as well (a lone chunk over float32 weights keeps its logits for backward: the same
    peak as rebuilding them, one output-layer pass less).
    The output layer runs in float32 whatever the model's dtype or an enclosing autocast (a
    bf16 log-softmax input loses the small differences between likely tokens), and
    `logit_fn` is the model's own post-processing of its logits (soft-capping, scaling; see
    `logit_postprocess`), so the distribution trained is the one sampled.
    Returns (logp (N,), entropy (N,) detached, or None); for N = 0 under autograd, empty
    tensors that are still part of the graph.
    """
    # (V, H), converted to float32 inside each chunk: a no-op for trained (float32) weights, and
    # for a frozen bf16/fp16 output layer (LoRA on a low-precision base) no float32 copy of it
    # (up to V*H*4 bytes: 2 GB for a 7B model's vocabulary) stays alive from forward to backward.
    weight = lm_head.weight
    bias = None if getattr(lm_head, "bias", None) is None else lm_head.bias
    logps, entropies = [], []
    needs_grad = torch.is_grad_enabled() and (hidden.requires_grad or weight.requires_grad)
    # several chunks are rebuilt one at a time in backward; so is a lone chunk over a converted
    # output layer (saving its logits would save the float32 copy of the weights with them)
    recompute = needs_grad and (hidden.shape[0] > chunk_tokens or weight.dtype != torch.float32)
    # no tokens under autograd: one empty chunk, so the (zero) result is still a function of
    # `hidden` and a backward through it reaches every layer (FSDP needs every process's backward)
    for start in range(0, hidden.shape[0] or int(needs_grad), chunk_tokens):
        h = hidden[start:start + chunk_tokens]  # (n, H)
        t = targets[start:start + chunk_tokens]  # (n,)
        side: dict = {}  # entropy is a metric: computed in the first pass only, not in recompute
        args = (h, t, weight, bias, temperature, with_entropy, side, logit_fn)
        if recompute:
            logp = checkpoint(_chunk, *args, use_reentrant=False)
        else:
            logp = _chunk(*args)
        logps.append(logp)
        if with_entropy:
            entropies.append(side["entropy"])
    if not logps:
        empty = hidden.new_zeros(0, dtype=torch.float32)
        return empty, (empty if with_entropy else None)
    return torch.cat(logps), (torch.cat(entropies) if with_entropy else None)


def _chunk(h, t, weight, bias, temperature, with_entropy, side, logit_fn):
    with _no_autocast(h.device.type):
        logits = F.linear(h.float(), weight.float(), None if bias is None else bias.float())  # (n, V) float32
        if logit_fn is not None:
            logits = logit_fn(logits)
        logits = logits / temperature
        logz = torch.logsumexp(logits, dim=-1)  # (n,)
        logp = logits.gather(-1, t.unsqueeze(-1)).squeeze(-1) - logz  # (n,)
        if with_entropy and "entropy" not in side:
            with torch.no_grad():
                side["entropy"] = logz - (F.softmax(logits, dim=-1) * logits).sum(-1)
    return logp


def _no_autocast(device_type: str):
    if torch.is_autocast_enabled(device_type):
        return torch.autocast(device_type, enabled=False)
    return contextlib.nullcontext()


def logit_postprocess(config) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """What the model's forward does to `lm_head(hidden)` before returning logits, or None.

    Known architectures only (Gemma 2/3 and others with final-logit soft-capping, Granite's
    logit division, HyperCLOVA X's and Cohere's logit multiplication). `verify_logits` checks
    the result against the model's own forward, so an architecture this table does not know
    is refused before training rather than trained on the wrong distribution.
    """
    config = getattr(config, "text_config", None) or config
    model_type = str(getattr(config, "model_type", ""))
    steps: list[Callable[[torch.Tensor], torch.Tensor]] = []
    scaling = getattr(config, "logits_scaling", None)
    if isinstance(scaling, int | float) and scaling not in (0, 1):
        if model_type.startswith("granite"):
            steps.append(lambda x, s=float(scaling): x / s)
        else:
            steps.append(lambda x, s=float(scaling): x * s)
    scale = getattr(config, "logit_scale", None)
    if model_type.startswith("cohere") and isinstance(scale, int | float) and scale != 1:
        steps.append(lambda x, s=float(scale): x * s)
    cap = getattr(config, "final_logit_softcapping", None)
    if isinstance(cap, int | float) and cap > 0:
        steps.append(lambda x, c=float(cap): torch.tanh(x / c) * c)
    if not steps:
        return None

    def apply(x: torch.Tensor) -> torch.Tensor:
        for step in steps:
            x = step(x)
        return x

    return apply


class UnsupportedModelError(ModelLoadError):
    """A model whose output layer the trainer cannot reproduce."""


@torch.no_grad()
def verify_logits(model, *, tokens: int = 8) -> None:
    """Check that `lm_head(trunk(x))` + `logit_postprocess` equals the model's own logits.

    Training computes log-probs from the trunk's hidden states (so the (tokens, vocab)
    logits can be built chunk by chunk); sampling uses the model's forward. If the two
    disagree, the trained distribution is not the sampled one, so refuse with a message.
    """
    trunk, lm_head = split_model(model)
    device = next(model.parameters()).device
    vocab = lm_head.weight.shape[0]
    ids = torch.randint(0, vocab, (1, tokens), generator=torch.Generator().manual_seed(0)).to(device)
    ours = F.linear(trunk(input_ids=ids).last_hidden_state.float(), lm_head.weight.float(),
                    None if getattr(lm_head, "bias", None) is None else lm_head.bias.float())
    fn = logit_postprocess(model.config)
    if fn is not None:
        ours = fn(ours)
    theirs = model(input_ids=ids).logits.float()
    scale = theirs.abs().max().item() + 1e-6
    low_precision = lm_head.weight.dtype in (torch.bfloat16, torch.float16)
    tolerance = (3e-2 if low_precision else 1e-4) * max(scale, 1.0)
    gap = (ours - theirs).abs().max().item()
    if not gap <= tolerance:
        kind = getattr(model.config, "model_type", type(model).__name__)
        raise UnsupportedModelError(
            f"this base model's architecture ({kind}) changes its output scores in a way the trainer does "
            f"not reproduce (largest difference {gap:.3g}); training it would learn a different "
            "distribution from the one it samples, so it is not supported yet")


def uses_sliding_window(config) -> bool:
    """Whether any attention layer of the model only sees a sliding window of past tokens."""
    config = getattr(config, "text_config", None) or config
    layer_types = getattr(config, "layer_types", None)
    if layer_types:
        return any("sliding" in str(t) for t in layer_types)
    return bool(getattr(config, "sliding_window", None)) and getattr(config, "use_sliding_window", True) is not False


def split_model(model):
    """(trunk, lm_head) of a causal LM, looking through a PEFT wrapper.

    LoRA layers are injected in place, so calling the trunk still runs the adapters.
    """
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    trunk = getattr(inner, inner.base_model_prefix)
    return trunk, inner.get_output_embeddings()


def completion_logprobs(
    model,
    prompt_ids: torch.Tensor,
    prompt_mask: torch.Tensor,
    completion_ids: torch.Tensor,
    completion_mask: torch.Tensor,
    *,
    temperature: float,
    chunk_tokens: int = 512,
    share_prompt: bool = True,
    share_chunk_rows: int = 8,
    with_entropy: bool = True,
):
    """Per-token log-probs (and entropies) of the completions under `model`.

    prompt_ids/prompt_mask: (b, P) left-padded, one row per prompt. completion_ids/mask:
    (s, T) right-padded, s = b*G rows ordered group by group.

    With `share_prompt`, each prompt is run once and its key/value cache is repeated G
    times for the completions: the same function as running the G concatenated
    sequences, with G-1 fewer copies of the prompt to forward and backpropagate through.
    Without it (needed under gradient checkpointing, which disables the cache), every
    sequence is prompt + completion. Returns (logp (s, T), entropy (s, T) or None), 0 on padding.
    """
    from transformers import DynamicCache

    b, _ = prompt_ids.shape
    s, T = completion_ids.shape
    group = s // b
    trunk, lm_head = split_model(model)
    if uses_sliding_window(trunk.config):
        # the copied prompt cache of a sliding-window layer is cropped to the window, and the
        # completions then attend to the wrong keys (measured: log-probs off by 0.07)
        share_prompt = False
    prompt_pos = (prompt_mask.cumsum(-1) - 1).clamp(min=0)  # (b, P)
    prompt_len = prompt_mask.sum(-1)  # (b,)
    comp_pos = prompt_len.repeat_interleave(group)[:, None] + torch.arange(T, device=prompt_ids.device)
    if share_prompt:
        cache = DynamicCache(config=trunk.config)
        out = trunk(input_ids=prompt_ids, attention_mask=prompt_mask, position_ids=prompt_pos,
                    past_key_values=cache, use_cache=True)
        last = out.last_hidden_state[:, -1]  # (b, H): left padding puts every prompt's end here
        prompt_kv = [(layer.keys, layer.values) for layer in cache.layers]  # (b, heads, P, d) each
        # Completions run in chunks of similar length (longest first), each only as wide as
        # its longest member: right padding would otherwise be forwarded and backpropagated.
        lengths = completion_mask.sum(-1)  # (s,)
        order = torch.argsort(lengths, descending=True, stable=True)
        hidden = last.new_zeros(s, T, last.shape[-1])  # (s, T, H)
        for rows in order.split(share_chunk_rows):
            src = rows // group  # (c,) the prompt of each row
            width = max(int(lengths[rows].max()), 1)
            chunk_cache = DynamicCache(config=trunk.config)
            for i, (k, v) in enumerate(prompt_kv):
                # index_select, not k[src]: the backward of advanced indexing accumulates with
                # atomic adds on a multi-threaded CPU, so runs of one seed drifted apart (1e-7 at
                # step 3, other answers by step 4); index_select's backward adds in a fixed order
                chunk_cache.update(k.index_select(0, src), v.index_select(0, src), i)
            attn = torch.cat([prompt_mask[src], torch.ones(len(rows), width, dtype=prompt_mask.dtype,
                                                            device=prompt_mask.device)], 1)
            h = trunk(input_ids=completion_ids[rows, :width], attention_mask=attn,
                      position_ids=comp_pos[rows, :width], past_key_values=chunk_cache,
                      use_cache=True).last_hidden_state  # (c, width, H)
            # position t of the completion is predicted by the hidden state one before it
            pred = torch.cat([last.index_select(0, src)[:, None], h[:, :width - 1]], 1)  # (c, width, H)
            hidden = hidden.index_put((rows,), F.pad(pred, (0, 0, 0, T - width)))
    else:
        P = prompt_ids.shape[1]
        ids = torch.cat([prompt_ids.repeat_interleave(group, 0), completion_ids], 1)  # (s, P+T)
        attn = torch.cat([prompt_mask.repeat_interleave(group, 0), torch.ones_like(completion_mask)], 1)
        pos = torch.cat([prompt_pos.repeat_interleave(group, 0), comp_pos], 1)
        hidden = trunk(input_ids=ids, attention_mask=attn, position_ids=pos,
                       use_cache=False).last_hidden_state[:, P - 1:P - 1 + T]  # (s, T, H)
    mask = completion_mask.bool()
    logp_flat, ent_flat = chunked_logprobs(hidden[mask], completion_ids[mask], lm_head,
                                           temperature=temperature, chunk_tokens=chunk_tokens,
                                           with_entropy=with_entropy,
                                           logit_fn=logit_postprocess(model.config))  # (N,)
    logp = torch.zeros(s, T, dtype=logp_flat.dtype, device=logp_flat.device).masked_scatter(mask, logp_flat)
    entropy = None
    if with_entropy:
        entropy = torch.zeros(s, T, dtype=ent_flat.dtype, device=ent_flat.device).masked_scatter(mask, ent_flat)
    return logp, entropy


# ---------------------------------------------------------------------------------------------
# the clipped policy-gradient loss
# ---------------------------------------------------------------------------------------------


@dataclass
class LossStats:
    """Sums over valid tokens, so micro-batches add up; divide by `tokens` for means.

    The sums are 0-d tensors on the loss's device (no host sync per micro-batch): `floats()`
    reads them once, after the last micro-batch."""

    tokens: float | torch.Tensor = 0.0
    kl_sum: float | torch.Tensor = 0.0
    clip_low_sum: float | torch.Tensor = 0.0
    clip_high_sum: float | torch.Tensor = 0.0
    clip_region_sum: float | torch.Tensor = 0.0

    def add(self, other: LossStats) -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def floats(self) -> list[float]:
        """tokens, kl_sum, clip_low_sum, clip_high_sum, clip_region_sum as Python floats."""
        return [float(getattr(self, name)) for name in self.__dataclass_fields__]


def policy_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    *,
    loss_type: str,
    epsilon_low: float,
    epsilon_high: float,
    max_completion_tokens: int,
    beta: float = 0.0,
    ref_logp: torch.Tensor | None = None,
    num_sequences: int | None = None,
    num_tokens: float | None = None,
):
    """The GRPO surrogate loss for a (micro-)batch, and token statistics.

    logp, old_logp, ref_logp, mask: (s, T); advantages: (s,).
    Per token: -min(r*A, clip(r, 1-eps_low, 1+eps_high)*A) + beta * k3-KL, r = exp(logp - old_logp),
    k3 = exp(ref - logp) - (ref - logp) - 1. Normalisation (as TRL):
      grpo:    mean over each sequence's tokens, then mean over sequences
      dr_grpo: sum / (sequences * max_completion_tokens)
      dapo:    sum / valid tokens in the whole batch
    `num_sequences`/`num_tokens` are the totals of the full batch when this is one
    micro-batch of several, so the micro-batch losses add up to the full-batch loss.
    """
    mask = mask.to(logp.dtype)
    num_sequences = num_sequences or logp.shape[0]
    num_tokens = num_tokens if num_tokens is not None else mask.sum().item()
    adv = advantages.unsqueeze(1)  # (s, 1)
    ratio = torch.exp(logp - old_logp)  # (s, T)
    clipped = torch.clamp(ratio, 1 - epsilon_low, 1 + epsilon_high)
    per_token = -torch.min(ratio * adv, clipped * adv)  # (s, T)
    kl = None
    if beta != 0.0:
        if ref_logp is None:
            raise ValueError("beta > 0 needs ref_logp")
        delta = ref_logp - logp
        kl = torch.exp(delta) - delta - 1  # (s, T) k3 estimator of KL(policy || ref)
        per_token = per_token + beta * kl
    masked = per_token * mask
    if loss_type == "grpo":
        loss = (masked.sum(-1) / mask.sum(-1).clamp(min=1.0)).sum() / num_sequences
    elif loss_type == "dr_grpo":
        loss = masked.sum() / (num_sequences * max_completion_tokens)
    elif loss_type == "dapo":
        loss = masked.sum() / max(num_tokens, 1.0)
    else:
        raise ValueError(f"unknown loss type {loss_type!r}")

    with torch.no_grad():
        low = (ratio < 1 - epsilon_low) & (adv < 0)
        high = (ratio > 1 + epsilon_high) & (adv > 0)
        stats = LossStats(
            tokens=mask.sum(),
            kl_sum=(kl * mask).sum() if kl is not None else 0.0,
            clip_low_sum=(low * mask).sum(),
            clip_high_sum=(high * mask).sum(),
            clip_region_sum=((low | high) * mask).sum(),
        )
    return loss, stats
