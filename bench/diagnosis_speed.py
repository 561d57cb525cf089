"""How long the run page's findings take on a long run (the rules are re-run on every poll and
by the training hooks every 10 s). Prints figures; not part of the test run.

    .venv/bin/python bench/diagnosis_speed.py --steps 5000
"""

from __future__ import annotations

import argparse
import math
import random
import time


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    from webapp.insights.diagnosis import RunView, diagnose
    from webapp.reviews.stats import Pair, agreement_report

    rng = random.Random(0)
    steps = [(s, {"train/reward_mean": 0.2 + 0.6 * s / args.steps + rng.gauss(0, 0.05),
                  "train/frac_zero_std_groups": rng.random() * 0.5, "train/completion_tokens_mean": 40 + rng.random(),
                  "train/truncated_frac": 0.0, "train/grader_error_frac": 0.0, "train/entropy": 1.0 + 0.1 * math.sin(s),
                  "train/kl": 0.01, "train/grader/a_mean": rng.random(), "train/grader/b_mean": rng.random(),
                  **({"valid/reward_mean": 0.5} if s % 10 == 0 else {})}) for s in range(1, args.steps + 1)]
    view = RunView(steps=steps, max_completion_tokens=128, main_criterion="a")
    t0 = time.perf_counter()
    for _ in range(args.repeat):
        diagnose(view)
    per = (time.perf_counter() - t0) / args.repeat
    print(f"diagnose: {args.steps} steps, 8 rules: {per * 1000:.1f} ms per run")

    pairs = [Pair(item=i, criterion=f"c{i % 4}", reviewer=f"r{i % 3}", grader=float(rng.random() > 0.5),
                  expert=float(rng.random() > 0.4)) for i in range(20000)]
    t0 = time.perf_counter()
    agreement_report(pairs)
    print(f"agreement_report: {len(pairs)} scores: {(time.perf_counter() - t0) * 1000:.1f} ms")


if __name__ == "__main__":
    import os
    import sys
    from pathlib import Path

    import django

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's webapp
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings")
    django.setup()
    main()
