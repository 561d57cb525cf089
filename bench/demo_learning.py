"""Does the default demo run teach what it claims? Per-criterion validation scores before and after.

    .venv/bin/python bench/demo_learning.py                 # the default demo run: ~10-15 min on 2 CPU cores
    .venv/bin/python bench/demo_learning.py --max-steps 20 --json out.json

Trains on exactly what `manage.py seed_demo` seeds (webapp/core/demo: the tasks, the
train/validation split, the rubric) with the settings the launch form gives a new run on a
CPU worker (every hyperparameter "auto", seed 42), through `trainer.train`. "Before" is the
base model graded the way the run validates (greedy answers to the 20 validation tasks);
"after" is the best checkpoint's validation (the one the run page, evaluations and exports
use) and the run's last one. Prints them per criterion, with the train reward and
entropy along the way, so a run that only learns the easy criterion (or collapses to one
answer) shows it.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def evaluate_base(config, valid, grader) -> dict:
    """The base model's greedy answers to the validation tasks, graded (what step 0 would show)."""
    import torch

    from trainer.grading import run_grader
    from trainer.loop import stop_token_ids
    from trainer.models import load_model
    from trainer.rollout import encode_prompt, generate

    model, tok = load_model(config.base_model)
    prompts = [encode_prompt(tok, r["messages"], max_tokens=config.max_prompt_tokens)[0] for r in valid]
    with torch.no_grad():
        r = generate(model, prompts, group_size=1, max_new_tokens=config.max_completion_tokens,
                     eos_ids=stop_token_ids(model, tok), pad_id=tok.pad_token_id, temperature=0)
    texts = [tok.decode(r.completion_ids[i, :int(r.completion_mask[i].sum())], skip_special_tokens=True)
             for i in range(len(valid))]
    results = [run_grader(grader, {"output_text": t}, item) for t, item in zip(texts, valid, strict=True)]
    out = {"valid/reward_mean": statistics.mean(x.reward for x in results)}
    for key in results[0].sub_rewards:
        out[f"valid/grader/{key}_mean"] = statistics.mean(x.sub_rewards.get(key, 0.0) for x in results)
    out["answers"] = texts
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--max-steps", type=int, help="stop early (default: the whole default run)")
    p.add_argument("--seed", type=int, default=42, help="the launch form's default seed")
    p.add_argument("--hyperparameters", default="{}", help="OpenAI hyperparameters as JSON (default: all auto)")
    p.add_argument("--overrides", default="{}", help="TrainConfig fields as JSON, e.g. '{\"beta\": 0.04}'")
    p.add_argument("--out", default=None, help="run folder (default: a temporary one)")
    p.add_argument("--json", help="also write the figures here")
    args = p.parse_args()

    from trainer import Hooks, Tasks, config_from_openai_hyperparameters, train
    from webapp.core.demo import DEMO_GRADER, demo_rows, demo_split

    train_rows, valid_rows = demo_split(demo_rows())
    overrides = json.loads(args.overrides)
    if args.max_steps:
        overrides["max_steps"] = args.max_steps
    out = args.out or tempfile.mkdtemp(prefix="demo-learning-")
    config = config_from_openai_hyperparameters(json.loads(args.hyperparameters), base_model="smollm2-135m-instruct",
                                                n_train_tasks=len(train_rows), n_valid_tasks=len(valid_rows),
                                                device="cpu", seed=args.seed, output_dir=out, **overrides)
    print(f"{len(train_rows)} train / {len(valid_rows)} valid tasks; {config.total_steps(len(train_rows))} steps of "
          f"{config.batch_size} tasks x {config.group_size} answers, <= {config.max_completion_tokens} tokens, "
          f"{config.method} lr {config.learning_rate:g}, beta {config.beta}, dynamic sampling "
          f"{'on' if config.dynamic_sampling else 'off'}", flush=True)

    t0 = time.time()
    before = evaluate_base(config, valid_rows, DEMO_GRADER)
    print(f"before (base model, greedy): {json.dumps({k: round(v, 3) for k, v in before.items() if k != 'answers'})}",
          flush=True)
    print(f"  answers: {before['answers'][:8]}", flush=True)

    steps = []

    class Print(Hooks):
        def on_step(self, step, metrics, samples):
            steps.append(metrics)
            valid = ""
            if "valid/reward_mean" in metrics:
                valid = "  valid " + " ".join(f"{k.split('/')[-1]}={v:.3f}" for k, v in metrics.items()
                                              if k.startswith("valid/grader/") or k == "valid/reward_mean")
            print(f"step {step:3d} reward {metrics['train/reward_mean']:.3f} entropy "
                  f"{metrics.get('train/entropy', float('nan')):.3f} kept {metrics['train/groups_kept']}/"
                  f"{metrics['train/groups_sampled']} {metrics['time/step']:.1f}s{valid}", flush=True)

        def on_event(self, level, message, data=None):
            if level != "info" or (data or {}).get("kind") == "no_signal":
                print(f"  [{level}] {message}", flush=True)

    result = train(config, Tasks(train=train_rows, valid=valid_rows), DEMO_GRADER, Print())
    after = result.valid_metrics
    # the run page, the evaluations and the exports use the best checkpoint (highest validation
    # reward); the last validation is printed beside it
    best_step = int(Path(result.best_checkpoint).name.split("-")[-1]) if result.best_checkpoint else result.step
    best = next((m for m in steps if m.get("step") == best_step and "valid/reward_mean" in m), after)
    print(f"\n{'criterion':28}{'before':>9}{f'best (step {best_step})':>20}{f'last (step {result.step})':>20}")
    keys = ["valid/reward_mean"] + sorted(k for k in before if k.startswith("valid/grader/"))
    for key in keys:
        print(f"{key.removeprefix('valid/'):28}{before[key]:9.3f}{best.get(key, float('nan')):20.3f}"
              f"{after.get(key, float('nan')):20.3f}")
    entropies = [m["train/entropy"] for m in steps if "train/entropy" in m]
    if entropies:
        print(f"train entropy: first 5 steps {statistics.mean(entropies[:5]):.3f}, "
              f"last 5 {statistics.mean(entropies[-5:]):.3f}")
    print(f"{result.step} steps in {(time.time() - t0) / 60:.1f} min; best checkpoint {result.best_checkpoint}")
    if args.json:
        Path(args.json).write_text(json.dumps({"config": config.to_dict(), "before": before, "best": best,
                                               "after": after,
                                               "steps": steps}, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
