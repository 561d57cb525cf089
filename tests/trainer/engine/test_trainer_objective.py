import math

import pytest
import torch

from trainer.objective import chunked_logprobs, completion_logprobs, group_advantages, policy_loss

EPS = 1e-4


def test_group_advantages_group_scaling_by_hand():
    rewards = torch.tensor([1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0])
    adv, zero_std = group_advantages(rewards, 4, "group")
    std = math.sqrt(1 / 3)  # unbiased std of [1, 0, 0, 1]
    expected = [0.5 / (std + EPS), -0.5 / (std + EPS), -0.5 / (std + EPS), 0.5 / (std + EPS), 0, 0, 0, 0]
    assert adv.tolist() == pytest.approx(expected, abs=1e-6)
    assert zero_std.tolist() == [False, True]


def test_group_advantages_batch_and_none_by_hand():
    rewards = torch.tensor([1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0])
    batch_std = math.sqrt((2 * 0.75**2 + 6 * 0.25**2) / 7)
    adv, _ = group_advantages(rewards, 4, "batch")
    assert adv[:4].tolist() == pytest.approx([0.5 / (batch_std + EPS), -0.5 / (batch_std + EPS)] * 1
                                             + [-0.5 / (batch_std + EPS), 0.5 / (batch_std + EPS)], abs=1e-6)
    adv, _ = group_advantages(rewards, 4, "none")
    assert adv.tolist() == pytest.approx([0.5, -0.5, -0.5, 0.5, 0, 0, 0, 0])


def _hand_case():
    # seq 0: ratios 1.0, 1.5, 0.5 with A = +1; seq 1: ratios 0.5, 1.5 (+ padding) with A = -1
    old = torch.zeros(2, 3)
    logp = torch.log(torch.tensor([[1.0, 1.5, 0.5], [0.5, 1.5, 1.0]]))
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]])
    adv = torch.tensor([1.0, -1.0])
    # per token -min(rA, clip(r, 0.8, 1.2)A):  seq 0: -1.0, -1.2, -0.5   seq 1: 0.8, 1.5
    return logp, old, adv, mask


@pytest.mark.parametrize(
    ("loss_type", "expected"),
    [
        ("grpo", ((-2.7 / 3) + (2.3 / 2)) / 2),  # mean per sequence, then over sequences
        ("dr_grpo", (-2.7 + 2.3) / (2 * 4)),  # sum / (sequences * max_completion_tokens=4)
        ("dapo", (-2.7 + 2.3) / 5),  # sum / valid tokens
    ],
)
def test_policy_loss_by_hand(loss_type, expected):
    logp, old, adv, mask = _hand_case()
    loss, stats = policy_loss(logp, old, adv, mask, loss_type=loss_type, epsilon_low=0.2, epsilon_high=0.2,
                              max_completion_tokens=4)
    assert loss.item() == pytest.approx(expected, abs=1e-6)
    assert (stats.tokens, stats.clip_low_sum, stats.clip_high_sum, stats.clip_region_sum) == (5, 1, 1, 2)


def test_policy_loss_kl_term_by_hand():
    logp = torch.tensor([[math.log(0.5)]])
    ref = torch.tensor([[math.log(0.25)]])
    delta = math.log(0.25) - math.log(0.5)
    k3 = math.exp(delta) - delta - 1
    loss, stats = policy_loss(logp, logp.detach(), torch.tensor([0.0]), torch.ones(1, 1), loss_type="dapo",
                              epsilon_low=0.2, epsilon_high=0.2, max_completion_tokens=1, beta=0.1, ref_logp=ref)
    assert loss.item() == pytest.approx(0.1 * k3)
    assert stats.kl_sum == pytest.approx(k3)


def trl_loss(per_token_logps, old_per_token_logps, ref_per_token_logps, advantages, completion_mask,
             *, loss_type, epsilon_low, epsilon_high, beta, max_completion_length):
    """TRL 1.x GRPOTrainer._compute_loss (token-level importance sampling), written out."""
    advantages = advantages.unsqueeze(1)
    coef_1 = torch.exp(per_token_logps - old_per_token_logps)
    coef_2 = torch.clamp(coef_1, 1 - epsilon_low, 1 + epsilon_high)
    per_token_loss1 = coef_1 * advantages
    per_token_loss2 = coef_2 * advantages
    per_token_loss = -torch.min(per_token_loss1, per_token_loss2)
    if beta != 0.0:
        per_token_kl = (torch.exp(ref_per_token_logps - per_token_logps)
                        - (ref_per_token_logps - per_token_logps) - 1)
        per_token_loss = per_token_loss + beta * per_token_kl
    mask = completion_mask
    if loss_type == "grpo":
        return ((per_token_loss * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)).mean()
    if loss_type == "dr_grpo":
        return (per_token_loss * mask).sum() / (per_token_loss.size(0) * max_completion_length)
    if loss_type == "dapo":  # num_items_in_batch = valid tokens of the generation batch
        return (per_token_loss * mask).sum() / mask.sum().clamp(min=1.0)
    raise ValueError(loss_type)


