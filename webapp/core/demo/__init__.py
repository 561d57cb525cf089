"""The demo project's content: customer-review triage (positive / negative) for the built-in 135M model.

Kept free of Django so `bench/demo_learning.py` trains on exactly what `seed_demo` seeds.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from trainer.grading import weighted_mean_formula

DEMO_FILE = Path(__file__).resolve().parent / "review_triage.jsonl"
HOLDOUT_PERCENT, SPLIT_SEED = 25, 0
LABELS = ["positive", "negative"]

#: The rubric an expert would build for the demo, as the rubric builder stores it: the right
#: label (weight 3) and an answer of exactly one word (weight 1), combined as the weighted
#: mean of those weights, so partly-right answers get partial credit to learn from.
CRITERIA = [
    {"key": "correct_label", "name": "correct_label", "type": "choice_match", "weight": 3.0, "gate": False},
    {"key": "one_word", "name": "one_word", "type": "length_bounds", "weight": 1.0, "gate": False},
]
DEMO_RUBRIC = {"combine": "weighted_mean", "formula": "", "criteria": CRITERIA}
DEMO_GRADER = {
    "type": "multi",
    "name": "Review triage rubric",
    "graders": {
        "correct_label": {"type": "choice_match", "name": "correct_label",
                          "reference": "{{item.reference_answer}}", "options": LABELS},
        "one_word": {"type": "length_bounds", "name": "one_word",
                     "unit": "words", "min": 1, "max": 1},
    },
    "calculate_output": weighted_mean_formula({c["key"]: c["weight"] for c in CRITERIA}),
}


def demo_rows() -> list[dict]:
    return [json.loads(line) for line in DEMO_FILE.read_text(encoding="utf-8").splitlines() if line.strip()]


def demo_split(rows: list[dict]) -> tuple[list[dict], list[dict]]:
    """(train, valid) as `seed_demo` splits them (the dataset importer's seeded hold-out)."""
    k = round(len(rows) * HOLDOUT_PERCENT / 100)
    held = set(random.Random(SPLIT_SEED).sample(range(len(rows)), k))
    return [r for i, r in enumerate(rows) if i not in held], [r for i, r in enumerate(rows) if i in held]
