"""Rollouts: turn chat prompts into token ids and sample G completions per prompt.

Generation is our own small loop rather than `model.generate`, for three reasons:
the prompt is prefilled once per group and its key/value cache repeated G times; rows that
hit EOS are dropped from the batch (and their cache) so the rest decode faster; and a
callback hands each finished completion to the graders while the others keep decoding.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch


@dataclass
class Rollout:
    """Completions for B prompts x G samples, rows ordered group by group (S = B*G)."""

    prompt_ids: torch.Tensor  # (B, P) left-padded
    prompt_mask: torch.Tensor  # (B, P)
    completion_ids: torch.Tensor  # (S, T) right-padded with the pad id
    completion_mask: torch.Tensor  # (S, T) 1 up to and including the EOS token
    truncated: torch.Tensor  # (S,) bool: stopped by max_new_tokens, not by EOS
    group_size: int

    @property
    def completion_lengths(self) -> torch.Tensor:
        return self.completion_mask.sum(-1)  # (S,)


def encode_prompt(tokenizer, messages: list[dict], *, tools=None, max_tokens: int) -> tuple[list[int], bool]:
    """Token ids of a chat prompt with the generation prompt appended; (ids, was_cut).

    Over-long prompts keep their last `max_tokens` tokens: the question at the end matters
    more than the start of a long system prompt.
    """
    if getattr(tokenizer, "chat_template", None):
        kwargs = {"tools": tools} if tools else {}
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True, **kwargs)
    else:  # a base model without a template: a plain transcript
        text = "".join(f"{m['role']}: {_content_text(m.get('content'))}\n" for m in messages) + "assistant: "
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    if len(ids) > max_tokens:
        return ids[-max_tokens:], True
    return ids, False


def _content_text(content) -> str:
    if isinstance(content, list):  # OpenAI content parts
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return "" if content is None else str(content)


def left_pad(seqs: list[list[int]], pad_id: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        if s:
            ids[i, width - len(s):] = torch.tensor(s)
            mask[i, width - len(s):] = 1
    return ids.to(device), mask.to(device)


def row_uniforms(seeds: list[int], steps: int) -> torch.Tensor:
    """(S, steps) uniform numbers, row i drawn from its own generator seeded with seeds[i].

    Sampling reads row i's number for step t whatever else is in the batch, so a completion
    depends on its seed only: not on which rows share its batch, which process samples it,
    or when the other rows finish.
    """
    return torch.stack([torch.rand(steps, generator=torch.Generator().manual_seed(int(s) % (2**63)))
                        for s in seeds]) if seeds else torch.zeros(0, steps)


def sample_next(logits: torch.Tensor, *, temperature: float, top_p: float,
                generator: torch.Generator | None, uniforms: torch.Tensor | None = None) -> torch.Tensor:
    """One token per row from logits (n, V): greedy when temperature is 0.

    `uniforms` (n,): the random numbers to use, one per row (else drawn from `generator`)."""
    if temperature == 0:
        return logits.argmax(-1)
    logits = logits.float() / temperature
    if top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=True)
        cum = torch.softmax(sorted_logits, -1).cumsum(-1)
        drop = cum - torch.softmax(sorted_logits, -1) > top_p  # keep the token that crosses top_p
        sorted_logits = sorted_logits.masked_fill(drop, float("-inf"))
        logits = torch.full_like(logits, float("-inf")).scatter(-1, order, sorted_logits)
    # Inverse-CDF sampling: one uniform per row. torch.multinomial draws an exponential per
    # vocabulary entry, which was 10% of decode time for a 49k vocabulary on CPU.
    cdf = torch.softmax(logits, -1).cumsum(-1)  # (n, V)
    if uniforms is None:
        uniforms = torch.rand(cdf.shape[0], generator=generator, device=cdf.device)
    u = uniforms.to(cdf.device, cdf.dtype)[:, None] * cdf[:, -1:]
    return torch.searchsorted(cdf, u, right=True).squeeze(-1).clamp(max=cdf.shape[-1] - 1)


@torch.no_grad()
def generate(
    model,
    prompts: list[list[int]],
    *,
    group_size: int,
    max_new_tokens: int,
    eos_ids: set[int],
    pad_id: int,
    temperature: float = 1.0,
    top_p: float = 1.0,
    generator: torch.Generator | None = None,
    seeds: list[int] | None = None,
    on_finished: Callable[[int, list[int], bool], None] | None = None,
    sync: Callable[[bool], bool] | None = None,
) -> Rollout:
    """Sample `group_size` completions for each prompt with a shared-prefix KV cache.

    `seeds`: one per completion row (S = B*G, group by group); each row then samples from its
    own random stream (see `row_uniforms`) and `generator` is not used.
    `on_finished(row, token_ids, truncated)` is called as soon as a row is complete (EOS
    included in token_ids), so grading can start while other rows still decode.
    `sync(this process still decodes) -> any process still does`: for a model sharded over
    processes (FSDP), whose every forward is a collective: each process then keeps making one
    forward per step until every process's rows are done, a one-token dummy forward when it has
    none left (or no prompts at all), so all make the same forwards in the same order.
    """
    from transformers import DynamicCache

    device = next(model.parameters()).device

    def dummy_forward() -> None:  # a result nobody reads: only the forward's collectives count
        model(input_ids=torch.full((1, 1), pad_id, dtype=torch.long, device=device), use_cache=False)

    if not prompts:
        if sync is None:
            raise ValueError("generate: no prompts")
        dummy_forward()  # the others' prefill
        for _ in range(max_new_tokens):
            if not sync(False):
                break
            dummy_forward()
        empty = torch.zeros((0, 1), dtype=torch.long, device=device)
        return Rollout(prompt_ids=empty, prompt_mask=empty, completion_ids=empty, completion_mask=empty,
                       truncated=torch.zeros(0, dtype=torch.bool), group_size=group_size)
    B, G = len(prompts), group_size
    S = B * G
    prompt_ids, prompt_mask = left_pad(prompts, pad_id, device)  # (B, P)
    P = prompt_ids.shape[1]
    eos = torch.tensor(sorted(eos_ids), device=device)
    uniforms = None
    if seeds is not None:
        if len(seeds) != S:
            raise ValueError(f"generate: {len(seeds)} seeds for {S} completions")
        if temperature > 0:  # greedy decoding draws nothing
            uniforms = row_uniforms(seeds, max_new_tokens).to(device)  # (S, T)

    # --- prefill: each prompt once, then the cache is repeated for the G samples ----------
    cache = DynamicCache(config=model.config)
    position = (prompt_mask.cumsum(-1) - 1).clamp(min=0)  # (B, P)
    out = model(input_ids=prompt_ids, attention_mask=prompt_mask, position_ids=position,
                past_key_values=cache, use_cache=True, logits_to_keep=1)
    cache.batch_repeat_interleave(G)
    logits = out.logits[:, -1].repeat_interleave(G, 0)  # (S, V)
    attn = torch.cat([prompt_mask.repeat_interleave(G, 0),
                      torch.ones(S, max_new_tokens, dtype=torch.long, device=device)], 1)  # (S, P+T)
    next_pos = prompt_mask.sum(-1).repeat_interleave(G)  # (S,)

    # --- decode: active rows only; finished rows leave the batch and the cache ------------
    tokens = torch.full((S, max_new_tokens), pad_id, dtype=torch.long, device=device)
    lengths = torch.zeros(S, dtype=torch.long)
    active = torch.arange(S, device=device)  # (n,) original row of each batch row
    done = torch.zeros(S, dtype=torch.bool)
    for t in range(max_new_tokens):
        if active.numel():  # (empty only when synced: this process done, others decoding)
            new = sample_next(logits, temperature=temperature, top_p=top_p, generator=generator,
                              uniforms=None if uniforms is None else uniforms[active, t])  # (n,)
            tokens[active, t] = new
            finished = torch.isin(new, eos)  # (n,)
            if t == max_new_tokens - 1:
                finished = torch.ones_like(finished)
            if finished.any():
                for i in finished.nonzero().flatten().tolist():
                    row = int(active[i])
                    lengths[row] = t + 1
                    done[row] = True
                    if on_finished is not None:
                        hit_eos = bool(torch.isin(new[i], eos))
                        on_finished(row, tokens[row, :t + 1].tolist(), not hit_eos)
                keep = (~finished).nonzero().flatten()  # (n',)
                if keep.numel() == 0:
                    if sync is None:
                        break
                    active = active[keep]
                else:
                    cache.batch_select_indices(keep)
                    active, new = active[keep], new[keep]
        if sync is not None:
            if not sync(active.numel() > 0):
                break
            if not active.numel():
                dummy_forward()
                continue
        out = model(input_ids=new[:, None], attention_mask=attn[active, :P + t + 1],
                    position_ids=(next_pos[active] + t)[:, None], past_key_values=cache, use_cache=True)
        logits = out.logits[:, -1]  # (n, V)

    # --- pack: right-padded completions with their masks ----------------------------------
    T = int(lengths.max())
    steps = torch.arange(T)
    completion_mask = (steps[None, :] < lengths[:, None]).long().to(device)  # (S, T)
    last = tokens[torch.arange(S), (lengths - 1).clamp(min=0).to(device)]
    truncated = ~torch.isin(last, eos).cpu()
    return Rollout(prompt_ids=prompt_ids, prompt_mask=prompt_mask,
                   completion_ids=tokens[:, :T].masked_fill(completion_mask == 0, pad_id),
                   completion_mask=completion_mask, truncated=truncated, group_size=G)


def pack_rollout(prompts: list[list[int]], completions: list[list[int]], truncated: list[bool], *,
                 group_size: int, pad_id: int, device) -> Rollout:
    """A `Rollout` from token lists: B prompts and their B*G completions (group by group).

    Used to train on the groups a step kept, which may come from several sampling rounds."""
    prompt_ids, prompt_mask = left_pad(prompts, pad_id, device)  # (B, P)
    T = max([len(c) for c in completions] + [1])
    ids = torch.full((len(completions), T), pad_id, dtype=torch.long)
    mask = torch.zeros((len(completions), T), dtype=torch.long)
    for i, c in enumerate(completions):
        ids[i, :len(c)] = torch.tensor(c, dtype=torch.long)
        mask[i, :len(c)] = 1
    return Rollout(prompt_ids=prompt_ids, prompt_mask=prompt_mask, completion_ids=ids.to(device),
                   completion_mask=mask.to(device), truncated=torch.tensor(truncated, dtype=torch.bool),
                   group_size=group_size)
