"""Trainer throughput on real model shapes: sampling and training tokens/s, MFU, peak memory.

    .venv/bin/python bench/gpu_throughput.py                          # CUDA: Qwen2.5-0.5B and 1.5B shapes
    .venv/bin/python bench/gpu_throughput.py --shapes qwen2.5-0.5b --methods full --batch-size 8
    .venv/bin/python bench/gpu_throughput.py --shapes tiny --steps 1   # CPU: checks that it starts

Models are built from the configurations written below with random weights (nothing is
downloaded), on CUDA in bf16 the way `trainer.train` runs them (`trainer.models.Precision`:
LoRA on a bf16 base, full tuning on float32 master weights under bf16 autocast). Each phase
runs the trainer's own code: `trainer.rollout.generate` for sampling (B prompts x G answers
of exactly `--answer-tokens` tokens, the shared-prompt cache), and for training
`trainer.objective.completion_logprobs` + `policy_loss`, backward, grad clipping and AdamW.

Printed per shape and method: sampling tokens/s (answer tokens), training tokens/s (prompt +
answer tokens through forward and backward), model FLOPs utilisation of each phase (2N FLOPs
per sampled token; 6N per trained token for full tuning, 4N for LoRA whose frozen weights
get no gradient; attention FLOPs left out, so MFU is a slight underestimate) against the
GPU's dense bf16 peak (`--peak-tflops` to set it), and the peak GPU memory of each phase.
On CPU the MFU is not computed and memory is the process's peak resident set.

When TRL is importable (e.g. run the script with `bench/.venv-trl/bin/python`, see
`bench/grpo_vs_trl.py`), TRL's `GRPOTrainer` runs the same model shape, method, batch and
answer length (a word-level tokenizer over the same vocabulary size, random rewards, beta 0,
dapo loss, bf16 on CUDA) and its seconds per step are printed beside ours.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

#: Qwen2.5 configurations as published (config.json of Qwen/Qwen2.5-0.5B-Instruct and -1.5B-Instruct).
SHAPES = {
    "qwen2.5-0.5b": dict(hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14,
                         num_key_value_heads=2, vocab_size=151936, tie_word_embeddings=True, rope_theta=1e6),
    "qwen2.5-1.5b": dict(hidden_size=1536, intermediate_size=8960, num_hidden_layers=28, num_attention_heads=12,
                         num_key_value_heads=2, vocab_size=151936, tie_word_embeddings=True, rope_theta=1e6),
    "tiny": dict(hidden_size=128, intermediate_size=384, num_hidden_layers=4, num_attention_heads=4,
                 num_key_value_heads=2, vocab_size=4096, tie_word_embeddings=True, rope_theta=1e4),
}

#: Dense bf16 peak TFLOP/s by GPU name (no sparsity).
PEAK_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "A10": 125.0, "L4": 121.0,
               "4090": 165.0, "A6000": 155.0}


def build(shape: str, method: str, device: torch.device):
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from trainer.config import TrainConfig
    from trainer.loop import _prepare_policy
    from trainer.models import Precision, disable_dropout, master_weights_fp32

    precision = Precision.for_run(method, "auto", device)
    config = Qwen2Config(max_position_embeddings=4096, **SHAPES[shape])
    torch.manual_seed(0)
    with torch.device(device):
        model = Qwen2ForCausalLM(config).to(precision.load)
    model.eval()
    disable_dropout(model)
    train_config = TrainConfig(method=method, base_model="random")
    model, _ = _prepare_policy(model, train_config)
    params = [p for p in model.parameters() if p.requires_grad]
    master_weights_fp32(params)
    n_params = sum(p.numel() for p in model.parameters())
    return model, params, precision, n_params


def measure(shape: str, method: str, args, device: torch.device) -> dict:
    from trainer.config import TrainConfig
    from trainer.loop import make_optimizer
    from trainer.objective import completion_logprobs, policy_loss
    from trainer.rollout import generate

    model, params, precision, n_params = build(shape, method, device)
    optimizer = make_optimizer(params, TrainConfig(learning_rate=1e-6))
    scaler = precision.grad_scaler()
    vocab = SHAPES[shape]["vocab_size"]
    B, G, P, T = args.batch_size, args.group_size, args.prompt_tokens, args.answer_tokens
    gen = torch.Generator().manual_seed(0)
    sampling, training, sample_mem, train_mem = [], [], 0, 0
    for step in range(args.steps + 1):  # step 0 warms up (kernels, allocator)
        prompts = [torch.randint(0, vocab, (P,), generator=gen).tolist() for _ in range(B)]
        _reset_peak(device)
        _sync(device)
        t0 = time.perf_counter()
        with precision.autocast():
            r = generate(model, prompts, group_size=G, max_new_tokens=T, eos_ids={vocab + 1}, pad_id=0,
                         temperature=1.0, seeds=list(range(step * B * G, (step + 1) * B * G)))
        _sync(device)
        t_sample = time.perf_counter() - t0
        sample_mem = max(sample_mem, _peak(device))

        _reset_peak(device)
        t0 = time.perf_counter()
        model.train()
        optimizer.zero_grad(set_to_none=True)
        mb = args.micro_batch or B
        advantages = torch.randn(B * G, device=device)
        tokens = float(r.completion_mask.sum())
        for b0 in range(0, B, mb):
            b1 = min(B, b0 + mb)
            with precision.autocast():
                logp, _ = completion_logprobs(model, r.prompt_ids[b0:b1], r.prompt_mask[b0:b1],
                                              r.completion_ids[b0 * G:b1 * G], r.completion_mask[b0 * G:b1 * G],
                                              temperature=1.0, with_entropy=False)
            loss, _ = policy_loss(logp, logp.detach(), advantages[b0 * G:b1 * G], r.completion_mask[b0 * G:b1 * G],
                                  loss_type="dapo", epsilon_low=0.2, epsilon_high=0.2, max_completion_tokens=T,
                                  num_sequences=B * G, num_tokens=tokens)
            (scaler.scale(loss) if scaler else loss).backward()
        if scaler:
            scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(params, 1.0, foreach=True)
        (scaler.step(optimizer), scaler.update()) if scaler else optimizer.step()
        model.eval()
        _sync(device)
        t_train = time.perf_counter() - t0
        train_mem = max(train_mem, _peak(device))
        if step:
            sampling.append(t_sample)
            training.append(t_train)
        print(f"  {shape} {method} step {step}: sampling {t_sample:.2f}s training {t_train:.2f}s",
              file=sys.stderr, flush=True)

    sampled_tokens = B * G * T
    trained_tokens = B * P + B * G * T  # the shared-prompt pass: each prompt once
    s_sample, s_train = statistics.mean(sampling), statistics.mean(training)
    peak = args.peak_tflops or _peak_tflops(device)
    train_flops_per_token = (6 if method == "full" else 4) * n_params
    out = {
        "shape": shape, "method": method, "device": _device_name(device), "dtype": str(precision.compute),
        "params": n_params, "trainable": sum(p.numel() for p in params),
        "batch": f"{B} prompts x {G} answers, {P} prompt + {T} answer tokens",
        "sampling_tokens_per_s": sampled_tokens / s_sample,
        "training_tokens_per_s": trained_tokens / s_train,
        "s_per_step": s_sample + s_train,
        "sampling_peak_gib": sample_mem / 2**30, "training_peak_gib": train_mem / 2**30,
    }
    if peak:
        out["sampling_mfu"] = 2 * n_params * sampled_tokens / s_sample / (peak * 1e12)
        out["training_mfu"] = train_flops_per_token * trained_tokens / s_train / (peak * 1e12)
    del model, optimizer
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return out


def measure_trl(shape: str, method: str, args, device: torch.device) -> float | None:
    """TRL's GRPOTrainer seconds per step on the same shape, or None when TRL is not importable."""
    try:
        from trl import GRPOConfig, GRPOTrainer
    except ImportError:
        return None
    import random
    import tempfile

    from datasets import Dataset
    from peft import LoraConfig
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM, TrainerCallback

    from trainer.config import DEFAULT_TARGET_MODULES

    vocab = SHAPES[shape]["vocab_size"]
    backend = Tokenizer(models.WordLevel({f"t{i}": i for i in range(vocab)}, unk_token="t2"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="t1", pad_token="t0", unk_token="t2",
                                        padding_side="left")
    rng = random.Random(0)
    prompts = [" ".join(f"t{rng.randrange(3, vocab)}" for _ in range(args.prompt_tokens))
               for _ in range(args.batch_size * (args.steps + 1))]
    cuda = device.type == "cuda"
    torch.manual_seed(0)
    with torch.device(device):
        model = Qwen2ForCausalLM(Qwen2Config(max_position_embeddings=4096, **SHAPES[shape]))
    if method == "lora" and cuda:
        model = model.to(torch.bfloat16)
    times: list[float] = []

    class Timer(TrainerCallback):
        def on_step_begin(self, *a, **k):
            _sync(device)
            self.t = time.perf_counter()

        def on_step_end(self, *a, **k):
            _sync(device)
            times.append(time.perf_counter() - self.t)

    B, G = args.batch_size, args.group_size
    config = GRPOConfig(
        output_dir=tempfile.mkdtemp(prefix="trl-bench-"), per_device_train_batch_size=B * G, num_generations=G,
        gradient_accumulation_steps=1, max_completion_length=args.answer_tokens, learning_rate=1e-6, beta=0.0,
        loss_type="dapo", num_iterations=1, temperature=1.0, max_steps=args.steps + 1, logging_steps=1,
        save_strategy="no", report_to="none", bf16=cuda, use_cpu=not cuda, disable_tqdm=True, seed=0,
        dataloader_num_workers=0)
    lora = LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, task_type="CAUSAL_LM",
                      target_modules=list(DEFAULT_TARGET_MODULES)) if method == "lora" else None
    trainer = GRPOTrainer(model=model, reward_funcs=[lambda completions, **kw: [rng.random() for _ in completions]],
                          args=config, train_dataset=Dataset.from_list([{"prompt": p} for p in prompts]),
                          processing_class=tokenizer, peft_config=lora, callbacks=[Timer()])
    trainer.train()
    del trainer, model
    if cuda:
        torch.cuda.empty_cache()
    return statistics.mean(times[1:] or times)


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _reset_peak(device):
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def _peak(device) -> int:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device)
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _device_name(device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"


def _peak_tflops(device) -> float | None:
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((v for k, v in PEAK_TFLOPS.items() if k in name), None)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cuda = torch.cuda.is_available()
    p.add_argument("--shapes", nargs="+", choices=sorted(SHAPES),
                   default=["qwen2.5-0.5b", "qwen2.5-1.5b"] if cuda else ["tiny"])
    p.add_argument("--methods", nargs="+", choices=["lora", "full"], default=["lora", "full"])
    p.add_argument("--batch-size", type=int, default=8 if cuda else 2, help="prompts per step")
    p.add_argument("--group-size", type=int, default=8 if cuda else 2, help="answers per prompt")
    p.add_argument("--prompt-tokens", type=int, default=256 if cuda else 16)
    p.add_argument("--answer-tokens", type=int, default=256 if cuda else 8)
    p.add_argument("--micro-batch", type=int, default=0, help="prompts per forward/backward (0: all)")
    p.add_argument("--steps", type=int, default=3, help="measured steps after one warm-up step")
    p.add_argument("--peak-tflops", type=float, help="the GPU's dense bf16 peak, when its name is not known")
    p.add_argument("--no-trl", action="store_true", help="skip TRL's GRPOTrainer even when it is importable")
    p.add_argument("--json", help="also write the results here")
    args = p.parse_args()
    device = torch.device("cuda" if cuda else "cpu")

    results = []
    for shape in args.shapes:
        for method in args.methods:
            r = measure(shape, method, args, device)
            trl = None if args.no_trl else measure_trl(shape, method, args, device)
            if trl is not None:
                r["trl_s_per_step"], r["steps_per_s_vs_trl"] = trl, trl / r["s_per_step"]
            results.append(r)
    print(f"\n{results[0]['device']}, {results[0]['dtype']}, {results[0]['batch']}, {args.steps} measured steps")
    print(f"{'shape':14}{'method':8}{'sample tok/s':>14}{'train tok/s':>13}{'sample MFU':>12}{'train MFU':>11}"
          f"{'sample GiB':>12}{'train GiB':>11}{'s/step':>9}")
    for r in results:
        mfu = (f"{r['sampling_mfu']:12.1%}{r['training_mfu']:11.1%}" if "sampling_mfu" in r
               else f"{'n/a':>12}{'n/a':>11}")
        print(f"{r['shape']:14}{r['method']:8}{r['sampling_tokens_per_s']:14.0f}{r['training_tokens_per_s']:13.0f}"
              f"{mfu}{r['sampling_peak_gib']:12.2f}{r['training_peak_gib']:11.2f}{r['s_per_step']:9.2f}"
              + (f"   TRL {r['trl_s_per_step']:.2f} s/step ({r['steps_per_s_vs_trl']:.2f}x)" if "trl_s_per_step" in r
                 else ""))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