@pytest.mark.parametrize("loss_type", ["grpo", "dr_grpo", "dapo"])
@pytest.mark.parametrize("beta", [0.0, 0.04])
def test_policy_loss_matches_trl_formula_and_gradient(loss_type, beta):
    g = torch.Generator().manual_seed(0)
    S, T = 6, 7
    logp = (-torch.rand(S, T, generator=g) * 3).requires_grad_()
    old = logp.detach() + torch.randn(S, T, generator=g) * 0.3
    ref = logp.detach() + torch.randn(S, T, generator=g) * 0.3
    adv = torch.randn(S, generator=g)
    mask = (torch.arange(T)[None] < torch.tensor([7, 3, 5, 1, 7, 6])[:, None]).float()
    kw = dict(loss_type=loss_type, epsilon_low=0.2, epsilon_high=0.28, beta=beta)
    ours, _ = policy_loss(logp, old, adv, mask, ref_logp=ref, max_completion_tokens=8, **kw)
    (grad_ours,) = torch.autograd.grad(ours, logp)
    theirs = trl_loss(logp, old, ref, adv, mask, max_completion_length=8, **kw)
    (grad_theirs,) = torch.autograd.grad(theirs, logp)
    assert ours.item() == pytest.approx(theirs.item(), abs=1e-6)
    assert torch.allclose(grad_ours, grad_theirs, atol=1e-7)

    # micro-batches with the batch totals add up to the full-batch loss
    parts = [policy_loss(logp[a:b], old[a:b], adv[a:b], mask[a:b], ref_logp=ref[a:b], max_completion_tokens=8,
                         num_sequences=S, num_tokens=mask.sum().item(), **kw)[0] for a, b in [(0, 2), (2, 6)]]
    assert sum(p.item() for p in parts) == pytest.approx(theirs.item(), abs=1e-6)


def test_chunked_logprobs_equal_full_log_softmax_with_gradients():
    torch.manual_seed(0)
    head = torch.nn.Linear(8, 50, bias=False)
    hidden = torch.randn(11, 8, requires_grad=True)
    targets = torch.randint(0, 50, (11,))
    logp, entropy = chunked_logprobs(hidden, targets, head, temperature=0.7, chunk_tokens=3)
    logp.sum().backward()
    grad_chunked, head_grad_chunked = hidden.grad.clone(), head.weight.grad.clone()
    hidden.grad, head.weight.grad = None, None

    full = torch.log_softmax(head(hidden) / 0.7, -1)
    ref = full.gather(-1, targets[:, None]).squeeze(-1)
    ref.sum().backward()
    assert torch.allclose(logp, ref, atol=1e-6)
    assert torch.allclose(entropy, -(full.exp() * full).sum(-1), atol=1e-5)
    assert not entropy.requires_grad
    assert torch.allclose(grad_chunked, hidden.grad, atol=1e-6)
    assert torch.allclose(head_grad_chunked, head.weight.grad, atol=1e-6)


@pytest.mark.parametrize("chunk_tokens", [3, 64])  # several chunks (recomputed in backward), one chunk
def test_a_frozen_bf16_output_layer_is_not_kept_as_a_float32_copy_for_backward(chunk_tokens):
    """LoRA on a bf16 base: the log-probs are float32 computations of the bf16 weights, but no
    float32 copy of the (V, H) output layer is saved for backward (2 GB for a 7B vocabulary)."""
    torch.manual_seed(0)
    head = torch.nn.Linear(8, 50, bias=False).to(torch.bfloat16).requires_grad_(False)
    hidden = torch.randn(11, 8, requires_grad=True)
    targets = torch.randint(0, 50, (11,))
    saved = []

    def pack(t):
        saved.append((t.dtype, t.numel()))
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        logp, _ = chunked_logprobs(hidden, targets, head, temperature=0.7, chunk_tokens=chunk_tokens)
    assert saved and (torch.float32, 50 * 8) not in saved  # (V, H) or its transpose
    logp.sum().backward()
    full = torch.log_softmax(hidden @ head.weight.float().T / 0.7, -1).gather(-1, targets[:, None]).squeeze(-1)
    assert torch.allclose(logp, full, atol=1e-6)
    grad = torch.autograd.grad(full.sum(), hidden)[0]
    assert torch.allclose(hidden.grad, grad, atol=1e-6)


def test_shared_prompt_pass_equals_full_sequences(tiny_model):
    """Prefilling each prompt once and repeating its cache gives the same log-probs and grads."""
    from peft import LoraConfig, get_peft_model

    from trainer.models import load_model
    from trainer.rollout import encode_prompt, generate

    model, tok = load_model(str(tiny_model))
    torch.manual_seed(0)
    model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"],
                                             init_lora_weights=False))
    prompts = [encode_prompt(tok, [{"role": "user", "content": c}], max_tokens=64)[0] for c in ["hi", "a longer one"]]
    r = generate(model, prompts, group_size=3, max_new_tokens=5, eos_ids={tok.eos_token_id},
                 pad_id=tok.pad_token_id, generator=torch.Generator().manual_seed(0))
    results = []
    for share in (True, False):
        model.zero_grad()
        logp, ent = completion_logprobs(model, r.prompt_ids, r.prompt_mask, r.completion_ids, r.completion_mask,
                                        temperature=1.0, share_prompt=share, chunk_tokens=4)
        logp.sum().backward()
        grads = [p.grad.clone() for p in model.parameters() if p.requires_grad]
        results.append((logp.detach(), ent, grads))
    (a, ea, ga), (b, eb, gb) = results
    assert torch.isfinite(a).all() and (a[r.completion_mask == 0] == 0).all()
    assert torch.allclose(a, b, atol=1e-5) and torch.allclose(ea, eb, atol=1e-5)
    assert all(torch.allclose(x, y, atol=1e-5) for x, y in zip(ga, gb, strict=True))

    # and they equal a plain forward of the concatenated sequence
    row = 4  # second prompt, second sample
    n = int(r.completion_mask[row].sum())
    ids = torch.tensor([prompts[1] + r.completion_ids[row, :n].tolist()])
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0, len(prompts[1]) - 1:-1]
    plain = torch.log_softmax(logits, -1).gather(-1, ids[0, len(prompts[1]):, None]).squeeze(-1)
    assert torch.allclose(a[row, :n], plain, atol=1e-5)


def _repeated_index_gathers(t: torch.Tensor) -> list[str]:
    """Advanced-indexing nodes in t's graph that gather some index more than once."""
    seen, found, todo = set(), [], [t.grad_fn]
    while todo:
        fn = todo.pop()
        if fn is None or fn in seen:
            continue
        seen.add(fn)
        if type(fn).__name__ == "IndexBackward0":
            for idx in fn._saved_indices:
                if idx is not None and idx.dtype != torch.bool and idx.unique().numel() < idx.numel():
                    found.append(f"IndexBackward0 over {idx.tolist()}")
        todo.extend(next_fn for next_fn, _ in fn.next_functions)
    return found


def test_the_shared_prompt_pass_has_no_atomic_accumulating_backward(tiny_model):
    """Runs of one seed must repeat on a multi-threaded CPU. The backward of advanced indexing
    (`x[idx]`, IndexBackward) accumulates with atomic adds on CPU threads, so an index taken
    more than once sums in whatever order the threads come: the demo's runs drifted apart (1e-7
    at step 3, other answers by step 4). The prompt caches, repeated for each answer, are taken
    with index_select, whose backward adds in a fixed order."""
    from trainer.models import load_model
    from trainer.rollout import encode_prompt, generate

    model, tok = load_model(str(tiny_model))
    prompts = [encode_prompt(tok, [{"role": "user", "content": c}], max_tokens=64)[0] for c in ["hi", "a longer one"]]
    r = generate(model, prompts, group_size=3, max_new_tokens=5, eos_ids={tok.eos_token_id},
                 pad_id=tok.pad_token_id, generator=torch.Generator().manual_seed(0))
    runs = []
    for _ in range(2):
        model.zero_grad()
        logp, _ = completion_logprobs(model, r.prompt_ids, r.prompt_mask, r.completion_ids, r.completion_mask,
                                      temperature=1.0, share_prompt=True, share_chunk_rows=2)
        assert _repeated_index_gathers(logp) == []
        logp.sum().backward()
        runs.append([p.grad.clone() for p in model.parameters()])
    assert all(torch.equal(x, y) for x, y in zip(*runs, strict=True))
